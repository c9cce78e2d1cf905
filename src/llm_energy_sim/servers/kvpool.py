"""The paged KV cache of one replica: a pool of fixed-size blocks that schedulers allocate to
requests and free when they finish or are evicted. Every block count a scheduler uses comes
from here (the schedulers hold no block arithmetic of their own).

BlockPool is the allocator (vLLM v1's KVCacheManager.allocate_slots / free, TGI's
BlockAllocator); LazyBlockPool adds transformers continuous batching's growth rule.
"""

from __future__ import annotations

from collections.abc import Hashable


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
