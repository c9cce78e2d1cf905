"""vLLM V1's scheduler (vLLM 0.11.1, the version ML.ENERGY ran), step by step.

Facts from vllm-project/vllm v0.11.1 (read, not copied): v1/core/sched/scheduler.py
(`Scheduler.schedule`, `update_from_output`), v1/core/kv_cache_manager.py
(`get_computed_blocks`, `allocate_slots`), v1/core/block_pool.py and
single_type_kv_cache_manager.py (servers/kvpool.py PrefixCachingBlockPool), v1/worker/
gpu_model_runner.py (CUDA-graph padding), config/{scheduler,cache,compilation,vllm}.py and
engine/arg_utils.py (defaults: servers/vllm_limits.py).

- One token budget per step, max_num_batched_tokens. Running requests first, in the order
  they started running: each asks for its remaining tokens (1 for a decode, the rest of its
  prompt for a partial prefill), cut to the budget left and to max_total - 1 - computed
  (max_total = min(prompt + max_tokens, max_model_len)).
- KV slots are allocated as tokens are scheduled (`allocate_slots`: blocks for computed +
  new tokens). When a running request cannot get its blocks, the newest running request is
  preempted (`self.running.pop()`, FCFS policy): its blocks are freed, its computed tokens
  reset to 0, it goes to the front of the waiting queue (`prepend_request`), and it will
  recompute prompt + generated tokens. If the preempted one is the request itself, the
  running pass stops. No waiting request is scheduled in a step that preempted.
- Then waiting requests, FCFS, while the budget lasts and fewer than max_num_seqs run: each
  first looks up its prefix-cache hit (`get_computed_blocks`, full blocks only, at most
  num_tokens - 1 tokens: "we must recompute the last token to obtain logits"), then schedules
  min(num_tokens - hit, budget) tokens (chunked prefill; without it a request whose tokens
  exceed the budget is skipped for this step and kept at its place); if its blocks do not
  fit, the waiting pass stops (FCFS: nothing behind it either).
- A step's forward computes every scheduled token; a request whose computed tokens reach its
  known tokens samples one (the first output after a prefill); it finishes at max_tokens
  (no EOS in the simulator) and frees its blocks, which stay in the prefix cache until
  evicted.
- Blocks are hashed when their tokens are scheduled (`cache_blocks` inside allocate_slots,
  full blocks up to computed + new, capped at the known tokens). The simulator's block hash:
  prompt block i of a request with prefix_id >= 0 is (prefix_id, i) when the block lies
  wholly inside the prompt (Request.prefix_id: same id, same token stream); every other
  block (a prompt with prefix_id -1, a block holding output tokens) is private to its request
  (only its own recompute after a preemption can hit it).
- CUDA graphs (FULL_AND_PIECEWISE, the V1 default): a step of n <= the largest captured size
  runs at the smallest captured size >= n (`_get_num_input_tokens` -> `pad_for_cudagraph`),
  decode-only steps as full graphs, mixed and prefill steps as piecewise graphs (attention
  outside the graph, on the real tokens). Assumed here: both pad the token rows
  (StepWork.graph_tokens); larger steps run eager, unpadded. A decode run in closed form is
  costed unpadded (Replica.decode_segment), so decodes whose batch would be padded run as single
  steps.
- Async scheduling (`async_scheduling`, off by default in 0.11): the scheduler plans step
  n+1 while step n runs. The schedule is the same; only host time overlaps the GPU, which is
  what the cost model's wall = max(GPU, host) already assumes.
- Admission (entrypoints/openai/serving_engine.py `_validate_input`): a prompt of at least
  max_model_len tokens, or prompt + max_tokens above it, is refused (HTTP 400 in vLLM,
  REJECTED_TOO_LONG here); there is no queue limit (no 429). The simulator also refuses a
  request whose KV could never fit the pool (only possible with num_gpu_blocks_override;
  vLLM would preempt it forever).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

from llm_energy_sim.engine.request import REJECTED_TOO_LONG, Request
from llm_energy_sim.servers.base import Scheduler
from llm_energy_sim.servers.kvpool import PrefixCachingBlockPool
from llm_energy_sim.servers.plan import Chunk, Decode, StepPlan
from llm_energy_sim.servers.vllm_limits import VllmLimits, vllm_limits


@dataclass(slots=True, eq=False)
class VllmState:
    """vLLM's Request as its scheduler sees it; it owns the request's KV blocks."""

    req: Request
    num_tokens: int  # known tokens: prompt + generated (all_token_ids)
    num_computed: int = 0  # tokens in the KV cache
    decoding: bool = False  # sampled a token since it was (re)admitted
    preemptions: int = 0

    def key(self, block_size: int):
        """Block i's hash (see the module docstring)."""
        req = self.req
        shared = req.prefix_id >= 0
        full_prompt_blocks = req.prompt // block_size

        def key(i: int) -> Hashable:
            if shared and i < full_prompt_blocks:
                return (req.prefix_id, i)
            return ("request", req.id, i)

        return key


