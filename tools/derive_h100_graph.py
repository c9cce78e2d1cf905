"""Give the shipped h100-sxm profile the CUDA-graph regime measured on the H200, transferred to
the H100 by measured physics, until `sim calibrate --stages graph` runs on an H100 (none has
been lent since the graph stage was written).

The H100 SXM and the H200 are the same Hopper die (132 SMs, the same tensor-core rates and
clocks, the same 700 W limit: NVIDIA H100 and H200 datasheets); the H200 differs in its HBM3e.
The two profiles' eager fits, measured by one benchmark on each GPU, agree on it: the GEMM
peaks within 1% (linear bf16 718 / 713 TFLOP/s, fp8 1405 / 1404, attn_prefill 518 / 525),
the per-call floors within 15%. So each `<class>_graph` fit of the H200 is carried over with
its compute rate, floor and base power, its bandwidth times the ratio of streaming bandwidths
measured by the same benchmark on both GPUs (the largest elementwise rows of the two eager
microbench tables: 67M-element adds, 0.4-0.8 GB, far beyond L2), and its power weights times
the H100/H200 ratio of dynamic power (above each GPU's active idle) measured by that
benchmark on the same kernels (power_ratios): on kernels streaming at each GPU's HBM rate the
H100 draws 0.85x the H200's dynamic power (its HBM3 moves 0.70x the bytes a second of the
H200's HBM3e), on compute-bound GEMMs and prefill attention 1.00x (the same die and clocks). The host entries of graph replays (cuda_graph_replay), of transformers CB
with graphs and of the vllm engine are carried over unchanged: they are host-CPU time, and the
two calibration hosts' eager per-layer host costs agree within 6% (hf_eager 0.755 / 0.800 ms).

    python tools/derive_h100_graph.py            # rewrite the shipped h100-sxm profile
    python tools/derive_h100_graph.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llm_energy_sim.calibrate.fit import streaming_bandwidth as fit_streaming_bandwidth  # noqa: E402
from llm_energy_sim.config.paths import PROFILES_DIR  # noqa: E402
from tools.profile_refit import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = {
    "h100": ROOT / "measurements/calibration/h100-v2/microbench.csv",
    "h200": ROOT / "measurements/calibration/h200/microbench.csv",
}
PROFILE = {"h100": "h100-sxm.json", "h200": "h200.json"}
HOST_KEYS = ("cuda_graph_replay", "transformers_cb_graphs", "vllm")


def streaming_bandwidth(table: Path) -> float:
    """The HBM streaming rate of an eager microbench table (calibrate/fit.streaming_bandwidth)."""
    return fit_streaming_bandwidth(pd.read_csv(table))


def bandwidth_ratio() -> float:
    """H100 / H200 streaming bandwidth, measured by one benchmark on each (about 0.70)."""
    return streaming_bandwidth(RAW["h100"]) / streaming_bandwidth(RAW["h200"])


# a paired row counts as streaming where both GPUs move at least this share of their own
# streaming rate, as compute-bound where both reach this share of the best FLOP rate their
# table shows for its kernel class and dtype
STREAMING_SHARE = 0.8
COMPUTE_SHARE = 0.7


def _paired_rows() -> pd.DataFrame:
    """The eager microbench rows measured at the same key on both GPUs, with each GPU's
    achieved bytes/s and FLOP/s, its share of its own streaming rate and of its best FLOP rate
    for the row's class and dtype, and its dynamic power (power above the profile's active
    idle)."""
    sides = []
    for gpu, table in RAW.items():
        raw = pd.read_csv(table)
        raw = raw[(pd.to_numeric(raw["seconds"], errors="coerce") > 0) & raw["power_w"].notna()]
        idle = json.loads((PROFILES_DIR / PROFILE[gpu]).read_text())["idle"]["active_idle_w"]
        side = raw[["key", "kclass", "dtype"]].copy()
        side["bw"] = raw["bytes"] / raw["seconds"]
        side["fl"] = raw["flops"] / raw["seconds"]
        side["bw_share"] = side["bw"] / fit_streaming_bandwidth(raw)
        side["fl_share"] = side["fl"] / side.groupby(["kclass", "dtype"])["fl"].transform("max")
        side["dyn_w"] = raw["power_w"] - idle
        sides.append(side.add_suffix(f"_{gpu}").rename(columns={f"key_{gpu}": "key"}))
    return sides[0].merge(sides[1], on="key")


def power_ratios() -> dict[str, dict[str, float]]:
    """H100 / H200 dynamic power on the same kernels, measured by one benchmark on each GPU:
    the median over the paired rows that stream at both GPUs' HBM rate ('memory') and over
    those compute-bound on both ('compute'), with the count of each."""
    m = _paired_rows()
    ratio = m["dyn_w_h100"] / m["dyn_w_h200"]
    streaming = (m["bw_share_h100"] >= STREAMING_SHARE) & (m["bw_share_h200"] >= STREAMING_SHARE)
    compute = (m["fl_share_h100"] >= COMPUTE_SHARE) & (m["fl_share_h200"] >= COMPUTE_SHARE)
    compute &= ~streaming
    return {
        "memory": {"ratio": float(ratio[streaming].median()), "n": int(streaming.sum())},
        "compute": {"ratio": float(ratio[compute].median()), "n": int(compute.sum())},
    }


def derive() -> dict:
    h200 = json.loads((PROFILES_DIR / "h200.json").read_text())
    data = json.loads((PROFILES_DIR / "h100-sxm.json").read_text())
    ratio = bandwidth_ratio()
    h100_bw = streaming_bandwidth(RAW["h100"])
    power = power_ratios()
    k_mem, k_comp = power["memory"]["ratio"], power["compute"]["ratio"]
    why = (
        f"derived for the H100 from the H200's CUDA-graph fit (tools/derive_h100_graph.py): "
        f"bandwidth x {ratio:.4f}, the H100/H200 streaming bandwidth measured by one benchmark "
        f"on each ({RAW['h100'].parent.name}/ and {RAW['h200'].parent.name}/microbench.csv, "
        f"largest elementwise rows: H100 {h100_bw / 1e12:.2f} TB/s); w_memory x {k_mem:.3f} "
        f"and w_compute x {k_comp:.3f}, the H100/H200 dynamic power measured by that benchmark "
        f"on the same kernels (medians over {power['memory']['n']} rows streaming at both "
        f"GPUs' HBM rate and {power['compute']['n']} compute-bound rows); compute rate, floor "
        "and base power as measured on the H200 (the same Hopper die); H200 fit: "
    )
    for kc, by in h200["kernels"].items():
        if not kc.endswith("_graph"):
            continue
        data["kernels"][kc] = {
            dt: {
                **f,
                "bandwidth": f["bandwidth"] * ratio,
                "w_memory": f["w_memory"] * k_mem,
                "w_compute": f["w_compute"] * k_comp,
                "source": why + f["source"],
            }
            for dt, f in by.items()
        }
    for key in HOST_KEYS:
        data["host"][key] = {
            **h200["host"][key],
            "source": "carried over from the h200 profile (host-CPU time; the calibration "
            "hosts' eager per-layer host costs agree within 6%, tools/derive_h100_graph.py): "
            + h200["host"][key]["source"],
        }
    data["provenance"]["graph_note"] = (
        "kernel classes *_graph and hosts cuda_graph_replay, transformers_cb_graphs and vllm "
        "derived from the h200 "
        "profile's graph regime (tools/derive_h100_graph.py); not measured on an H100"
    )
    return data


def main() -> int:
    return run(derive, __doc__.splitlines()[0], name="h100-sxm")


if __name__ == "__main__":
    sys.exit(main())
