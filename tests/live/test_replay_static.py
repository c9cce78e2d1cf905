"""The live static-batching engine (live/static_engine.py) on CPU with a tiny random model:
batches as the simulator's static server forms them, HF generate()'s rule for finished rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import tiny_card

from llm_energy_sim.cli.main import main
from llm_energy_sim.results.tables import read_table

pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY = ["--set", "model=tiny-llama", "--set", "dtype=float32"]


def test_left_padded_batch_generates_what_each_prompt_generates_alone():
    """left_pad + the attention mask: each row's greedy tokens are those of its prompt alone
    (HF generate derives the positions from the mask), so padding changes cost, not output."""
    import torch

    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import build_model

    card = tiny_card("tiny-pad")
    model = build_model(card, "float32", "cpu")
    prompts = [list(range(100, 112)), list(range(200, 205)), list(range(300, 309))]
    ids, mask = greedy.left_pad(prompts)
    assert ids.shape == (3, 12) and mask.sum(dim=1).tolist() == [12, 5, 9]
    assert ids[1, :7].tolist() == [greedy.PAD_ID] * 7 and mask[1, :7].sum() == 0
    batch = greedy.generate(model, ids, 6, attention_mask=mask)[:, 12:]
    for i, p in enumerate(prompts):
        alone = greedy.generate(model, torch.tensor([p]), 6)[0, len(p) :]
        assert torch.equal(batch[i], alone), i


def test_static_replay_batches_as_the_simulator_and_finishes_at_batch_end(tiny_models, tmp_path):
    """10 requests at t=0, batches of 4: 4 + 4 + 2 (the last once the whole trace arrived),
    the same batches (padded prompt per request) as `sim run`; in a batch every request has
    the batch's first token and its end, and only its own tokens."""
    scen = "scenarios/validation/static_b4.yaml"
    common = [scen, "--requests", "10", *TINY]
    out, pred = tmp_path / "measured", tmp_path / "predicted"
    args = ["replay", *common, "--engine", "transformers", "--device", "cpu", "--no-meter"]
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["run", *common, "--out", str(pred), "--quiet"])
    assert res.exit_code == 0, res.output

    df = pd.read_csv(out / "requests.csv").sort_values("request_id")
    sim = read_table(pred, "requests").sort_values("request_id")
    assert (df["status"] == "ok").all()
    assert (df["generated_tokens"] == df["output_tokens"]).all()
    summary = json.loads((out / "summary.json").read_text())
    lim = summary["server_limits"]
    assert lim["engine"].startswith("transformers generate, static batches")
    assert lim["batch_sizes"] == [4, 4, 2] and lim["warmed_up"] is True
    groups = [list(range(0, 4)), list(range(4, 8)), [8, 9]]
    for ids in groups:  # requests 0-3, 4-7, 8-9 in arrival (= id) order
        b = df[df["request_id"].isin(ids)]
        assert b["first_token_s"].nunique() == 1 and b["finish_s"].nunique() == 1
        assert (b["computed_prompt_tokens"] == b["prompt_tokens"].max()).all()
    assert lim["padded_prompts"] == [
        int(df[df["request_id"].isin(ids)]["prompt_tokens"].max()) for ids in groups
    ]
    # the simulator forms the same batches: the same padded prompt for every request
    assert df["computed_prompt_tokens"].tolist() == sim["computed_prompt_tokens"].tolist()
    # batches run one after the other
    ends = [df[df["request_id"].isin(ids)]["finish_s"].iloc[0] for ids in groups]
    firsts = [df[df["request_id"].isin(ids)]["first_token_s"].iloc[0] for ids in groups]
    assert firsts[1] > ends[0] and firsts[2] > ends[1]
    tokens = pd.read_csv(out / "token_times.csv")
    assert len(tokens) == df["generated_tokens"].sum()
    last = tokens.groupby("request_id")["t_s"].max()
    assert (last.values <= df.set_index("request_id").loc[last.index, "finish_s"].values).all()


def test_engine_names_pick_and_refuse_by_server_kind():
    from llm_energy_sim.cli.replay import _builtin_engine
    from llm_energy_sim.config.errors import UserError

    assert _builtin_engine("transformers", "static") == "transformers-static"
    assert _builtin_engine("transformers", "sequential") == "transformers-generate"
    assert _builtin_engine("transformers", "transformers-cb") == "transformers"
    assert _builtin_engine("transformers-static", "static") == "transformers-static"
    with pytest.raises(UserError, match="runs server.kind static"):
        _builtin_engine("transformers-static", "sequential")
    with pytest.raises(UserError, match="runs server.kind sequential"):
        _builtin_engine("transformers-generate", "static")
    with pytest.raises(UserError, match="not tgi"):
        _builtin_engine("transformers", "tgi")


def test_the_live_static_engine_refuses_finished_leave(tiny_models, tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "replay",
            "scenarios/validation/static_b4.yaml",
            *TINY,
            "--set",
            "server.finished=leave",
            "--engine",
            "transformers",
            "--device",
            "cpu",
            "--no-meter",
            "--out",
            str(tmp_path / "x"),
            "--quiet",
        ],
    )
    assert res.exit_code != 0 and "finished: stay" in res.output
