"""Regenerate docs/accuracy.md's CUDA-graph tables: every live transformers-CB run with CUDA
graphs on the H200 (measurements/live/h200-graphs*) predicted at the host speed measured in
it (as `sim run --host-speed` sets it), compared as `sim compare` does, and the
eager-vs-graphs difference of the bursts run both ways in one call (h200-graphs-c, -d, -e), and
the 80% intervals of the graph runs at the default host speed, each run's own graph residual
left out (Profile.graph_residuals). Prints Markdown; works on any CPU.

    python tools/graph_regime_table.py [OUT_DIR]   # default results/graph-regime
"""

from __future__ import annotations

import sys
from pathlib import Path

from llm_energy_sim.analysis.compare import compare_dirs
from llm_energy_sim.analysis.matrix import predict
from llm_energy_sim.cli.options import load_with_host_speed, overrides

ROOT = Path(__file__).resolve().parents[1]
L = ROOT / "measurements/live"
SCEN = {"burst_warm": "burst", "fixed50ms": "fixed 50 ms", "fixed300ms": "fixed 300 ms",
        "uniform": "uniform 0-600 ms"}  # fmt: skip
# (label, model, scenario, measured dir, cuda_graphs)
CASES = [
    *[(f"{m} {SCEN[s]}", m, s, L / d / f"graphs-{m}" / f"val-{s.replace('_', '-')}", True)
      for m, d in (("llama-3.1-8b", "h200-graphs"), ("qwen2.5-7b", "h200-graphs-b")) for s in SCEN],
    *[(f"{m} burst (repeat)", m, "burst_warm", L / "h200-graphs-c" / f"graphs-{m}", True)
      for m in ("llama-3.1-8b", "qwen2.5-7b")],
    *[(f"{m} burst, eager", m, "burst_warm", L / "h200-graphs-c" / f"eager-{m}", False)
      for m in ("llama-3.1-8b", "qwen2.5-7b")],
    *[(f"{m} large burst{'' if g else ', eager'}", m, "burst_large",
       L / "h200-graphs-d" / f"{'graphs' if g else 'eager'}-{m}", g)
      for m in ("llama-3.1-8b", "qwen2.5-7b") for g in (True, False)],
    # two models no graph-regime fit or check had used, measured after the step-level power
    # limit was committed (2026-12-03 12:09-12:13 UTC)
    *[(f"{m} large burst{'' if g else ', eager'}", m, "burst_large",
       L / "h200-graphs-e" / f"{'graphs' if g else 'eager'}-{m}", g)
      for m in ("mistral-7b", "qwen2.5-14b") for g in (True, False)],
    # the same two models at light and medium load, measured 2026-12-03 14:06-14:11 UTC before
    # the masked SDPA's rounds of thread blocks were committed, opened only after (blind)
    *[(f"{m} {SCEN[s]}", m, s, L / "h200-graphs-f" / f"graphs-{m}" / f"val-{s}", True)
      for m in ("mistral-7b", "qwen2.5-14b") for s in ("fixed50ms", "fixed300ms", "uniform")],
    # Poisson arrivals of 500-2000-token prompts, four models, measured 2026-12-03 14:47-14:51
    # UTC after the SDPA rounds and the zero padding were committed (blind)
    *[(f"{m} poisson long prompts", m, "poisson_long", L / "h200-graphs-g" / f"graphs-{m}", True)
      for m in ("llama-3.1-8b", "qwen2.5-1.5b", "qwen2.5-7b", "qwen2.5-14b")],
]  # fmt: skip
# (graphs run, eager run) of each model measured both ways in one call
PAIRS = {f"{m}{sfx}": (f"{m} {g}", f"{m} {e}")
         for m in ("llama-3.1-8b", "qwen2.5-7b")
         for sfx, g, e in (("", "burst (repeat)", "burst, eager"),
                           (" large burst", "large burst", "large burst, eager"))}  # fmt: skip
PAIRS.update({f"{m} large burst": (f"{m} large burst", f"{m} large burst, eager")
              for m in ("mistral-7b", "qwen2.5-14b")})  # fmt: skip
METRICS = ("energy per request (total)", "TTFT p50", "TPOT p50", "makespan")


def _sets(model: str, graphs: bool) -> tuple[str, ...]:
    return (f"model={model}", "hardware.gpu=h200", f"server.cuda_graphs={str(graphs).lower()}")


