"""Simulator speed benchmark: prints a table of wall times (one core, this machine).

Goals (issue 2): fixed500ms.yaml (10,000 requests) in <= 5 s; a 1,000,000-request Poisson
trace in <= 5 minutes. Run: python benchmarks/bench_sim.py [--skip-1m]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.results.accounting import requests_frame, summarize, timeline_frame
from llm_energy_sim.simulation import simulate

REPO = Path(__file__).resolve().parents[1]


def bench(path: Path, overrides: dict | None = None) -> tuple[float, float, int, dict]:
    scen = load_scenario(path, overrides or {})
    t0 = time.perf_counter()
    res = simulate(scen)
    t_sim = time.perf_counter() - t0
    df = requests_frame(res)
    summ = summarize(res, df)
    timeline_frame(res)
    t_all = time.perf_counter() - t0
    return t_sim, t_all, len(df), summ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-1m", action="store_true")
    args = ap.parse_args()
    cases = [
        ("fixed500ms.yaml", {}, 5.0),
        ("fixed500ms.yaml", {"fast_forward": False}, None),
        ("sequential.yaml", {}, None),
        ("static_b4.yaml", {}, None),
        ("llama70b_tp4_fixed500ms.yaml", {}, None),
    ]
    if not args.skip_1m:
        cases.append(("poisson_1m.yaml", {}, 300.0))
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(
        f"{'scenario':34s} {'overrides':22s} {'requests':>9s} {'steps':>10s} {'sim s':>8s} {'+outputs s':>10s} {'goal s':>7s}"
    )
    for name, ov, goal in cases:
        t_sim, t_all, n, summ = bench(REPO / "scenarios" / name, ov)
        ov_s = ",".join(f"{k}={v}" for k, v in ov.items()) or "-"
        print(
            f"{name:34s} {ov_s:22s} {n:9d} {summ['steps']:10d} {t_sim:8.2f} {t_all:10.2f} {goal if goal else '-':>7}"
        )


if __name__ == "__main__":
    main()
