"""bitsandbytes NF4 projections that dequantise their weight (cost/nf4dispatch.py) and the
host time the cost model adds for them in decode steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork, host_overhead
from llm_energy_sim.cost.nf4dispatch import dequantising_per_layer, nf4_dequantises

CAL = Path(__file__).resolve().parents[2] / "measurements/calibration"
PROBES = ("h200-nf4rows", "h200-nf4rows-b", "h200-nf4rows-c")


@pytest.mark.parametrize("probe", PROBES)
def test_rule_matches_the_kernels_each_probed_call_ran(probe):
    # a dequantising call launches five kernels (dequantise absmax, add offset, dequantise
    # weight, GEMM, split-K reduce), a fused call one
    calls = pd.read_csv(CAL / probe / "calls.csv.gz")
    calls = calls[calls.dtype == "int4"]
    assert len(calls) >= 20
    for r in calls.itertuples():
        assert nf4_dequantises(int(r.m), int(r.n_in), int(r.n_out)) == (r.kernels_per_call > 1), r


def test_few_rows_never_dequantise_and_many_always_do():
    for k, n in ((4096, 4096), (4096, 14336), (14336, 4096), (3584, 512)):
        assert not any(nf4_dequantises(m, k, n) for m in range(1, 5))
        assert nf4_dequantises(1024, k, n)


def test_per_layer_counts_of_the_matrix_models():
    card = load_model_card("llama-3.1-8b")  # q/k/v/o/down dequantise from 8 rows, gate/up at 33+
    assert [dequantising_per_layer(card, m) for m in (1, 4, 6, 8, 32, 33)] == [0, 0, 1, 5, 5, 7]


def test_decode_steps_pay_the_dequantising_calls_host_time():
    prof, _ = load_profile("h200")
    card = load_model_card("mistral-7b")
    extra = prof.host["hf_eager:int4"].nf4_dequant_call_s
    assert 20e-6 < extra < 100e-6  # tens of microseconds a call (h200-nf4rows-c)
    for engine in ("hf_eager", "transformers_cb"):
        assert host_overhead(prof, engine, "int4").nf4_dequant_call_s == extra
        cm = CostModel(card, "int4", prof, engine)
        plain = CostModel(card, "bfloat16", prof, engine)
        for n in (4, 8):
            w = StepWork(n_decode=n, decode_ctx_sum=n * 600)
            added = sum(cm.host_split(n)) - sum(cm.host_split(1))
            added -= sum(plain.host_split(n)) - sum(plain.host_split(1))
            want = dequantising_per_layer(card, n) * card.num_hidden_layers * extra
            assert added == pytest.approx(want, abs=1e-12)
            assert cm.step_cost(w).host_s == pytest.approx(sum(cm.host_split(n)))
    # a CUDA-graph replay repeats no per-layer host work
    assert host_overhead(prof, "transformers_cb_graphs", "int4").nf4_dequant_call_s == 0.0
    # prefills: the 16+-row int4 fit, timed back to back, already holds it
    cm = CostModel(card, "int4", prof, "hf_eager")
    prefill = sum(cm.host_split(8, decode_only=False)) - sum(cm.host_split(1, decode_only=False))
    assert prefill == pytest.approx(7 * cm.host.per_sequence_s)
