"""The paged KV cache of one replica: a pool of fixed-size blocks that schedulers allocate to
requests and free when they finish or are evicted. Every block count a scheduler uses comes
from here (the schedulers hold no block arithmetic of their own).

BlockPool is the allocator (vLLM v1's KVCacheManager.allocate_slots / free, TGI's
BlockAllocator); LazyBlockPool adds transformers continuous batching's growth rule;
PrefixCachingBlockPool adds vLLM v1's prefix cache (blocks kept by hash after they are freed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable


class BlockPool:
    """num_blocks blocks of block_size tokens; each owner (a request, a request's state)
    holds a number of them. `free_blocks` is what is left; `min_free_blocks` the lowest it
    has been."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 0 or block_size <= 0:
            raise ValueError(f"a pool of {num_blocks} blocks of {block_size} tokens")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.free_blocks = num_blocks
        self.min_free_blocks = num_blocks
        self._held: dict[Hashable, int] = {}

    @classmethod
    def of_tokens(cls, tokens: int, block_size: int) -> BlockPool:
        """The whole blocks that fit a capacity of `tokens` tokens."""
        return cls(tokens // block_size, block_size)

    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_size

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold `tokens` tokens."""
        return -(-tokens // self.block_size)

    def round_up(self, tokens: int) -> int:
        """`tokens` rounded up to whole blocks, in tokens."""
        return self.blocks_for(tokens) * self.block_size

    def can_allocate(self, n: int) -> bool:
        return n <= self.free_blocks

    def below_free_fraction(self, fraction: float) -> bool:
        """Fewer than `fraction` of all blocks are free."""
        return self.free_blocks < fraction * self.num_blocks

    def allocate(self, owner: Hashable, n: int) -> None:
        """Give `owner` n more blocks (RuntimeError if fewer are free: check can_allocate)."""
        if n > self.free_blocks:
            raise RuntimeError(f"KV pool: {n} blocks asked, {self.free_blocks} free")
        self.free_blocks -= n
        self._held[owner] = self._held.get(owner, 0) + n
        self.min_free_blocks = min(self.min_free_blocks, self.free_blocks)

    def free(self, owner: Hashable) -> int:
        """Return every block of `owner` to the pool; the number freed."""
        n = self._held.pop(owner, 0)
        self.free_blocks += n
        return n

    def held(self, owner: Hashable) -> int:
        return self._held.get(owner, 0)

    def slots_left(self, owner: Hashable, tokens: int) -> int:
        """Token slots still empty in `owner`'s blocks when it holds `tokens` tokens."""
        return self.held(owner) * self.block_size - tokens


class LazyBlockPool(BlockPool):
    """transformers 5.17 continuous batching (scheduler.py `_allocate_blocks_if_needed`): a
    request asks for blocks only when the next step's tokens do not fit the empty slots of
    those it holds, and then for ((n - empty slots + 1) // block_size) + 1 blocks."""

    def to_allocate(self, owner: Hashable, tokens: int, n: int) -> int:
        """Blocks `owner`, holding `tokens` tokens, asks for before computing n more (0 if
        they fit)."""
        empty = self.slots_left(owner, tokens)
        if empty < n or self.held(owner) == 0:
            return (n - empty + 1) // self.block_size + 1
        return 0

    def decode_allocations(self, owner: Hashable, tokens: int, k: int) -> int:
        """Blocks allocated over the next k decode steps (one token each) of `owner`, holding
        `tokens` tokens. Its empty slots run out after that many steps; each allocation then
        gives g = 2 // block_size + 1 blocks (the rule for one token with no empty slot),
        lasting g * block_size steps."""
        empty = self.slots_left(owner, tokens)
        if empty < 0:
            raise AssertionError("a decoding request holds fewer slots than tokens")
        g = 2 // self.block_size + 1
        return 0 if k <= empty else g * (1 + (k - 1 - empty) // (g * self.block_size))


class PrefixCachingBlockPool(BlockPool):
    """vLLM v1's block pool with prefix caching (v0.11.1 vllm/v1/core/block_pool.py,
    single_type_kv_cache_manager.py), read, not copied.

    Every block is numbered. A full block may carry a hash (the identity of the tokens it
    holds, and of all before it); hashed blocks can be found by hash. A freed block keeps its
    hash and joins the tail of the free queue, which is the eviction order: allocation takes
    blocks from its head and drops a taken block's hash (eviction). A request's blocks are
    freed last block first, so its tail is evicted before its head (free_blocks(reversed)).
    `free_blocks` counts every block in the free queue, cached ones included (vLLM's
    get_num_free_blocks). A hit on a cached block with no holder takes it out of the queue
    (touch), so it counts against the free blocks like a new one (get_num_blocks_to_allocate
    counts the "evictable computed blocks").
    """

    def __init__(self, num_blocks: int, block_size: int) -> None:
        super().__init__(num_blocks, block_size)
        self._queue: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self._ref: dict[int, int] = {}  # holders of each block not in the queue
        self._hash_of: dict[int, Hashable] = {}
        self._by_hash: dict[Hashable, list[int]] = {}
        self._blocks: dict[Hashable, list[int]] = {}  # owner -> its blocks, in token order
        self._hashed: dict[Hashable, int] = {}  # owner -> how many of its blocks are hashed
        self.evictions = 0  # cached blocks whose hash was dropped to reuse the block

    # ---- lookups -----------------------------------------------------------------------
    def cached(self, key: Hashable) -> bool:
        return key in self._by_hash

    def longest_hit(self, keys: Callable[[int], Hashable], max_blocks: int) -> list[int]:
        """The cached blocks of the longest run of block hashes keys(0), keys(1), ... found
        (at most max_blocks): find_longest_cache_hit stops at the first miss."""
        hit: list[int] = []
        for i in range(max_blocks):
            blocks = self._by_hash.get(keys(i))
            if not blocks:
                break
            hit.append(blocks[0])
        return hit

    def to_allocate(self, owner: Hashable, tokens: int, hit: list[int] = ()) -> int:
        """Blocks `owner` takes from the free queue to hold `tokens` tokens with the cached
        blocks `hit` (get_num_blocks_to_allocate): the new ones, plus the hit blocks that sit
        in the free queue."""
        new = self.blocks_for(tokens) - len(hit) - self.held(owner)
        return max(new, 0) + sum(1 for b in hit if b in self._queue)

    # ---- changes -------------------------------------------------------------------------
    def take_hit(self, owner: Hashable, hit: list[int]) -> None:
        """`owner` starts with the cached blocks `hit` (touch + save_new_computed_blocks)."""
        for b in hit:
            if b in self._queue:
                del self._queue[b]
                self.free_blocks -= 1
                self._ref[b] = 0
            self._ref[b] += 1
        blocks = self._blocks.setdefault(owner, [])
        blocks.extend(hit)
        self._hashed[owner] = len(blocks)
        self._held[owner] = len(blocks)
        self.min_free_blocks = min(self.min_free_blocks, self.free_blocks)

    def allocate(self, owner: Hashable, n: int) -> None:
        """n blocks from the head of the free queue, their hashes evicted (get_new_blocks)."""
        if n > self.free_blocks:
            raise RuntimeError(f"KV pool: {n} blocks asked, {self.free_blocks} free")
        blocks = self._blocks.setdefault(owner, [])
        for _ in range(n):
            b, _none = self._queue.popitem(last=False)
            key = self._hash_of.pop(b, None)
            if key is not None:
                same = self._by_hash[key]
                same.remove(b)
                if not same:
                    del self._by_hash[key]
                self.evictions += 1
            self._ref[b] = 1
            blocks.append(b)
        self._hashed.setdefault(owner, 0)
        super().allocate(owner, n)

    def cache(self, owner: Hashable, full_blocks: int, keys: Callable[[int], Hashable]) -> None:
        """Hash the first `full_blocks` blocks of `owner` (cache_full_blocks: those already
        hashed keep their hash); a hash may be held by several blocks."""
        blocks = self._blocks.get(owner, [])
        upto = min(full_blocks, len(blocks))
        for i in range(self._hashed.get(owner, 0), upto):
            key = keys(i)
            self._hash_of[blocks[i]] = key
            self._by_hash.setdefault(key, []).append(blocks[i])
        if upto > self._hashed.get(owner, 0):
            self._hashed[owner] = upto

    def free(self, owner: Hashable) -> int:
        """Release `owner`'s blocks, last first; a block nobody else holds joins the free
        queue's tail with its hash (still a cache hit until evicted). Returns the blocks that
        became free."""
        self._held.pop(owner, None)
        self._hashed.pop(owner, None)
        freed = 0
        for b in reversed(self._blocks.pop(owner, [])):
            self._ref[b] -= 1
            if self._ref[b] == 0:
                del self._ref[b]
                self._queue[b] = None
                freed += 1
        self.free_blocks += freed
        return freed

    @property
    def cached_blocks(self) -> int:
        """Blocks that carry a hash (held or in the free queue)."""
        return len(self._hash_of)
