"""Attention shape misses: fit on the recorded H100 table, and the simulator's accounting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run, scenario

from llm_energy_sim.calibrate.fit import MISS_MIN_S, fit_shape_misses
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork

RAW = (
    Path(__file__).resolve().parents[2]
    / "measurements"
    / "calibration"
    / "h100-v2"
    / "shapemiss.csv"
)


def test_fit_reproduces_the_shipped_profile():
    """The committed table refits to the committed H100 profile's miss terms."""
    fits = fit_shape_misses(pd.read_csv(RAW))
    prof, _ = load_profile("h100-sxm")
    for engine in ("hf_eager", "transformers_cb"):
        per_dtype, per_layer, power = fits[engine]
        assert prof.host[engine].attn_shape_miss_s == pytest.approx(per_dtype)
        assert prof.host[engine].attn_shape_miss_per_layer_s == pytest.approx(per_layer)
        assert prof.host[engine].attn_shape_miss_w == pytest.approx(power)
        # bf16/fp16 attention runs on cuDNN (a plan per shape); float32 does not
        miss_8b = {d: per_dtype[d] + 32 * per_layer[d] for d in per_dtype}
        assert miss_8b["bfloat16"] > 0.02 and miss_8b["float16"] > 0.02
        assert miss_8b["float32"] == 0.0
        # the GPU waits during the build: between deep idle and a busy step's power
        assert prof.idle.deep_idle_w < power < 300


def test_noise_below_threshold_is_no_miss():
    raw = pd.DataFrame(
        {
            "engine": ["hf_eager"] * 2,
            "layers": [8, 8],
            "dtype": ["float32", "bfloat16"],
            "miss_s": [MISS_MIN_S / 2, 0.04],
            "cached_step_s": [0.01, 0.01],
            "fresh_step_s": [0.01 + MISS_MIN_S / 2, 0.05],
            "cached_power_w": [200.0, 150.0],
            "fresh_power_w": [200.0, 132.0],
            "error": [None, None],
        }
    )
    per_dtype, per_layer, power = fit_shape_misses(raw)["hf_eager"]
    assert per_dtype == {"float32": 0.0, "bfloat16": 0.04}
    assert per_layer == {"float32": 0.0, "bfloat16": 0.0}
    # (132*0.05 - 150*0.01) / 0.04 from the bf16 row only
    assert power == pytest.approx((132 * 0.05 - 150 * 0.01) / 0.04)


def test_attention_shape_keys():
    prof, _ = load_profile("h100-sxm")
    card = load_model_card("llama-3.1-8b")
    cb = CostModel(card, "bfloat16", prof, engine="transformers_cb")
    hf = CostModel(card, "bfloat16", prof, engine="hf_eager")
    w = StepWork(prefill=((300, 0),), n_decode=3, decode_ctx_sum=900)
    assert cb.attn_shape(w) == (303, 1200)  # one packed call: all tokens x all KV read
    assert hf.attn_shape(StepWork(prefill=((300, 0),) * 2)) == (2, 300, 300)
    assert hf.attn_shape(StepWork(n_decode=2, decode_ctx_sum=1000)) == (2, 1, 500)
    assert cb.decode_shapes(3, 900, 3) == [(3, 900), (3, 903), (3, 906)]
    assert hf.decode_shapes(1, 500, 2) == [(1, 1, 500), (1, 1, 501)]


def test_a_miss_adds_its_time_and_energy():
    prof, _ = load_profile("h100-sxm")
    cm = CostModel(load_model_card("llama-3.1-8b"), "bfloat16", prof, engine="transformers_cb")
    w = StepWork(n_decode=4, decode_ctx_sum=2000)
    hit, miss = cm.step_cost(w), cm.step_cost(w, shape_miss=True)
    assert miss.wall_s - hit.wall_s == pytest.approx(cm.miss_s)
    assert miss.energy_j - hit.energy_j == pytest.approx(cm.miss_w * cm.miss_s)
    assert miss.busy_energy_j == hit.busy_energy_j


