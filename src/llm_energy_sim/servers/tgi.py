"""Text Generation Inference v3.3 router semantics (router/src/infer/mod.rs,
backends/v3/src/{backend,queue}.rs).

- `max_concurrent_requests` permits (a semaphore taken on arrival, held until the response
  ends): every request in flight holds one, queued, being prefilled or decoding; beyond that
  429. The permit is taken before validation, so a full server answers 429 even to a request
  that validation would refuse;
- requests longer than max_total_tokens / max_input_tokens are refused (422);
- strict FIFO queue; a request reserves blocks for prompt + max_new_tokens - 1 at admission
  (no preemption) and frees them when it finishes;
- chunked prefill (flash models): each loop iteration first tries to take queued requests
  into a forward that also decodes the running batch, with a prefill budget of
  max_batch_prefill_tokens - current_tokens; the last admitted prompt is cut to the budget
  and its remainder is prefilled in following forwards (server: flash_causal_lm.py);
  then one decode forward of the whole batch;
- without chunking: waiting_served_ratio / max_waiting_tokens decide when to prefill a new
  batch, and the running batch waits during that prefill.
"""

from __future__ import annotations

import math

from llm_energy_sim.engine.request import REJECTED_QUEUE_FULL, REJECTED_TOO_LONG, Request
from llm_energy_sim.servers.base import Scheduler
from llm_energy_sim.servers.kvpool import BlockPool
from llm_energy_sim.servers.plan import Chunk, Decode, StepPlan
from llm_energy_sim.servers.tgi_limits import TgiLimits, tgi_limits


