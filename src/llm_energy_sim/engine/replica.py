"""One replica (tp GPUs running one model copy): executes steps, books time and energy."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from typing import NamedTuple

import numpy as np
import simpy

from llm_energy_sim.cost.costmodel import CostModel, DecodeSegment, StepWork, first_reaching
from llm_energy_sim.engine.ledger import Ledger
from llm_energy_sim.engine.request import Request

PREFILL, DECODE = "prefill", "decode"


class Share(NamedTuple):
    """A request's part of a step: `tokens` of the step's tokens, in `phase` (a named tuple:
    one is built per sequence and step)."""

    req: Request
    tokens: int
    phase: str


class PlanCache:
    """The attention shapes one engine process has run (its plan cache): a step at a shape it
    has not run before pays the plan build (CostModel.miss_s). Kept only when the engine pays
    for new shapes. Shared by the simulated replicas and `sim steps`, which costs live steps."""

    def __init__(self, cost: CostModel) -> None:
        self.cost = cost
        self.on = bool(cost.miss_s)
        self.seen: set[tuple[int, ...]] = set()
        self.misses = 0

    def miss(self, shape: tuple[int, ...]) -> bool:
        """Whether a step at `shape` builds a plan (and remember the shape)."""
        if not self.on or shape in self.seen:
            return False
        self.seen.add(shape)
        self.misses += 1
        return True

    def step_miss(self, work: StepWork) -> bool:
        return self.on and self.miss(self.cost.attn_shape(work))


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        cost: CostModel,
        fast_forward: bool,
        cold_start: bool = False,
    ):
        self.env = env
        self.cold_start = cold_start  # a fresh engine process: the first step pays its set-up
        self.index = index
        self.cost = cost
        self.fast_forward = fast_forward
        self.ledger = Ledger(n_gpus=cost.tp, idle=cost.profile.idle)
        self.steps = 0
        self.plans = PlanCache(cost)
        # when a list: every step as (start, end, prefill, n_decode, decode_ctx_sum, replica),
        # results/steptable.py's rows, to set beside a live engine's step log
        self.step_log: list[tuple] | None = None

    @property
    def shape_misses(self) -> int:
        return self.plans.misses

    def _attribute(self, energy: float, shares: Sequence[Share]) -> None:
        total = sum(s.tokens for s in shares)
        for s in shares:
            part = energy * s.tokens / total
            if s.phase == PREFILL:
                s.req.e_prefill += part
            else:
                s.req.e_decode += part

    def step(self, work: StepWork, shares: Sequence[Share]) -> Generator:
        """Run one forward step; energy is shared by the requests in it, by tokens."""
        miss = self.plans.step_miss(work)
        c = self.cost.step_cost(work, shape_miss=miss, cold=self.cold_start and self.steps == 0)
        start = self.env.now
        yield self.env.timeout(c.wall_s)
        self._attribute(c.energy_j, shares)
        self.ledger.add_busy(start, self.env.now, c.energy_j, work.n_seqs, c.power_per_gpu_w)
        self.steps += 1
        if self.step_log is not None:
            self.step_log.append(
                (start, self.env.now, work.prefill, work.n_decode, work.decode_ctx_sum, self.index)
            )

    def decode_run(
        self, reqs: Sequence[Request], k: int, ctx_sum0: int, server=None
    ) -> Generator[simpy.Event, None, int]:
        """Decode `reqs` (one token each per step) for up to k steps; returns steps done (the
        caller counts the tokens).

        With fast_forward the k steps are one event, costed in closed form; if `server` is
        given, an arrival may interrupt it, and the run stops at the end of the step in
        progress. Without fast_forward it runs exactly one step (the caller re-plans after
        each), which is the step-by-step reference path.
        """
        n = len(reqs)
        if not self.fast_forward:
            k = 1
        seg = self.cost.decode_segment(n, ctx_sum0)
        # the closed form holds while the steps' cost stays affine (no bound or power clip
        # switches inside): halve the run until it does, checking every length tried
        while k > 2 and not seg.is_affine_over(k):
            k = max(2, k // 2)
        shapes: list[tuple[int, ...]] = []
        if self.plans.on:
            shapes = self.cost.decode_shapes(n, ctx_sum0, k)
            # a shape new to the engine costs its plan (or graph capture) once: on its first
            # step in the run, not again on the later steps at the same (padded) shape
            seen, new = set(self.plans.seen), []
            for s in shapes:
                new.append(s not in seen)
                seen.add(s)
            seg = MissingShapes(seg, new, self.cost)
        start = self.env.now
        if server is not None:
            server.in_segment = True
        try:
            yield self.env.timeout(seg.time(k))
            done = k
        except simpy.Interrupt:
            elapsed = self.env.now - start
            done = seg.steps_to_reach(elapsed, k)
            server.in_segment = False
            end = start + seg.time(done)
            while self.env.now < end:  # finish the step in progress; later arrivals just queue
                with contextlib.suppress(simpy.Interrupt):
                    yield self.env.timeout(end - self.env.now)
        finally:
            if server is not None:
                server.in_segment = False
        for shape in shapes[:done]:
            self.plans.miss(shape)
        if done == 0:
            return 0
        energy = seg.energy(done)
        share = energy / n
        for r in reqs:
            r.e_decode += share
        self.ledger.add_busy(start, self.env.now, energy, n, seg.last_step_power_per_gpu(done))
        self.steps += done
        if self.step_log is not None:  # the segment's steps one by one (KV grows by n a step)
            self.step_log.extend(
                (start + seg.time(j), start + seg.time(j + 1), (), n, ctx_sum0 + n * j, self.index)
                for j in range(done)
            )
        return done


class MissingShapes:
    """A decode segment whose steps at attention shapes not seen before also pay the plan
    build (CostModel.miss_s, serial, at the power measured meanwhile): time and energy of the
    first k steps are the segment's plus miss cost times the misses among them."""

    def __init__(self, seg: DecodeSegment, new: list[bool], cost: CostModel) -> None:
        self.seg = seg
        self.cum = np.concatenate([[0], np.cumsum(new)])
        self.dt = cost.miss_s
        self.de = cost.tp * cost.miss_w * cost.miss_s

    def time(self, k: int) -> float:
        return self.seg.time(k) + self.dt * float(self.cum[k])

    def energy(self, k: int) -> float:
        return self.seg.energy(k) + self.de * float(self.cum[k])

    def steps_to_reach(self, elapsed: float, k_max: int) -> int:
        return first_reaching(self.time, elapsed, k_max)

    def last_step_power_per_gpu(self, k: int) -> float:
        return self.seg.last_step_power_per_gpu(k)
