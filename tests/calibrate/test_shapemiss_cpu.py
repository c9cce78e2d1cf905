"""The shape-miss and cold-start benchmarks run on CPU torch with a tiny model (timing only):
the same code the GPU runs, so CI covers it. On CPU there is no plan cache, so no claim is
made about the size of the miss here, only that the rows are measured and complete."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from llm_energy_sim.calibrate.coldstart import run_coldstart  # noqa: E402
from llm_energy_sim.calibrate.fit import fit_shape_misses  # noqa: E402
from llm_energy_sim.calibrate.shapemiss import FIELDS, run_shapemiss  # noqa: E402
from llm_energy_sim.config.modelcard import load_model_card  # noqa: E402
from llm_energy_sim.meter.monitor import EnergyMonitor  # noqa: E402

CPU = EnergyMonitor.timing_only()  # no NVML here: windows carry time only


@pytest.fixture
def tiny(tiny_models):
    return load_model_card("tiny-llama")


def test_shapemiss_rows_on_cpu(tiny, tmp_path: Path):
    out = tmp_path / "shapemiss.csv"
    n = run_shapemiss(out, CPU, ("float32",), card=tiny, device="cpu", progress=False)
    assert n == 2  # HF generate and transformers CB
    df = pd.read_csv(out)
    assert set(df["engine"]) == {"hf_eager", "transformers_cb"}
    assert df["error"].isna().all()
    assert (df["cached_step_s"] > 0).all() and (df["fresh_step_s"] > 0).all()
    assert list(df.columns) == ["key", *FIELDS]
    # every fresh decode step was timed: 3 requests (x 4 for CB) x 24 steps
    assert sorted(df["fresh_steps"]) == [72, 288]
    assert set(fit_shape_misses(df)) == {"hf_eager", "transformers_cb"}
    # resumable: a rerun measures nothing
    assert run_shapemiss(out, CPU, ("float32",), card=tiny, device="cpu", progress=False) == 0


def test_coldstart_fresh_processes_on_cpu(tiny, tmp_path: Path):
    out = tmp_path / "coldstart.csv"
    n = run_coldstart(out, ("float32",), device="cpu", shapes=(("tiny-llama", 2),))
    assert n == 2
    df = pd.read_csv(out)
    assert set(df["engine"]) == {"hf_eager", "transformers_cb"}
    assert (df["first_s"] > 0).all() and (df["second_s"] > 0).all()
    assert (df["cold_s"] == df["first_s"] - df["second_s"]).all()


def test_cb_miss_at_another_batch_on_cpu(tiny):
    """The batch-size check (tools/device/shapemiss_check.py --cb-batch) times B requests a
    step: every fresh decode step of the B requests is counted."""
    from llm_energy_sim.calibrate.shapemiss import NEW_TOKENS, measure_engine

    row = measure_engine("transformers_cb", tiny, "float32", CPU, device="cpu", cb_batch=2)
    assert row["batch"] == 2 and row["fresh_steps"] == 3 * 2 * NEW_TOKENS
    assert row["cached_step_s"] > 0 and row["fresh_step_s"] > 0
