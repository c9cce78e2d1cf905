"""Refit the shipped h200 profile's LLM.int8 decode from kernel time: the int8 `linear` fit on
the kernels' own time per call (measurements/calibration/h200-int8kernels: 20-70 us of
kernels in 175-425 us of wall, the rest host work and the outlier flag's round trip), then
the 'hf_eager:int8' host entry with host and kernels in series in decode steps
(HostOverhead.decode_sync; calibrate/fit.fit_host on the int8 runs of h200/host.csv), and its
prefill serial fraction on top (calibrate/fit.fit_prefill). The int8 linear's power
coefficients are kept (the probe metered none); every other field is kept. The H100 profile
has no kernel-time rows and keeps its overlapped int8 model.

    python tools/refit_int8.py            # rewrite the shipped h200 profile
    python tools/refit_int8.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llm_energy_sim.calibrate.fit import (  # noqa: E402
    HOST_GROUPS,
    fit_host,
    fit_prefill,
    host_runs,
)
from llm_energy_sim.calibrate.graphfit import fit_roofline, measured_caps, ok_rows  # noqa: E402
from llm_energy_sim.calibrate.rawread import read_raw  # noqa: E402
from llm_energy_sim.config.dtypes import dtype_info  # noqa: E402
from llm_energy_sim.config.profile import FitError, load_profile  # noqa: E402
from llm_energy_sim.cost.kernels import linear_kernel  # noqa: E402
from tools.profile_refit import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "measurements/calibration/h200-int8kernels/calls.csv.gz"
HOST = ROOT / "measurements/calibration/h200/host.csv"
GRAPH = ROOT / "measurements/calibration/h200-graphs/graph.csv"
KEY = "hf_eager:int8"
EARLIER = "compute roof and power coefficients from the earlier fit: "


def kernel_fit(current: dict) -> dict:
    """The int8 linear fit (JSON) on the kernels' time per call: bandwidth and per-call floor
    fitted (capped by the H200's measured copy bandwidth), the compute roof and the power
    coefficients as in `current` (the earlier fit, whose rows reach large row counts)."""
    d = pd.read_csv(KERNELS)
    d = d[d["dtype"] == "int8"]
    dt = dtype_info("int8")
    groups = [linear_kernel(int(r.m), int(r.n_in), int(r.n_out), dt) for r in d.itertuples()]
    F = np.array([g.flops for g in groups])
    B = np.array([g.bytes for g in groups])
    t = d["kernel_us"].to_numpy(float) * 1e-6
    caps = measured_caps(ok_rows(pd.read_csv(GRAPH)))
    # 1-64 rows leave the compute roof unidentified: the earlier fit's (its rows reach 2048)
    C = current["peak_flops"]
    _, M, t0 = fit_roofline(
        np.zeros(len(t)), B, np.ones(len(t)), np.maximum(t - F / C, 1e-9), C, caps.bw_cap()
    )
    err = np.abs((np.maximum(F / C, B / M) + t0) / t - 1) * 100
    return {
        **current,
        "peak_flops": C,
        "bandwidth": M,
        "t0_s": t0,
        "fit_error": json.loads(
            FitError(
                n_points=len(t),
                time_median_ape=float(np.median(err)),
                time_p90_ape=float(np.percentile(err, 90)),
            ).model_dump_json()
        ),
        "source": "kernel time per call of LLM.int8 linears (self CUDA time under "
        "torch.profiler, 1-64 rows, 5 shapes) on NVIDIA H200, measured 2026-12-02T23:09Z; "
        "raw: h200-int8kernels/calls.csv.gz (tools/refit_int8.py; errors on the fit points: "
        "no point held out); compute roof and power coefficients from the earlier fit: "
        + current["source"].split(EARLIER, 1)[-1],
    }


def refit() -> dict:
    prof, path = load_profile("h200")
    data = json.loads(Path(path).read_text())
    data["kernels"]["linear"]["int8"] = kernel_fit(data["kernels"]["linear"]["int8"])
    prof = type(prof).model_validate(data)
    runs = host_runs(read_raw(HOST))
    rows = runs[runs["dtype"].isin(HOST_GROUPS["int8"])]
    ho, _ = fit_host(
        rows, prof, "int8", prior=("hf_eager", prof.host["hf_eager"]), decode_sync=True
    )
    hosts = {**prof.host, KEY: ho}
    pre = fit_prefill(runs, prof, hosts)
    entry = data["host"][KEY]
    entry.update(
        {
            "decode_sync": True,
            "per_step_s": ho.per_step_s,
            "per_layer_s": ho.per_layer_s,
            "per_sequence_s": ho.per_sequence_s,
            "prefill_serial_fraction": pre.serial[KEY],
            "fit_error": json.loads(ho.fit_error.model_dump_json()),
        }
    )
    data["provenance"]["int8_note"] = (
        f"host {KEY}: decode terms refit with host and kernels in series (decode_sync: "
        "LLM.int8 reads its outlier flag back per linear) on the kernel-time int8 linear fit "
        "(kernels.linear.int8, raw h200-int8kernels/calls.csv.gz), prefill serial fraction "
        "refit on top; its source names the host runs (tools/refit_int8.py)"
    )
    return data


def main() -> int:
    return run(refit, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
