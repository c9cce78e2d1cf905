"""The data-carried share of the K/V copies' and masked SDPA's dynamic power (calibrate/trashpad.py)
against the trash-row padding probe (measurements/calibration/h200-trashpad)."""

from pathlib import Path

import pandas as pd
import pytest

from llm_energy_sim.calibrate.trashpad import PART_CLASS, fit_zero_share
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.cost.kernels import attn_packed_graph_kernels

ROOT = Path(__file__).resolve().parents[2]
PAD = ROOT / "measurements/calibration/h200-trashpad/pad.csv.gz"


def test_times_do_not_depend_on_the_zeros_and_power_falls_with_them():
    """The probe itself: per (part, layout, queries) the time moves under 6% from all-real to
    1/16 real rows, the power falls monotonically."""
    t = pd.read_csv(PAD)
    for _, g in t[t["part"] != "layer"].groupby(["part", "heads", "q"]):
        g = g.sort_values("real")
        assert g["seconds"].max() / g["seconds"].min() < 1.06
        assert g["power_w"].is_monotonic_increasing


@pytest.mark.parametrize("part", sorted(PART_CLASS))
def test_fitted_share_reproduces_the_probe_power(part):
    """One share per class reproduces every partly-zero row's power within 5% (median 2%),
    and the shipped profile carries that share."""
    prof, _ = load_profile("h200")
    fit = prof.kernels[PART_CLASS[part]]["bfloat16"]
    z = fit_zero_share(pd.read_csv(PAD), part, fit.p_base_w)
    assert 0.05 < z.share < 0.9
    assert z.median_error < 0.02 and z.points == 18
    assert fit.zero_share == pytest.approx(z.share)


def test_padded_light_load_step_draws_less_than_an_all_real_one():
    """A light-load decode step (8 sequences over 4800 real KV rows padded to 16448) prices its
    attention's dynamic power by the real share; the time is unchanged and the energy stays
    above the idle floor."""
    prof, _ = load_profile("h200")
    card = load_model_card("llama-3.1-8b")
    cm = CostModel(card, "bfloat16", prof, "transformers_cb_graphs")
    work = StepWork(n_decode=8, decode_ctx_sum=8 * 600, decode_ctx_max=700)
    bf16 = dtype_info("bfloat16")
    q, kv = cm._packed_shape(work)
    real = 8 * 600  # every sequence's past and the step's 8 tokens
    padded = [cm.group_cost(g) for g in attn_packed_graph_kernels(q, kv, 32, 8, 128, bf16, real)]
    full = [cm.group_cost(g) for g in attn_packed_graph_kernels(q, kv, 32, 8, 128, bf16)]
    for a, b in zip(padded, full, strict=True):
        assert a.time_s == b.time_s
    e_pad, e_full = sum(p.energy_j for p in padded), sum(p.energy_j for p in full)
    assert e_pad < 0.95 * e_full
    t = sum(p.time_s for p in padded)
    assert e_pad / t > prof.idle.active_idle_w
    # and the step's attention is priced with the padded groups
    t_step, e_step = cm._attention(work)
    mask = t_step - card.num_hidden_layers * t
    assert 0 <= mask < 1e-3
