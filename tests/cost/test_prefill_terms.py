"""The generate() prefill terms of the cost model and their fit, on CPU and recorded data:
per-call set-up (HostOverhead.setup_s), bitsandbytes prefill serialisation
(HostOverhead.prefill_serial_fraction) and the in-step standby wait power
(IdlePower.step_standby_fraction)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from llm_energy_sim.calibrate.fit import fit_prefill, host_runs
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork, _sum_ratio

RAW = Path(__file__).resolve().parents[2] / "measurements" / "calibration" / "h100-v2"


def _model(setup=0.0, serial=0.0, k=0.0, dtype="bfloat16", tp=1):
    prof, _ = load_profile("h100-sxm")
    host = prof.host["hf_eager"].model_copy(
        update={"setup_s": setup, "prefill_serial_fraction": serial}
    )
    idle = prof.idle.model_copy(update={"step_standby_fraction": k})
    hosts = {**prof.host, "hf_eager": host, "hf_eager:int8": host, "hf_eager:int4": host}
    prof = prof.model_copy(update={"host": hosts, "idle": idle})
    return CostModel(load_model_card("llama-3.1-8b"), dtype, prof, tp=tp)


def test_old_profiles_load_with_the_old_behaviour():
    prof, _ = load_profile("h100-sxm-bootstrap")  # written before these fields existed
    assert prof.idle.step_standby_fraction == 0.0
    assert all(h.setup_s == 0.0 and h.prefill_serial_fraction == 0.0 for h in prof.host.values())


def test_setup_is_charged_once_per_step_that_starts_sequences():
    base, cm = _model(), _model(setup=5e-3)
    for work in (
        StepWork(n_decode=4, decode_ctx_sum=4000),  # decode: no set-up
        StepWork(prefill=((256, 512),)),  # a continuing chunk: no set-up
    ):
        assert cm.step_cost(work).wall_s == base.step_cost(work).wall_s
    one, four = StepWork(prefill=((512, 0),)), StepWork(prefill=((512, 0),) * 4)
    assert cm.step_cost(one).wall_s == pytest.approx(base.step_cost(one).wall_s + 5e-3)
    # a static batch is one generate() call: one set-up, not four
    assert cm.step_cost(four).wall_s == pytest.approx(base.step_cost(four).wall_s + 5e-3)
    c = cm.step_cost(one)
    # the set-up is a wait: its energy at the in-step wait power, busy energy unchanged
    assert c.busy_energy_j == base.step_cost(one).busy_energy_j
    assert c.energy_j - c.busy_energy_j == pytest.approx(cm.wait_w * (c.wall_s - c.gpu_s))


def test_prefill_serial_fraction_only_in_prefill_steps():
    base, cm = _model(dtype="int8"), _model(dtype="int8", serial=0.5)
    dec = StepWork(n_decode=1, decode_ctx_sum=600)
    assert cm.step_cost(dec).wall_s == base.step_cost(dec).wall_s
    pre = cm.step_cost(StepWork(prefill=((512, 0),)))
    assert pre.wall_s == pytest.approx(
        max(pre.gpu_s, pre.host_s) + 0.5 * min(pre.gpu_s, pre.host_s)
    )


def test_in_step_waits_follow_the_step_kernels_power():
    k = 0.25
    cm = _model(k=k, setup=4e-3)
    for work in (StepWork(prefill=((512, 0),)), StepWork(n_decode=8, decode_ctx_sum=8 * 700)):
        c = cm.step_cost(work)
        p_busy = c.busy_energy_j / c.gpu_s
        p_wait = cm.wait_w + k * (p_busy - cm.wait_w)
        assert c.wall_s > c.gpu_s
        assert c.energy_j == pytest.approx(c.busy_energy_j + p_wait * (c.wall_s - c.gpu_s))
    # a heavier step keeps the GPU nearer its busy power in the waits
    light = cm.step_cost(StepWork(n_decode=1, decode_ctx_sum=600))
    heavy = cm.step_cost(StepWork(prefill=((512, 0),)))
    w_light = (light.energy_j - light.busy_energy_j) / (light.wall_s - light.gpu_s)
    w_heavy = (heavy.energy_j - heavy.busy_energy_j) / (heavy.wall_s - heavy.gpu_s)
    assert cm.wait_w < w_light < w_heavy < heavy.busy_energy_j / heavy.gpu_s


@pytest.mark.parametrize("tp", [1, 2])
def test_decode_segment_closed_form_with_standby(tp):
    cm = _model(k=0.3, tp=tp)
    n, ctx0, k = 16, 16 * 900, 400
    seg = cm.decode_segment(n, ctx0)
    steps = [cm.step_cost(StepWork(n_decode=n, decode_ctx_sum=ctx0 + n * j)) for j in range(k)]
    assert seg.is_affine_over(k)
    assert seg.time(k) == pytest.approx(sum(s.wall_s for s in steps), rel=1e-12)
    assert seg.energy(k) == pytest.approx(sum(s.energy_j for s in steps), rel=1e-10)
    assert seg.last_step_power_per_gpu(k) == pytest.approx(steps[-1].power_per_gpu_w, rel=1e-10)


@pytest.mark.parametrize(
    "b0,db,g0,dg,n",
    [(3.0, 1e-6, 5e-3, 1e-12, 300), (3.0, 0.01, 5e-3, 1e-4, 300), (2.0, 0.5, 1e-3, 1e-3, 50)],
)
def test_sum_ratio(b0, db, g0, dg, n):
    exact = math.fsum((b0 + db * j) / (g0 + dg * j) for j in range(n))
    assert _sum_ratio(b0, db, g0, dg, n) == pytest.approx(exact, rel=1e-12)


def test_prefill_fit_on_the_recorded_runs():
    """On the H100 host runs (fit data): a set-up of a few ms, LLM.int8 prefill partly serial,
    and the in-step wait power between the deep-idle floor and the 137-164 W the decode runs'
    waits measured (docs/calibration.md), not above the step's kernels."""
    prof, _ = load_profile("h100-sxm")
    base, _ = load_profile("h100-sxm-bootstrap")
    base = base.model_copy(update={"kernels": prof.kernels})
    runs = host_runs(pd.read_csv(RAW / "host.csv"))
    pre = fit_prefill(runs, base, prof.host)
    assert 1e-3 < pre.setup_s < 10e-3
    assert 0.2 < pre.serial["hf_eager:int8"] < 0.8
    assert 0.0 <= pre.step_standby_fraction < prof.idle.standby_fraction
    assert prof.idle.deep_idle_w <= pre.host_wait_w <= 165.0
    assert pre.errors["hf_eager"].time_median_ape < 15
    assert pre.setup_s == pytest.approx(prof.host["hf_eager"].setup_s, rel=1e-6)


