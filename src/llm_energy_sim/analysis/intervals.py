"""80% prediction intervals of a run's headline figures (energy per request, total energy,
TTFT and TPOT p50 / p90, makespan), from the profile's serving-host speed distribution and the
measured run-to-run spread (config/profile.py `host_speed`, `run_to_run`).

The method, per figure with central value c (the run at the scenario's host_time_factor):

1. Host speed. The scenario is simulated again, same seed and trace, at the 10th and 90th
   percentile of the profile's host-speed samples (a scenario that gives its own factor F:
   at F x p10 / median and F x p90 / median, the distribution's relative spread carried to
   F). lo_h and hi_h are the smallest and largest of the three values: a figure need not be
   monotone in host speed, and `monotone` records whether it was over the three runs. A run
   whose engine the profile charges no host time (TGI) does not move with the host: the
   bounds are not simulated, lo_h = hi_h = c.
2. The model's own error, where the profile carries it (`model_residuals`): r = ln(measured /
   predicted) of live configurations no fit used, each predicted at the host speed measured
   in its own engine process (so host speed is not part of r). Its split-conformal 10% and
   90% quantiles (ModelResiduals.quantiles) give m_lo = max(0, -q10), m_hi = max(0, q90).
   Each residual compares with one live run, so run-to-run noise is inside it and step 3 is
   not added then. An engine that replays CUDA graphs (vLLM, TGI, CB with graphs) takes the
   residuals of the live graph runs instead (`graph_residuals`) where the profile has them:
   the eager engines' host-bound errors are not its errors.
3. Run to run, where the profile has no model residuals: w = t(0.9, dof) x sigma_log[figure],
   the 90% quantile of Student's t with the spread's degrees of freedom times the pooled
   standard deviation of ln(figure) over repeated identical live runs; m_lo = m_hi = w.
4. Combined, per side, in log space (the parts independent; for two normal parts the 10% /
   90% offsets of their sum are the root sum of squares of theirs):
   lower = c exp(-sqrt(ln(c / lo_h)^2 + m_lo^2)), upper = c exp(sqrt(ln(hi_h / c)^2 + m_hi^2)).
   No makespan is shorter than the last arrival's time: its lower bound is raised to it.

The interval follows from the profile's measured host samples, repeats and residuals; a
coverage check leaves the checked case's own residual out (`exclude`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llm_energy_sim.config.profile import (
    INTERVAL_FIGURES,
    ModelResiduals,
    Profile,
    RunToRunSpread,
)

LEVEL = 0.8
QUANTILES = (0.1, 0.9)
#: summary.json key of each figure
FIGURE_KEYS: dict[str, tuple[str, ...]] = {
    "energy_per_request_wh": ("energy", "per_request_wh"),
    "total_energy_wh": ("energy", "total_wh"),
    "ttft_p50_s": ("latency_s", "ttft", "p50"),
    "ttft_p90_s": ("latency_s", "ttft", "p90"),
    "tpot_p50_s": ("latency_s", "tpot", "p50"),
    "tpot_p90_s": ("latency_s", "tpot", "p90"),
    "makespan_s": ("makespan_s",),
}
assert tuple(FIGURE_KEYS) == INTERVAL_FIGURES
#: the flat (sweep / plan row) column of each figure, e.g. latency_s.ttft.p90
FIGURE_COLUMNS = {name: ".".join(keys) for name, keys in FIGURE_KEYS.items()}
#: the flat column of a figure's bound: intervals.<figure>.lower / .upper
BOUND_PREFIX = "intervals."


def bound_column(figure: str, side: str) -> str:
    """The flat row column of a figure's bound (side: 'lower' or 'upper')."""
    return f"{BOUND_PREFIX}{figure}.{side}"


def figures(summary: dict[str, Any]) -> dict[str, float | None]:
    """The headline figures of a summary.json object (None where the run has none)."""
    out: dict[str, float | None] = {}
    for name, keys in FIGURE_KEYS.items():
        node: Any = summary
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        out[name] = float(node) if isinstance(node, int | float) and math.isfinite(node) else None
    return out


