"""The shipped h200 profile's masked-attention compile costs are the fit of the committed
JIT-cache probe (tools/fit_jit_compiles.py), and the validation matrix predicts on a cold
cache exactly the cases that ran first on the machine in their dtype."""

from __future__ import annotations

import math
from pathlib import Path

from llm_energy_sim.analysis.matrix import cold_cache_cases, find_cases
from llm_energy_sim.config.profile import load_profile
from tools.fit_jit_compiles import ENTRIES, refit

MATRIX = Path(__file__).resolve().parents[2] / "measurements/live/h200-matrix"


def test_shipped_compile_costs_are_the_refit_of_the_probe():
    shipped, _ = load_profile("h200")
    fitted = refit()["host"]
    for key in ENTRIES:
        for field in ("jit_masked_decode_s", "jit_masked_prefill_s"):
            got = getattr(shipped.host[key], field)
            assert set(got) == {"bfloat16", "float16"}
            for dt, v in got.items():
                assert math.isclose(v, fitted[key][field][dt], rel_tol=1e-9)
                assert 0.1 < v < 2.0  # seconds: a kernel compile, not a plan lookup
        assert "h200-jitprobe/steps.csv.gz" in shipped.host[key].source


def test_the_matrix_cold_cases_are_the_first_padded_batch_per_dtype():
    cold = cold_cache_cases(find_cases(MATRIX), MATRIX)
    assert set(cold) == {"llama-3.1-8b-bfloat16-static_b8", "qwen2.5-7b-int8-static_b4"}


def test_a_matrix_without_a_machine_file_is_warm(tmp_path):
    assert cold_cache_cases([], tmp_path) == {}