def test_sequential_server_pays_the_setup_per_request():
    """sequential: each request is one generate() call, so its prefill carries the set-up."""
    from conftest import run, scenario

    wl = {
        "requests": 5,
        "arrival": {"kind": "fixed", "interval_ms": 1000},
        "prompt_tokens": {"kind": "fixed", "value": 512},
        "output_tokens": {"kind": "fixed", "value": 4},
    }
    _, req, _ = run(scenario(server={"kind": "sequential"}, workload=wl))
    prof, _ = load_profile("h100-sxm")
    factor = prof.default_host_time_factor()  # the scenario sets none: the profile's default
    cm = CostModel(load_model_card("llama-3.1-8b"), "bfloat16", prof, host_time_factor=factor)
    pre = cm.step_cost(StepWork(prefill=((512, 0),)))
    first = cm.step_cost(StepWork(prefill=((512, 0),)), shape_miss=True)  # a new shape once
    ttft = (req.first_token_s - req.start_s).to_numpy()
    assert ttft == pytest.approx([first.wall_s] + [pre.wall_s] * 4, rel=1e-9)


def test_eager_small_ops_bytes_follow_the_hf_layer():
    """The HF eager layer's unfused small ops (float32 RMSNorm with its casts, rotate_half
    rotary, SiLU * up, residuals, cache writes): bf16 moves 36 bytes a hidden element per norm;
    float32 has no casts; the count is linear in tokens; a TGI-style fused layer keeps the
    generic (smaller) elementwise estimate."""
    from llm_energy_sim.cost.kernels import eager_elementwise_bytes

    h, q, kv, i = 4096, 4096, 1024, 14336
    bf16 = eager_elementwise_bytes(1, h, q, kv, i, 2)
    norms_only = eager_elementwise_bytes(1, h, 0, 0, 0, 2) - 6 * 2 * h
    assert norms_only == 2 * 36 * h
    assert eager_elementwise_bytes(8, h, q, kv, i, 2) == 8 * bf16
    fp32 = eager_elementwise_bytes(1, h, q, kv, i, 4)
    assert fp32 < 2 * bf16  # no upcast / downcast kernels in float32


def test_an_8192_token_cb_prefill_step_costs_its_measured_small_ops():
    """The H200 profile prices the unfused small ops from the measured chain: an 8192-token
    transformers CB prefill step of Qwen2.5-7B (16 layers) comes to within 5% of the 179 ms
    measured on an H200 (measurements/live/stepprobe/prefill-profile-h200/), where the generic
    elementwise estimate gave 151 ms."""
    import json
    from pathlib import Path

    from llm_energy_sim.calibrate.fit import _card
    from llm_energy_sim.config.profile import load_profile
    from llm_energy_sim.cost.costmodel import CostModel, StepWork

    live = Path(__file__).resolve().parents[2] / "measurements/live"
    root = live / "stepprobe/prefill-profile-h200"
    measured = json.loads((root / "32x256/summary.json").read_text())["wall_s_median"]
    cm = CostModel(_card("qwen2.5-7b", 16), "bfloat16", load_profile("h200")[0], "transformers_cb")
    step = cm.step_cost(StepWork(prefill=tuple((256, 0) for _ in range(32))))
    assert step.wall_s == pytest.approx(measured, rel=0.05)
