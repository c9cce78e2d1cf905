"""Text Generation Inference v3.3 router semantics (backends/v3/src/{backend,queue}.rs).

- strict FIFO queue; a request reserves blocks for prompt + max_new_tokens - 1 at admission
  (no preemption) and frees them when it finishes;
- `max_concurrent_requests` in flight (queued + running), beyond that 429;
- requests longer than max_total_tokens / max_input_tokens are refused (422);
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
from collections.abc import Generator

from llm_energy_sim.cost.costmodel import StepWork
from llm_energy_sim.engine.replica import DECODE, PREFILL, Share
from llm_energy_sim.engine.request import REJECTED_QUEUE_FULL, REJECTED_TOO_LONG, Request
from llm_energy_sim.servers.base import Server
from llm_energy_sim.servers.tgi_limits import TgiLimits, blocks_for


class TgiServer(Server):
    engine = "tgi"

    def __init__(self, env, replica, settings, limits: TgiLimits) -> None:
        self.limits = limits
        self.total_blocks = limits.kv_capacity_tokens // settings.block_size
        self.free_blocks = self.total_blocks
        self.waiting_tokens = 1
        super().__init__(env, replica, settings)

    # ---- admission ---------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        lim = self.limits
        if req.prompt > lim.max_input_tokens or req.prompt + req.output > lim.max_total_tokens:
            req.status = REJECTED_TOO_LONG
            return False
        if len(self.queue) + len(self.running) >= self.settings.max_concurrent_requests:
            req.status = REJECTED_QUEUE_FULL
            return False
        return True

    def should_interrupt(self, queue_was_empty: bool) -> bool:
        # FIFO: a request behind a head that does not fit cannot be taken either; without
        # chunking the queue length also feeds min_size, so any arrival may matter.
        return queue_was_empty or not self.settings.chunked_prefill

    def _next_batch(
        self, min_size: int | None, max_size: int | None, budget: int
    ) -> list[tuple[Request, int]]:
        """queue.rs State::next_batch with a block allocator (no prefix-cache hits)."""
        s = self.settings
        if not self.queue or (min_size is not None and len(self.queue) < min_size):
            return []
        if max_size is not None and max_size == 0:
            return []
        budget = math.ceil(budget / s.block_size) * s.block_size
        picked: list[tuple[Request, int]] = []
        prefill_tokens = 0
        for req in list(self.queue):
            blocks = blocks_for(req.prompt + req.output - 1, s.block_size)
            if blocks > self.free_blocks:
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
                self.free_blocks += req.kv_blocks
                req.kv_blocks = 0
                self.queue.appendleft(req)
            return []
        self.replica.ledger.note_queue(self.env.now, len(self.queue))
        return picked

    def _take(self, req: Request, blocks: int) -> None:
        self.queue.popleft()
        req.kv_blocks = blocks
        self.free_blocks -= blocks

    # ---- forwards ----------------------------------------------------------------------
    def _forward(self, new: list[tuple[Request, int]], with_running: bool) -> Generator:
        """One forward: prefill chunks of `new`, plus (if with_running) the running batch's
        decodes and prefill continuations."""
        prefill: list[tuple[int, int]] = []
        shares: list[Share] = []
        n_dec = ctx = 0
        chunks: list[tuple[Request, int]] = []
        if with_running:
            for r in self.running:
                if r.decoding:
                    n_dec += 1
                    ctx += r.kv_len
                    shares.append(Share(r, 1, DECODE))
                else:
                    chunks.append((r, r.next_chunk))
        for r, c in new:
            r.t_start = self.env.now
            r.computed_prompt = r.prompt
            chunks.append((r, c))
        for r, c in chunks:
            prefill.append((c, r.prefilled))
            shares.append(Share(r, c, PREFILL))
        yield from self.replica.step(StepWork(tuple(prefill), n_dec, ctx), shares)
        if with_running:
            for r in self.running:
                if r.decoding:
                    r.generated += 1
        for r, c in chunks:
            r.prefilled += c
            if r.prefilled >= r.prompt:
                r.generated = 1
                r.t_first = self.env.now
        self.running.extend(r for r, _ in new)
        self._retire()
        self._plan_chunks()

    def _retire(self) -> None:
        for r in [r for r in self.running if r.decoding and r.remaining <= 0]:
            self.free_blocks += r.kv_blocks
            r.kv_blocks = 0
            self.finish(r)
        self.running = [r for r in self.running if not (r.decoding and r.remaining <= 0)]

    def _plan_chunks(self) -> None:
        """flash_causal_lm.py: next chunk per prefilling request, budget shared newest-last."""
        budget = self.limits.max_batch_prefill_tokens - (len(self.running) - 1)
        for r in reversed(self.running):
            left = r.prompt - r.prefilled
            if left > 0:
                r.next_chunk = max(min(left, budget), 1)
                budget -= r.next_chunk

    def _current_tokens(self) -> int:
        return sum(1 if r.decoding else r.next_chunk for r in self.running)

    def _steps_until_admissible(self) -> int | float:
        """Decode steps before the queue head could be taken, with the batch unchanged.

        Between completions the free blocks and the decode token count are constant, so the
        head's fate is decided now; only the no-chunking min_size rule depends on how many
        steps have passed (waiting_tokens). Arrivals interrupt the run separately.
        """
        s = self.settings
        if not self.queue:
            return math.inf
        head = self.queue[0]
        if blocks_for(head.prompt + head.output - 1, s.block_size) > self.free_blocks:
            return math.inf  # waits for a completion, which ends the run anyway
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

    # ---- the batching task ---------------------------------------------------------------
    def run(self) -> Generator:
        s, lim = self.settings, self.limits
        while True:
            if not self.running:
                if not self.queue:
                    if self.closed:
                        return
                    yield from self.wait()
                    continue
                new = self._next_batch(None, s.max_batch_size, lim.max_batch_prefill_tokens)
                if not new:  # head cannot be served even on an empty GPU
                    yield from self.wait()
                    continue
                yield from self._forward(new, with_running=False)
                self.waiting_tokens = 1
                continue
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
            new = self._next_batch(min_size, max_size, budget) if self.queue else []
            if new:
                yield from self._forward(new, with_running=s.chunked_prefill)
                self.waiting_tokens = 1
            if not self.running:
                continue
            if all(r.decoding for r in self.running):
                k = min(min(r.remaining for r in self.running), self._steps_until_admissible())
                ctx = sum(r.kv_len for r in self.running)
                done = yield from self.replica.decode_run(self.running, k, ctx, server=self)
                self.waiting_tokens += done
                self._retire()
            else:
                yield from self._forward([], with_running=True)
                self.waiting_tokens += 1