def _two_identical(fast: bool, dtype: str = "bfloat16"):
    """Two identical requests far apart, served one at a time: the second meets only
    attention shapes the first already ran."""
    wl = {
        "requests": 2,
        "arrival": {"kind": "fixed", "interval_ms": 60000},
        "prompt_tokens": {"kind": "fixed", "value": 400},
        "output_tokens": {"kind": "fixed", "value": 50},
    }
    return run(scenario(server={"kind": "sequential"}, workload=wl, dtype=dtype, fast_forward=fast))


@pytest.mark.parametrize("fast", [True, False], ids=["fast-forward", "step-by-step"])
def test_second_identical_request_pays_no_misses(fast):
    res, df, _ = _two_identical(fast)
    cm = res.replicas[0].cost
    e2e = (df["finish_s"] - df["start_s"]).to_numpy()
    # the prefill and the 49 decode steps of the first request were all new shapes
    assert e2e[0] - e2e[1] == pytest.approx(50 * cm.miss_s, rel=1e-9)
    assert res.replicas[0].shape_misses == 50


def _assert_fast_equals_step(run_with):
    """run_with(fast_forward) -> (res, requests, summary): the closed-form path reproduces
    the step-by-step one, request by request and in total energy."""
    _, fast, sf = run_with(True)
    _, step, ss = run_with(False)
    for col in ("finish_s", "energy_j"):
        np.testing.assert_allclose(fast[col], step[col], rtol=1e-9)
    assert sf["energy"]["total_j"] == pytest.approx(ss["energy"]["total_j"], rel=1e-9)


def test_fast_path_equals_step_path_with_misses():
    _assert_fast_equals_step(_two_identical)


def test_float32_has_no_misses():
    res, df, _ = _two_identical(True, dtype="float32")
    e2e = (df["finish_s"] - df["start_s"]).to_numpy()
    assert res.replicas[0].cost.miss_s == 0.0
    assert e2e[0] == pytest.approx(e2e[1], rel=1e-9)


def test_miss_grows_with_layers_where_measured_so():
    """Three layer counts: a least-squares line; the Llama-3.1-8B rows (held out) are
    predicted within 25%."""
    fits = fit_shape_misses(pd.read_csv(RAW))
    check = pd.read_csv(RAW.with_name("shapemiss-check-llama8b.csv"))
    for _, row in check.iterrows():
        per_step, per_layer, _ = fits[row["engine"]]
        pred = per_step[row["dtype"]] + row["layers"] * per_layer[row["dtype"]]
        assert pred == pytest.approx(row["miss_s"], rel=0.25), row["engine"]


def test_cold_start_fit_and_first_step():
    """The committed cold-start table refits to the profile; a replica of a fresh engine
    process pays it once, on its first step; a warmed-up one (the default) never."""
    from llm_energy_sim.calibrate.fit import with_cold_start

    prof, _ = load_profile("h100-sxm")
    raw = pd.read_csv(RAW.with_name("coldstart.csv"))
    hosts = with_cold_start(prof.host, raw, "test")
    for engine in ("hf_eager", "transformers_cb", "hf_eager_tp"):
        assert hosts[engine].cold_start_s == pytest.approx(prof.host[engine].cold_start_s)
        assert 0.3 < prof.host[engine].cold_start_s < 5  # seconds, as measured
    assert prof.host["tgi"].cold_start_s == 0.0  # TGI warms up before it serves
    wl = {
        "requests": 3,
        "arrival": {"kind": "fixed", "interval_ms": 5000},
        "prompt_tokens": {"kind": "fixed", "value": 300},
        "output_tokens": {"kind": "fixed", "value": 5},
    }
    cold = run(scenario(server={"kind": "sequential", "cold_start": True}, workload=wl))
    warm = run(scenario(server={"kind": "sequential"}, workload=wl))
    ttft_cold = cold[1]["ttft_s"].to_numpy()
    ttft_warm = warm[1]["ttft_s"].to_numpy()
    cm = cold[0].replicas[0].cost
    assert ttft_cold[0] - ttft_warm[0] == pytest.approx(cm.cold_s, rel=1e-9)
    np.testing.assert_allclose(ttft_cold[1:], ttft_warm[1:], rtol=1e-12)
    # energy: the set-up is charged to the first request's prefill at the measured waiting
    # power (the run's total grows less: the warm run idles through that time instead)
    de = cold[1]["energy_prefill_j"].iloc[0] - warm[1]["energy_prefill_j"].iloc[0]
    assert de == pytest.approx(cm.miss_w * cm.cold_s, rel=1e-9)


