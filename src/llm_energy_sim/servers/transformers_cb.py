"""transformers' continuous batching manager (v5.17), the engine `sim replay --engine transformers` runs.

Facts taken from transformers 5.17 src/transformers/generation/continuous_batching/ (read, not copied):

- one loop: each iteration schedules a batch (`scheduler.py`), runs one forward over all of its
  tokens (prefill chunks and decodes packed together), then updates every request;
- token budget per step = `max_batch_tokens`; at most `max_requests_per_batch` requests
  (min(1024, max_batch_tokens) when prefix sharing is possible, as for Llama);
- FIFO scheduler: requests already decoding first, then partly prefilled ones, then waiting ones
  in arrival order; `prefill_first` puts partly prefilled requests before decoding ones.
  A request whose remaining prompt exceeds the budget left gets a chunk of exactly that budget
  (chunked prefill); the chunk that ends its prompt yields its first token;
- FIFO keeps a safety margin: once fewer than 15% of the blocks are free, no further
  non-decoding request joins a batch that already has one (prefill_first: no margin);
- lazy block allocation: a request gets blocks only when the tokens of the next step do not
  fit in what it holds: ((n - free_slots + 1) // block_size) + 1 blocks at a time;
- a request that cannot get its blocks is skipped for the step ("starved"); if nothing could be
  scheduled, or some were starved, the newest starved requests are evicted ("soft reset", the
  default with no CPU offload space): their blocks are freed, and they go back to the end of the
  waiting queue with prompt + generated tokens as their new prompt (re-prefilled from scratch);
  no waiting request is admitted again until some request finishes;
- defaults from free memory (`cache.py`, PagedAttentionMemoryHandler, sdpa attention, which needs
  an attention mask, so no CUDA graphs and no async batching): max_batch_tokens = 8192 (bounded
  so one batch fills at most 10% of the cache), num_blocks solved from 90% of the free memory
  after the weights for the KV cache, the attention mask [M, N+M] and the step's activations.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.cost.costmodel import StepWork
from llm_energy_sim.engine.replica import DECODE, PREFILL, Share
from llm_energy_sim.engine.request import REJECTED_TOO_LONG, Request
from llm_energy_sim.servers.base import Server
from llm_energy_sim.servers.memory import weight_bytes_per_gpu

DEFAULT_MAX_BATCH_TOKENS = 8192
MIN_MAX_BATCH_TOKENS = 256
MAX_MEMORY_PERCENT = 0.9  # no logits processors (greedy, EOS off)
CACHE_FILL_PER_BATCH = 0.1
MAX_REQUESTS_PER_BATCH = 1024
CUDA_CONTEXT_BYTES = (
    0.5 * 2**30
)  # counted as used by torch.cuda.mem_get_info before the cache is built
SAFETY_MARGIN = {"fifo": 0.15, "prefill_first": 0.0}

PENDING, PREFILLING, DECODING = 0, 1, 2


@dataclass(frozen=True)
class CbLimits:
    """Resolved sizes of the engine: what `ContinuousBatchingConfig` ends up with."""

    max_batch_tokens: int
    num_blocks: int
    block_size: int
    max_requests_per_batch: int
    safety_margin: float

    @property
    def num_pages(self) -> int:
        return self.num_blocks * self.block_size


def _memory_coefficients(
    card: ModelCard, act_bytes: int, tp: int
) -> list[tuple[float, float, float, float]]:
    """(per batch token M, per cache token N, per M*N, per M^2) bytes for each activation peak.

    The two peaks transformers checks: the LM head (hidden + fp32 logits per token) and attention
    (hidden, q, new k/v per token; old k/v of the whole cache). Both add the KV cache itself,
    the int32/int64 index tensors and the [M, N+M] attention mask that sdpa needs.
    """
    kv_heads = max(card.num_key_value_heads // tp, 1)
    page = card.d_head * kv_heads  # values per token per layer for K (and again for V)
    q_per_token = card.num_attention_heads * card.d_head
    layers = card.num_hidden_layers
    peaks = [
        (card.hidden_size * act_bytes + card.vocab_size * 4, 0.0),
        (act_bytes * (card.hidden_size + q_per_token + 2 * page), 2.0 * page * act_bytes),
    ]
    out = []
    for dm, dn in peaks:
        cn = dn + 2 * layers * page * act_bytes + 8  # KV cache + read index (N part)
        cm = dm + 7 * 4 + 4 + 8 + 8  # packed inputs, output ids, write index, read index (M part)
        out.append((cm, cn, float(act_bytes), float(act_bytes)))  # mask: M*N and M*M parts
    return out


def _solve_num_pages(coeffs, available: float, m: int) -> int:
    """Largest N (cache tokens) with memory(M=m, N) <= available for every peak."""
    best = math.inf
    for cm, cn, cmn, cmm in coeffs:
        best = min(best, math.floor((available - cm * m - cmm * m * m) / (cn + cmn * m)))
    return int(best)


def _upper_bound_batch_tokens(coeffs, available: float) -> int:
    """M when a batch is CACHE_FILL_PER_BATCH of the cache (M = f*N), the bound transformers uses."""
    f = CACHE_FILL_PER_BATCH
    best = math.inf
    for cm, cn, cmn, cmm in coeffs:
        a, b = cmn * f + cmm * f * f, cn + cm * f
        n = (-b + math.sqrt(b * b + 4 * a * available)) / (2 * a)
        best = min(best, int(math.floor(n) * f))
    return int(best)


def transformers_cb_limits(
    card: ModelCard, dtype: str, tp: int, gpu_memory_bytes: float, settings
) -> CbLimits:
    """The engine's defaults on this GPU, or the scenario's explicit values."""
    dt = dtype_info(dtype)
    weights = weight_bytes_per_gpu(card, dtype, tp)
    available = MAX_MEMORY_PERCENT * (gpu_memory_bytes - weights - CUDA_CONTEXT_BYTES)
    if available <= 0:
        from llm_energy_sim.config.errors import UserError

        raise UserError(
            f"{card.name} in {dtype} ({weights / 2**30:.1f} GiB per GPU) does not fit in "
            f"{gpu_memory_bytes / 2**30:.1f} GiB"
        )
    coeffs = _memory_coefficients(card, dt.act_bytes, tp)
    bs = settings.block_size
    m = settings.max_batch_tokens
    if m is None:
        m = max(
            min(DEFAULT_MAX_BATCH_TOKENS, _upper_bound_batch_tokens(coeffs, available)),
            MIN_MAX_BATCH_TOKENS,
        )
    n_blocks = settings.num_blocks
    if n_blocks is None:
        n_blocks = max(_solve_num_pages(coeffs, available, m) // bs, 1)
    return CbLimits(
        max_batch_tokens=int(m),
        num_blocks=int(n_blocks),
        block_size=bs,
        max_requests_per_batch=min(MAX_REQUESTS_PER_BATCH, int(m)),
        safety_margin=SAFETY_MARGIN[settings.scheduler],
    )


@dataclass(slots=True, eq=False)
class _State:
    """The engine's view of one request (RequestState): its prompt may grow after a soft reset."""

    req: Request
    tokens: int  # initial tokens of this state (prompt, or prompt + generated after a reset)
    max_new: int  # tokens this state may still generate
    remaining_prefill: int
    position: int = 0  # tokens already in the KV cache (position_offset)
    blocks: int = 0
    status: int = PENDING
    new_tokens: int = 0  # generated by this state

    def blocks_to_allocate(self, n: int, block_size: int) -> int:
        """Blocks the engine asks for before processing n tokens (0 if they fit)."""
        free_slots = self.blocks * block_size - self.position
        if free_slots < n or self.blocks == 0:
            return (n - free_slots + 1) // block_size + 1
        return 0

    def decode_allocations(self, k: int, block_size: int) -> int:
        """Blocks allocated over the next k decode steps (one token each). The slots run out
        first after `free_slots` steps; each allocation then gives g = 2 // block_size + 1 blocks
        (the engine's formula for one token with no free slot), lasting g * block_size steps."""
        free_slots = self.blocks * block_size - self.position
        if free_slots < 0:
            raise AssertionError("a decoding request holds fewer slots than tokens")
        g = 2 // block_size + 1
        return 0 if k <= free_slots else g * (1 + (k - 1 - free_slots) // (g * block_size))


@dataclass(slots=True)
class _Scheduled:
    state: _State
    tokens: int
    decode: bool  # a decode token (the request had its prompt done before this step)


class TransformersCbServer(Server):
    """ContinuousBatchProcessor + FIFOScheduler/PrefillFirstScheduler, eager (sdpa) execution."""

    engine = "transformers_cb"

    def __init__(self, env, replica, settings, limits: CbLimits) -> None:
        self.limits = limits
        self.free_blocks = limits.num_blocks
        self.active: dict[int, _State] = {}  # insertion order = order they became active
        self.states: dict[int, _State] = {}
        self.block_new = False
        self.evictions = 0
        self.max_step_tokens = 0  # largest token count of any step (for invariant tests)
        self.min_free_blocks = limits.num_blocks
        super().__init__(env, replica, settings)

    # ---- arrivals ----------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        """A request longer than the whole cache can never run (the engine would fail it)."""
        if req.prompt + req.output > self.limits.num_pages:
            req.status = REJECTED_TOO_LONG
            return False
        self.states[req.id] = _State(req, req.prompt, req.output, req.prompt)
        return True

    def should_interrupt(self, queue_was_empty: bool) -> bool:
        # a decode run only starts with no waiting request that could join; a new one can join
        # unless admissions are blocked after an eviction
        return not self.block_new

    # ---- scheduling (scheduler.py schedule_batch / _process_candidates) ----------------
    def _candidates(self) -> list[_State]:
        decoding = [s for s in self.active.values() if s.status == DECODING]
        prefilling = [s for s in self.active.values() if s.status == PREFILLING]
        first, second = (
            (decoding, prefilling) if self.settings.scheduler == "fifo" else (prefilling, decoding)
        )
        waiting = [] if self.block_new else [self.states[r.id] for r in self.queue]
        return first + second + waiting

    def _schedule(self) -> tuple[list[_Scheduled] | None, list[tuple[_State, int]]]:
        """One batch; None if nothing fits because the cache is full. Also returns the starved
        active requests with the blocks they asked for."""
        lim = self.limits
        token_budget, cache_budget = lim.max_batch_tokens, lim.num_pages
        request_budget = lim.max_requests_per_batch
        margin = lim.safety_margin * lim.num_blocks
        picked: list[_Scheduled] = []
        starved: list[tuple[_State, int]] = []
        failed = False
        for st in self._candidates():
            free_now = self.free_blocks
            if free_now < margin and picked and st.status != DECODING:
                break
            n = min(1 if st.status == DECODING else st.remaining_prefill, token_budget)
            read = st.position
            if cache_budget < read:  # the varlen path reads the cache through a fixed index
                continue
            need = st.blocks_to_allocate(n, lim.block_size)
            if need > self.free_blocks:
                failed = True
                if st.req.id in self.active:
                    starved.append((st, need))
                if free_now == 0 and st.status == PENDING:
                    break
                continue
            self.free_blocks -= need
            st.blocks += need
            self.min_free_blocks = min(self.min_free_blocks, self.free_blocks)
            was_decoding = st.status == DECODING
            if st.status == PENDING:
                self.active[st.req.id] = st
                self.queue.remove(st.req)
                if math.isnan(st.req.t_start):
                    st.req.t_start = self.env.now
            if not was_decoding:
                st.remaining_prefill -= n
                st.status = PREFILLING if st.remaining_prefill > 0 else DECODING
            picked.append(_Scheduled(st, n, was_decoding))
            token_budget -= n
            cache_budget -= read
            request_budget -= 1
            if token_budget == 0 or cache_budget <= 0 or request_budget <= 0:
                break
        if picked:
            self.replica.ledger.note_queue(self.env.now, len(self.queue))
        if not picked and failed:
            return None, starved
        return picked, starved

    def _evict(self, starved: list[tuple[_State, int]]) -> int:
        """offloading_manager.offload_requests with no CPU pool: soft-reset the newest starved
        requests until the others' demand fits; never the last active request."""
        free = self.free_blocks
        demand = sum(need for _, need in starved)
        victims: list[_State] = []
        while demand > free and starved and len(self.active) - len(victims) > 1:
            st, need = starved.pop()
            victims.append(st)
            demand -= need
            free += st.blocks
        for st in reversed(victims):
            self._release(st)
            fresh = _State(
                st.req,
                st.tokens + st.new_tokens,
                st.max_new - st.new_tokens,
                st.tokens + st.new_tokens,
            )
            self.states[st.req.id] = fresh
            self.queue.append(st.req)
        if victims:
            self.block_new = True
            self.evictions += len(victims)
            self.replica.ledger.note_queue(self.env.now, len(self.queue))
        return len(victims)

    def _release(self, st: _State) -> None:
        self.free_blocks += st.blocks
        st.blocks = 0
        del self.active[st.req.id]

    # ---- one forward (update_batch) ----------------------------------------------------
    def _step(self, batch: list[_Scheduled]) -> Generator:
        prefill: list[tuple[int, int]] = []
        shares: list[Share] = []
        n_dec = ctx = 0
        for b in batch:
            if b.decode:
                n_dec += 1
                ctx += b.state.position + 1
                shares.append(Share(b.state.req, 1, DECODE))
            else:
                prefill.append((b.tokens, b.state.position))
                shares.append(Share(b.state.req, b.tokens, PREFILL))
                b.state.req.computed_prompt += b.tokens
        work = StepWork(tuple(prefill), n_dec, ctx)
        self.max_step_tokens = max(self.max_step_tokens, work.tokens)
        yield from self.replica.step(work, shares)
        for b in batch:
            st, req = b.state, b.state.req
            st.position += b.tokens
            if b.decode or st.remaining_prefill == 0:  # a new token for this request
                st.new_tokens += 1
                req.generated += 1
                if math.isnan(req.t_first):
                    req.t_first = self.env.now
            req.prefilled = min(req.prompt, max(req.prefilled, st.position))
            if st.new_tokens >= st.max_new:
                self._complete(st)

    def _complete(self, st: _State) -> None:
        self._release(st)
        self.block_new = False
        self.finish(st.req)

    # ---- decode runs in closed form ------------------------------------------------------
    def _decode_run_length(self) -> int:
        """Steps the current all-decoding batch can run unchanged (0: take the step path)."""
        lim = self.limits
        if not self.active or (self.queue and not self.block_new):
            return 0
        states = list(self.active.values())
        if any(s.status != DECODING for s in states):
            return 0
        if len(states) > min(lim.max_batch_tokens, lim.max_requests_per_batch):
            return 0
        k = min(s.max_new - s.new_tokens for s in states)

        def allocs(steps: int) -> int:
            return sum(s.decode_allocations(steps, lim.block_size) for s in states)

        if allocs(k) > self.free_blocks:  # largest k whose lazy allocations all succeed
            lo, hi = 0, k
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if allocs(mid) <= self.free_blocks:
                    lo = mid
                else:
                    hi = mid - 1
            k = lo
        return k

    def _decode_run(self, k: int) -> Generator:
        states = list(self.active.values())
        reqs = [s.req for s in states]
        ctx = sum(s.position + 1 for s in states)
        bs = self.limits.block_size
        before = [(s, s.decode_allocations) for s in states]
        self.max_step_tokens = max(self.max_step_tokens, len(states))
        done = yield from self.replica.decode_run(reqs, k, ctx, server=self)
        for s, allocations in before:
            got = allocations(done, bs)
            s.blocks += got
            self.free_blocks -= got
            s.position += done
            s.new_tokens += done
        self.min_free_blocks = min(self.min_free_blocks, self.free_blocks)
        for s in states:
            if s.new_tokens >= s.max_new:
                self._complete(s)

    # ---- the generation loop -------------------------------------------------------------
    def run(self) -> Generator:
        while True:
            if not self.active and not self.queue:
                if self.closed:
                    return
                yield from self.wait()
                continue
            k = self._decode_run_length()
            if k > 0:
                yield from self._decode_run(k)
                continue
            batch, starved = self._schedule()
            while batch is None:
                if self._evict(starved) == 0:
                    raise RuntimeError("transformers-cb: nothing can be scheduled or evicted")
                batch, starved = self._schedule()
            if not batch:
                yield from self.wait()
                continue
            if starved:
                self._evict(starved)
            yield from self._step(batch)


def make_transformers_cb(
    env, replica, scen, card: ModelCard, profile
) -> tuple[TransformersCbServer, dict]:
    """Build the server for one replica and report the resolved engine sizes."""
    lim = transformers_cb_limits(
        card, scen.dtype, scen.hardware.gpus_per_replica, profile.gpu.memory_bytes, scen.server
    )
    info = {
        "max_batch_tokens": lim.max_batch_tokens,
        "num_blocks": lim.num_blocks,
        "block_size": lim.block_size,
        "max_requests_per_batch": lim.max_requests_per_batch,
        "safety_margin": lim.safety_margin,
        "scheduler": scen.server.scheduler,
    }
    return TransformersCbServer(env, replica, scen.server, lim), info