@dataclass(slots=True)
class _Scheduled:
    state: VllmState
    tokens: int
    past: int
    decode: bool


class VllmScheduler(Scheduler):
    """vLLM V1 Scheduler.schedule + update_from_output, FCFS, one engine core."""

    cuts_decode_runs = True

    def __init__(self, settings, limits: VllmLimits) -> None:
        super().__init__(settings)
        self.limits = limits
        self.pool = PrefixCachingBlockPool(limits.num_gpu_blocks, limits.block_size)
        self.states: dict[int, VllmState] = {}
        self.running_states: list[VllmState] = []  # self.running, in running order
        self.preemptions = 0
        self.prefix_queried_tokens = 0
        self.prefix_hit_tokens = 0
        self.max_step_tokens = 0  # largest token count of any step (for invariant tests)
        self.max_running = 0  # most requests running at once (for invariant tests)

    @classmethod
    def build(cls, scenario, card, profile) -> tuple[VllmScheduler, dict]:
        s = scenario.server
        lim = vllm_limits(
            card,
            scenario.dtype,
            scenario.hardware.gpus_per_replica,
            profile.gpu.name,
            profile.gpu.memory_bytes,
            s,
        )
        info = {
            "max_num_batched_tokens": lim.max_num_batched_tokens,
            "max_num_seqs": lim.max_num_seqs,
            "max_model_len": lim.max_model_len,
            "num_gpu_blocks": lim.num_gpu_blocks,
            "block_size": lim.block_size,
            "kv_cache_tokens": lim.num_gpu_blocks * lim.block_size,
            "kv_cache_gib_per_gpu": lim.kv_cache_bytes / 2**30,
            "cudagraph_capture_sizes": list(lim.cudagraph_capture_sizes),
            "max_cudagraph_capture_size": lim.max_capture_size,
            "enable_prefix_caching": s.enable_prefix_caching,
            "enable_chunked_prefill": s.enable_chunked_prefill,
            "async_scheduling": s.async_scheduling,
        }
        return cls(s, lim), info

    def run_stats(self) -> dict[str, int]:
        return {
            "prefix_cache_queried_tokens": self.prefix_queried_tokens,
            "prefix_cache_hit_tokens": self.prefix_hit_tokens,
            "preemptions": self.preemptions,
            # most KV blocks held by running requests at once (cached free blocks not counted)
            "kv_peak_blocks": self.pool.num_blocks - self.pool.min_free_blocks,
        }

    # ---- arrivals ----------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        lim = self.limits
        if req.prompt >= lim.max_model_len or req.prompt + req.output > lim.max_model_len:
            req.status = REJECTED_TOO_LONG
            return False
        if self.pool.blocks_for(req.prompt + req.output - 1) > self.pool.num_blocks:
            req.status = REJECTED_TOO_LONG
            return False
        self.states[req.id] = VllmState(req, req.prompt)
        return True

    def should_interrupt(self, queue_was_empty: bool) -> bool:
        # a decode run starts only when no waiting request could be scheduled; an arrival
        # can be one when seats are left and nothing waits ahead of it (FCFS), or when those
        # ahead were only skipped for the budget (no chunked prefill)
        if len(self.running_states) >= self.limits.max_num_seqs:
            return False
        return queue_was_empty or not self.settings.enable_chunked_prefill

    # ---- plans -------------------------------------------------------------------------
    def plan_step(self, now: float) -> StepPlan | None:
        evicted: list[Request] = []
        while True:
            if not self.running_states and not self.queue:
                return None
            picked, preempted, admitted, waiting_open = self._schedule(now)
            evicted += [st.req for st in preempted]
            if picked:
                break
            if not preempted:  # nothing fits and nothing was freed
                return None
            # everything running was preempted: vLLM's next schedule() admits from waiting
        tokens = sum(p.tokens for p in picked)
        self.max_step_tokens = max(self.max_step_tokens, tokens)
        graph = self.limits.graph_tokens(tokens)
        decode = tuple(Decode(p.state.req, p.past + 1) for p in picked if p.decode)
        prefill = tuple(Chunk(p.state.req, p.tokens, p.past) for p in picked if not p.decode)
        for c in prefill:
            c.req.computed_prompt += c.tokens
        if not prefill and not evicted and not admitted and not waiting_open:
            k = self._decode_run_length(picked)
            if k > 1 and graph in (0, tokens):
                return StepPlan(decode=decode, decode_steps=k)
        return StepPlan(
            prefill=prefill,
            decode=decode,
            admitted=tuple(st.req for st in admitted),
            evicted=tuple(evicted),
            graph_tokens=graph if graph != tokens else 0,
        )

    def _schedule(
        self, now: float
    ) -> tuple[list[_Scheduled], list[VllmState], list[VllmState], bool]:
        """One Scheduler.schedule(): (scheduled, preempted, admitted from waiting, whether a
        waiting request might still have been taken with more budget)."""
        lim, pool, bs = self.limits, self.pool, self.limits.block_size
        budget = lim.max_num_batched_tokens
        picked: list[_Scheduled] = []
        preempted: list[VllmState] = []
        running = self.running_states
        i = 0
        while i < len(running) and budget > 0:
            st = running[i]
            req = st.req
            n = min(st.num_tokens - st.num_computed, budget)
            max_total = min(req.prompt + req.output, lim.max_model_len)
            n = min(n, max_total - 1 - st.num_computed)
            if n <= 0:
                i += 1
                continue
            got = False
            while True:
                need = pool.to_allocate(st, st.num_computed + n)
                if pool.can_allocate(need):
                    pool.allocate(st, need)
                    self._cache(st, st.num_computed + n)
                    got = True
                    break
                victim = running.pop()
                self._preempt(victim, now)
                preempted.append(victim)
                if victim is st:
                    break
            if not got:
                break
            picked.append(_Scheduled(st, n, st.num_computed, st.decoding))
            budget -= n
            i += 1

        admitted: list[VllmState] = []
        waiting_open = False
        if not preempted:
            skipped: list[Request] = []
            while self.queue and budget > 0:
                if len(running) >= lim.max_num_seqs:
                    break
                req = self.queue[0]
                st = self.states[req.id]
                key = st.key(bs)
                hit: list[int] = []
                if self.settings.enable_prefix_caching:
                    hit = pool.longest_hit(key, (st.num_tokens - 1) // bs)
                hit_tokens = len(hit) * bs
                n = st.num_tokens - hit_tokens
                if not self.settings.enable_chunked_prefill and n > budget:
                    skipped.append(self.queue.popleft())
                    continue
                n = min(n, budget)
                if not pool.can_allocate(pool.to_allocate(st, hit_tokens + n, hit)):
                    break
                pool.take_hit(st, hit)
                pool.allocate(st, pool.blocks_for(hit_tokens + n) - pool.held(st))
                self._cache(st, hit_tokens + n)
                self.queue.popleft()
                self.prefix_queried_tokens += st.num_tokens
                self.prefix_hit_tokens += hit_tokens
                st.num_computed = hit_tokens
                running.append(st)
                admitted.append(st)
                picked.append(_Scheduled(st, n, hit_tokens, False))
                budget -= n
            if skipped:
                self.queue.extendleft(reversed(skipped))
                waiting_open = True
            if admitted or skipped:
                self.note_queue(now)
        self.running = [st.req for st in running]
        self.max_running = max(self.max_running, len(running))
        return picked, preempted, admitted, waiting_open

    def _cache(self, st: VllmState, tokens: int) -> None:
        """cache_blocks: hash the full blocks of the first `tokens` (capped at the known ones)."""
        if self.settings.enable_prefix_caching:
            bs = self.limits.block_size
            self.pool.cache(st, min(tokens, st.num_tokens) // bs, st.key(bs))

    def _preempt(self, st: VllmState, now: float) -> None:
        """Preemption by recompute: blocks freed, computed tokens reset, front of waiting."""
        self.pool.free(st)
        st.num_computed = 0
        st.decoding = False
        st.preemptions += 1
        st.req.prefilled = 0
        self.preemptions += 1
        self.queue.appendleft(st.req)
        self.note_queue(now)

    # ---- after a step (update_from_output) ---------------------------------------------
    def commit(self, plan: StepPlan, steps: int, now: float) -> None:
        pool = self.pool
        done: list[VllmState] = []
        if plan.decode_steps:
            for d in plan.decode:
                st = self.states[d.req.id]
                # the run's later steps allocated as each token came (the first at planning)
                pool.allocate(st, pool.to_allocate(st, st.num_computed + steps))
                self._cache(st, st.num_computed + steps)
                st.num_computed += steps
                st.num_tokens += steps
                d.req.generated += steps
                if d.req.generated >= d.req.output:
                    done.append(st)
        else:
            for d in plan.decode:
                done += self._computed(self.states[d.req.id], 1, now)
            for c in plan.prefill:
                done += self._computed(self.states[c.req.id], c.tokens, now)
        for st in done:
            pool.free(st)
            self.running_states.remove(st)
            self.finish(st.req, now)
        if done:
            self.running = [st.req for st in self.running_states]

    def _computed(self, st: VllmState, tokens: int, now: float) -> list[VllmState]:
        """`tokens` of st computed; a token is sampled once all known tokens are in its KV."""
        req = st.req
        st.num_computed += tokens
        req.prefilled = min(req.prompt, st.num_computed)
        if st.num_computed < st.num_tokens:
            return []
        st.decoding = True
        st.num_tokens += 1
        req.generated += 1
        if math.isnan(req.t_first):
            req.t_first = now
        return [st] if req.generated >= req.output else []

    # ---- decode runs in closed form ------------------------------------------------------
    def _decode_run_length(self, picked: list[_Scheduled]) -> int:
        """Steps the all-decoding batch just scheduled can repeat unchanged: until a request
        finishes, or while the blocks its tokens need keep fitting (no preemption)."""
        states = [p.state for p in picked]
        if len(states) != len(self.running_states):
            return 1
        k = min(st.req.output - st.req.generated for st in states)
        pool = self.pool

        def extra(steps: int) -> int:  # blocks beyond those allocated for the first step
            return sum(pool.to_allocate(st, st.num_computed + steps) for st in states)

        if not pool.can_allocate(extra(k)):
            lo, hi = 1, k
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if pool.can_allocate(extra(mid)):
                    lo = mid
                else:
                    hi = mid - 1
            k = lo
        return k
