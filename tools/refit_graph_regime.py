"""Refit the shipped h200 profile's CUDA-graph regime from its raw tables, with the cost model
as it now prices transformers CB's graph steps (padded static shapes, the measured paged|sdpa
attention): the `<class>_graph` kernel classes and the cuda_graph_replay host entry
(measurements/calibration/h200-graphs/graph.csv), the transformers_cb_graphs host entry
(cbhost_graphs.csv) and its graph-capture cost, charged as the engine's shape miss
(capture/graph_capture.csv, calibrate/graphcapture.py); the sampler class sampler_graph
(measurements/calibration/h200-sampler/graph.csv); the K/V copies' head-shape fits also from
the overlap probe's graph rows (h200-overlap/graph-extra.csv.gz); the masked SDPA also from
the padded-query probe's (h200-paddedq/graph.csv.gz); the K/V copies' and masked SDPA's
zero_share from the trash-row padding probe (h200-trashpad/pad.csv.gz); the transformers CB
entries' per-KV-token serial host work from the KV host probe (h200-kvhost, calibrate/kvhost.py;
the eager entry transformers_cb takes its own slope there, 0 where the data shows none). The capture is host work: it is
divided by the host factor measured on that lease nearest the probe (CAPTURE_HOST_FACTOR) to
put it in the calibration host's time, as every host term is. The vllm host entry is the
transformers_cb_graphs one without its captures (see vllm_host). Every other field is kept.

    python tools/refit_graph_regime.py            # rewrite the shipped profile
    python tools/refit_graph_regime.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.fit import fit_cb_host
from llm_energy_sim.calibrate.graphcapture import fit_captures_split
from llm_energy_sim.calibrate.graphfit import with_graph_fits
from llm_energy_sim.calibrate.hostspeed import host_time_factor
from llm_energy_sim.calibrate.kvhost import fit_kv_host, serial_points
from llm_energy_sim.calibrate.trashpad import PART_CLASS, fit_zero_share
from llm_energy_sim.config.profile import HostOverhead, load_profile

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.profile_refit import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "measurements/calibration/h200-graphs"
# vLLM's sampler chain timed in graph replays (tools/device/sampler_bench.py, 2026-12-03 05:58 UTC):
# the sampler_graph class, bounded by the copy bandwidth measured in the same call
SAMPLER_RAW = ROOT / "measurements/calibration/h200-sampler"
# more attn_kv_copy points at the Qwen2.5 head shapes (12/2, 28/4) and Llama's, at 64-256
# queries (tools/device/overlap_probe.py, 2026-12-02 23:54-23:59 UTC): the head-shape fits
HEAD_TABLES = (ROOT / "measurements/calibration/h200-overlap/graph-extra.csv.gz",)
# the masked SDPA at q = 64..2048 over 16k-51k keys for four head layouts, in graph replays
# (tools/device/padded_q_probe.py, 2026-12-03 14:05 UTC): its rounds of thread blocks
PADDED_Q = ROOT / "measurements/calibration/h200-paddedq/graph.csv.gz"
PADDED_Q_CLASSES = ("attn_masked_sdpa_graph",)
# one layer's K/V copies and masked SDPA with the engine's zeroed trash-row padding at real-row
# shares 1 to 1/16 (tools/device/trash_pad_probe.py, 2026-12-03 14:28 UTC): their zero_share
TRASH_PAD = ROOT / "measurements/calibration/h200-trashpad/pad.csv.gz"
ENGINE = "transformers_cb_graphs"
# transformers CB decode steps at batch 64-256 over 21k-88k KV tokens, eager and with graphs, the
# engine's phases timed, each point between two host-speed passes (tools/device/kv_host_probe.py,
# 2026-12-03 17:14-17:20 UTC): the per-KV-token serial host work
KV_HOST = ROOT / "measurements/calibration/h200-kvhost"
# sim replay --hostspeed's first pass of the same device call, 2026-12-02T12:36:09Z, 32 s after
# the probe's last row (measurements/live/h200-graphs-b/graphs-qwen2.5-7b/val-burst-warm
# summary.json host_speed.passes.before)
CAPTURE_HOST_FACTOR = 1.1035329537931369
# the same captures in six rounds of one process, each between two host-speed passes, on a host
# whose factor moved between 1.23 and 2.06 (tools/device/capture_host_probe.py, 2026-12-03
# 15:12-15:15 UTC): with the first table, the capture's part that follows the host and its part
# that does not
CAPTURE_HOST = ROOT / "measurements/calibration/h200-capturehost"


def vllm_host(cb_graphs: HostOverhead) -> HostOverhead:
    """The vllm engine's host entry, a measured stand-in: vLLM cannot run on the lent GPU (its
    torch is not the image's), so its per-step host work (scheduler, input preparation, one
    graph replay) is priced as transformers CB's with CUDA graphs, the measured engine of the
    same kind (a Python continuous-batching scheduler replaying one graph per step). Without
    the captures: vLLM captures every size of cudagraph_capture_sizes at start-up
    (v1/worker/gpu_model_runner.py capture_model, called in the engine's initialisation, before
    it serves), so serving never meets a new shape."""
    return cb_graphs.model_copy(
        update={
            "attn_shape_miss_s": {},
            "attn_shape_miss_per_layer_s": {},
            "attn_shape_miss_fixed_s": {},
            # vLLM keeps its block tables in a persistent batch updated per block
            # (v1/worker/gpu_input_batch.py, block_table.py), not a per-token read index
            "per_kv_token_s": 0.0,
            "source": "stand-in, not vLLM measured: transformers_cb_graphs' per-step and "
            "per-sequence host time (vLLM cannot be installed on the lent GPU), without its "
            "per-KV-token read-index work and graph captures (vLLM captures every size at start-up); "
            f"that entry: {cb_graphs.source}",
        }
    )


KV_MARK = "; serial host work per KV token read"


def kv_note(fit) -> str:
    """The source text of a per-KV-token fit (calibrate/kvhost.py)."""
    slope = (
        f"{fit.per_kv_token_s * 1e9:.1f} ns a token"
        if fit.per_kv_token_s
        else f"none (slope {fit.raw_slope_s * 1e9:+.1f} ns a token, floored at 0)"
    )
    return (
        f"{KV_MARK}: {slope} of calibration-host time, over {fit.points} points at "
        f"{fit.kv_range[0]}-{fit.kv_range[1]} KV tokens, host factors "
        f"{fit.factor_range[0]:.2f}-{fit.factor_range[1]:.2f}, median |serial time error| "
        f"{fit.median_error * 100:.0f}%; raw: {KV_HOST.name}/ (tools/device/kv_host_probe.py, "
        "2026-12-03T17:14Z)"
    )


def with_zero_shares(prof):
    """The K/V copies' and masked SDPA's fits with the share of their dynamic power their data
    carries (calibrate/trashpad.py), each from its pooled bfloat16 fit's base power."""
    table = pd.read_csv(TRASH_PAD)
    kernels = dict(prof.kernels)
    for part, kc in PART_CLASS.items():
        by = dict(kernels[kc])
        z = fit_zero_share(table, part, by["bfloat16"].p_base_w)
        note = (
            f"; data-carried share of the dynamic power {z.share:.3f} ({z.points} points at "
            f"1/16-1/2 real rows, median power error {z.median_error * 100:.1f}%; raw: "
            f"{TRASH_PAD.parent.name}/{TRASH_PAD.name})"
        )
        for key, kf in by.items():
            by[key] = kf.model_copy(update={"zero_share": z.share, "source": kf.source + note})
        kernels[kc] = by
    return prof.model_copy(update={"kernels": kernels})


