"""One scheduler step as data: what a forward runs and what the scheduler did to get there.

A scheduler's `plan_step` returns a StepPlan (as vLLM v1's Scheduler.schedule() returns a
SchedulerOutput); the SimPy server executes it on the replica and hands it back to the
scheduler's `commit` (vLLM's update_from_output). `work` is the StepWork the cost model
prices and the step log records (results/steptable.py's prefill, n_decode, decode_ctx_sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from llm_energy_sim.cost.costmodel import StepWork
from llm_energy_sim.engine.request import Request


class Chunk(NamedTuple):
    """`tokens` prompt tokens of `req` computed in the step (padding included) over `past`
    tokens already in its KV cache. (Named tuples: a step builds one per sequence, and a
    tuple is built several times faster than a frozen dataclass.)"""

    req: Request
    tokens: int
    past: int


class Decode(NamedTuple):
    """One token of `req` decoded over `kv_len` tokens of KV (the decoded one included)."""

    req: Request
    kv_len: int


@dataclass(slots=True)
class StepPlan:
    """One step of a scheduler (not changed once made; a plain slotted dataclass, which is
    built three times faster than a frozen one: a run builds several per request).

    prefill, decode: the step's sequences. admitted: requests that left the queue for this
    step (their first step stamps t_start). evicted: requests put back in the queue to make
    room (their KV blocks freed). decode_steps: 0 for one forward (Replica.forward_cost);
    k >= 1 for the decodes alone repeated for up to k steps in closed form
    (Replica.decode_segment; an arrival may cut the run short when the scheduler lets it).
    graph_tokens: the CUDA-graph size the step's tokens are padded to (StepWork.graph_tokens),
    0 when it runs unpadded; a decode run carries none (Replica.decode_segment costs the bare
    batch), so a scheduler that pads keeps padded decodes to single steps.
    """

    prefill: tuple[Chunk, ...] = ()
    decode: tuple[Decode, ...] = ()
    admitted: tuple[Request, ...] = ()
    evicted: tuple[Request, ...] = ()
    decode_steps: int = 0
    graph_tokens: int = 0

    def __post_init__(self) -> None:
        if self.decode_steps and (self.prefill or not self.decode):
            raise ValueError("a decode run holds decodes only")
        if self.decode_steps and self.graph_tokens:
            raise ValueError("a decode run is costed unpadded (no graph_tokens)")

    @property
    def work(self) -> StepWork:
        """What the (first) step computes, as the cost model and the step log take it."""
        return StepWork(
            tuple((c.tokens, c.past) for c in self.prefill),
            len(self.decode),
            sum(d.kv_len for d in self.decode),
            self.graph_tokens,
            max((d.kv_len for d in self.decode), default=0),
        )

    @property
    def requests(self) -> list[Request]:
        return [d.req for d in self.decode] + [c.req for c in self.prefill]
