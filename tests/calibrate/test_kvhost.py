"""calibrate/kvhost.py: transformers CB's serial host work per KV token, fitted on the recorded
probe (measurements/calibration/h200-kvhost) and on a table built with a known slope."""

from pathlib import Path

import pandas as pd
import pytest

from llm_energy_sim.calibrate.kvhost import fit_kv_host, serial_points
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.cost.costmodel import StepWork
from llm_energy_sim.simulation import profile_for, scenario_cost_model

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "measurements/calibration/h200-kvhost"


def test_recorded_probe_gives_the_shipped_slope():
    prof, _ = load_profile("h200")
    points = serial_points(RAW, prof)
    assert len(points) == 12 and set(points["mode"]) == {"graphs", "eager"}
    assert points["factor"].between(1.0, 2.5).all()
    graphs = fit_kv_host(points, "transformers_cb_graphs", prof.host["transformers_cb_graphs"])
    assert graphs.per_kv_token_s > 0 and graphs.median_error < 0.15
    # the shipped profiles carry this fit (tools/refit_graph_regime.py), the H100's a copy
    assert prof.host["transformers_cb_graphs"].per_kv_token_s == graphs.per_kv_token_s
    h100, _ = load_profile("h100-sxm")
    assert h100.host["transformers_cb_graphs"].per_kv_token_s == graphs.per_kv_token_s
    eager = fit_kv_host(points, "transformers_cb", prof.host["transformers_cb"])
    assert eager.raw_slope_s <= 0 and eager.per_kv_token_s == 0.0  # no growth: floored
    assert prof.host["vllm"].per_kv_token_s == 0.0  # vLLM's block tables are per block


def test_known_slope_is_recovered():
    prof, _ = load_profile("h200")
    host = prof.host["transformers_cb_graphs"]
    c = 5e-8
    rows = []
    for batch, kv, f in ((64, 80000, 1.2), (128, 40000, 1.7), (256, 20000, 1.4)):
        serial = f * (host.per_step_s + host.per_sequence_s * batch + c * kv)
        rows.append(dict(batch=batch, prompt=0, mode="graphs", serial_s=serial, kv=kv, factor=f))
    fit = fit_kv_host(pd.DataFrame(rows), "transformers_cb_graphs", host)
    assert fit.per_kv_token_s == pytest.approx(c, rel=1e-9)
    assert fit.median_error == pytest.approx(0.0, abs=1e-9)


def _model(graphs: bool):
    s = load_scenario(ROOT / "scenarios/validation/burst_large.yaml")
    hw = s.hardware.model_copy(update={"gpu": "h200", "host_time_factor": 1.5})
    server = s.server.model_copy(update={"cuda_graphs": graphs})
    s = s.model_copy(update={"hardware": hw, "server": server})
    profile, _ = profile_for(s, None)
    return scenario_cost_model(s, profile)


def test_graph_steps_wait_for_the_kv_read_index():
    m = _model(True)
    c = m.host.per_kv_token_s
    assert c == pytest.approx(1.5 * load_profile("h200")[0].host[m.engine].per_kv_token_s)
    small = m.step_cost(StepWork(n_decode=256, decode_ctx_sum=256 * 100))
    large = m.step_cost(StepWork(n_decode=256, decode_ctx_sum=256 * 400))
    assert large.host_s - small.host_s == pytest.approx(c * 256 * 300)
    # the serial host of a decode run grows by c x n a step, as step_cost prices each step
    # (within one KV padding bucket of 16384 tokens, where the GPU time is affine)
    seg = m.decode_segment(256, 256 * 70)
    assert seg.is_affine_over(50)
    steps = [m.step_cost(StepWork(n_decode=256, decode_ctx_sum=256 * (70 + j))) for j in range(50)]
    assert seg.time(50) == pytest.approx(sum(c.wall_s for c in steps), rel=1e-12)
    assert seg.energy(50) == pytest.approx(sum(c.energy_j for c in steps), rel=1e-12)
    # and the run ends where step_cost's steps add up to
    elapsed = sum(c.wall_s for c in steps[:31]) - 1e-6
    assert seg.steps_to_reach(elapsed, 50) == 31
