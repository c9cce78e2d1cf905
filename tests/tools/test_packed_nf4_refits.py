"""The shipped profiles' per-layout packed attention and NF4 dequantising host time are what
their tools fit from the committed raw tables (tools/refit_packed_heads.py,
tools/fit_nf4_dequant_host.py), and the fits keep to the measured physics."""

from __future__ import annotations

import json

import pytest

from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.profile import load_profile
from tools.fit_nf4_dequant_host import extra_host_s
from tools.fit_nf4_dequant_host import refit as refit_nf4
from tools.refit_packed_heads import refit as refit_packed


@pytest.mark.parametrize("name", ["h200", "h100-sxm"])
def test_shipped_profiles_are_the_refits(name):
    shipped = json.loads((PROFILES_DIR / f"{name}.json").read_text())
    assert refit_packed(name)["kernels"]["attn_packed"] == shipped["kernels"]["attn_packed"]
    assert refit_nf4(name)["host"]["hf_eager:int4"] == shipped["host"]["hf_eager:int4"]


def test_packed_layouts_measured_on_the_h200_and_slower_per_byte_with_fewer_heads():
    prof, _ = load_profile("h200")
    fits = prof.kernels["attn_packed"]
    for dt in ("bfloat16", "float16", "float32"):
        bw = [fits[f"{dt}@{h}/{kvh}"].bandwidth for h, kvh in ((12, 2), (28, 4), (32, 8), (40, 8))]
        assert bw == sorted(bw)  # the walk over the keys: fewer heads, less work per key
        for key in (k for k in fits if k.startswith(dt)):
            assert fits[key].p_base_w == fits[dt].p_base_w  # never below the pooled base


def test_nf4_dequantising_call_costs_tens_of_microseconds_at_host_factor_one():
    seconds, factor, shapes = extra_host_s()
    assert len(shapes) >= 2 and 0.8 < factor < 1.5
    assert 30e-6 < seconds < 90e-6
