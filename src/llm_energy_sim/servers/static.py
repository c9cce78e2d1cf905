"""HF static batching: b requests per batch, prompts left-padded to the longest, one
generate() per batch (the reference paper's batching study).

What happens to a sequence that has all its output tokens is `server.finished`:

- `stay` (default): HF generate()'s rule. generate() runs a batch until every row is done;
  with EOS off (as every measured run here) that is the batch's longest max_new_tokens, so
  every row keeps computing (its extra tokens are cut afterwards) and generate() returns, and
  every request of the batch completes, at the batch's end (transformers
  GenerationMixin._sample: `unfinished_sequences` only ends rows on EOS or a stopping
  criterion; finished rows are padded, never dropped).
- `leave`: a finished sequence leaves the decode batch and completes at its own last token
  (an engine that drops finished rows).
"""

from __future__ import annotations

from llm_energy_sim.engine.request import Request
from llm_energy_sim.servers.base import Scheduler
from llm_energy_sim.servers.memory import MemoryCheck
from llm_energy_sim.servers.plan import Chunk, Decode, StepPlan


class StaticScheduler(Scheduler):
    """A batch of batch_size (or, after max_wait_ms, fewer) is prefilled padded, then decoded
    until its longest output is done; only then does the next batch start."""

    def __init__(self, settings, memory: MemoryCheck | None = None) -> None:
        super().__init__(settings)
        self.memory = memory  # None: no memory check (tests of the scheduling alone)
        if memory is not None:
            memory.check(0)
        self.stay = getattr(settings, "finished", "stay") == "stay"
        self.active: list[Request] = []  # the batch's rows still decoding
        self.padded = 0  # the batch's padded prompt length
        self.generated = 0  # tokens generated so far, the same for every row of the batch
        self.longest = 0  # the batch's longest output

    @classmethod
    def build(cls, scenario, card, profile) -> tuple[StaticScheduler, dict]:
        hint = ", a smaller server.batch_size"
        return cls(scenario.server, MemoryCheck.for_replica(scenario, card, profile, hint)), {}

    def _batch_ready(self) -> bool:
        return len(self.queue) >= self.settings.batch_size or (self.closed and bool(self.queue))

    def _left_to_wait(self, now: float) -> float:
        """Until the oldest request has waited max_wait_ms (then a partial batch starts)."""
        return self.queue[0].arrival + self.settings.max_wait_ms / 1000.0 - now

    def wake_after(self, now: float) -> float | None:
        if self.settings.max_wait_ms is None or not self.queue:
            return None
        return self._left_to_wait(now)

    def plan_step(self, now: float) -> StepPlan | None:
        if self.active:
            # left padding: every row attends over the padded prompt + its tokens
            steps = (
                self.longest - self.generated
                if self.stay
                else min(r.remaining for r in self.active)
            )
            return StepPlan(
                decode=tuple(Decode(r, self.padded + self.generated) for r in self.active),
                decode_steps=steps,
            )
        if not self._batch_ready():
            if self.settings.max_wait_ms is None or not self.queue:
                return None
            if self._left_to_wait(now) > 1e-9:
                return None
        b = self.settings.batch_size
        batch = [self.pop(now) for _ in range(min(b, len(self.queue)))]
        self.running = list(batch)
        self.padded = max(r.prompt for r in batch)
        self.longest = max(r.output for r in batch)
        if self.memory is not None:
            self.memory.check(
                len(batch) * (self.padded + self.longest),
                f"a batch of {len(batch)} x ({self.padded} padded prompt + {self.longest} "
                "output) tokens",
            )
        for r in batch:
            r.computed_prompt = self.padded
        return StepPlan(
            prefill=tuple(Chunk(r, self.padded, 0) for r in batch), admitted=tuple(batch)
        )

    def commit(self, plan: StepPlan, steps: int, now: float) -> None:
        if not plan.decode_steps:  # the batch's prefill: every row has its first token
            for r in self.running:
                r.prefilled = r.prompt
                r.generated = 1
                r.t_first = now
            self.generated = 1
            self.active = list(self.running)
        else:
            self.generated += steps
            for r in self.active:
                r.generated = min(r.output, r.generated + steps)
        if self.stay:
            if self.generated >= self.longest:  # generate() returns: the whole batch completes
                for r in self.active:
                    self.finish(r, now)
                self.active = []
        else:
            for r in [r for r in self.active if r.remaining == 0]:
                self.finish(r, now)
            self.active = [r for r in self.active if r.remaining > 0]
        if not self.active:
            self.running = []
