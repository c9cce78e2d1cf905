"""A machine with a cold CUDA JIT cache (hardware.kernel_cache: cold): HF static batches under a
padding mask compile one masked-attention variant per key-length alignment class and phase,
once per replica (cost/costmodel.compile_key, engine/replica.PlanCache)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run, scenario

from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import align_class

STATIC = {"kind": "static", "batch_size": 8}


def _static(kernel_cache: str, dtype: str = "bfloat16", fast_forward: bool = True, **wl):
    workload = {
        "requests": 16,
        "arrival": {"kind": "burst"},
        "prompt_tokens": {"kind": "uniform", "min": 200, "max": 1000},
        "output_tokens": {"kind": "uniform", "min": 10, "max": 100},
        **wl,
    }
    return scenario(
        server=STATIC,
        workload=workload,
        dtype=dtype,
        hardware={"gpu": "h200", "kernel_cache": kernel_cache},
        fast_forward=fast_forward,
    )


def test_alignment_classes_as_the_probe_compiled_them():
    # longest prompt 881: decode steps 1..16 meet key lengths 882..897; the first of each
    # class compiled at 882, 883, 884, 888, 896 (measurements/calibration/h200-staticprobe)
    classes, firsts = set(), []
    for length in range(882, 898):
        c = align_class(length)
        if c not in classes:
            classes.add(c)
            firsts.append(length)
    assert firsts == [882, 883, 884, 888, 896]


def test_a_cold_machine_pays_each_variant_once_and_warm_pays_none():
    res_cold, _, cold = run(_static("cold"))
    res_warm, _, warm = run(_static("warm"))
    plans = res_cold.replicas[0].plans
    # two batches: every decode class (1, 2, 4, 8, 16+) and the prefill classes of the
    # batches' padded prompts, each at most once
    assert {k for k in plans.compiled if k[0] == "decode"} == {
        ("decode", c) for c in (1, 2, 4, 8, 16)
    }
    assert plans.compiles == len(plans.compiled)
    assert res_warm.replicas[0].plans.compiles == 0
    jit = load_profile("h200")[0].host["hf_eager"]
    n_pre = sum(1 for k in plans.compiled if k[0] == "prefill")
    extra = 5 * jit.jit_masked_decode_s["bfloat16"] + n_pre * jit.jit_masked_prefill_s["bfloat16"]
    factor = res_cold.scenario.hardware.host_time_factor
    assert cold["makespan_s"] - warm["makespan_s"] == pytest.approx(extra * factor, rel=1e-9)
    assert cold["energy"]["total_j"] > warm["energy"]["total_j"]


def test_float32_and_unpadded_batches_compile_nothing():
    res, _, _ = run(_static("cold", dtype="float32"))
    assert res.replicas[0].plans.compiles == 0
    res, _, _ = run(_static("cold", prompt_tokens={"kind": "fixed", "value": 500}))
    assert res.replicas[0].plans.compiles == 0


def test_fast_forward_matches_step_by_step_on_a_cold_machine():
    _, fast, sf = run(_static("cold", fast_forward=True))
    _, step, ss = run(_static("cold", fast_forward=False))
    for col in ("start_s", "first_token_s", "finish_s", "energy_prefill_j", "energy_decode_j"):
        np.testing.assert_allclose(fast[col], step[col], rtol=1e-6, atol=1e-12, err_msg=col)
    assert abs(sf["energy"]["total_j"] / ss["energy"]["total_j"] - 1) <= 1e-6
