"""On the GPU (pytest -m gpu): the NVML meter and the microbenchmark runner, metered."""

from __future__ import annotations

import time

import pandas as pd
import pytest

pytestmark = pytest.mark.gpu


def test_meter_counts_energy_and_reads_state():
    from llm_energy_sim.meter.nvml import GpuMeter

    m = GpuMeter([0])
    e0 = m.energy_j()
    time.sleep(0.5)
    de = float((m.energy_j() - e0).sum())
    assert 0.5 * 30 < de < 0.5 * 800  # between a deep idle floor and the power limit
    p = float(m.power_w()[0])
    assert 30 < p < 1000
    st = m.state()
    assert st["sm_clock_mhz"] > 0 and st["throttle_reasons"].startswith("0x")
    assert "NVIDIA" in m.info()["gpu_name"]


def test_grid_runner_on_gpu_with_energy(tmp_path):
    from llm_energy_sim.calibrate.grid import Point
    from llm_energy_sim.calibrate.runner import run_grid
    from llm_energy_sim.meter.nvml import GpuMeter

    pts = [Point("linear", "bfloat16", m=m, n_in=4096, n_out=4096) for m in (1, 1024)]
    pts.append(Point("attn_decode", "bfloat16", batch=8, kv_len=2048))
    out = tmp_path / "microbench.csv"
    assert run_grid(pts, out, meter=GpuMeter([0]), window_s=1.0, progress=False) == 3
    df = pd.read_csv(out)
    assert (df.seconds > 0).all() and (df.energy_j > 0).all()
    assert (df.window_s >= 0.9).all()  # the counter updates every ~100 ms: >= 1 s windows
    assert ((df.power_w > 50) & (df.power_w < 800)).all()


def test_sim_calibrate_interconnect_stage_on_a_multi_gpu_node(tmp_path):
    """`sim calibrate --stages interconnect` spawns one NCCL process per GPU itself, meters
    every GPU, and the fit turns the table into profile entries (needs >= 2 GPUs)."""
    import torch
    from click.testing import CliRunner

    from llm_energy_sim.calibrate.interconnect import fit_allreduce
    from llm_energy_sim.cli.main import main

    if torch.cuda.device_count() < 2:
        pytest.skip("needs a node with >= 2 GPUs")
    r = CliRunner().invoke(main, ["calibrate", "--out", str(tmp_path), "--stages", "interconnect"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "allreduce.csv")
    assert (df["backend"] == "nccl").all() and (df["seconds_per_call"] > 0).all()
    assert (pd.to_numeric(df["power_w_per_group_gpu"]) > 50).all()
    fits = fit_allreduce(df)
    assert {f.group for f in fits} >= {2} and all(f.bus_bandwidth > 1e10 for f in fits)


def test_tp_host_bench_under_torchrun(tmp_path):
    """calibrate/tphost.py on the node's GPUs under torchrun (tp_plan='auto'), rank 0 metering."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import torch

    n = torch.cuda.device_count()
    if n < 2:
        pytest.skip("needs a node with >= 2 GPUs")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    r = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            str(n),
            "-m",
            "llm_energy_sim.calibrate.tphost",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(tmp_path / "tphost.csv")
    assert (df["tp"] == n).all() and (df["decode_j_per_token"] > 0).all()
