"""One replica (tp GPUs running one model copy): prices steps, books their time and energy."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

from llm_energy_sim.cost.costmodel import CostModel, DecodeSegment, StepWork, first_reaching
from llm_energy_sim.engine.ledger import Ledger
from llm_energy_sim.engine.request import Request


class PlanCache:
    """The attention shapes one engine process has run (its plan cache): a step at a shape it
    has not run before pays the plan build (CostModel.miss_s); and, on a machine with a cold
    CUDA JIT cache, the masked-attention variants compiled so far (CostModel.compile_key): a
    step needing a new one pays its compile (CostModel.jit_s). Kept only when the engine pays
    for either. Shared by the simulated replicas and `sim steps`, which costs live steps."""

    def __init__(self, cost: CostModel) -> None:
        self.cost = cost
        self.on = bool(cost.miss_s) or bool(cost.jit_s)
        self.seen: set[tuple[int, ...]] = set()
        self.tensors: set[tuple[int, ...]] = set()  # shape[:2] of the seen shapes
        self.compiled: set[tuple[str, int]] = set()
        self.misses = 0
        self.compiles = 0

    def step_compile_s(self, work: StepWork) -> float:
        """Compile seconds a step pays (and remember its variant): 0 on a warm machine."""
        key = self.cost.compile_key(work)
        if key is None or key in self.compiled:
            return 0.0
        self.compiled.add(key)
        self.compiles += 1
        return self.cost.jit_s[key[0]]

    def cost_of(
        self,
        shape: tuple[int, ...],
        pending: AbstractSet[tuple[int, ...]] = frozenset(),
        pending_tensors: AbstractSet[tuple[int, ...]] = frozenset(),
    ) -> float:
        """Serial seconds a step at `shape` pays to build its plan or graph, 0 where it was
        met before or is `pending` (shapes of earlier steps not noted yet, their shape[:2] in
        pending_tensors); nothing is remembered."""
        if shape in self.seen or shape in pending:
            return 0.0
        met = shape[:2] in self.tensors or shape[:2] in pending_tensors
        return self.cost.shape_miss_s(shape, met)

    def miss(self, shape: tuple[int, ...]) -> float:
        """cost_of(shape), and remember the shape; 0 where the engine pays no misses."""
        if not self.on:
            return 0.0
        cost = self.cost_of(shape)
        if shape not in self.seen:
            self.note(shape)
        return cost

    def note(self, shape: tuple[int, ...]) -> None:
        """`shape` met for the first time."""
        self.seen.add(shape)
        self.tensors.add(shape[:2])
        self.misses += 1

    def step_miss(self, work: StepWork) -> float:
        return self.miss(self.cost.attn_shape(work)) if self.on else 0.0


class Replica:
    """Prices the steps a server runs on it and books their time and energy (no SimPy: the
    server's process owns the clock, servers/base.py)."""

    def __init__(
        self,
        index: int,
        cost: CostModel,
        fast_forward: bool,
        cold_start: bool = False,
    ):
        self.cold_start = cold_start  # a fresh engine process: the first step pays its set-up
        self.index = index
        self.cost = cost
        self.fast_forward = fast_forward
        self.ledger = Ledger(n_gpus=cost.tp, idle=cost.profile.idle)
        self.steps = 0
        self.plans = PlanCache(cost)
        # the step pricer, where a step's cost needs no plan-cache shape (else step_cost)
        self._pricer = None if self.plans.on else cost.step_pricer
        # when a list: every step as (start, end, prefill, n_decode, decode_ctx_sum, replica),
        # results/steptable.py's rows, to set beside a live engine's step log
        self.step_log: list[tuple] | None = None

    @property
    def shape_misses(self) -> int:
        return self.plans.misses

    # ---- one forward step -----------------------------------------------------------------
    def forward_cost(self, plan: Any) -> tuple[float, float, float]:
        """(wall_s, energy_j of all GPUs, power per GPU) of the plan's one forward step (a
        servers.plan.StepPlan: its prefill chunks, decodes, graph_tokens and work)."""
        cold = self.cold_start and self.steps == 0
        if self._pricer is not None:
            ctx = 0
            for d in plan.decode:
                ctx += d.kv_len
            pre = [(c.tokens, c.past) for c in plan.prefill]
            wall, energy = self._pricer.price(
                pre, len(plan.decode), ctx, plan.graph_tokens, False, cold
            )
        else:
            work = plan.work
            c = self.cost.step_cost(
                work,
                shape_miss=self.plans.step_miss(work),
                cold=cold,
                compile_s=self.plans.step_compile_s(work),
            )
            wall, energy = c.wall_s, c.energy_j
        return wall, energy, (energy / wall / self.cost.tp if wall > 0 else 0.0)

    def book_forward(
        self, plan: Any, start: float, end: float, energy: float, p_gpu: float
    ) -> None:
        """The step ran over [start, end]: its energy shared by its requests by tokens."""
        decode, prefill = plan.decode, plan.prefill
        total = len(decode)
        for c in prefill:
            total += c.tokens
        part = energy * 1 / total
        for d in decode:
            d.req.e_decode += part
        for c in prefill:
            c.req.e_prefill += energy * c.tokens / total
        self.ledger.add_busy(start, end, energy, len(decode) + len(prefill), p_gpu)
        self.steps += 1
        if self.step_log is not None:
            w = plan.work
            self.step_log.append((start, end, w.prefill, w.n_decode, w.decode_ctx_sum, self.index))

    # ---- a decode run ---------------------------------------------------------------------
    def decode_segment(
        self, n: int, ctx_sum0: int, k: int, ctx_max0: int = 0
    ) -> tuple[DecodeSegment | MissingShapes, int, list[tuple[int, ...]]]:
        """The closed form of up to k decode steps of n sequences from KV sum ctx_sum0 (the
        longest ctx_max0): (the segment, the steps it may run, the attention shape of each
        when the engine pays for new shapes, else []).

        With fast_forward the k steps are one event, costed in closed form; without it one
        step (the caller re-plans after each), which is the step-by-step reference path.
        """
        if not self.fast_forward:
            k = 1
        seg = self.cost.decode_segment(n, ctx_sum0)
        # the closed form holds while the steps' cost stays affine (no bound or power clip
        # switches inside): halve the run until it does, checking every length tried
        while k > 2 and not seg.is_affine_over(k):
            k = max(2, k // 2)
        shapes: list[tuple[int, ...]] = []
        if self.plans.on:
            shapes = self.cost.decode_shapes(n, ctx_sum0, k, ctx_max0)
            # a shape new to the engine costs its plan (or graph capture) once: on its first
            # step in the run, not again on the later steps at the same (padded) shape
            this_run: set[tuple[int, ...]] = set()
            this_tensors: set[tuple[int, ...]] = set()
            new = []
            for s in shapes:  # (not a copy of the engine's seen shapes: it grows all run)
                new.append(self.plans.cost_of(s, this_run, this_tensors))
                this_run.add(s)
                this_tensors.add(s[:2])
            keys = self.cost.decode_compile_keys(n, ctx_sum0, k)
            if keys:  # a cold machine: a variant not compiled yet costs its compile, once
                compiled, this_run_keys, jit = self.plans.compiled, set(), self.cost.jit_s
                for j, key in enumerate(keys):
                    if key not in compiled and key not in this_run_keys:
                        new[j] += jit[key[0]]
                    this_run_keys.add(key)
            return MissingShapes(seg, new, self.cost, keys), k, shapes
        return seg, k, shapes

    def book_decode(
        self,
        reqs: Sequence[Request],
        seg: DecodeSegment | MissingShapes,
        done: int,
        shapes: list[tuple[int, ...]],
        start: float,
        end: float,
        ctx_sum0: int,
    ) -> None:
        """`done` steps of the segment ran over [start, end] (the caller counts the tokens):
        their energy shared equally by the batch."""
        if shapes:  # PlanCache.miss of each step's shape, inline
            plans = self.plans
            seen = plans.seen
            for shape in shapes[:done]:
                if shape not in seen:
                    plans.note(shape)
            if isinstance(seg, MissingShapes):  # and the variants compiled by these steps
                for key in seg.keys[:done]:
                    if key not in plans.compiled:
                        plans.compiled.add(key)
                        plans.compiles += 1
        if done == 0:
            return
        n = len(reqs)
        energy = seg.energy(done)
        share = energy / n
        for r in reqs:
            r.e_decode += share
        self.ledger.add_busy(start, end, energy, n, seg.last_step_power_per_gpu(done))
        self.steps += done
        if self.step_log is not None:  # the segment's steps one by one (KV grows by n a step)
            self.step_log.extend(
                (start + seg.time(j), start + seg.time(j + 1), (), n, ctx_sum0 + n * j, self.index)
                for j in range(done)
            )


class MissingShapes:
    """A decode segment whose steps at attention shapes not seen before also pay the plan
    build (CostModel.miss_s), and on a cold machine the compile of a masked-attention variant
    not compiled yet (CostModel.jit_s), serial, at the power measured meanwhile: time and
    energy of the first k steps are the segment's plus the serial seconds among them (`new`:
    each step's; `keys`: each step's compile variant, [] on a warm machine)."""

    def __init__(
        self,
        seg: DecodeSegment,
        new: list[float],
        cost: CostModel,
        keys: list[tuple[str, int]] | None = None,
    ) -> None:
        self.seg = seg
        self.keys = keys or []
        self.cum = np.concatenate([[0.0], np.cumsum(new)])
        self.pe = cost.tp * cost.miss_w

    def time(self, k: int) -> float:
        return self.seg.time(k) + float(self.cum[k])

    def energy(self, k: int) -> float:
        return self.seg.energy(k) + self.pe * float(self.cum[k])

    def steps_to_reach(self, elapsed: float, k_max: int) -> int:
        return first_reaching(self.time, elapsed, k_max)

    def last_step_power_per_gpu(self, k: int) -> float:
        return self.seg.last_step_power_per_gpu(k)
