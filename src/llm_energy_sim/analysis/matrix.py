"""The live validation matrix (issue 17): each measured case beside its prediction.

A matrix directory is what tools/device/matrix.sh writes: one `sim replay` results directory
per case (`<model>-<dtype>-<scenario>/`, with the host-speed passes that bracketed it in its
hostspeed table) and the exact scenario each replayed (`scenarios/<case>.yaml`). The CLI
(`sim validate matrix`) sets each case's hardware.host_time_factor from that case's own passes
and predicts it here; the table sets the errors (predicted / measured - 1, analysis/compare.py)
of every case side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.output import SUMMARY_FILE, read_summary
from llm_energy_sim.results.tables import table_path

SCENARIOS_DIR = "scenarios"

#: the table's latency columns: compare.metric_rows' metric names
LATENCIES = {"ttft_p50": "TTFT p50", "tpot_p50": "TPOT p50", "e2e_p50": "E2E p50"}


@dataclass(frozen=True)
class MatrixCase:
    """One measured case: its results directory and the scenario it replayed."""

    name: str
    measured: Path
    scenario: Path

    @property
    def has_host_speed(self) -> bool:
        return table_path(self.measured, "hostspeed") is not None


def find_cases(root: Path) -> list[MatrixCase]:
    """Every case under a matrix directory (a subdirectory with summary.json), in the order
    they were measured; UserError when there is none or a case's scenario file is missing."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory (a tools/device/matrix.sh results dir)")
    cases = []
    for d in sorted(p for p in root.iterdir() if (p / SUMMARY_FILE).is_file()):
        scen = root / SCENARIOS_DIR / f"{d.name}.yaml"
        if not scen.is_file():
            raise UserError(f"{d}: no scenario file {scen} (the one matrix.sh replayed)")
        cases.append(MatrixCase(d.name, d, scen))
    if not cases:
        raise UserError(f"{root}: no case directories (subdirectories with {SUMMARY_FILE})")

    def started(c: MatrixCase) -> str:
        return str((read_summary(c.measured).measured or {}).get("started_at_utc") or "")

    return sorted(cases, key=lambda c: (started(c), c.name))


def predict(scen, scenario_path: Path, out_dir: Path, profile: str | None, host_runs) -> Path:
    """Simulate `scen` (its host_time_factor already set) into a results directory, as
    `sim run` writes one; returns out_dir."""
    from llm_energy_sim.results.accounting import build_summary, requests_frame, timeline_frame
    from llm_energy_sim.results.marker import mark_complete
    from llm_energy_sim.results.output import write_results
    from llm_energy_sim.results.provenance import provenance
    from llm_energy_sim.results.staging import staged_dir
    from llm_energy_sim.simulation import simulate

    res = simulate(scen, profile_override=profile)
    df = requests_frame(res)
    summary = build_summary(res, df, None, provenance("sim validate matrix", scenario_path))
    if host_runs is not None:
        summary.host_time_factor_runs = host_runs
    with staged_dir(out_dir, SUMMARY_FILE) as tmp:
        write_results(tmp, summary, df, timeline_frame(res))
        mark_complete(tmp)  # last: readers refuse a directory without it
    return out_dir


def server_label(server) -> str:
    """A scenario's server as the table names it: the kind, and a static batch's size."""
    if server.kind == "static":
        return f"static b{server.batch_size}"
    return server.kind


def case_row(
    case: MatrixCase, scen, measured: dict, table: pd.DataFrame, factor: float | None
) -> dict:
    """One line of the matrix: the case (scen: its scenario), energy per request measured /
    predicted / error and the p50 latency errors, from `sim compare`'s table
    (analysis/compare.metric_rows)."""
    by = table.set_index("metric")
    energy = by.loc["energy per request (total)"]
    row = {
        "case": case.name,
        "model": scen.model,
        "dtype": scen.dtype,
        "server": server_label(scen.server),
        "scenario": case.name.removeprefix(f"{scen.model}-{scen.dtype}-"),
        "requests": measured["requests"]["total"],
        "completed": measured["requests"]["completed"],
        "host_time_factor": factor,
        "energy_wh_measured": float(energy["measured"]),
        "energy_wh_predicted": float(energy["predicted"]),
        "energy_error": float(energy["error"]),
    }
    for key, metric in LATENCIES.items():
        row[f"{key}_error"] = float(by.loc[metric, "error"])
    return row


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:+.1f}%"


def summary_stats(rows: list[dict]) -> dict:
    """Median and worst |energy error| over the cases (NaN ignored), and the worst case."""
    errs = [(abs(r["energy_error"]), r["case"]) for r in rows if math.isfinite(r["energy_error"])]
    if not errs:
        return {"cases": len(rows), "median_abs_energy_error": None, "worst": None}
    errs.sort()
    vals = [e for e, _ in errs]
    n = len(vals)
    median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {
        "cases": len(rows),
        "median_abs_energy_error": median,
        "worst_abs_energy_error": vals[-1],
        "worst": errs[-1][1],
    }


def markdown(rows: list[dict], profile: str) -> str:
    """The matrix as a Markdown table, then the median and worst |energy error|."""
    head = (
        "| model | dtype | server | scenario | requests | host factor | Wh/request measured "
        "| predicted | error | TTFT p50 | TPOT p50 | E2E p50 |\n"
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in rows:
        hf = "-" if r["host_time_factor"] is None else f"{r['host_time_factor']:.2f}"
        done = r["completed"]
        n = str(r["requests"]) if done == r["requests"] else f"{done} of {r['requests']}"
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['server']} | {r['scenario']} | {n} | {hf} "
            f"| {r['energy_wh_measured']:.4g} | {r['energy_wh_predicted']:.4g} "
            f"| {_pct(r['energy_error'])} | {_pct(r['ttft_p50_error'])} "
            f"| {_pct(r['tpot_p50_error'])} | {_pct(r['e2e_p50_error'])} |"
        )
    s = summary_stats(rows)
    tail = (
        f"\n{s['cases']} cases, profile {profile}; errors are predicted / measured - 1. "
        f"|energy error|: median {_pct(s['median_abs_energy_error']).lstrip('+')}, worst "
        f"{_pct(s.get('worst_abs_energy_error')).lstrip('+')} ({s['worst']}).\n"
        if s["median_abs_energy_error"] is not None
        else f"\n{s['cases']} cases, profile {profile}: no energy errors (nothing metered).\n"
    )
    return head + "\n".join(lines) + "\n" + tail
