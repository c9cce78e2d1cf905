"""Regenerate docs/accuracy.md's CUDA-graph tables: every live transformers-CB run with CUDA
graphs on the H200 (measurements/live/h200-graphs*) predicted at the host speed measured in
it (as `sim run --host-speed` sets it), compared as `sim compare` does, and the
eager-vs-graphs difference of the bursts run both ways in one call (h200-graphs-c, -d, -e). Prints
Markdown; works on any CPU.

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
]  # fmt: skip
# (graphs run, eager run) of each model measured both ways in one call
PAIRS = {f"{m}{sfx}": (f"{m} {g}", f"{m} {e}")
         for m in ("llama-3.1-8b", "qwen2.5-7b")
         for sfx, g, e in (("", "burst (repeat)", "burst, eager"),
                           (" large burst", "large burst", "large burst, eager"))}  # fmt: skip
PAIRS.update({f"{m} large burst": (f"{m} large burst", f"{m} large burst, eager")
              for m in ("mistral-7b", "qwen2.5-14b")})  # fmt: skip
METRICS = ("energy per request (total)", "TTFT p50", "TPOT p50", "makespan")


def compare(out: Path, model: str, scen: str, measured: Path, graphs: bool) -> dict:
    """Predict one run at the host speed measured in it and compare, with the pieces of
    `sim run --host-speed` and `sim validate matrix` (load_with_host_speed, analysis.matrix
    .predict, compare_dirs); the metric rows of `sim compare`'s table by name."""
    path = ROOT / f"scenarios/validation/{scen}.yaml"
    sets = (f"model={model}", "hardware.gpu=h200", f"server.cuda_graphs={str(graphs).lower()}")
    scenario, runs = load_with_host_speed(path, overrides(None, sets), [measured], None)
    pred = predict(scenario, path, out / f"pred-{measured.parent.name}-{measured.name}", None, runs)
    table, _, _ = compare_dirs(pred, measured)
    return {r["metric"]: r for r in table.to_dict("records")}


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