def predict_run(out: Path, model: str, scen: str, measured: Path, graphs: bool) -> Path:
    """Predict one run at the host speed measured in it, with the pieces of `sim run
    --host-speed` and `sim validate matrix` (load_with_host_speed, analysis.matrix.predict):
    the predicted results directory."""
    path = ROOT / f"scenarios/validation/{scen}.yaml"
    scenario, runs = load_with_host_speed(
        path, overrides(None, _sets(model, graphs)), [measured], None
    )
    return predict(scenario, path, out / f"pred-{measured.parent.name}-{measured.name}", None, runs)


def compare(out: Path, model: str, scen: str, measured: Path, graphs: bool) -> dict:
    """predict_run and compare as `sim compare` does (compare_dirs): the metric rows of its
    table by name."""
    table, _, _ = compare_dirs(predict_run(out, model, scen, measured, graphs), measured)
    return {r["metric"]: r for r in table.to_dict("records")}


def coverage(out: Path) -> list[dict]:
    """Per graph run: its 80% interval as a user gets it (the profile's default host speed,
    `sim run`'s bound runs), the run's own graph residual left out, against the measured
    energy per request, TTFT p50 and TPOT p50; rows keyed as analysis.matrix's coverage rows
    (f"{figure}_measured", _lower, _upper, _inside, _width)."""
    import json

    from llm_energy_sim.analysis.intervals import figures, simulate_with_bounds
    from llm_energy_sim.analysis.matrix import COVERAGE_FIGURES, case_key
    from llm_energy_sim.config.scenario import load_scenario

    rows = []
    for label, model, scen, measured, graphs in CASES:
        if not graphs:
            continue
        path = ROOT / f"scenarios/validation/{scen}.yaml"
        scenario = load_scenario(path, overrides(None, _sets(model, graphs)))
        summary, _ = simulate_with_bounds(scenario, exclude=case_key(measured))
        meas = figures(json.loads((measured / "summary.json").read_text()))
        row: dict = {"run": label}
        for fig in COVERAGE_FIGURES:
            iv, m = summary["intervals"]["figures"][fig], meas[fig]
            row[f"{fig}_measured"], row[f"{fig}_lower"], row[f"{fig}_upper"] = (
                m,
                iv["lower"],
                iv["upper"],
            )
            row[f"{fig}_inside"] = iv["lower"] <= m <= iv["upper"]
            row[f"{fig}_width"] = (iv["upper"] - iv["lower"]) / iv["value"]
        rows.append(row)
    return rows


def coverage_markdown(rows: list[dict]) -> str:
    """The coverage table of coverage()'s rows and, over every (run, figure), the fraction
    held and the median width (analysis.matrix.coverage_stats)."""
    from llm_energy_sim.analysis.matrix import COVERAGE_FIGURES, coverage_stats

    figs = list(COVERAGE_FIGURES)
    lines = [
        "| run | "
        + " | ".join(f"{COVERAGE_FIGURES[f]} measured [80% interval]" for f in figs)
        + " |"
    ]
    lines.append("|---|" + "---|" * len(figs))
    for r in rows:
        cells = [
            f"{r[f'{f}_measured']:.4g} [{r[f'{f}_lower']:.4g}, {r[f'{f}_upper']:.4g}] "
            + ("in" if r[f"{f}_inside"] else "**out**")
            for f in figs
        ]
        lines.append(f"| {r['run']} | " + " | ".join(cells) + " |")
    every = coverage_stats(rows)["all"]
    lines.append(
        f"\ncoverage: {every['covered']}/{every['cases']} ({every['fraction']:.0%}), "
        f"median width {every['median_width']:.1%}"
    )
    return "\n".join(lines)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results/graph-regime"
    out.mkdir(parents=True, exist_ok=True)
    res = {label: compare(out, m, s, d, g) for label, m, s, d, g in CASES}
    print("| run | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for label, r in res.items():
        print(f"| {label} | " + " | ".join(f"{r[k]['error'] * 100:+.1f}%" for k in METRICS) + " |")
    print("\n| model | quantity | measured graphs / eager - 1 | predicted graphs / eager - 1 |")
    print("|---|---|---|---|")
    for name, (graphs, eager) in PAIRS.items():
        g, e = res[graphs], res[eager]
        for k in ("energy per request (total)", "makespan"):
            meas = g[k]["measured"] / e[k]["measured"] - 1
            pred = g[k]["predicted"] / e[k]["predicted"] - 1
            print(f"| {name} | {k} | {meas * 100:+.1f}% | {pred * 100:+.1f}% |")
    print("\n" + coverage_markdown(coverage(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