def host_dependent(scen, profile: Profile) -> bool:
    """Whether host_time_factor moves this scenario's run: the engine's host entry has a
    per-step, per-layer, per-sequence, set-up or shape-miss time (the terms the factor scales,
    cost/costmodel.py _scaled_host)."""
    from llm_energy_sim.config.servers import server_kind
    from llm_energy_sim.cost.costmodel import host_overhead

    engine = server_kind(scen.server.kind).cost_engine_of(scen.server)
    h = host_overhead(profile, engine, scen.dtype, scen.hardware.gpus_per_replica)
    terms = [h.per_step_s, h.per_layer_s, h.per_sequence_s, h.setup_s]
    terms += [*h.attn_shape_miss_s.values(), *h.attn_shape_miss_per_layer_s.values()]
    return any(t > 0 for t in terms)


#: what BoundPlan.residual_runs calls the cases of each residual set (the run's note)
EAGER_RESIDUAL_RUNS = "held-out live configurations"
GRAPH_RESIDUAL_RUNS = "live CUDA-graph runs"


def graph_engine(scen) -> bool:
    """Whether the scenario's engine replays CUDA graphs (cost/costmodel.py ENGINE_SHAPES):
    its model error is the graph regime's (Profile.graph_residuals)."""
    from llm_energy_sim.config.servers import server_kind
    from llm_energy_sim.cost.costmodel import ENGINE_SHAPES

    return ENGINE_SHAPES[server_kind(scen.server.kind).cost_engine_of(scen.server)].cuda_graphs


@dataclass(frozen=True)
class BoundPlan:
    """What the interval of one run needs: the central host factor, the factors of the bound
    runs (empty: none to simulate), whether the host part is known (a distribution, or no
    host term at all) and what it is, the run-to-run spread, the model residuals and the case
    left out of them (a coverage check's own case)."""

    central_factor: float
    bound_factors: tuple[float, ...]
    host_known: bool
    host_note: str
    spread: RunToRunSpread | None
    residuals: ModelResiduals | None = None
    exclude: str | None = None
    # what the residuals' cases are, for the run's note and summary.json
    residual_runs: str = EAGER_RESIDUAL_RUNS

    @property
    def empty(self) -> bool:
        """No part is known: no interval."""
        return not self.host_known and self.spread is None and self.residuals is None

    def model_part(self, figure: str) -> tuple[float, float] | None:
        """(m_lo, m_hi) of the model residuals for `figure`, None without them."""
        if self.residuals is None:
            return None
        q = self.residuals.quantiles(figure, QUANTILES, self.exclude)
        return None if q is None else (max(0.0, -q[0]), max(0.0, q[1]))


def plan(scen, profile: Profile, exclude: str | None = None) -> BoundPlan:
    """The bound runs of `scen` (its host_time_factor None: the profile's default) under
    `profile`; `exclude`: a case directory whose model residual is left out."""
    hs = profile.host_speed
    given = scen.hardware.host_time_factor
    central = given if given is not None else profile.default_host_time_factor()
    spread = profile.run_to_run
    res, runs = profile.model_residuals, EAGER_RESIDUAL_RUNS
    if profile.graph_residuals is not None and graph_engine(scen):
        res, runs = profile.graph_residuals, GRAPH_RESIDUAL_RUNS
    if not host_dependent(scen, profile):
        note = "the profile charges this engine no host time: host speed does not move the run"
        return BoundPlan(central, (), True, note, spread, res, exclude, runs)
    if hs is None:
        note = f"no host part: profile '{profile.name}' has no serving-host samples"
        return BoundPlan(central, (), False, note, spread, res, exclude, runs)
    q_lo, q_hi = (hs.quantile(q) for q in QUANTILES)
    n = len(hs.samples)
    if given is None:
        factors = (q_lo, q_hi)
        note = (
            f"host_time_factor at the p10 and p90 ({q_lo:.4g}, {q_hi:.4g}) of the {n} "
            f"serving-host samples of profile '{profile.name}' (median {central:.4g})"
        )
    else:
        med = hs.median()
        factors = (given * q_lo / med, given * q_hi / med)
        note = (
            f"host_time_factor {given:.4g} (given) x p10 / median and x p90 / median of the "
            f"{n} serving-host samples of profile '{profile.name}' ({factors[0]:.4g}, "
            f"{factors[1]:.4g})"
        )
    return BoundPlan(central, factors, True, note, spread, res, exclude, runs)


def at_factor(scen, factor: float):
    """The scenario at another host_time_factor (everything else the same, seed included)."""
    hw = scen.hardware.model_copy(update={"host_time_factor": factor})
    return scen.model_copy(update={"hardware": hw})


def figures_at(scen, factor: float, profile_override: str | None = None) -> dict:
    """The headline figures of `scen` simulated at host_time_factor `factor` (a worker's job)."""
    from llm_energy_sim.results.accounting import requests_frame, summarize
    from llm_energy_sim.simulation import simulate

    res = simulate(at_factor(scen, factor), profile_override=profile_override)
    return figures(summarize(res, requests_frame(res)))


