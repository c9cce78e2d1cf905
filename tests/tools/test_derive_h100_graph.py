"""The shipped h100-sxm profile's CUDA-graph regime is tools/derive_h100_graph.py's transfer of
the H200's measured one (bandwidth scaled by the measured streaming ratio, power weights by the
measured H100/H200 dynamic-power ratios, nothing else), stays
under the H100's measured streaming bandwidth, and lets the vllm engine price steps."""

from __future__ import annotations

import json
import math

import pytest

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from tools.derive_h100_graph import RAW, bandwidth_ratio, derive, power_ratios, streaming_bandwidth
from tools.refit_graph_regime import refit as refit_h200


def test_shipped_h100_profile_is_the_derivation():
    assert json.loads((PROFILES_DIR / "h100-sxm.json").read_text()) == derive()


def test_shipped_h200_vllm_entry_is_the_refit():
    shipped = json.loads((PROFILES_DIR / "h200.json").read_text())
    assert shipped["host"]["vllm"] == refit_h200()["host"]["vllm"]


def test_streaming_ratio_is_the_two_gpus_measured_hbm_ratio():
    # H100 SXM HBM3 3.35 TB/s against H200 HBM3e 4.8 TB/s rated (datasheets): 0.70; measured
    # 3.0 and 4.27 TB/s streaming
    assert bandwidth_ratio() == pytest.approx(3.35 / 4.8, rel=0.02)
    assert 2.8e12 < streaming_bandwidth(RAW["h100"]) < 3.35e12


def test_power_ratios_are_the_same_die_with_a_slower_hbm():
    # compute-bound kernels: the same die and clocks draw the same dynamic power (within 3%);
    # streaming at the HBM rate the H100 draws less, but more per byte than the H200 (its
    # ratio lies between the bandwidth ratio and 1)
    r = power_ratios()
    assert r["memory"]["n"] >= 20 and r["compute"]["n"] >= 20
    assert r["compute"]["ratio"] == pytest.approx(1.0, abs=0.03)
    assert bandwidth_ratio() < r["memory"]["ratio"] < 0.95


def test_graph_classes_carry_compute_floor_and_base_power_and_scale_bandwidth_and_power():
    h100, _ = load_profile("h100-sxm")
    h200, _ = load_profile("h200")
    ratio = bandwidth_ratio()
    power = power_ratios()
    cap = streaming_bandwidth(RAW["h100"])
    graph = [kc for kc in h200.kernels if kc.endswith("_graph")]
    assert "linear_graph" in graph and "attn_decode_graph" in graph
    for kc in graph:
        for dt, f200 in h200.kernels[kc].items():
            f100 = h100.kernels[kc][dt]
            assert math.isclose(f100.bandwidth, f200.bandwidth * ratio, rel_tol=1e-12)
            assert f100.bandwidth <= cap * 1.01  # no faster than the H100 streamed
            for field in ("peak_flops", "t0_s", "p_base_w"):
                assert getattr(f100, field) == getattr(f200, field), (kc, dt, field)
            for field, part in (("w_memory", "memory"), ("w_compute", "compute")):
                want = getattr(f200, field) * power[part]["ratio"]
                assert math.isclose(getattr(f100, field), want, rel_tol=1e-12), (kc, dt, field)
            assert f100.source.startswith("derived for the H100")


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_vllm_engine_prices_with_graph_fits_and_no_serving_captures(gpu):
    prof, _ = load_profile(gpu)
    host = prof.host_overhead("vllm")
    assert host.per_step_s > 0 and not host.attn_shape_miss_s
    cm = CostModel(load_model_card("llama-3.1-8b"), "bfloat16", prof, "vllm")
    small = cm.step_cost(StepWork(n_decode=8, decode_ctx_sum=8 * 900, graph_tokens=8))
    large = cm.step_cost(StepWork(n_decode=256, decode_ctx_sum=256 * 900, graph_tokens=256))
    mixed = cm.step_cost(StepWork(prefill=((2048, 0),), n_decode=64, decode_ctx_sum=64 * 900))
    assert not cm.eager_fallbacks  # every class the engine runs has a graph-regime fit
    # the 16 GB of bf16 weights bound a small decode step from below at the measured bandwidth
    weights = load_model_card("llama-3.1-8b").num_params() * 2
    assert small.gpu_s > weights / prof.kernels["linear_graph"]["bfloat16"].bandwidth
    assert small.wall_s < large.wall_s < mixed.wall_s
