"""The masked SDPA of transformers CB's paged|sdpa runs in rounds of thread blocks (cost/kernels.py
sdpa_waves): checked against the padded-query probe (measurements/calibration/h200-paddedq)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_energy_sim.calibrate.fit import predict_kernel
from llm_energy_sim.calibrate.graphfit import ok_rows
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.kernels import HOPPER_SMS, attn_packed_graph_kernels, sdpa_waves

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "measurements/calibration/h200-paddedq"


def test_rounds_follow_the_kernel_grid_the_profiler_saw():
    """kernels.csv: grid = min(heads x ceil(q / 128), 132) blocks; a round more whenever the
    blocks exceed the SMs."""
    k = pd.read_csv(PROBE / "kernels.csv")
    sdpa = k[k["kernel"].str.contains("sdpa")]
    for r in sdpa.itertuples():
        grid = int(r.grid.strip("[]").split(",")[0])
        assert grid == min(r.heads * -(-r.q // 128), HOPPER_SMS)
    assert sdpa_waves(512, 32) == 1 and sdpa_waves(576, 32) == 2  # 128 and 160 blocks
    assert sdpa_waves(512, 28) == 1 and sdpa_waves(576, 28) == 2  # 112 and 140 blocks
    assert sdpa_waves(2048, 32) == 4 and sdpa_waves(64, 12) == 1


def test_fitted_class_prices_every_probe_row():
    """The shipped h200 fit over the probe's 160 masked-SDPA rows (12-40 heads, 64-2048 queries,
    16k-51k keys): within 8% each, median within 3%; the 512 -> 576 query jump at 32 heads
    (0.43 -> 0.85 ms measured) is a doubling."""
    prof, _ = load_profile("h200")
    fit = prof.kernels["attn_masked_sdpa_graph"]["bfloat16"]
    rows = ok_rows(pd.read_csv(PROBE / "graph.csv.gz"))
    rows = rows[rows["kind"] == "attn_masked_sdpa"]
    assert len(rows) == 160
    t, _ = predict_kernel(
        fit, rows["flops"].to_numpy(), rows["bytes"].to_numpy(), 700.0, rows["active"].to_numpy()
    )
    err = t / rows["seconds"].to_numpy() - 1
    assert np.abs(err).max() < 0.08
    assert np.median(np.abs(err)) < 0.03
    bf16 = dtype_info("bfloat16")
    _, a = attn_packed_graph_kernels(512, 16896, 32, 8, 128, bf16)
    _, b = attn_packed_graph_kernels(576, 16960, 32, 8, 128, bf16)
    ta = predict_kernel(fit, a.flops, a.bytes, 700.0, a.active)[0]
    tb = predict_kernel(fit, b.flops, b.bytes, 700.0, b.active)[0]
    assert tb / ta == pytest.approx(2.0, rel=0.05)


def test_rate_and_power_are_physical():
    """The fitted rate stays under the measured bf16 GEMM peak (graph-stage caps: 788 TFLOP/s)
    and the power of a block round grows with the SMs it holds: a decode-sized call (32 blocks
    of 132) draws less than a full round."""
    prof, _ = load_profile("h200")
    fit = prof.kernels["attn_masked_sdpa_graph"]["bfloat16"]
    assert fit.peak_flops <= 788e12
    bf16 = dtype_info("bfloat16")
    _, small = attn_packed_graph_kernels(64, 16448, 32, 8, 128, bf16)
    _, full = attn_packed_graph_kernels(4096, 20480, 32, 8, 128, bf16)
    assert small.active == pytest.approx(32 / 132) and full.active > 0.95
    ts, es = predict_kernel(fit, small.flops, small.bytes, 700.0, small.active)
    tf, ef = predict_kernel(fit, full.flops, full.bytes, 700.0, full.active)
    assert prof.idle.active_idle_w < es / ts < ef / tf <= 700.0
