"""Attention under a padding mask (HF generate on left-padded static batches): transformers'
SDPA path copies K/V out to every query head (cost/costmodel.kv_read_heads)."""

from __future__ import annotations

import pytest

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.config.servers import server_kind
from llm_energy_sim.cost.costmodel import CostModel, StepWork, kv_read_heads

LLAMA = load_model_card("llama-3.1-8b")  # 32 query heads, 8 KV heads


def test_kv_read_heads_counts_the_repeat_only_for_gqa_in_16_bit_under_a_mask():
    assert kv_read_heads(LLAMA, 1, False, "bfloat16") == 8
    # the copy reads 8 heads and writes 32, the attention reads 32
    assert kv_read_heads(LLAMA, 1, True, "bfloat16") == 2 * 32 + 8
    assert kv_read_heads(LLAMA, 2, True, "float16") == 2 * 16 + 4
    # float32 runs SDPA's efficient/math kernels, which repeat K/V in either case
    assert kv_read_heads(LLAMA, 1, True, "float32") == 8
    mha = LLAMA.model_copy(update={"num_key_value_heads": 32})
    assert kv_read_heads(mha, 1, True, "bfloat16") == 32


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "int8", "int4"])
def test_a_masked_step_moves_more_bytes_and_costs_more(dtype):
    profile, _ = load_profile("h200")
    plain = CostModel(LLAMA, dtype, profile, "hf_eager")
    masked = CostModel(LLAMA, dtype, profile, "hf_eager", masked_attention=True)
    work = StepWork(n_decode=16, decode_ctx_sum=16 * 1000)
    a, b = plain.step_cost(work), masked.step_cost(work)
    assert b.gpu_s > a.gpu_s and b.busy_energy_j > a.busy_energy_j
    assert b.host_s == a.host_s  # the copy is GPU work: host time unchanged
    # a long prefill is compute-bound: the extra bytes hide under its FLOPs (roofline)
    work = StepWork(prefill=((900, 0),) * 8)
    assert masked.step_cost(work).gpu_s >= plain.step_cost(work).gpu_s


def test_float32_masked_steps_move_no_extra_bytes_but_run_the_masked_kernel():
    profile, _ = load_profile("h200")
    work = StepWork(n_decode=16, decode_ctx_sum=16 * 1000)
    plain = CostModel(LLAMA, "float32", profile, "hf_eager")
    masked = CostModel(LLAMA, "float32", profile, "hf_eager", masked_attention=True)
    assert masked.kv_read_heads == plain.kv_read_heads == 8
    assert masked._fit("attn_decode", "float32") is profile.kernel("attn_decode_masked", "float32")
    assert masked.step_cost(work).gpu_s != plain.step_cost(work).gpu_s


@pytest.mark.parametrize(
    ("sets", "masked"),
    [
        ({}, True),  # scenarios/static_b4.yaml: uniform prompt lengths, batches of 4
        ({"server.batch_size": 1}, False),  # a batch of one has no padding
        ({"workload.prompt_tokens": {"kind": "fixed", "value": 300}}, False),  # equal prompts
    ],
)
def test_static_scenarios_are_masked_when_their_batches_pad(sets, masked):
    scen = load_scenario("scenarios/static_b4.yaml", sets)
    assert server_kind(scen.server.kind).masked_attention_of(scen) is masked


def test_no_other_server_kind_masks():
    scen = load_scenario("scenarios/sequential.yaml")
    assert server_kind(scen.server.kind).masked_attention_of(scen) is False
    scen = load_scenario("scenarios/fixed500ms.yaml")
    assert server_kind(scen.server.kind).masked_attention_of(scen) is False