def _graph_burst(fast: bool, requests: int = 12, prompt: int = 300):
    wl = {
        "requests": requests,
        "arrival": {"kind": "burst"},
        "prompt_tokens": {"kind": "fixed", "value": prompt},
        "output_tokens": {"kind": "fixed", "value": 40},
    }
    srv = {"kind": "transformers-cb", "cuda_graphs": True, "block_size": 256}
    scen = scenario(server=srv, workload=wl, fast_forward=fast)
    scen = scen.model_copy(update={"hardware": scen.hardware.model_copy(update={"gpu": "h200"})})
    return run(scen)


@pytest.mark.parametrize("fast", [True, False])
def test_cuda_graph_capture_is_paid_once_per_padded_shape(fast):
    """transformers CB with CUDA graphs pads a step to (queries to 64, KV read to 16384): the
    burst's 12 decodes over < 16384 tokens of KV all run at one shape, captured once (the
    prefill step's shape is a second), however many decode steps there are."""
    res, df, _ = _graph_burst(fast)
    rep = res.replicas[0]
    assert rep.cost.shape.cuda_graphs and rep.cost.miss_s > 0
    # (queries, keys, the longest sequence's keys padded to a power of two, at least 1024)
    assert rep.plans.seen == {(3648, 3648 + 16384, 1024), (64, 64 + 16384, 1024)}
    assert rep.shape_misses == 2


@pytest.mark.parametrize("fast", [True, False])
def test_cuda_graph_recaptured_when_longest_sequence_crosses_a_power_of_two(fast):
    """The engine's graph key also holds the longest sequence's key length padded to a power
    of two (transformers 5.17 input_outputs.py _get_graph_key): two 1000-token prompts
    decoding 40 tokens cross 1024 keys at their 24th token, a new graph at the same padded
    (queries, KV read), captured once, and charged once more."""
    res, df, _ = _graph_burst(fast, requests=2, prompt=1000)
    rep = res.replicas[0]
    assert rep.plans.seen == {
        (2048, 2048 + 16384, 1024),
        (64, 64 + 16384, 1024),
        (64, 64 + 16384, 2048),
    }
    assert rep.shape_misses == 3
    # the recapture at the same tensor shapes costs the capture without a new cuDNN plan: the
    # calibrated capture less the eager engine's measured plan miss
    cm = rep.cost
    eager = CostModel(cm.card, cm.dtype, cm.profile, "transformers_cb", host_time_factor=1.0)
    plan = eager.miss_s * cm.host_time_factor
    assert 0 < cm.recapture_s < cm.miss_s
    assert cm.recapture_s == pytest.approx(cm.miss_s - plan, rel=1e-9)
    assert cm.shape_miss_s((64, 64 + 16384, 2048), True) == cm.recapture_s
    assert cm.shape_miss_s((64, 64 + 16384, 2048), False) == cm.miss_s


def test_graph_fast_path_equals_step_path():
    _assert_fast_equals_step(_graph_burst)


def test_bitsandbytes_pays_its_activation_dtypes_miss():
    """LLM.int8 attention runs in fp16 and NF4's in bf16 (config/dtypes.py act_dtype): their
    plan misses are those dtypes' entries. The bench rows of int8/int4 (measured after fp16/bf16
    at the same prompt lengths, plans cached) are not fitted as theirs."""
    prof, _ = load_profile("h200")
    card = load_model_card("qwen2.5-7b")
    for dtype, act in (("int8", "float16"), ("int4", "bfloat16")):
        bnb = CostModel(card, dtype, prof)
        plain = CostModel(card, act, prof)
        assert bnb.miss_s == pytest.approx(plain.miss_s) and bnb.miss_s > 0.02
    fits = fit_shape_misses(pd.read_csv(RAW))
    for engine, (per_dtype, per_layer, _) in fits.items():
        assert not {"int8", "int4"} & set(per_dtype), engine
        assert not {"int8", "int4"} & set(per_layer), engine
