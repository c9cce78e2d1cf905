"""Capacity planning on simulated runs (the qMeter paper's case studies 8.1 and 8.2).

saturation(): the highest request rate whose p90 TTFT and TPOT meet the SLOs, by bisection.
optimize(): for a target rate, every dtype x tensor-parallel x replicas (x any other swept
setting) configuration simulated at that rate and ranked by energy; with replicas='auto'
the replica count is qMeter's ceil(rate / saturation rate of one replica), checked by
simulating the whole fleet.

Both assume what qMeter assumes: at a fixed configuration the SLO holds below some rate and
fails above it. Poisson traces of one seed are the same standard-exponential draws scaled by
1/rate (llm_energy_sim.engine.workload), so runs at different rates see the same requests and the predicate is
close to monotone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llm_energy_sim.analysis.grid import ScenarioRef, as_ref, grid_points, run_parallel, run_point
from llm_energy_sim.analysis.intervals import bound_column
from llm_energy_sim.config.errors import UserError

SECONDS_PER_DAY = 86400.0


#: where a plan checks its SLOs: the central prediction, or the upper bound of its 80%
#: interval (analysis/intervals.py)
SLO_AT = ("central", "upper")


@dataclass(frozen=True)
class Slo:
    """Service-level objectives on the p90 of TTFT and TPOT (seconds); None = no bound.
    `at`: met by the central prediction, or by the upper bound of its 80% interval (a row
    then needs the interval: run it with `interval`)."""

    ttft_p90_s: float | None = None
    tpot_p90_s: float | None = None
    at: str = "central"

    def __post_init__(self) -> None:
        for name, v in (("TTFT", self.ttft_p90_s), ("TPOT", self.tpot_p90_s)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UserError(
                    f"the {name} p90 SLO must be a finite number of seconds > 0 (got {v})"
                )
        if self.at not in SLO_AT:
            raise UserError(f"--slo-at {self.at!r}: one of {', '.join(SLO_AT)}")

    @property
    def needs_interval(self) -> bool:
        return self.at == "upper"

    def _latency(self, row: dict[str, Any], figure: str, column: str) -> float | None:
        if self.at == "upper":
            return _num(row.get(bound_column(figure, "upper")))
        return _num(row.get(column))

    def violations(self, row: dict[str, Any]) -> list[str]:
        """Why a simulated run misses the SLOs ([] if it meets them). Refused or unfinished
        requests count as a miss: a server that sheds load does not serve the rate."""
        if row.get("error"):
            return [str(row["error"])]
        out = []
        total, done = row.get("requests.total", 0), row.get("requests.completed", 0)
        if done < total:
            out.append(f"{total - done} of {total} requests not served")
        ttft = self._latency(row, "ttft_p90_s", "latency_s.ttft.p90")
        tpot = self._latency(row, "tpot_p90_s", "latency_s.tpot.p90")
        which = " (80% upper bound)" if self.at == "upper" else ""
        if self.at == "upper" and ttft is None and _num(row.get("latency_s.ttft.p90")):
            out.append("no 80% interval for this run (its profile has no host-speed samples)")
            return out
        if self.ttft_p90_s is not None and (ttft is None or ttft > self.ttft_p90_s):
            out.append(f"TTFT p90{which} {_s(ttft)} > {self.ttft_p90_s:g} s")
        # TPOT is undefined when every request generates one token: nothing to violate
        if self.tpot_p90_s is not None and tpot is not None and tpot > self.tpot_p90_s:
            out.append(f"TPOT p90{which} {_s(tpot)} > {self.tpot_p90_s:g} s")
        return out

    def met(self, row: dict[str, Any]) -> bool:
        return not self.violations(row)


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g} s"


def arrival_at(rate: float, kind: str = "poisson") -> dict[str, Any]:
    """The scenario's workload.arrival for a rate in requests per second."""
    if rate <= 0:
        raise UserError(f"request rate must be > 0 (got {rate})")
    if kind == "poisson":
        return {"kind": "poisson", "rate": rate}
    if kind == "fixed":
        return {"kind": "fixed", "interval_ms": 1000.0 / rate}
    raise UserError(f"arrival '{kind}': use poisson or fixed")


