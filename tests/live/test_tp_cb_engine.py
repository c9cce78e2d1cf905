"""Continuous batching under tensor parallelism on CPU: `sim replay --engine transformers` of a
transformers-cb scenario with gpus_per_replica 2, under torchrun with two gloo ranks, on a tiny
random model. Rank 0 drives the replay and writes the results; rank 1 runs the same manager."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

SCENARIO = """\
name: tp2-cb-tiny
model: tiny-llama
dtype: float32
hardware: {gpu: h100-sxm, gpus_per_replica: 2, replicas: 1}
server: {kind: transformers-cb, scheduler: fifo, block_size: 32, num_blocks: 64,
         max_batch_tokens: 256}
workload:
  requests: 6
  arrival: {kind: fixed, interval_ms: 40}
  prompt_tokens: {kind: uniform, min: 20, max: 60}
  output_tokens: {kind: uniform, min: 20, max: 40}
seed: 0
"""


def test_two_rank_continuous_batching_on_cpu(
    tiny_models, tmp_path: Path, monkeypatch, torchrun2, step_log_check
):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    monkeypatch.setenv("SIM_TP_MODEL_DIR", str(tmp_path / "tp-models"))
    (tmp_path / "scen.yaml").write_text(SCENARIO)
    out = tmp_path / "out"
    r = torchrun2(
        None,
        "replay",
        str(tmp_path / "scen.yaml"),
        "--engine",
        "transformers",
        "--device",
        "cpu",
        "--no-meter",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr[-3000:]

    df = pd.read_csv(out / "requests.csv").sort_values("request_id")
    assert len(df) == 6
    assert (df["status"] == "ok").all()
    assert (df["generated_tokens"] == df["output_tokens"]).all()  # EOS off: the trace's counts
    assert df["arrival_s"].nunique() == 6
    # batched: some request starts before an earlier one has finished
    starts, finishes = df["start_s"].to_numpy(), df["finish_s"].to_numpy()
    assert any(starts[j] < finishes[i] for i in range(6) for j in range(i + 1, 6))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] == 6
    assert summary["measured"]["completed"] is True
    assert summary["batch"]["max_size"] > 1
    engine = summary["server_limits"]
    assert engine["engine"] == "transformers continuous batching"
    assert engine["tensor_parallel"] == 2
    # the scenario's CB settings reach the manager as on one GPU
    assert (engine["block_size"], engine["num_blocks"], engine["max_batch_tokens"]) == (32, 64, 256)
    assert engine["scheduler"] == "fifo"
    tokens = pd.read_csv(out / "token_times.csv")
    assert len(tokens) == df["generated_tokens"].sum()
    step_log_check(out, df, summary)  # rank 0, the TP driver, logs the steps all ranks ran


def test_world_size_must_match_gpus_per_replica(
    tiny_models, tmp_path: Path, monkeypatch, torchrun2
):
    pytest.importorskip("transformers")
    monkeypatch.setenv("SIM_TP_MODEL_DIR", str(tmp_path / "tp-models"))
    # a card whose 4 KV heads split over 4 ranks, so the only fault is the world size
    card = (tiny_models / "tiny-llama.yaml").read_text()
    (tiny_models / "tiny-kv4.yaml").write_text(
        card.replace("tiny-llama", "tiny-kv4").replace(
            "num_key_value_heads: 2", "num_key_value_heads: 4"
        )
    )
    (tmp_path / "scen.yaml").write_text(
        SCENARIO.replace("gpus_per_replica: 2", "gpus_per_replica: 4").replace(
            "tiny-llama", "tiny-kv4"
        )
    )
    scen = str(tmp_path / "scen.yaml")
    r = torchrun2(None, "replay", scen, "--engine", "transformers", "--no-meter")
    assert r.returncode != 0
    assert "torchrun --nproc_per_node 4" in r.stderr + r.stdout


def test_kv_heads_must_divide(tmp_path: Path, monkeypatch):
    """3 KV heads cannot be split over 2 ranks: a UserError before any process group starts."""
    from click.testing import CliRunner

    from llm_energy_sim.cli.main import main

    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-odd.yaml").write_text(
        "name: tiny-odd\nhf_id: none\nsource: test\nhidden_size: 96\nintermediate_size: 128\n"
        "num_hidden_layers: 2\nnum_attention_heads: 6\nnum_key_value_heads: 3\n"
        "vocab_size: 2000\nmax_position_embeddings: 4096\n"
    )
    monkeypatch.setenv("SIM_MODELS_DIR", str(models))
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun would set it
    (tmp_path / "scen.yaml").write_text(SCENARIO.replace("tiny-llama", "tiny-odd"))
    res = CliRunner().invoke(
        main, ["replay", str(tmp_path / "scen.yaml"), "--engine", "transformers", "--no-meter"]
    )
    assert res.exit_code != 0
    assert "heads divisible by 2" in res.output and "num_key_value_heads (3)" in res.output
