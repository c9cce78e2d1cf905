"""The transformers-CB step benchmark runs on CPU torch (timing only) on a tiny model."""

import pytest

from llm_energy_sim.calibrate.cbbench import CB_FIT_PLAN, CB_GRAPHS_PLAN, measure_cb_model
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.meter.monitor import EnergyMonitor


def test_cb_fit_shapes_are_not_validation_or_check_models():
    from llm_energy_sim.calibrate.hostbench import CHECK_MODELS

    names = {m for m, *_ in CB_FIT_PLAN + CB_GRAPHS_PLAN}
    assert not names & (set(CHECK_MODELS) | {"llama-3.1-8b"})
    assert {b for *_, batches, _ in CB_FIT_PLAN for b in batches} >= {1, 8, 32}


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cb_bench_on_cpu_tiny_model(cuda_graphs):
    """cuda_graphs=True runs the same path (transformers turns graphs off without CUDA)."""
    pytest.importorskip("transformers")
    card = load_model_card("qwen2.5-0.5b").model_copy(
        update={
            "num_hidden_layers": 2,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 2048,
        }
    )
    cpu = EnergyMonitor.timing_only()
    rows = measure_cb_model(
        card, "float32", (1, 4), 16, 4, cpu, "cpu", min_s=(0.05, 0.1), cuda_graphs=cuda_graphs
    )
    assert [r["batch"] for r in rows] == [1, 4]
    for r in rows:
        assert r["prefill_s"] > 0 and r["step_median_s"] > 0
        assert r["step_p10_s"] <= r["step_median_s"] <= r["step_p90_s"]
        assert r["prefill_j"] == "" and r["decode_j_per_token"] == ""  # no meter on CPU
        assert r["repeats_generate"] >= 2