# ---- case study 8.1: saturation point ---------------------------------------------------------
def saturation(
    scenario: str | Path | ScenarioRef,
    slo: Slo,
    lo: float,
    hi: float,
    rel_tol: float = 0.01,
    arrival: str = "poisson",
    requests: int | None = None,
    overrides: dict[str, Any] | None = None,
    interval: bool = False,
) -> tuple[float, list[dict[str, Any]]]:
    """Highest rate in [lo, hi] (req/s) that meets the SLO, to within rel_tol; returns it and
    every evaluated row (with `rate` and `slo_met`). Returns hi itself if hi still meets it.
    Rows carry their 80% intervals with `interval`, or when the SLO is checked at the upper
    bound.

    Bisects on the geometric mean: the bracket may span decades (0.05 to 50 req/s) and the
    relative precision is what matters for capacity.
    """
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise UserError(f"need 0 < min rate < max rate, both finite (got {lo}, {hi})")
    if not 0 < rel_tol < 1:
        raise UserError(f"the tolerance must be in (0, 1) (got {rel_tol})")
    ref = as_ref(scenario)
    rows: list[dict[str, Any]] = []

    def ok(rate: float) -> bool:
        ov = {**(overrides or {}), "workload.arrival": arrival_at(rate, arrival)}
        row = run_point(ref, ov, requests, interval or slo.needs_interval)
        if row["error"]:  # a configuration error (e.g. does not fit): no rate will do
            raise UserError(row["error"])
        row["rate"] = rate
        row["slo_violations"] = "; ".join(slo.violations(row))
        row["slo_met"] = not row["slo_violations"]
        rows.append(row)
        return row["slo_met"]

    if not ok(lo):
        raise UserError(
            f"the SLO is not met even at the lowest rate tried, {lo:.4g} req/s "
            f"({rows[-1]['slo_violations']})"
        )
    if ok(hi):
        return hi, rows
    while (hi - lo) / hi > rel_tol:
        mid = math.sqrt(lo * hi)
        if not lo < mid < hi:  # the bracket cannot shrink further in floating point
            break
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, rows


# ---- case study 8.2: energy-optimal configuration ---------------------------------------------
@dataclass(frozen=True)
class Target:
    """What the fleet must serve: a Poisson rate under SLOs, on traces of `requests` requests."""

    rate: float
    slo: Slo
    requests: int | None = None
    max_replicas: int = 64
    interval: bool = True  # the fleet's rows carry their 80% intervals


def evaluate_config(ref: ScenarioRef, config: dict[str, Any], target: Target) -> dict[str, Any]:
    """One configuration at the target rate -> one ranked-table row (never raises UserError).

    config holds dotted overrides; hardware.replicas='auto' sizes the fleet as qMeter does:
    bisect one replica's saturation rate x_s, provision ceil(rate / x_s) replicas, and check
    the whole fleet by simulation (adding a replica at most twice if round-robin imbalance
    still misses the SLO).
    """
    cfg = dict(config)
    auto = cfg.get("hardware.replicas") == "auto"
    sat = None
    info: dict[str, Any] = {}
    try:
        if auto:
            one = {**cfg, "hardware.replicas": 1}
            lo = target.rate / target.max_replicas
            sat, _ = saturation(  # bounds only where the SLO is checked on them
                ref, target.slo, lo, target.rate, 0.02, "poisson", target.requests, one
            )
            n = math.ceil(target.rate / sat * (1 - 1e-9))
            tries = [n, n + 1, n + 2]
        else:
            tries = [
                int(cfg.get("hardware.replicas", ref.data.get("hardware", {}).get("replicas", 1)))
            ]
        for n in tries:
            row = run_point(
                ref,
                {**cfg, "hardware.replicas": n, "workload.arrival": arrival_at(target.rate)},
                target.requests,
                target.interval or target.slo.needs_interval,
            )
            if row["error"]:
                raise UserError(row["error"])
            if target.slo.met(row):
                break
        info = {"replicas": n, **_metrics(row, target)}
        violations = target.slo.violations(row)
        info["status"] = "ok" if not violations else "misses SLO"
        info["note"] = "; ".join(violations)
    except UserError as exc:
        msg = str(exc)
        info = {"status": "does not fit" if "does not fit" in msg else "infeasible", "note": msg}
        if "hardware.replicas" in cfg and not auto:
            info["replicas"] = cfg["hardware.replicas"]
    return {"config": cfg, "saturation_rps_per_replica": sat, **info}


