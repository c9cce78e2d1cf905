"""Probe (issue 16): does a CUDA-graph capture of transformers CB scale with the host speed the
way the model scales it? The simulator charges a capture (calibrate/graphcapture.py: 86 ms +
0.55 ms a layer in calibration-host time) times the run's measured host factor. On the slow
lease of 2026-12-03 14:47 UTC (factor 1.55) the charged captures were too long for
Qwen2.5-1.5B and too short for Llama-3.1-8B's prefill steps. Not part of `sim`.

Rounds, each in one process: a host-speed pass (calibrate/hostspeed.py, the engine-process
pass `sim replay --hostspeed` takes), then graphcapture.measure_captures for one (model,
layers) (a fresh engine: lone requests over four KV buckets, pass 1 captures, pass 2 the
control), then another host-speed pass. The lent host's speed drifts by up to 1.7x within a
minute, so the rounds give (host factor, capture excess) pairs of the same shapes.

    python tools/device/capture_host_probe.py --out DIR [--rounds 8]

Writes DIR/graph_capture.csv (graphcapture COLUMNS plus `round`), DIR/hostspeed.csv (the
passes, tagged `round-<i>-before/after`) and DIR/environment.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SHAPES = (("qwen2.5-1.5b", 28), ("qwen2.5-3b", 36))  # the calibration's widths, full depth
PROMPTS = (1000, 17000, 34000)  # KV buckets 1, 2, 3 x 16384


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    from llm_energy_sim.calibrate.graphbench import environment
    from llm_energy_sim.calibrate.graphcapture import measure_captures
    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.calibrate.rawtable import append_row
    from llm_energy_sim.meter.monitor import EnergyMonitor

    (args.out / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    monitor = EnergyMonitor([0])
    host_csv, cap_csv = args.out / "hostspeed.csv", args.out / "graph_capture.csv"
    for r in range(args.rounds):
        shape = SHAPES[r % len(SHAPES)]
        measure_host_speed(host_csv, monitor, tag=f"round-{r}-before")
        table: pd.DataFrame = measure_captures(shapes=(shape,), prompts=PROMPTS)
        for row in table.to_dict("records"):
            append_row(cap_csv, {**row, "round": r})
        measure_host_speed(host_csv, monitor, tag=f"round-{r}-after")
        print(f"round {r} {shape} done", flush=True)


if __name__ == "__main__":
    main()
