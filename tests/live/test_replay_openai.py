"""The OpenAI client against a real `transformers serve` on 127.0.0.1, tiny random model, offline."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.cli.main import main

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _tiny_model(path):
    """A 2-layer random Llama with a word-level tokenizer, saved locally (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "the", "a", "of"] + [f"w{i}" for i in range(200)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<unk>",
    )
    fast.save_pretrained(path)
    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(words),
        max_position_embeddings=2048,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    model = root / "tiny"
    _tiny_model(model)
    (root / "hf" / "hub").mkdir(parents=True)
    port = _free_port()
    env = {**os.environ, "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1"}
    cli = os.path.join(os.path.dirname(sys.executable), "transformers")
    proc = subprocess.Popen(
        [
            cli,
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "float32",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            httpx.get(url + "/v1/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not start")
    yield url, str(model)
    proc.terminate()
    proc.wait(timeout=30)


def test_replay_against_transformers_serve(server, tmp_path):
    url, model = server
    out = tmp_path / "m"
    res = CliRunner().invoke(
        main,
        [
            "replay",
            "scenarios/validation/fixed50ms.yaml",
            "--engine",
            "openai",
            "--endpoint",
            url,
            "--model-name",
            model,
            "--no-meter",
            "--requests",
            "4",
            "--set",
            "workload.prompt_tokens.max=300",
            "--set",
            "workload.output_tokens.max=20",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "requests.csv")
    assert len(df) == 4
    ok = df[df["status"] == "ok"]
    assert (
        len(ok) >= 3
    )  # one may race the server's refusal of ignore_eos and is recorded as an error
    assert (ok["first_token_s"] > ok["send_s"]).all() and (
        ok["finish_s"] >= ok["first_token_s"]
    ).all()
    assert (ok["generated_tokens"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["server_limits"]["ignore_eos_sent"] is False
    )  # transformers serve refuses the field