def _t_central(t: float, dof: int) -> float:
    """P(|T| < t) for Student's t with an integer dof: the closed forms of Abramowitz &
    Stegun 26.7.3 (odd dof) and 26.7.4 (even dof), in theta = atan(t / sqrt(dof))."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(2, dof, 2):  # (1 3 ... (k-1)) / (2 4 ... k) cos^k
            term *= (k - 1) / k * c2
            total += term
        return math.sin(theta) * total
    if dof == 1:
        return 2 * theta / math.pi
    term, total = math.cos(theta), math.cos(theta)
    for k in range(3, dof - 1, 2):  # (2 4 ... (k-1)) / (1 3 ... k) cos^k
        term *= (k - 1) / k * c2
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * total)


def t_quantile(dof: int, q: float = QUANTILES[1]) -> float:
    """The q-quantile (q > 0.5) of Student's t with an integer dof >= 1, by bisection on
    its closed-form distribution function (no scipy import: sim run stays quick to start)."""
    if dof < 1 or not 0.5 < q < 1:
        raise ValueError(f"t quantile needs dof >= 1 and 0.5 < q < 1 (got {dof}, {q})")
    target = 2 * q - 1
    lo, hi = 0.0, 1.0
    while _t_central(hi, dof) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_central(mid, dof) < target else (lo, mid)
        if hi - lo < 1e-13 * hi:
            break
    return (lo + hi) / 2


def floors(res) -> dict[str, float]:
    """Lower limits no run can go below: the makespan is at least the last arrival's time."""
    arrivals = res.trace.arrival_s
    return {"makespan_s": float(arrivals[-1])} if len(arrivals) else {}


