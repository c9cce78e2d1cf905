"""The graph-capture probe: its fit on a table with a known capture cost, and the probe itself
run through transformers' CB engine on CPU (no CUDA graphs there: the method, not the cost)."""

import pandas as pd
import pytest

from llm_energy_sim.calibrate.graphcapture import (
    COLUMNS,
    fit_captures,
    fit_captures_split,
    measure_captures,
)


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


def test_split_fit_recovers_the_fixed_and_host_following_parts():
    """excess = fixed + (host + per_layer x layers) x f over rows at two host factors; a
    process's first capture above 1 s (its one-time set-up) is left out."""
    rows = []
    for f in (1.1, 1.8):
        t = _table(0.0, 0.0).assign(f=f)
        t["excess_s"] = 0.08 + (0.004 + 0.0009 * t["layers"]) * f
        t.loc[t["pass"] == 2, "excess_s"] = 0.0
        rows.append(t)
    table = pd.concat(rows, ignore_index=True)
    table.loc[0, "excess_s"] = 1.3  # a process's first capture
    fixed, host, per_layer, rel = fit_captures_split(table)
    assert (fixed, host, per_layer) == pytest.approx((0.08, 0.004, 0.0009), rel=1e-6)
    assert rel == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="two host factors"):
        fit_captures_split(table[table["f"] == 1.1])


def test_shipped_capture_cost_splits_as_the_two_probes_measured():
    """The h200 profile's transformers_cb_graphs capture: most of it does not follow the host
    speed (tools/refit_graph_regime.py over h200-graphs/capture and h200-capturehost)."""
    from llm_energy_sim.config.profile import load_profile

    prof, _ = load_profile("h200")
    h = prof.host["transformers_cb_graphs"]
    fixed = h.attn_shape_miss_fixed_s["bfloat16"]
    host_part = h.attn_shape_miss_s["bfloat16"] + 32 * h.attn_shape_miss_per_layer_s["bfloat16"]
    assert 0.05 < fixed < 0.12 and 0 < host_part < fixed
    assert not prof.host["vllm"].attn_shape_miss_fixed_s  # vLLM captures at start-up


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
