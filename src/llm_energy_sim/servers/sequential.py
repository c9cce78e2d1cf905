"""HF transformers generate(), one request at a time: the reference paper's naive baseline."""

from __future__ import annotations

from llm_energy_sim.servers.base import Scheduler
from llm_energy_sim.servers.memory import MemoryCheck
from llm_energy_sim.servers.plan import Chunk, Decode, StepPlan


class SequentialScheduler(Scheduler):
    """The oldest request is prefilled, then decoded to its end; then the next one."""

    def __init__(self, settings, memory: MemoryCheck | None = None) -> None:
        super().__init__(settings)
        self.memory = memory  # None: no memory check (tests of the scheduling alone)
        if memory is not None:
            memory.check(0)

    @classmethod
    def build(cls, scenario, card, profile) -> tuple[SequentialScheduler, dict]:
        return cls(scenario.server, MemoryCheck.for_replica(scenario, card, profile)), {}

    def plan_step(self, now: float) -> StepPlan | None:
        if self.running:
            req = self.running[0]
            return StepPlan(decode=(Decode(req, req.kv_len),), decode_steps=req.remaining)
        if not self.queue:
            return None
        req = self.pop(now)
        if self.memory is not None:
            self.memory.check(
                req.prompt + req.output,
                f"request {req.id}: {req.prompt} prompt + {req.output} output tokens",
            )
        self.running = [req]
        req.computed_prompt = req.prompt
        return StepPlan(prefill=(Chunk(req, req.prompt, 0),), admitted=(req,))

    def commit(self, plan: StepPlan, steps: int, now: float) -> None:
        req = self.running[0]
        if plan.decode_steps:
            req.generated += steps
        else:  # the prompt is in: its first token came with it
            req.prefilled = req.prompt
            req.generated = 1
            req.t_first = now
        if req.remaining <= 0:
            self.finish(req, now)
            self.running = []