class TgiScheduler(Scheduler):
    """backend.rs batching_task as steps: an iteration of its loop is a prefill of a new
    batch (mixed with the running batch's decodes when chunking), then a decode of the batch
    (a closed-form decode run while every request decodes and none could join)."""

    cuts_decode_runs = True

    def __init__(self, settings, limits: TgiLimits) -> None:
        super().__init__(settings)
        self.limits = limits
        self.pool = BlockPool.of_tokens(limits.kv_capacity_tokens, settings.block_size)
        self.waiting_tokens = 1
        self.mid_iteration = False  # the iteration's new batch ran; its decode comes next
        self._run_left: int | float = 0  # the decode run planned last: its fewest tokens left

    @classmethod
    def build(cls, scenario, card, profile) -> tuple[TgiScheduler, dict]:
        s = scenario.server
        lim = tgi_limits(
            card,
            scenario.dtype,
            scenario.hardware.gpus_per_replica,
            profile.gpu.memory_bytes,
            s.cuda_memory_fraction,
            s.max_batch_prefill_tokens,
            s.max_batch_total_tokens,
        )
        info = {
            "max_batch_prefill_tokens": lim.max_batch_prefill_tokens,
            "max_batch_total_tokens": lim.kv_capacity_tokens,
            "max_total_tokens": lim.max_total_tokens,
        }
        return cls(s, lim), info

    # ---- admission ---------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        if self.in_flight >= self.settings.max_concurrent_requests:
            req.status = REJECTED_QUEUE_FULL
            return False
        lim = self.limits
        if req.prompt > lim.max_input_tokens or req.prompt + req.output > lim.max_total_tokens:
            req.status = REJECTED_TOO_LONG
            return False
        return True

    def should_interrupt(self, queue_was_empty: bool) -> bool:
        # FIFO: a request behind a head that does not fit cannot be taken either; without
        # chunking the queue length also feeds min_size, so any arrival may matter.
        return queue_was_empty or not self.settings.chunked_prefill

    def _reserve(self, req: Request) -> int:
        """Blocks a request reserves at admission: prompt + max_new_tokens - 1 tokens."""
        return self.pool.blocks_for(req.prompt + req.output - 1)

    def _next_batch(
        self, now: float, min_size: int | None, max_size: int | None, budget: int
    ) -> list[tuple[Request, int]]:
        """queue.rs State::next_batch with a block allocator (no prefix-cache hits)."""
        s = self.settings
        if not self.queue or (min_size is not None and len(self.queue) < min_size):
            return []
        if max_size is not None and max_size == 0:
            return []
        budget = self.pool.round_up(budget)
        picked: list[tuple[Request, int]] = []
        prefill_tokens = 0
        for req in list(self.queue):
            blocks = self._reserve(req)
            if not self.pool.can_allocate(blocks):
                break
            if prefill_tokens + req.prompt > budget:
                if s.chunked_prefill:
                    chunk = budget - prefill_tokens
                    if chunk > 0:
                        self._take(req, blocks)
                        picked.append((req, chunk))
                break
            self._take(req, blocks)
            picked.append((req, req.prompt))
            prefill_tokens += req.prompt
            if max_size is not None and len(picked) == max_size:
                break
        if min_size is not None and len(picked) < min_size:
            for req, _ in reversed(picked):  # put back in order, release their blocks
                self.pool.free(req)
                self.queue.appendleft(req)
            return []
        self.note_queue(now)
        return picked

    def _take(self, req: Request, blocks: int) -> None:
        self.queue.popleft()
        self.pool.allocate(req, blocks)

    # ---- plans -------------------------------------------------------------------------
    def _forward(self, new: list[tuple[Request, int]], with_running: bool) -> StepPlan:
        """One forward: prefill chunks of `new`, plus (if with_running) the running batch's
        decodes and prefill continuations."""
        decode: list[Decode] = []
        chunks: list[Chunk] = []
        if with_running:
            for r in self.running:  # Request.decoding and .kv_len inline: once per sequence
                if r.generated >= 1 and r.prefilled >= r.prompt:
                    decode.append(Decode(r, r.prompt + r.generated))
                else:
                    chunks.append(Chunk(r, r.next_chunk, r.prefilled))
        for r, c in new:
            r.computed_prompt = r.prompt
            chunks.append(Chunk(r, c, r.prefilled))
        return StepPlan(tuple(chunks), tuple(decode), admitted=tuple([r for r, _ in new]))

    def plan_step(self, now: float) -> StepPlan | None:
        s, lim = self.settings, self.limits
        if not self.mid_iteration:
            if not self.running:
                if not self.queue:
                    return None
                new = self._next_batch(now, None, s.max_batch_size, lim.max_batch_prefill_tokens)
                if not new:  # head cannot be served even on an empty GPU
                    return None
                return self._forward(new, with_running=False)
            if self.queue:  # (the budget is worked out only when a request waits)
                if s.chunked_prefill:
                    min_size, max_size = None, None
                    budget = max(lim.max_batch_prefill_tokens - self._current_tokens(), 0)
                else:
                    min_size = (
                        None
                        if self.waiting_tokens >= s.max_waiting_tokens
                        else math.floor(len(self.running) * s.waiting_served_ratio)
                    )
                    max_size = (
                        None if s.max_batch_size is None else s.max_batch_size - len(self.running)
                    )
                    budget = lim.max_batch_prefill_tokens
                new = self._next_batch(now, min_size, max_size, budget)
                if new:
                    self.mid_iteration = True
                    return self._forward(new, with_running=s.chunked_prefill)
        # the iteration's decode of the running batch
        self.mid_iteration = False
        if not self.running:
            return self.plan_step(now)
        # one pass over the batch (this runs once per event): every request decoding?
        # (Request.decoding), the fewest tokens left (Request.remaining), the decodes
        decode = []
        left = math.inf
        for r in self.running:
            if r.generated < 1 or r.prefilled < r.prompt:
                return self._forward([], with_running=True)
            decode.append(Decode(r, r.prompt + r.generated))
            if r.output - r.generated < left:
                left = r.output - r.generated
        k = min(left, self._steps_until_admissible())
        self._run_left = left  # no request of the run finishes before this many steps
        return StepPlan(decode=tuple(decode), decode_steps=k)

    def commit(self, plan: StepPlan, steps: int, now: float) -> None:
        self.waiting_tokens = 1 if plan.admitted else self.waiting_tokens + steps
        for d in plan.decode:
            d.req.generated += steps
        if plan.decode_steps:
            if steps >= self._run_left:  # (fewer steps: no request has all its tokens)
                self._retire(now)
            return
        for c in plan.prefill:
            r = c.req
            r.prefilled += c.tokens
            if r.prefilled >= r.prompt:
                r.generated = 1
                r.t_first = now
        self.running.extend(plan.admitted)
        self._retire(now)
        self._plan_chunks()

    def _retire(self, now: float) -> None:
        """Free and finish every running request with all its tokens (Request.decoding and
        no Request.remaining, inline: this runs after every step)."""
        done = [
            r
            for r in self.running
            if r.generated >= r.output and r.generated >= 1 and r.prefilled >= r.prompt
        ]
        if not done:
            return
        for r in done:
            self.pool.free(r)
            self.finish(r, now)
        self.running = [r for r in self.running if r not in done]

    def _plan_chunks(self) -> None:
        """flash_causal_lm.py: next chunk per prefilling request, budget shared newest-last."""
        budget = self.limits.max_batch_prefill_tokens - (len(self.running) - 1)
        for r in reversed(self.running):
            left = r.prompt - r.prefilled
            if left > 0:
                r.next_chunk = max(min(left, budget), 1)
                budget -= r.next_chunk

    def _current_tokens(self) -> int:
        """Tokens the running batch computes in its next forward (one per decoding request,
        the next chunk of a prefilling one)."""
        n = 0
        for r in self.running:
            n += 1 if r.generated >= 1 and r.prefilled >= r.prompt else r.next_chunk
        return n

    def _steps_until_admissible(self) -> int | float:
        """Decode steps before the queue head could be taken, with the batch unchanged.

        Between completions the free blocks and the decode token count are constant, so the
        head's fate is decided now; only the no-chunking min_size rule depends on how many
        steps have passed (waiting_tokens). Arrivals interrupt the run separately.
        """
        s = self.settings
        if not self.queue:
            return math.inf
        if not self.pool.can_allocate(self._reserve(self.queue[0])):
            return math.inf  # waits for a completion, which ends the run anyway
        head = self.queue[0]
        if s.chunked_prefill:
            return (
                1 if self.limits.max_batch_prefill_tokens - self._current_tokens() > 0 else math.inf
            )
        if head.prompt > self.limits.max_batch_prefill_tokens:
            return math.inf
        if s.max_batch_size is not None and len(self.running) >= s.max_batch_size:
            return math.inf
        if len(self.queue) >= math.floor(len(self.running) * s.waiting_served_ratio):
            return 1
        return max(s.max_waiting_tokens - self.waiting_tokens, 1)
