"""HF static batching: b requests per batch, prompts padded to the longest; finished
sequences leave the decode batch (the reference paper's batching study)."""

from __future__ import annotations

from collections.abc import Generator

from llm_energy_sim.cost.costmodel import StepWork
from llm_energy_sim.engine.replica import PREFILL, Share
from llm_energy_sim.servers.base import Server
from llm_energy_sim.servers.memory import MemoryCheck


class StaticServer(Server):
    engine = "hf_eager"

    def __init__(self, env, replica, settings, memory: MemoryCheck | None = None) -> None:
        self.memory = memory  # None: no memory check (unit tests of the scheduling alone)
        if memory is not None:
            memory.check(0)
        super().__init__(env, replica, settings)

    def _batch_ready(self) -> bool:
        return len(self.queue) >= self.settings.batch_size or (self.closed and bool(self.queue))

    def run(self) -> Generator:
        b = self.settings.batch_size
        max_wait = self.settings.max_wait_ms
        while True:
            if not self._batch_ready():
                if self.closed and not self.queue:
                    return
                if max_wait is None or not self.queue:
                    yield from self.wait()
                    continue
                # a partial batch starts once the oldest request has waited max_wait_ms
                left = self.queue[0].arrival + max_wait / 1000.0 - self.env.now
                if left > 1e-9:
                    yield from self.wait(left)
                    continue
            batch = [self.pop() for _ in range(min(b, len(self.queue)))]
            self.running = list(batch)
            padded = max(r.prompt for r in batch)
            if self.memory is not None:
                longest = max(r.output for r in batch)
                self.memory.check(
                    len(batch) * (padded + longest),
                    f"a batch of {len(batch)} x ({padded} padded prompt + {longest} output) tokens",
                )
            for r in batch:
                r.t_start = self.env.now
                r.computed_prompt = padded
            yield from self.replica.step(
                StepWork(prefill=tuple((padded, 0) for _ in batch)),
                [Share(r, padded, PREFILL) for r in batch],
            )
            for r in batch:
                r.prefilled = r.prompt
                r.generated = 1
                r.t_first = self.env.now
            active = [r for r in batch if r.remaining > 0]
            for r in batch:
                if r.remaining == 0:
                    self.finish(r)
            steps = 1  # generated tokens so far, identical for every sequence of the batch
            while active:
                k = min(r.remaining for r in active)
                # left padding: every sequence attends over the padded prompt + its tokens
                done = yield from self.replica.decode_run(active, k, len(active) * (padded + steps))
                steps += done
                for r in [r for r in active if r.remaining == 0]:
                    self.finish(r)
                active = [r for r in active if r.remaining > 0]
            self.running = []
