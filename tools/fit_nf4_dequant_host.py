"""Fit the host time a bitsandbytes NF4 projection adds in a decode step where it dequantises
its weight instead of running its fused kernel (HostOverhead.nf4_dequant_call_s of the HF
generate NF4 entry, hf_eager:int4; transformers CB's derived entry takes it too), from
measurements/calibration/h200-nf4rows-c (`bash tools/device/probe.sh int8_kernel_probe
--hostspeed --dtypes int4,bfloat16 --rows 1,2,4,6,8,12,16 --shapes ...`).

Per shape, calls back to back whose kernels take under half their wall are host-bound: their
wall is host time. On the shapes that have such calls on both paths (cost/nf4dispatch.py says
which path a call takes; the probe's kernel count agrees), the median host-bound wall of the
dequantising calls minus that of the fused ones, the median over shapes, divided by the host
factor measured in the probe's own process (the mean of its two passes), to put it in
calibration-host time as every host term is. The h100-sxm profile takes the same value (host
CPU work; the calibration hosts' eager per-layer host costs agree within 6%,
tools/derive_h100_graph.py). Every other field is kept.

    python tools/fit_nf4_dequant_host.py            # rewrite the shipped profiles
    python tools/fit_nf4_dequant_host.py --check    # exit 1 if one is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.calibrate.hostspeed import host_time_factor
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.nf4dispatch import nf4_dequantises

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.fit_jit_compiles import MARK as JIT_MARK  # noqa: E402
from tools.profile_refit import run_each  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "measurements/calibration/h200-nf4rows-c"
ENTRY = "hf_eager:int4"
NF4_MARK = "; nf4_dequant_call_s from"
HOST_BOUND = 0.5  # kernels under this share of a call's wall: the call is host-bound


def extra_host_s() -> tuple[float, float, list[str]]:
    """(seconds at host factor 1, the probe's host factor, the shapes used)."""
    calls = pd.read_csv(RAW / "calls.csv.gz")
    calls = calls[calls["dtype"] == "int4"]
    factor = float(
        host_time_factor(pd.read_csv(RAW / "hostspeed.csv.gz"), load_profile("h200")[0])[
            "host_time_factor"
        ].mean()
    )
    bound = calls[calls["kernel_us"] < HOST_BOUND * calls["wall_us"]]
    diffs, used = [], []
    for (k, n), part in bound.groupby(["n_in", "n_out"]):
        deq = part["m"].map(lambda m, k=k, n=n: nf4_dequantises(int(m), int(k), int(n)))
        if deq.any() and (~deq).any():
            diffs.append(part[deq]["wall_us"].median() - part[~deq]["wall_us"].median())
            used.append(f"{k}x{n}")
    return float(np.median(diffs)) * 1e-6 / factor, factor, used


def refit(name: str) -> dict:
    _, path = load_profile(name)
    data = json.loads(Path(path).read_text())
    seconds, factor, used = extra_host_s()
    note = (
        f"{NF4_MARK} {RAW.name} (tools/fit_nf4_dequant_host.py: host-bound "
        f"calls of {', '.join(used)}, dequantising minus fused, probe host factor {factor:.2f})"
    )
    if name != "h200":
        note += " (measured on the H200's host)"
    entry = data["host"][ENTRY]
    entry["nf4_dequant_call_s"] = seconds
    # before tools/fit_jit_compiles.py's note, which that tool rewrites from its marker on
    head, jit, tail = entry["source"].partition(JIT_MARK)
    entry["source"] = head.split(NF4_MARK)[0] + note + jit + tail
    return data


def main() -> int:
    return run_each(refit, __doc__.splitlines()[0], ("h200", "h100-sxm"))


if __name__ == "__main__":
    sys.exit(main())