def _metrics(row: dict[str, Any], target: Target) -> dict[str, Any]:
    wh = _num(row.get("energy.per_request_wh"))

    def per_day(v: float | None) -> float | None:
        return v * target.rate * SECONDS_PER_DAY / 1000.0 if v is not None else None

    out = {
        "gpus": row.get("gpus"),
        "wh_per_request": wh,
        "active_wh_per_request": _num(row.get("energy.per_request_active_wh")),
        "kwh_per_day": per_day(wh),
        "mean_power_per_gpu_w": _num(row.get("energy.mean_power_per_gpu_w")),
        "ttft_p90_s": _num(row.get("latency_s.ttft.p90")),
        "tpot_p90_s": _num(row.get("latency_s.tpot.p90")),
        "served": f"{row.get('requests.completed')}/{row.get('requests.total')}",
    }
    for col, fig in INTERVAL_COLUMNS.items():  # the 80% intervals' bounds, where computed
        for side in ("lower", "upper"):
            out[f"{col}_{side}"] = _num(row.get(bound_column(fig, side)))
    for side in ("lower", "upper"):
        out[f"kwh_per_day_{side}"] = per_day(out[f"wh_per_request_{side}"])
    return out


#: plan columns with an 80% interval, and their figure (analysis/intervals.py)
INTERVAL_COLUMNS = {
    "wh_per_request": "energy_per_request_wh",
    "ttft_p90_s": "ttft_p90_s",
    "tpot_p90_s": "tpot_p90_s",
}


def optimize(
    scenario: str | Path | ScenarioRef,
    rate: float,
    slo: Slo,
    dtypes: list[str],
    tps: list[int],
    replicas: list[int] | str,
    requests: int | None = None,
    axes: list[tuple[str, list[Any]]] | None = None,
    workers: int = 1,
    dask: str | None = None,
    max_replicas: int = 64,
    interval: bool = True,
) -> pd.DataFrame:
    """Every dtype x TP x replicas x axes configuration at `rate` req/s, ranked: those meeting
    the SLOs first, by energy per request (= by kWh/day at a fixed rate), then the rest.

    replicas: a list of counts, or 'auto' (qMeter's provisioning from the saturation rate).
    axes: more swept settings, e.g. [('hardware.gpu', ['h100-sxm', 'h200'])].
    """
    if not (math.isfinite(rate) and rate > 0):
        raise UserError(f"--rate must be a finite number > 0 (got {rate})")
    if max_replicas < 1:
        raise UserError(f"--max-replicas must be >= 1 (got {max_replicas})")
    ref = as_ref(scenario)
    reps: list[Any] = ["auto"] if replicas == "auto" else list(replicas)
    all_axes = [
        ("dtype", dtypes),
        ("hardware.gpus_per_replica", tps),
        ("hardware.replicas", reps),
        *(axes or []),
    ]
    configs = grid_points(all_axes)
    target = Target(rate, slo, requests, max_replicas, interval)
    rows = []
    for r in run_parallel(evaluate_config, [(ref, c, target) for c in configs], workers, dask):
        cfg = r.pop("config")
        rows.append(
            {
                "gpu": cfg.get("hardware.gpu", ref.data.get("hardware", {}).get("gpu", "h100-sxm")),
                "dtype": cfg["dtype"],
                "tp": cfg["hardware.gpus_per_replica"],
                **{
                    k: v
                    for k, v in cfg.items()
                    if k
                    not in (
                        "dtype",
                        "hardware.gpus_per_replica",
                        "hardware.replicas",
                        "hardware.gpu",
                    )
                },
                **r,
            }
        )
    return rank(pd.DataFrame(rows))


#: what identifies a planned configuration, the first columns of a plan
CONFIG_COLUMNS = ["gpu", "dtype", "tp", "replicas", "gpus"]
COLUMNS = [
    *CONFIG_COLUMNS,
    "status",
    "wh_per_request",
    "active_wh_per_request",
    "kwh_per_day",
    "ttft_p90_s",
    "tpot_p90_s",
    "served",
    "mean_power_per_gpu_w",
    "saturation_rps_per_replica",
    "note",
    *(
        f"{c}_{side}"
        for c in ("wh_per_request", "kwh_per_day", "ttft_p90_s", "tpot_p90_s")
        for side in ("lower", "upper")
    ),
]


def rank(df: pd.DataFrame) -> pd.DataFrame:
    """SLO-meeting rows by energy, then the rest; a 'feasible' column and a 1-based rank."""
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    df["feasible"] = df["status"] == "ok"
    df["replicas"] = pd.to_numeric(df["replicas"], errors="coerce").astype("Int64")
    df["gpus"] = (df["tp"] * df["replicas"]).astype("Int64")
    # kept for callers that read this name
    df["energy_per_request_wh"] = df["wh_per_request"]
    df = df.sort_values(
        ["feasible", "wh_per_request"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    extra = [
        c
        for c in df.columns
        if c not in COLUMNS and c not in ("rank", "feasible", "energy_per_request_wh")
    ]
    return df[["rank", *COLUMNS[:6], *extra, *COLUMNS[6:], "feasible", "energy_per_request_wh"]]