def combine(
    central: dict[str, float | None],
    bounds: list[dict[str, float | None]],
    p: BoundPlan,
    floor: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The summary's `intervals` block from the central figures and those of the bound runs
    (in p.bound_factors order); a lower bound is raised to its `floor` (floors(res))."""
    w_q = t_quantile(p.spread.dof) if p.spread is not None else 0.0
    out: dict[str, Any] = {}
    for name in INTERVAL_FIGURES:
        c = central.get(name)
        vals = [b.get(name) for b in bounds]
        if c is None or c <= 0 or any(v is None or v <= 0 for v in vals):
            out[name] = None
            continue
        lo_h, hi_h = min([c, *vals]), max([c, *vals])
        model = p.model_part(name)
        if model is None:
            sigma = p.spread.sigma_log.get(name, 0.0) if p.spread is not None else 0.0
            m_lo = m_hi = w_q * sigma
        else:
            m_lo, m_hi = model
        d_lo, d_hi = math.log(c / lo_h), math.log(hi_h / c)
        entry: dict[str, Any] = {
            "value": c,
            "lower": max(c * math.exp(-math.hypot(d_lo, m_lo)), min((floor or {}).get(name, 0), c)),
            "upper": c * math.exp(math.hypot(d_hi, m_hi)),
            "host_lower": lo_h,
            "host_upper": hi_h,
        }
        if model is not None:
            entry["model_log_offsets"] = [m_lo, m_hi]
        if vals:
            entry["at_bound_factors"] = vals
            lo_v, hi_v = vals[0], vals[-1]
            entry["monotone"] = bool(lo_v <= c <= hi_v or lo_v >= c >= hi_v)
        out[name] = entry
    return {
        "level": LEVEL,
        "quantiles": list(QUANTILES),
        "host_time_factor": p.central_factor,
        "bound_factors": list(p.bound_factors),
        "host": p.host_note,
        "run_to_run": None
        if p.spread is None
        else {"sigma_log": p.spread.sigma_log, "dof": p.spread.dof, "t_quantile": w_q},
        "model_residuals": None
        if p.residuals is None
        else {
            "cases": len([c for c in p.residuals.cases if c.case != p.exclude]),
            "runs": p.residual_runs,
            "excluded": p.exclude,
            "source": p.residuals.source,
        },
        "method": (
            "per figure: lo_h, hi_h = min, max over the central run and the bound runs; "
            "m_lo, m_hi = the model residuals' split-conformal 10% / 90% offsets, or without "
            "residuals w = t(0.9, dof) x sigma_log on both sides; lower = value x "
            "exp(-sqrt(ln(value / lo_h)^2 + m_lo^2)), upper = value x exp(sqrt(ln(hi_h / "
            "value)^2 + m_hi^2)); the makespan's lower bound at least the last arrival "
            "(analysis/intervals.py)"
        ),
        "figures": out,
    }


def flat_bounds(intervals: dict[str, Any] | None) -> dict[str, float | None]:
    """intervals.<figure>.lower / .upper columns of a sweep or plan row."""
    row: dict[str, float | None] = {}
    figs = (intervals or {}).get("figures") or {}
    for name in INTERVAL_FIGURES:
        e = figs.get(name)
        row[bound_column(name, "lower")] = None if e is None else e["lower"]
        row[bound_column(name, "upper")] = None if e is None else e["upper"]
    return row


def simulate_with_bounds(
    scen, profile_override: str | None = None, exclude: str | None = None
) -> tuple[dict, Any]:
    """(the flattenable summary with its `intervals`, the central SimResult), the bound runs
    simulated one after the other in this process (sweep and plan points: their workers are
    the parallelism); `exclude`: a case directory whose model residual is left out."""
    from llm_energy_sim.results.accounting import requests_frame, summarize
    from llm_energy_sim.simulation import profile_for, simulate

    profile, _ = profile_for(scen, profile_override)
    p = plan(scen, profile, exclude)
    res = simulate(scen, profile_override=profile_override)
    summary = summarize(res, requests_frame(res))
    if not p.empty:
        bounds = [figures_at(scen, f, profile_override) for f in p.bound_factors]
        summary["intervals"] = combine(figures(summary), bounds, p, floors(res))
    return summary, res


def spare_cpus() -> int:
    """CPUs this process may run on (its affinity where the platform says), minus its own."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(n - 1, 0)


def can_fork() -> bool:
    """Whether bound runs may be forked off this process: the platform forks, and no other
    Python thread runs here (a fork copies the locks other threads hold, not the threads, so
    a child can wait on one forever; the `sim run` process has none when it forks)."""
    import multiprocessing as mp
    import threading

    return "fork" in mp.get_all_start_methods() and threading.active_count() == 1


def _bound_worker(conn, parent: int, scen, factor: float, profile_override) -> None:
    """A forked bound run: its figures, or the UserError it raised, sent back on `conn`."""
    from llm_energy_sim.analysis.workers import die_with_parent
    from llm_energy_sim.config.errors import UserError

    die_with_parent(parent)
    try:
        conn.send(("ok", figures_at(scen, factor, profile_override)))
    except UserError as exc:
        conn.send(("error", str(exc)))
    finally:
        conn.close()


class BoundRuns:
    """The bound runs of a plan. With `parallel`, each starts at once in a process forked off
    this one (it shares the loaded libraries; the caller checks can_fork()), beside the
    caller's central run; otherwise they run in this process when results() asks. A context
    manager: leaving it ends the workers (kills them when leaving on an error)."""

    def __init__(
        self, scen, factors: tuple[float, ...], profile_override: str | None, parallel: bool
    ) -> None:
        self.scen, self.factors, self.profile_override = scen, factors, profile_override
        self._workers: list = []  # (process, receiving end)
        if parallel and factors:
            import multiprocessing as mp
            import os

            ctx = mp.get_context("fork")
            for f in factors:
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(
                    target=_bound_worker,
                    args=(send, os.getpid(), scen, f, profile_override),
                    daemon=True,
                )
                proc.start()
                send.close()  # the child's end: EOF here when the child is gone
                self._workers.append((proc, recv))

    def results(self) -> list[dict]:
        """The figures of each bound run, in factor order (a UserError of a run propagates)."""
        from llm_energy_sim.config.errors import UserError

        if not self._workers:
            return [figures_at(self.scen, f, self.profile_override) for f in self.factors]
        out = []
        for proc, recv in self._workers:
            try:
                status, value = recv.recv()
            except EOFError:
                raise UserError(
                    f"an interval bound run (process {proc.pid}) ended without a result "
                    f"(exit code {proc.exitcode}); --no-interval runs without them"
                ) from None
            if status == "error":
                raise UserError(value)
            out.append(value)
        return out

    def close(self, abort: bool = False) -> None:
        """End the workers: wait for them, or with `abort` kill them first."""
        for proc, recv in self._workers:
            if abort and proc.is_alive():
                proc.kill()
            proc.join()
            recv.close()
        self._workers = []

    def __enter__(self) -> BoundRuns:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(abort=exc_type is not None)
