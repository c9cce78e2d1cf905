"""HF transformers generate(), one request at a time: the reference paper's naive baseline."""

from __future__ import annotations

from collections.abc import Generator

from llm_energy_sim.cost.costmodel import StepWork
from llm_energy_sim.engine.replica import PREFILL, Share
from llm_energy_sim.servers.base import Server
from llm_energy_sim.servers.memory import MemoryCheck


class SequentialServer(Server):
    engine = "hf_eager"

    def __init__(self, env, replica, settings, memory: MemoryCheck | None = None) -> None:
        self.memory = memory  # None: no memory check (unit tests of the scheduling alone)
        if memory is not None:
            memory.check(0)
        super().__init__(env, replica, settings)

    def run(self) -> Generator:
        while True:
            if not self.queue:
                if self.closed:
                    return
                yield from self.wait()
                continue
            req = self.pop()
            if self.memory is not None:
                self.memory.check(
                    req.prompt + req.output,
                    f"request {req.id}: {req.prompt} prompt + {req.output} output tokens",
                )
            self.running = [req]
            req.t_start = self.env.now
            req.computed_prompt = req.prompt
            yield from self.replica.step(
                StepWork(prefill=((req.prompt, 0),)), [Share(req, req.prompt, PREFILL)]
            )
            req.prefilled = req.prompt
            req.generated = 1
            req.t_first = self.env.now
            while req.remaining > 0:
                yield from self.replica.decode_run([req], req.remaining, req.kv_len)
            self.finish(req)
            self.running = []
