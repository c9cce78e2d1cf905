"""On the GPU (pytest -m gpu): a few points of the CUDA-graph stage, timed and metered."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.gpu


def test_graph_points_time_below_eager_and_meter_a_window(tmp_path):
    from llm_energy_sim.calibrate.graphbench import COLUMNS, GPoint, run_plan
    from llm_energy_sim.meter.monitor import EnergyMonitor

    pts = [
        GPoint("copy", "copy", "bfloat16", elems=1 << 27),
        GPoint("linear", "mm", "bfloat16", m=1, n_in=4096, n_out=4096),
        GPoint("linear", "quant+mm", "fp8", m=16, n_in=4096, n_out=4096),
        GPoint(
            "attn_decode",
            "flash_varlen",
            "bfloat16",
            batch=8,
            q_len=1,
            kv_len=1024,
            heads=32,
            kv_heads=8,
            head_dim=128,
        ),  # fmt: skip
        GPoint("host_replay", "add_", "bfloat16", nodes=100, gpu_state="idle"),
        GPoint("elementwise", "add", "bfloat16", m=16384, elems=16384 * 4096, metered=True),
    ]
    out = tmp_path / "graph.csv"
    c = run_plan(pts, out, EnergyMonitor([0]))
    d = pd.read_csv(out)
    assert tuple(d.columns) == COLUMNS and c["measured"] == len(pts), d["error"].tolist()
    t = d.set_index("kind")["seconds"]
    assert 1e-6 < t["linear"] < 1e-4  # a 32 MB GEMV: ~7 us, no launch overhead
    bw = float(d.loc[d.kind == "copy", "bytes"].iloc[0] / t["copy"])
    assert 1e12 < bw < 6e12
    host = d[d.kind == "host_replay"].iloc[0]
    assert 0 < host["host_s"] < 1e-3
    win = d[d.metered == 1].iloc[0]
    assert 50 < win["power_w"] < 1000 and win["window_s"] >= 1.0
