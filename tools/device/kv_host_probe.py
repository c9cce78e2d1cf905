"""Probe (issue 16): the serial host work of a transformers CB step by batch and KV tokens, with
the host speed measured around each point. measurements/calibration/h200-cbprofile showed the
step's tensors built on the host with the GPU drained (EngineShape.host_serial) growing with the
KV tokens read (the read index covers every cached token of every request), about 0.07 us a
token within one lease, but no host-speed pass ran, so no per-token term could be fitted in
calibration-host time. Not part of `sim`.

Per grid point (batch, prompt tokens): a host-speed pass (calibrate/hostspeed.py, as `sim replay
--hostspeed` takes it), then tools/device/cb_profile.py's case for Llama-3.1-8B bf16 with CUDA
graphs and eager (the manager of scenarios/validation/burst_large.yaml; a plain window of 12
decode-only steps at full batch with the engine's phases timed, then 12 profiled), then another
pass.

    python tools/device/kv_host_probe.py --out DIR

Writes DIR/phases.csv, steps.csv, kernels.csv (cb_profile's, with batch and prompt),
DIR/hostspeed.csv (passes tagged `point-<i>-before/after`) and DIR/environment.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# (batch, prompt): KV read at full decode about batch x (prompt + 25): 21k to 84k tokens, at
# batch 64 to 256
GRID = ((256, 320), (64, 1300), (128, 320), (256, 80), (128, 650), (256, 160))
MODEL = "llama-3.1-8b"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from llm_energy_sim.calibrate.graphbench import environment
    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.meter.monitor import EnergyMonitor
    from tools.device.cb_profile import profile_case
    from tools.device.step_probe import instrument

    instrument()
    (args.out / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    monitor = EnergyMonitor([0])
    host_csv = args.out / "hostspeed.csv"
    for i, (batch, prompt) in enumerate(GRID):
        measure_host_speed(host_csv, monitor, tag=f"point-{i}-before")
        for graphs in (True, False):
            try:
                profile_case(MODEL, graphs, args.out, batch, prompt)
            except Exception as e:  # keep the other points
                print(i, batch, prompt, graphs, "failed:", repr(e), flush=True)
        measure_host_speed(host_csv, monitor, tag=f"point-{i}-after")
        print(f"point {i} ({batch}, {prompt}) done", flush=True)


if __name__ == "__main__":
    main()
