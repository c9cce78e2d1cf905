"""An engine without its own bitsandbytes host entry gets HF generate's measured bitsandbytes
increments (cost/costmodel.py host_overhead)."""

import pytest

from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import host_overhead


def test_cb_int8_host_adds_hf_generates_int8_increments():
    prof, _ = load_profile("h200")
    base, q, ref = prof.host["transformers_cb"], prof.host["hf_eager:int8"], prof.host["hf_eager"]
    got = host_overhead(prof, "transformers_cb", "int8")
    assert got.per_layer_s == pytest.approx(base.per_layer_s + q.per_layer_s - ref.per_layer_s)
    assert got.per_layer_s > base.per_layer_s  # bitsandbytes int8 adds host work per linear
    assert got.per_step_s >= base.per_step_s and got.per_sequence_s >= base.per_sequence_s
    assert "hf_eager:int8" in got.source
    # 16-bit dtypes and HF generate itself are unchanged
    assert host_overhead(prof, "transformers_cb", "bfloat16") is base
    assert host_overhead(prof, "hf_eager", "int8") is q


def test_a_graph_engine_gets_no_per_layer_increment():
    prof, _ = load_profile("h200")
    base = prof.host["transformers_cb_graphs"]
    got = host_overhead(prof, "transformers_cb_graphs", "int8")
    assert got.per_layer_s == base.per_layer_s
