"""workload.conversations: multi-turn chats whose prompts carry the history (shared prefixes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run, scenario

import llm_energy_sim
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.scenario import Workload, load_scenario
from llm_energy_sim.engine.workload import generate_trace

SHIPPED = Path(llm_energy_sim.__file__).parent / "data" / "scenarios"


def fixed(v):
    return {"kind": "fixed", "value": v}


def conv_wl(n=30, arrival=None, output=None, **conv):
    """A conversation workload: fixed lengths unless overridden (prompts 100, 170, 240, ...)."""
    c = {
        "turns": fixed(3),
        "first_message_tokens": fixed(100),
        "message_tokens": fixed(20),
        "answer_tokens": fixed(50),
        "think_time": {"kind": "fixed", "value_s": 10.0},
        **conv,
    }
    return Workload(
        requests=n,
        arrival=arrival or {"kind": "fixed", "interval_ms": 1000},
        output_tokens=output or fixed(7),
        conversations=c,
    )


RANDOM = {
    "turns": {"kind": "uniform", "min": 1, "max": 6},
    "first_message_tokens": {"kind": "lognormal", "mean": 70, "sigma": 1.3, "max": 800},
    "message_tokens": {"kind": "uniform", "min": 5, "max": 60},
    "answer_tokens": {"kind": "lognormal", "mean": 215, "sigma": 1.0, "max": 2000},
    "think_time": {"kind": "uniform", "low_s": 2.0, "high_s": 40.0},
}
POISSON = {"kind": "poisson", "rate": 2.0}


def frame(t):
    return t.to_frame()


# ---- how prompts grow ------------------------------------------------------------------------
def test_fixed_lengths_give_the_history_arithmetic():
    df = frame(generate_trace(conv_wl(), 0))
    assert len(df) == 30 and df.prefix_id.nunique() == 10
    for c, g in df.sort_values(["prefix_id", "turn"]).groupby("prefix_id"):
        assert list(g.turn) == [0, 1, 2]
        assert list(g.prompt_tokens) == [100, 170, 240]  # + answer 50 + message 20 per turn
        np.testing.assert_allclose(g.arrival_s, [c, c + 10.0, c + 20.0])  # start c s, think 10 s
    assert (df.output_tokens == 7).all()


def test_each_prompt_extends_the_previous_turns_prompt():
    lo = RANDOM["message_tokens"]["min"] + 1  # shortest message + shortest answer
    hi = RANDOM["message_tokens"]["max"] + RANDOM["answer_tokens"]["max"]
    df = frame(generate_trace(conv_wl(n=3000, arrival=POISSON, **RANDOM), 3))
    df = df.sort_values(["prefix_id", "turn"])
    for _, g in df.groupby("prefix_id"):
        assert list(g.turn) == list(range(len(g)))  # no turn skipped: one token stream
        grow = np.diff(g.prompt_tokens.to_numpy())
        assert ((grow >= lo) & (grow <= hi)).all()
    # every later turn's shared prefix is the previous turn's prompt, of the same prefix_id
    prev = df.groupby("prefix_id").prompt_tokens.shift()
    later = df.turn > 0
    assert (prev[later] < df.prompt_tokens[later]).all()


def test_prefix_ids_number_the_conversations_in_start_order():
    t = generate_trace(conv_wl(n=2000, arrival=POISSON, **RANDOM), 1)
    df = frame(t)
    assert t.prefix_id.dtype == np.int64 and (t.prefix_ids() == t.prefix_id).all()
    first = df[df.turn == 0].sort_values("prefix_id")
    assert list(first.prefix_id) == list(range(len(first)))
    assert (np.diff(first.arrival_s.to_numpy()) >= 0).all()
    # the starts are the arrival process itself: the same draws as a plain workload's arrivals
    plain = Workload(requests=2000, arrival=POISSON, prompt_tokens=fixed(1), output_tokens=fixed(1))
    starts = generate_trace(plain, 1).arrival_s
    assert first.arrival_s.to_numpy().tobytes() == starts[: len(first)].tobytes()


def test_a_workload_without_conversations_has_no_prefixes():
    t = generate_trace(
        Workload(requests=5, arrival=POISSON, prompt_tokens=fixed(3), output_tokens=fixed(2)), 0
    )
    assert t.prefix_id is None and t.turn is None and (t.prefix_ids() == -1).all()
    assert "turn" not in t.to_frame().columns


# ---- arrivals and counts ---------------------------------------------------------------------
def test_requests_are_ordered_by_arrival_and_think_times_hold():
    df = frame(generate_trace(conv_wl(n=3000, arrival=POISSON, **RANDOM), 5))
    assert (np.diff(df.arrival_s.to_numpy()) >= 0).all()
    assert list(df.request_id) == list(range(3000))
    gaps = df.sort_values(["prefix_id", "turn"]).groupby("prefix_id").arrival_s.diff().dropna()
    assert gaps.min() >= 2.0 - 1e-9 and gaps.max() <= 40.0 + 1e-9  # U(2 s, 40 s), open loop
    assert gaps.mean() == pytest.approx(21.0, rel=0.05)
    # turns of different conversations interleave: later turns come among others' first ones
    assert (df.turn.to_numpy()[:-1] > 0).any()


def test_exponential_and_lognormal_think_times():
    exp = frame(
        generate_trace(conv_wl(n=20000, think_time={"kind": "exponential", "mean_s": 8.0}), 0)
    )
    gaps = exp.sort_values(["prefix_id", "turn"]).groupby("prefix_id").arrival_s.diff().dropna()
    assert gaps.mean() == pytest.approx(8.0, rel=0.03)
    logn = {"kind": "lognormal", "mean_s": 30.0, "sigma": 1.0, "min_s": 5.0, "max_s": 120.0}
    df = frame(generate_trace(conv_wl(n=20000, think_time=logn), 0))
    gaps = df.sort_values(["prefix_id", "turn"]).groupby("prefix_id").arrival_s.diff().dropna()
    assert gaps.min() >= 5.0 - 1e-9 and gaps.max() <= 120.0 + 1e-9


@pytest.mark.parametrize("n", [1, 2, 3, 31, 1000])
def test_requests_counts_every_turn_and_the_last_conversation_is_cut(n):
    df = frame(generate_trace(conv_wl(n=n), 0))
    assert len(df) == n
    sizes = df.groupby("prefix_id").size()
    assert (sizes.iloc[:-1] == 3).all() and sizes.iloc[-1] == n - 3 * (len(sizes) - 1)


def test_burst_starts_count_conversations():
    df = frame(generate_trace(conv_wl(n=12, arrival={"kind": "burst"}), 0))
    assert (df[df.turn == 0].arrival_s == 0).all() and df.prefix_id.nunique() == 4
    sized = frame(
        generate_trace(conv_wl(n=12, arrival={"kind": "burst", "size": 2, "gap_ms": 500}), 0)
    )
    assert sorted(sized[sized.turn == 0].arrival_s) == [0.0, 0.0, 0.5, 0.5]


# ---- the prompt cap --------------------------------------------------------------------------
def test_the_cap_ends_a_conversation_before_the_first_prompt_over_it():
    df = frame(generate_trace(conv_wl(n=30, turns=fixed(5), max_prompt_tokens=250), 0))
    assert df.prompt_tokens.max() <= 250
    for _, g in df.groupby("prefix_id"):
        assert sorted(g.prompt_tokens) == [100, 170, 240]  # the 4th (310) would exceed 250
    assert len(df) == 30 and df.prefix_id.nunique() == 10
    exact = frame(generate_trace(conv_wl(n=30, turns=fixed(5), max_prompt_tokens=240), 0))
    assert exact.groupby("prefix_id").size().max() == 3  # a prompt equal to the cap is kept


def test_a_cap_only_cuts_the_uncapped_conversations_short():
    cap = 800
    wl = {"n": 4000, "arrival": POISSON, **RANDOM}
    free = frame(generate_trace(conv_wl(**wl), 9))
    capped = frame(generate_trace(conv_wl(max_prompt_tokens=cap, **wl), 9))
    assert len(capped) == 4000 and capped.prompt_tokens.max() <= cap
    assert capped.prefix_id.nunique() > free.prefix_id.nunique()  # more, shorter conversations
    cols = ["arrival_s", "prompt_tokens"]
    last = free.prefix_id.max()  # cut by the request count, not by the cap
    cut = 0
    for c, g in free[free.prefix_id < last].groupby("prefix_id"):
        g = g.sort_values("turn")
        kept = capped[capped.prefix_id == c].sort_values("turn")
        k = len(kept)
        assert k >= 1
        pd.testing.assert_frame_equal(
            kept[cols].reset_index(drop=True), g[cols].iloc[:k].reset_index(drop=True)
        )
        if k < len(g):  # stopped exactly where the next prompt would exceed the cap
            assert g.prompt_tokens.iloc[k] > cap
            cut += 1
        else:
            assert g.prompt_tokens.max() <= cap
    assert cut > 50


def test_a_first_message_above_the_cap_is_an_error():
    with pytest.raises(ValueError, match="first_message_tokens reaches 900 tokens, above"):
        conv_wl(first_message_tokens=fixed(900), max_prompt_tokens=500)


def test_an_empirical_first_message_above_the_cap_is_an_error(tmp_path):
    csv = tmp_path / "first.csv"
    csv.write_text("tokens\n10\n20\n900\n")
    wl = conv_wl(
        n=200,
        first_message_tokens={"kind": "empirical", "path": str(csv)},
        max_prompt_tokens=500,
    )
    with pytest.raises(UserError, match="first message of 900 tokens exceeds") as e:
        generate_trace(wl, 0)
    assert "\n" not in str(e.value)


# ---- determinism -----------------------------------------------------------------------------
def test_same_seed_same_trace_bit_for_bit():
    wl = conv_wl(n=2000, arrival=POISSON, max_prompt_tokens=1500, **RANDOM)
    a, b, c = generate_trace(wl, 42), generate_trace(wl, 42), generate_trace(wl, 43)
    for f in ("arrival_s", "prompt_tokens", "output_tokens", "prefix_id", "turn"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f
    assert a.arrival_s.tobytes() != c.arrival_s.tobytes()
    assert a.prompt_tokens.tobytes() != c.prompt_tokens.tobytes()


# ---- the schema ------------------------------------------------------------------------------
CONV = {
    "turns": fixed(2),
    "first_message_tokens": fixed(50),
    "message_tokens": fixed(20),
    "answer_tokens": fixed(80),
    "think_time": {"kind": "fixed", "value_s": 5},
}


def load_wl(server=None, **workload):
    base = {
        "requests": 10,
        "arrival": {"kind": "fixed", "interval_ms": 500},
        "output_tokens": fixed(10),
        "conversations": CONV,
    }
    return scenario(workload={**base, **workload}, server=server or {"kind": "tgi"})


def one_line_error(**workload) -> str:
    with pytest.raises(UserError) as e:
        load_wl(**workload)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("<test>: field 'workload")
    return msg


def test_prompt_tokens_and_conversations_together_is_an_error():
    msg = one_line_error(prompt_tokens=fixed(100))
    assert "workload.prompt_tokens" in msg and "workload.conversations" in msg


def test_conversations_need_output_tokens_and_generated_arrivals():
    assert "workload.output_tokens is required" in one_line_error(output_tokens=None)
    msg = one_line_error(arrival={"kind": "trace", "path": "x.csv"})
    assert "arrival.kind 'trace'" in msg


@pytest.mark.parametrize(
    "field, value, where",
    [
        ("turns", {"kind": "fixed", "value": 0}, "turns.fixed.value"),
        ("turns", {"kind": "uniform", "min": 3, "max": 1}, "turns.uniform"),
        ("turns", {"kind": "normal", "mean": 2}, "turns"),
        ("answer_tokens", {"kind": "lognormal", "mean": 200}, "answer_tokens.lognormal.max"),
        ("think_time", {"kind": "fixed", "value_s": -1}, "think_time.fixed.value_s"),
        ("think_time", {"kind": "uniform", "low_s": 9, "high_s": 1}, "think_time.uniform"),
        ("think_time", {"kind": "exponential", "mean_s": 0}, "think_time.exponential.mean_s"),
        (
            "think_time",
            {"kind": "lognormal", "mean_s": 9, "min_s": 5, "max_s": 1},
            "think_time.lognormal",
        ),
        ("think_time", {"kind": "fixed", "value_ms": 5}, "think_time.fixed"),
        ("max_prompt_tokens", 0, "max_prompt_tokens"),
        ("history", True, "history"),
    ],
)
def test_bad_conversation_fields_are_one_line_errors(field, value, where):
    msg = one_line_error(conversations={**CONV, field: value})
    assert f"field 'workload.conversations.{where}" in msg


def test_a_missing_conversation_field_is_named():
    conv = {k: v for k, v in CONV.items() if k != "think_time"}
    assert "conversations.think_time': required" in one_line_error(conversations=conv)


def test_empirical_paths_are_read_from_the_scenario_folder(tmp_path):
    (tmp_path / "turns.csv").write_text("tokens\n1\n4\n")
    (tmp_path / "s.yaml").write_text(
        "name: s\nmodel: llama-3.1-8b\ndtype: bfloat16\nserver: {kind: tgi}\n"
        "workload:\n  requests: 50\n  arrival: {kind: fixed, interval_ms: 100}\n"
        "  output_tokens: {kind: fixed, value: 5}\n  conversations:\n"
        "    turns: {kind: empirical, path: turns.csv}\n"
        "    first_message_tokens: {kind: fixed, value: 10}\n"
        "    message_tokens: {kind: fixed, value: 10}\n"
        "    answer_tokens: {kind: fixed, value: 10}\n"
        "    think_time: {kind: fixed, value_s: 1}\n"
    )
    scen = load_scenario(tmp_path / "s.yaml")
    assert scen.workload.conversations.turns.path == str(tmp_path / "turns.csv")
    sizes = generate_trace(scen.workload, 0).to_frame().groupby("prefix_id").size()
    assert set(sizes.iloc[:-1]) <= {1, 4} and len(set(sizes.iloc[:-1])) == 2


# ---- running it ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tgi", "transformers-cb"])
def test_a_conversation_scenario_simulates_and_requests_carry_prefix_ids(kind):
    scen = load_wl(requests=40, conversations={**CONV, "turns": fixed(4)}, server={"kind": kind})
    res, df, summary = run(scen)
    assert (df.status == "ok").all() and len(df) == 40
    ids = [r.prefix_id for r in res.requests]
    assert ids == list(res.trace.prefix_id) and sorted(set(ids)) == list(range(10))
    assert sorted(df.prompt_tokens.unique()) == [50, 150, 250, 350]


def test_the_shipped_multiturn_scenario_looks_like_lmarena():
    scen = load_scenario("scenarios/multiturn_chat.yaml")
    df = generate_trace(scen.workload, scen.seed).to_frame()
    assert len(df) == scen.workload.requests
    sizes = df.groupby("prefix_id").size()
    assert sizes.mean() == pytest.approx(2.0, abs=0.1)  # LMSYS-Chat-1M: 2.0 turns
    first = df[df.turn == 0].prompt_tokens
    assert first.mean() == pytest.approx(69.5, rel=0.1)  # 69.5 tokens per user prompt
    assert df.prompt_tokens.max() <= scen.workload.conversations.max_prompt_tokens


# ---- every other workload's trace is what it was ---------------------------------------------
def _digest(t) -> str:
    h = hashlib.sha256()
    for a in (t.arrival_s, t.prompt_tokens, t.output_tokens):
        h.update(a.dtype.str.encode())
        h.update(a.tobytes())
    return h.hexdigest()


# sha256 of (arrival_s, prompt_tokens, output_tokens) of each shipped scenario's trace, computed
# with the code before workload.conversations existed (commit eb133ad)
BEFORE = {
    "burst.yaml": "868b923e5bb612dbb7fa3d1cf881c514b2a6a24099d5159e12d01cf8e88b5e58",
    "fixed300ms.yaml": "1ff807009055de7b2534af74ac8658d22f83c563453458ab908021e58da73d64",
    "fixed500ms.yaml": "b53e9bf6f611b689037761e99993cb76b1dee20a9e0cf37aa965d8366d4e97ac",
    "fixed50ms.yaml": "57fb9009e604afccda1c2616d298e2e6a16e9eb72083c0b78e21039038e400fe",
    "llama70b_tp4_fixed500ms.yaml": "b53e9bf6f611b689037761e99993cb76b1dee20a9e0cf37aa965d8366d4e97ac",
    "poisson_1m.yaml": "eb6090840e0d12bf8ab1693f8028cd921c9c43307735cb5f0dba12db605396e2",
    "random_uniform.yaml": "92b400731dfd28650ce0cf7dc5f2ededc4fadb1de5b88136ef303acb6a223478",
    "sequential.yaml": "b53e9bf6f611b689037761e99993cb76b1dee20a9e0cf37aa965d8366d4e97ac",
    "static_b4.yaml": "e17aae749fbd9a85535a89ec6240f33d5b9f2e0112a49df162cdfecc9305d51b",
    "validation/burst.yaml": "224097632b03683afbf16dce728ab1a844a08478ee744813f1fd8951d1d54893",
    "validation/fixed300ms.yaml": "b73d61e68b12d848395a9de2aa07a4536dd324b89de67087889a90af6dbb0bdd",
    "validation/fixed500ms.yaml": "15c222e06f2fefe8d11492fb836044587530ddb6ec418ac58ab4507a78783abc",
    "validation/fixed50ms.yaml": "846258ccab14336a5329a607a517a40d247cf68bc44ec91f372cfa9ad28ae52e",
    "validation/sequential.yaml": "677074cad75edb741345ca4f8a0e264de333acc641ed93cdf4bb79893ab6d3f7",
    "validation/uniform.yaml": "f6ad2f169833f9842bf6c2bfaa1d3655c337a878c702ee0453a9509a634eb1d8",
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_shipped_scenario_traces_are_unchanged(name):
    scen = load_scenario(SHIPPED / name)
    t = generate_trace(scen.workload, scen.seed)
    assert t.prefix_id is None
    assert _digest(t) == BEFORE[name]


def test_empirical_lognormal_poisson_trace_is_unchanged(tmp_path):
    csv = tmp_path / "l.csv"
    csv.write_text("tokens\n3\n7\n11\n250\n")
    wl = Workload(
        requests=500,
        arrival={"kind": "poisson", "rate": 3.5},
        prompt_tokens={"kind": "empirical", "path": str(csv)},
        output_tokens={"kind": "lognormal", "mean": 200, "sigma": 1.0, "min": 1, "max": 2000},
    )
    assert (
        _digest(generate_trace(wl, 7))
        == "64856fd4fd4ac49358bdf4dc3424e71f99b354831343e62afe103668cb7a51de"
    )