def refit(name: str = "h200") -> dict:
    prof, path = load_profile(name)
    padded = pd.read_csv(PADDED_Q)
    padded = padded[padded["kclass"].isin(PADDED_Q_CLASSES)]
    prof = with_graph_fits(
        prof, RAW, HEAD_TABLES, padded, f"{PADDED_Q.parent.name}/{PADDED_Q.name} (masked SDPA)"
    )
    prof = with_graph_fits(prof, SAMPLER_RAW)
    prof = with_zero_shares(prof)
    ho = fit_cb_host(RAW, prof, prof.gpu.name, table="cbhost_graphs.csv")
    first = pd.read_csv(RAW / "capture/graph_capture.csv").assign(f=CAPTURE_HOST_FACTOR)
    rounds = pd.read_csv(CAPTURE_HOST / "graph_capture.csv")
    factors = host_time_factor(pd.read_csv(CAPTURE_HOST / "hostspeed.csv.gz"), prof)
    factors["round"] = factors["tag"].str.extract(r"round-(\d+)", expand=False).astype(int)
    rounds["f"] = rounds["round"].map(factors.groupby("round")["host_time_factor"].mean())
    table = pd.concat([first, rounds], ignore_index=True)
    fixed, a, b, rel = fit_captures_split(table)
    control = float(table.loc[table["pass"] == 2, "excess_s"].median())
    dts = sorted(set(table["dtype"]))
    note = (
        f"; graph capture (a new padded shape, charged as its shape miss): {fixed * 1e3:.1f} ms"
        f" that the host speed does not move + ({a * 1e3:.1f} ms + {b * 1e3:.2f} ms/layer) of"
        f" calibration-host time, median |residual| {rel * 100:.0f}%, already-captured control"
        f" {control * 1e3:+.2f} ms; raw: {RAW.name}/capture/graph_capture.csv (calibrate/"
        f"graphcapture.py, 2026-12-02T12:34Z, host factor {CAPTURE_HOST_FACTOR:.2f}) and "
        f"{CAPTURE_HOST.name}/ (six rounds between host-speed passes, factors "
        f"{rounds['f'].min():.2f}-{rounds['f'].max():.2f}, 2026-12-03T15:12Z)"
    )
    points = serial_points(KV_HOST, prof)
    kv = fit_kv_host(points, ENGINE, ho)
    ho = ho.model_copy(
        update={
            "per_kv_token_s": kv.per_kv_token_s,
            "attn_shape_miss_s": {d: a for d in dts},
            "attn_shape_miss_per_layer_s": {d: b for d in dts},
            "attn_shape_miss_fixed_s": {d: fixed for d in dts},
            "source": ho.source + note + kv_note(kv),
        }
    )
    eager = prof.host["transformers_cb"]
    eager_kv = fit_kv_host(points, "transformers_cb", eager)
    eager = eager.model_copy(
        update={
            "per_kv_token_s": eager_kv.per_kv_token_s,
            "source": eager.source.split(KV_MARK)[0] + kv_note(eager_kv),
        }
    )
    data = json.loads(Path(path).read_text())
    fitted = json.loads(
        prof.model_copy(update={"host": {**prof.host, ENGINE: ho}}).model_dump_json()
    )
    for kc, by in fitted["kernels"].items():
        if kc.endswith("_graph"):
            data["kernels"][kc] = by
    data["host"]["cuda_graph_replay"] = fitted["host"]["cuda_graph_replay"]
    data["host"][ENGINE] = fitted["host"][ENGINE]
    data["host"]["transformers_cb"] = json.loads(eager.model_dump_json())
    data["host"]["vllm"] = json.loads(vllm_host(ho).model_dump_json())
    data["provenance"]["graph_note"] = (
        f"kernel classes *_graph and host cuda_graph_replay from {RAW.relative_to(ROOT)}/graph.csv"
        " (sim calibrate --stages graph, 2026-12-02 08:10 UTC); host transformers_cb_graphs from"
        " cbhost_graphs.csv in the same folder (tools/refit_graph_regime.py)"
    )
    return data


def main() -> int:
    return run(refit, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
