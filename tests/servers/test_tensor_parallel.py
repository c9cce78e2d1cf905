"""Tensor-parallel cost model: sharding arithmetic, all-reduces, every GPU's power counted."""

from __future__ import annotations

import pytest
from conftest import run, scenario

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import default_profile_name, load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.cost.kernels import EngineShape, layer_linears


@pytest.fixture(scope="module")
def profile():
    return load_profile(default_profile_name("h100-sxm"))[0]


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_linear_flops_and_weight_bytes_shard_evenly(tp):
    card = load_model_card("llama-3.1-70b")
    dt = dtype_info("bfloat16")
    full = layer_linears(card, 256, dt, 1, EngineShape())
    part = layer_linears(card, 256, dt, tp, EngineShape())
    assert sum(g.flops for g in part) * tp == pytest.approx(sum(g.flops for g in full), rel=1e-12)
    # with no tokens, a linear moves only its weights: each GPU holds exactly 1/tp of them
    w_full = sum(g.bytes for g in layer_linears(card, 0, dt, 1, EngineShape()))
    w_part = sum(g.bytes for g in layer_linears(card, 0, dt, tp, EngineShape()))
    assert w_part * tp == pytest.approx(w_full, rel=1e-12)


def test_two_allreduces_per_layer_of_hidden_activations(profile):
    card = load_model_card("llama-3.1-70b")
    cm = CostModel(card, "bfloat16", profile, engine="tgi", tp=4)
    ic = profile.allreduce(4)
    tokens = 512
    one = cm._allreduce_cost(tokens)
    nbytes = tokens * card.hidden_size * 2
    assert one.time_s == pytest.approx(ic.alpha_s + 2 * 3 / 4 * nbytes / ic.bus_bandwidth)
    # the step includes 2 per layer: removing them changes GPU time by exactly that much
    with_ar = cm._layer_const(tokens, 1)[0]
    cm1 = CostModel(
        card,
        "bfloat16",
        profile.model_copy(
            update={
                "interconnect": {"4": ic.model_copy(update={"alpha_s": 0.0, "bus_bandwidth": 1e30})}
            }
        ),
        engine="tgi",
        tp=4,
    )
    without = cm1._layer_const(tokens, 1)[0]
    assert with_ar - without == pytest.approx(2 * card.num_hidden_layers * one.time_s, rel=1e-9)


def test_every_gpu_of_the_replica_draws_power():
    wl = {
        "requests": 10,
        "arrival": {"kind": "fixed", "interval_ms": 3000},
        "prompt_tokens": {"kind": "fixed", "value": 500},
        "output_tokens": {"kind": "fixed", "value": 20},
    }
    r1, _, s1 = run(
        scenario(
            model="llama-3.1-70b",
            server={"kind": "sequential"},
            hardware={"gpus_per_replica": 4},
            workload=wl,
        )
    )
    assert s1["gpus"] == 4
    # the idle energy is that of 4 GPUs, never less than 4 x deep idle x makespan
    assert s1["energy"]["idle_j"] > 0
    assert s1["energy"]["total_j"] >= 4 * r1.profile.idle.deep_idle_w * r1.t_end
    ledger = r1.replicas[0].ledger
    assert ledger.n_gpus == 4


def test_more_gpus_shorten_a_70b_step(profile):
    card = load_model_card("llama-3.1-70b")
    w = StepWork(prefill=((2048, 0),))
    t = [
        CostModel(card, "bfloat16", profile, engine="tgi", tp=tp).step_cost(w).gpu_s
        for tp in (1, 2, 4, 8)
    ]
    assert t[0] > t[1] > t[2] > t[3]


@pytest.mark.parametrize(
    "model,tp,bad",
    [
        ("llama-3.1-8b", 3, "num_attention_heads (32) and num_key_value_heads (8)"),
        ("llama-3.1-8b", 16, "num_key_value_heads (8)"),
        ("qwen2.5-0.5b", 4, "num_attention_heads (14) and num_key_value_heads (2)"),
        ("qwen2.5-7b", 8, "num_attention_heads (28) and num_key_value_heads (4)"),
    ],
)
def test_tp_must_divide_the_heads(model, tp, bad):
    from llm_energy_sim.config.errors import UserError

    with pytest.raises(UserError) as e:
        scenario(model=model, hardware={"gpus_per_replica": tp})
    assert str(e.value) == (
        f"<test>: field 'hardware.gpus_per_replica': tensor parallel over {tp} GPUs needs the "
        f"heads divisible by {tp}, but {model} has {bad}"
    )


@pytest.mark.parametrize("model,tp", [("llama-3.1-8b", 8), ("llama-3.1-70b", 8), ("qwen2.5-7b", 4)])
def test_tp_dividing_the_heads_loads(model, tp):
    assert scenario(model=model, hardware={"gpus_per_replica": tp}).hardware.gpus_per_replica == tp
