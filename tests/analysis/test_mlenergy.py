"""The ML.ENERGY v3 external check (analysis/mlenergy.py, `sim validate mlenergy`): the
steady-state window on a hand-built step log, the shipped measurements, the workload drawn
from them, and the command end to end."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from llm_energy_sim.analysis import mlenergy as ml
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.servers import SERVER_KINDS

H100_ROWS = [8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768]

# ---- the window on a hand-built step log ----------------------------------------------------
# six steps (start, end, energy J): ends at 1, 2, 4, 5, 6, 8
STEPS = [(0, 1, 50.0), (1, 2, 50.0), (2, 4, 300.0), (4, 5, 100.0), (5, 6, 100.0), (6, 8, 200.0)]
# requests (first token, finish, output tokens); their tokens come at the step ends:
#   A 1,2,4,5   B 2,4,5,6   C 4,5,6,8   D 5,6,8   E 6,8
REQS = [(1, 5, 4), (2, 6, 4), (4, 8, 4), (5, 8, 3), (6, 8, 2)]


def _window(b: int) -> ml.SteadyState:
    starts, ends, energy = zip(*STEPS, strict=True)
    first, finish, out = zip(*REQS, strict=True)
    return ml.steady_state(first, finish, out, ends, ml.steps_energy_at(starts, ends, energy), b)


def test_token_times_follow_the_steps():
    ends = np.array([1.0, 2.0, 4.0, 5.0, 6.0, 8.0])
    assert list(ml.token_times(2.0, 6.0, 4, ends)) == [2.0, 4.0, 5.0, 6.0]
    assert list(ml.token_times(4.0, 8.0, 2, ends)) == [4.0, 5.0]  # at most its output tokens
    assert list(ml.token_times(6.0, 6.0, 1, ends)) == [6.0]
    assert len(ml.token_times(math.nan, math.nan, 5, ends)) == 0  # never started


def test_steady_state_window_energy_tokens_and_itl():
    # max_num_seqs 1: first tokens sorted 1, 2, 4, 5, 6 -> from the 1st (t=1) to the
    # N - 1 = 4th (t=5). Tokens in (1, 5]: A 2,4,5; B 2,4,5; C 4,5; D 5 -> 9.
    # Energy in [1, 5]: 50 + 300 + 100 = 450 J over 4 s.
    ss = _window(1)
    assert (ss.t_begin_s, ss.t_end_s) == (1.0, 5.0)
    assert ss.tokens == 9
    assert ss.energy_j == pytest.approx(450.0)
    assert ss.energy_per_token_j == pytest.approx(50.0)
    assert ss.avg_power_w == pytest.approx(112.5)
    # every request's gaps: A 1,2,1  B 2,1,1  C 1,1,2  D 1,2  E 2 -> seven 1 s, five 2 s
    assert ss.itl_count == 12
    assert ss.median_itl_s == pytest.approx(1.0)
    # max_num_seqs 2: from the 2nd first token (t=2) to the 3rd (t=4): the step 2-4 only,
    # whose end brings A's, B's and C's token at 4
    ss2 = _window(2)
    assert (ss2.t_begin_s, ss2.t_end_s, ss2.tokens) == (2.0, 4.0, 3)
    assert ss2.energy_per_token_j == pytest.approx(100.0)
    assert ss2.avg_power_w == pytest.approx(150.0)


def test_steady_state_needs_two_max_num_seqs_requests():
    with pytest.raises(UserError, match="at least 2 x max_num_seqs"):
        _window(3)


def test_steps_energy_at_counts_the_gaps():
    at = ml.steps_energy_at([0.0, 2.0], [1.0, 3.0], [50.0, 50.0], gap_w=10.0)
    got = at(np.array([0.5, 1.5, 2.5, 3.0, 4.0]))
    assert got == pytest.approx([25.0, 55.0, 85.0, 110.0, 120.0])


# ---- the shipped measurements ---------------------------------------------------------------
def test_shipped_json_h100_rows():
    settings = ml.read_settings()
    rows = ml.read_rows()
    assert [r.max_num_seqs for r in rows] == H100_ROWS
    assert all(r.gpu_model.startswith("H100") for r in rows)
    for r in rows:  # the histogram holds every request of the run: 1024 x repeats
        assert r.requests == settings.num_requests * settings.repeats[r.max_num_seqs]
    r8 = rows[0]
    assert r8.energy_per_token_j == pytest.approx(0.4547982611462042)
    assert r8.avg_power_w == pytest.approx(486.4380535594687)
    assert r8.median_itl_ms == pytest.approx(7.316111586987972)
    assert (settings.max_num_batched_tokens, settings.max_model_len) == (8192, 20480)
    assert (settings.dtype, settings.num_gpus, settings.max_output_tokens) == ("bfloat16", 1, 4096)


def test_the_package_carries_the_data_and_its_readme():
    for name in (ml.MLENERGY_JSON, "README.md", "run-settings/benchmark.yaml"):
        assert (ml.MLENERGY_DIR / name).is_file()


@pytest.mark.parametrize("mns", [8, 256, 768])
def test_histogram_to_distribution(mns):
    row = next(r for r in ml.read_rows() if r.max_num_seqs == mns)
    rng = np.random.Generator(np.random.PCG64(0))
    # drawn as many times as measured: the draws' histogram is the measured one exactly
    full = ml.histogram_lengths(row.bins, row.counts, row.requests, rng, cap=4096)
    counts, _ = np.histogram(full, bins=row.bins)
    assert list(counts) == list(row.counts)
    assert full.min() >= 2 and full.max() <= 4096
    assert (full[full > row.bins[-2]] == 4096).all()  # the last bin: cut at max_tokens
    # 1024 draws (what build_trace takes): the histogram scaled, mean near the measured
    lengths = ml.histogram_lengths(row.bins, row.counts, 1024, rng, cap=4096)
    assert len(lengths) == 1024
    assert lengths.mean() == pytest.approx(row.avg_output_len, rel=0.02)


def test_histogram_allocation_keeps_the_total():
    alloc = ml.histogram_allocation([3, 1, 0, 2], 7)
    assert alloc.sum() == 7 and list(alloc) == [4, 1, 0, 2]
    with pytest.raises(UserError):
        ml.histogram_allocation([0, 0], 3)


def test_the_prompt_model_is_a_conversations_block():
    from llm_energy_sim.config.scenario import Conversations

    block = ml.ConversationModel().block(16384)
    conv = Conversations(**block)
    assert conv.turns.mean == 2.0 and conv.max_prompt_tokens == 16384
    assert conv.first_message_tokens.mean == pytest.approx(69.5 + 34)
    assert conv.answer_tokens.mean == pytest.approx(214.5 + 5)


def test_trace_repeats_the_requests_and_shares_prefixes():
    settings = ml.read_settings()
    row = next(r for r in ml.read_rows() if r.max_num_seqs == 256)  # 2 repeats
    t = ml.build_trace(row, settings, seed=3)
    assert len(t) == 2048 and (t.arrival_s == 0).all()
    assert (t.prompt_tokens[:1024] == t.prompt_tokens[1024:]).all()
    assert (t.output_tokens[:1024] == t.output_tokens[1024:]).all()
    pid = t.prefix_ids()
    assert (pid[:1024] == pid[1024:]).all()
    # one conversation's turns follow each other (the benchmark's order), each prompt
    # extending the one before by an answer and a message (at least 5 + 1 tokens each)
    first = t.prompt_tokens[:1024]
    assert (np.diff(pid[:1024]) >= 0).all()
    for c in np.unique(pid[:1024])[:50]:
        p = first[pid[:1024] == c]
        assert (np.diff(p) >= 12).all()
    assert first.min() >= 29 + 5 + 1  # the chat template and the first message
    assert first.max() <= settings.max_model_len - settings.max_output_tokens
    assert 1.5 < 1024 / len(np.unique(pid[:1024])) < 2.5  # about 2 turns a conversation
    assert ml.build_trace(row, settings, seed=3).prompt_tokens.tolist() == t.prompt_tokens.tolist()


# ---- simulated rows -------------------------------------------------------------------------
def test_a_row_through_the_simulator_with_static_batching_standing_in():
    """The pipeline (trace -> simulate with step log -> window) on a server kind every
    profile costs: HF static batching in batches of the row's max_num_seqs stands in for vLLM
    here."""
    settings = ml.read_settings()
    row = ml.read_rows()[0]  # max_num_seqs 8
    static = {"kind": "static", "batch_size": 8}
    res = ml.simulate_row(row, settings, num_requests=48, server=static)
    assert res.requests == 48 and res.completed == 48
    assert res.predicted_window_tokens > 0 and res.predicted_window_s > 0
    assert res.predicted_avg_power_w == pytest.approx(
        res.predicted_energy_per_token_j * res.predicted_window_tokens / res.predicted_window_s
    )
    assert 100 < res.predicted_avg_power_w < 700
    assert 0.001 < res.predicted_median_itl_ms / 1000 < 0.2
    assert res.predicted_mean_batch <= 8 + 1e-9
    rec = res.record()
    assert rec["error_avg_power_w"] == pytest.approx(
        res.predicted_avg_power_w / row.avg_power_w - 1
    )


def test_bad_rows_are_one_line_errors(tmp_path):
    r = CliRunner().invoke(
        main, ["validate", "mlenergy", "--max-num-seqs", "8,7", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2
    assert "no such H100 row" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["validate", "mlenergy", "--rows", "eight"])
    assert r.exit_code == 2 and "whole numbers" in r.output


needs_vllm = pytest.mark.skipif(
    "vllm" not in SERVER_KINDS or importlib.util.find_spec("llm_energy_sim.servers.vllm") is None,
    reason="the vllm server kind (config/servers.py, servers/vllm.py) is not in this tree yet",
)


@needs_vllm
def test_a_profile_without_a_vllm_host_entry_is_one_line(tmp_path):
    prof = json.loads((PROFILES_DIR / "h100-sxm.json").read_text())
    del prof["host"]["vllm"]
    ppath = tmp_path / "h100-no-vllm.json"
    ppath.write_text(json.dumps(prof))
    args = ["validate", "mlenergy", "--rows", "8", "--requests", "16", "--profile", str(ppath)]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "vllm" in r.output and "Traceback" not in r.output


@needs_vllm
def test_cli_runs_a_small_row_subset(tmp_path):
    out = tmp_path / "out"
    args = ["validate", "mlenergy", "--rows", "8,16", "--requests", "48", "--quiet"]
    r = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "within 10%" in r.output
    import pandas as pd

    df = pd.read_csv(out / "mlenergy.csv")
    assert list(df["max_num_seqs"]) == [8, 16]
    assert np.isfinite(df["predicted_energy_per_token_j"]).all()
    assert (out / "mlenergy.png").stat().st_size > 0
    meta = json.loads((out / "validate.json").read_text())
    assert meta["conversation_model"]["mean_turns"] == 2.0 and len(meta["rows"]) == 2


@needs_vllm
def test_the_rows_server_block_carries_the_runs_flags():
    settings = ml.read_settings()
    row = next(r for r in ml.read_rows() if r.max_num_seqs == 384)
    srv = ml.vllm_server(row, settings)
    assert srv["kind"] == "vllm" and srv["max_num_seqs"] == 384
    assert srv["max_num_batched_tokens"] == 8192
    fields = SERVER_KINDS["vllm"].settings.model_fields
    for key, value in (("max_model_len", 20480), ("async_scheduling", True)):
        if key in fields:
            assert srv[key] == value
    scen = ml.row_scenario(row, settings, 2048)
    assert scen.server.max_num_seqs == 384 and scen.dtype == "bfloat16"
    # the benchmark's requests sample with temperature 0.8 and top-p 0.95: the sorting sampler
    assert scen.workload.sampling == "top_p"
    assert ml.sampling_method(0.0, 0.95) == "greedy" and ml.sampling_method(0.8, 1.0) == "random"


def test_a_run_whose_requests_never_start_has_no_window():
    with pytest.raises(UserError, match="first token"):
        ml.steady_state(
            [1.0, math.nan, math.nan, math.nan],
            [2.0] + [math.nan] * 3,
            [2, 2, 2, 2],
            [1.0, 2.0],
            lambda t: np.zeros(len(t)),
            1,
        )
