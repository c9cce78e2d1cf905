"""The graph-capture probe: its fit on a table with a known capture cost, and the probe itself
run through transformers' CB engine on CPU (no CUDA graphs there: the method, not the cost)."""

import pandas as pd
import pytest

from llm_energy_sim.calibrate.graphcapture import COLUMNS, fit_captures, measure_captures


def _table(a: float, b: float) -> pd.DataFrame:
    rows = []
    for layers in (8, 28, 36):
        for prompt in (1000, 17000):
            for pas, excess in ((1, a + b * layers), (2, 0.001)):
                rows.append(
                    dict(model="m", layers=layers, dtype="bfloat16", prompt=prompt, first_s=0.1 + excess,
                         replay_s=0.1, excess_s=excess, decode_steps=24, utc="", **{"pass": pas})
                )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def test_fit_recovers_the_capture_cost_per_step_and_per_layer():
    a, b, rel, control = fit_captures(_table(0.012, 0.0031))
    assert (a, b) == pytest.approx((0.012, 0.0031), rel=1e-9)
    assert rel == pytest.approx(0.0, abs=1e-9)
    assert control == pytest.approx(0.001)


def test_fit_refuses_one_layer_count():
    t = _table(0.01, 0.003)
    with pytest.raises(ValueError, match="two or more layer counts"):
        fit_captures(t[t["layers"] == 8])


def test_probe_runs_on_the_cb_engine_and_times_every_request(tiny_models):
    t = measure_captures(
        shapes=(("tiny-llama", 1),), dtype="float32", device="cpu", prompts=(8, 16), new_tokens=4
    )
    assert list(t["pass"]) == [1, 1, 2, 2] and list(t["prompt"]) == [8, 16, 8, 16]
    assert (t["decode_steps"] >= 3).all()
    assert (t["first_s"] > 0).all() and (t["replay_s"] > 0).all()
    assert (t["excess_s"] == t["first_s"] - t["replay_s"]).all()
