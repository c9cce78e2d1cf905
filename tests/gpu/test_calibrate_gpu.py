"""On the GPU (pytest -m gpu): the NVML wrapper, the energy monitor and sampler, and the
microbenchmark runner, metered."""

from __future__ import annotations

import time

import pandas as pd
import pytest

pytestmark = pytest.mark.gpu


def test_nvml_wrapper_reads_counters_power_and_state():
    from llm_energy_sim.meter.nvml import Nvml

    nvml = Nvml([0])
    e0 = nvml.energy_j()
    time.sleep(0.5)
    de = float((nvml.energy_j() - e0).sum())
    assert 0.5 * 30 < de < 0.5 * 800  # between a deep idle floor and the power limit
    p = float(nvml.power_w()[0])
    assert 30 < p < 1000
    st = nvml.state()
    assert st["sm_clock_mhz"] > 0 and st["throttle_reasons"].startswith("0x")
    assert "NVIDIA" in nvml.info()["gpu_name"] and "NVIDIA" in nvml.names()[0]
    nvml.close()


def test_monitor_windows_meter_the_gpu():
    """Named windows through NVML: nested windows, per-GPU joules, power between the idle
    floor and the limit; an unknown index is a one-line UserError."""
    from llm_energy_sim.config.errors import UserError
    from llm_energy_sim.meter.monitor import EnergyMonitor

    mon = EnergyMonitor([0])
    mon.begin_window("outer")
    with mon.window("inner") as w:
        time.sleep(1.0)
    outer = mon.end_window("outer")
    inner = w.measurement
    assert inner.energy_j.shape == (1,) and inner.total_j == pytest.approx(inner.energy_j[0])
    assert outer.time_s >= inner.time_s >= 1.0
    assert outer.total_j >= inner.total_j > 0
    assert 30 < inner.mean_power_w < 1000
    assert mon.state()["sm_clock_mhz"] > 0
    with pytest.raises(UserError):
        EnergyMonitor([1000])


def test_sampler_samples_the_counter_over_time():
    from llm_energy_sim.meter.sampler import start_meter

    s = start_meter([0])
    time.sleep(0.5)
    samples = s.stop(float("nan"))
    assert samples.gpu_names[0].startswith("0:") and len(samples.t_s) >= 2
    assert (samples.energy_j[-1] > samples.energy_j[0]).all()


def test_grid_runner_on_gpu_with_energy(tmp_path):
    from llm_energy_sim.calibrate.grid import Point
    from llm_energy_sim.calibrate.runner import run_grid
    from llm_energy_sim.meter.monitor import EnergyMonitor

    pts = [Point("linear", "bfloat16", m=m, n_in=4096, n_out=4096) for m in (1, 1024)]
    pts.append(Point("attn_decode", "bfloat16", batch=8, kv_len=2048))
    out = tmp_path / "microbench.csv"
    assert run_grid(pts, out, EnergyMonitor([0]), window_s=1.0, progress=False) == 3
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
