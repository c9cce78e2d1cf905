"""The shipped h200 profile's LLM.int8 decode is tools/refit_int8.py's refit of its committed raw
tables: the int8 linear priced from kernel time (within the measured copy bandwidth), host
and kernels in series in decode steps; the H100 profile keeps the overlapped model."""

from __future__ import annotations

import json

import pandas as pd

from llm_energy_sim.calibrate.graphfit import measured_caps, ok_rows
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from tools.refit_int8 import GRAPH, KERNELS, refit


def test_shipped_h200_profile_is_the_refit():
    assert json.loads((PROFILES_DIR / "h200.json").read_text()) == refit()


def test_int8_linear_is_kernel_time_within_physics():
    h200, _ = load_profile("h200")
    fit = h200.kernels["linear"]["int8"]
    assert fit.bandwidth <= measured_caps(ok_rows(pd.read_csv(GRAPH))).bw_cap()
    assert fit.t0_s < 50e-6  # the kernels' floor, not the 175+ us of a call's wall
    calls = pd.read_csv(KERNELS)
    int8 = calls[calls["dtype"] == "int8"]
    assert (int8["kernel_us"] < 0.5 * int8["wall_us"]).all()  # the GPU idles most of a call
    assert h200.host["hf_eager:int8"].decode_sync
    h100, _ = load_profile("h100-sxm")
    assert not h100.host["hf_eager:int8"].decode_sync


def test_a_synced_decode_step_is_host_plus_kernels():
    h200, _ = load_profile("h200")
    m = CostModel(load_model_card("llama-3.1-8b"), "int8", h200, "hf_eager")
    assert m.decode_sync and m.step_pricer is None  # priced by step_cost
    c = m.step_cost(StepWork(n_decode=4, decode_ctx_sum=4 * 600))
    assert c.wall_s == c.gpu_s + m.serial_host_s(4)
    assert c.host_s == m.serial_host_s(4) > 0
    pre = m.step_cost(StepWork(prefill=((512, 0),)))
    assert pre.wall_s >= pre.gpu_s  # prefill keeps its own measured serial fraction


def test_continuous_batching_takes_the_synced_dtype_serial_prefill_not_other_increments():
    # the LLM.int8 modules sync per call in any engine: CB's derived entry takes hf_eager:int8's
    # prefill serial fraction; NF4's (no sync) keeps CB's own
    from llm_energy_sim.cost.costmodel import host_overhead

    h200, _ = load_profile("h200")
    q, cb = h200.host["hf_eager:int8"], h200.host["transformers_cb"]
    int8 = host_overhead(h200, "transformers_cb", "int8")
    assert int8.decode_sync
    assert int8.prefill_serial_fraction == max(
        q.prefill_serial_fraction, cb.prefill_serial_fraction
    )
    assert int8.prefill_serial_fraction > cb.prefill_serial_fraction
    nf4 = host_overhead(h200, "transformers_cb", "int4")
    assert not nf4.decode_sync
    assert nf4.prefill_serial_fraction == cb.prefill_serial_fraction
    # a CB prefill step in LLM.int8 now adds the overlapped part: host and kernels in series
    m = CostModel(load_model_card("qwen2.5-7b"), "int8", h200, "transformers_cb")
    pre = m.step_cost(StepWork(prefill=((400, 0),)))
    assert pre.wall_s > max(pre.gpu_s, pre.host_s) * 1.05
