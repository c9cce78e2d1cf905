"""bitsandbytes LLM.int8 / NF4 models in the built-in engines on CPU (bitsandbytes >= 0.45 has
CPU kernels): skipped where bitsandbytes is not installed (CI), run where it is."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import tiny_card

from llm_energy_sim.cli.main import main

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("bitsandbytes")

CB_SMALL = ["--set", "server.num_blocks=64", "--set", "server.max_batch_tokens=512"]


@pytest.mark.parametrize(
    "dtype,scenario,extra",
    [("int4", "burst_warm", CB_SMALL), ("int8", "burst_warm", CB_SMALL), ("int4", "static_b4", [])],
    ids=["cb-nf4", "cb-int8", "static-nf4"],
)
def test_quantized_model_serves_the_trace(tiny_models, tmp_path, dtype, scenario, extra):
    out = tmp_path / "out"
    args = ["replay", f"scenarios/validation/{scenario}.yaml", "--engine", "transformers"]
    args += ["--device", "cpu", "--no-meter", "--requests", "3", "--set", "model=tiny-llama"]
    args += ["--set", f"dtype={dtype}", *extra, "--out", str(out), "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "requests.csv")
    assert (df["status"] == "ok").all()
    assert (df["generated_tokens"] == df["output_tokens"]).all()


def test_the_built_model_has_bitsandbytes_linears():
    import bitsandbytes as bnb

    from llm_energy_sim.hf.build import build_model

    card = tiny_card("tiny-bnb", layers=1)
    m8 = build_model(card, "int8", "cpu")
    assert isinstance(m8.model.layers[0].mlp.up_proj, bnb.nn.Linear8bitLt)
    m4 = build_model(card, "int4", "cpu")
    assert isinstance(m4.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
