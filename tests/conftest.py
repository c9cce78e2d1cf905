"""Shared helpers: small scenarios built in code, run through the real simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_sim.config.scenario import load_scenario_dict
from llm_energy_sim.results.accounting import requests_frame, summarize
from llm_energy_sim.simulation import simulate

REPO = Path(__file__).resolve().parents[1]


SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def scenario(**over):
    """A small 8B bf16 TGI scenario; keyword arguments replace top-level fields."""
    base = {
        "name": "t",
        "model": "llama-3.1-8b",
        "dtype": "bfloat16",
        "server": {"kind": "tgi"},
        "workload": {
            "requests": 60,
            "arrival": {"kind": "fixed", "interval_ms": 200},
            "prompt_tokens": {"kind": "lognormal", "mean": 1200, "min": 200, "max": 4000},
            "output_tokens": {"kind": "uniform", "min": 10, "max": 300},
        },
        "seed": 0,
    }
    base.update(over)
    return load_scenario_dict(base, "<test>")


def run(scen):
    res = simulate(scen)
    df = requests_frame(res)
    return res, df, summarize(res, df)


@pytest.fixture
def run_scenario():
    return run


def tiny_card(name: str = "tiny", layers: int = 2):
    """A tiny random Llama-shaped card for building real models on CPU (hidden 64, 4 heads,
    2 KV heads, vocab 500)."""
    from llm_energy_sim.config.modelcard import ModelCard

    return ModelCard(
        name=name,
        hf_id="none",
        source="test fixture",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=500,
        max_position_embeddings=256,
    )


TINY_LLAMA = """name: tiny-llama
hf_id: none
source: test card (random tiny Llama)
hidden_size: 64
intermediate_size: 128
num_hidden_layers: 2
num_attention_heads: 4
num_key_value_heads: 2
vocab_size: 2000
max_position_embeddings: 4096
"""


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """A models dir with a tiny random Llama card ('tiny-llama'), used via SIM_MODELS_DIR."""
    d = tmp_path / "models"
    d.mkdir()
    (d / "tiny-llama.yaml").write_text(TINY_LLAMA)
    monkeypatch.setenv("SIM_MODELS_DIR", str(d))
    return d


TINY_TP_CARD = """\
name: tiny
hf_id: none
source: test fixture
hidden_size: 128
intermediate_size: 256
num_hidden_layers: 2
num_attention_heads: 4
num_key_value_heads: 2
vocab_size: 2000
max_position_embeddings: 512
"""


@pytest.fixture
def torchrun2(tmp_path: Path):
    """Run `torchrun --standalone --nproc_per_node 2` on CPU (gloo) in tmp_path: either a
    driver script (written to drive.py, called with card.yaml, a tiny card every rank loads,
    then `args`) or, with driver=None, `-m llm_energy_sim.cli` and `args`."""
    import shutil
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")

    def run(driver: str | None, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        if driver is None:
            target = ["-m", "llm_energy_sim.cli.main"]
        else:
            (tmp_path / "card.yaml").write_text(TINY_TP_CARD)
            (tmp_path / "drive.py").write_text(textwrap.dedent(driver))
            target = [str(tmp_path / "drive.py"), str(tmp_path / "card.yaml")]
        cmd = [torchrun, "--standalone", "--nproc_per_node", "2", *target, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)

    return run


def _check_step_log(out, df, summary: dict) -> None:
    """The CB engine's step log covers exactly the trace's work: every prompt token prefilled
    once, every generated token but each request's first decoded once, steps in time order,
    none from the warm-up."""
    import pandas as pd

    from llm_energy_sim.results.steptable import parse_prefill

    assert summary["measured"]["steps_file"] == "steps.csv"
    steps = pd.read_csv(out / "steps.csv")
    assert (steps["end_s"] > steps["start_s"]).all()
    assert (steps["start_s"].diff().dropna() > 0).all()
    assert steps["start_s"].min() >= -0.5  # after the warm-up (t0 - LEAD_S)
    prefilled = sum(n for text in steps["prefill"] for n, _ in parse_prefill(text))
    assert prefilled == df["prompt_tokens"].sum()
    assert steps["n_decode"].sum() == (df["generated_tokens"] - 1).sum()
    # decode KV lengths: request r's k-th decode step reads prompt + k tokens
    want = sum(
        p * (g - 1) + (g - 1) * g // 2
        for p, g in zip(df.prompt_tokens, df.generated_tokens, strict=True)
    )
    assert steps["decode_ctx_sum"].sum() == want


@pytest.fixture
def step_log_check():
    """check(out, requests_df, summary): a live CB run's steps.csv covers the trace's work."""
    return _check_step_log


# ---- refits compared by what they predict -------------------------------------------------
# A refit of the committed raw tables lands on the shipped parameters only up to the numeric
# libraries' versions (scipy's least squares ends a few ulps elsewhere), and where the tables
# do not identify a parameter alone (host runs of one batch size fix per_step + per_sequence,
# not each) it may land anywhere along that direction. So refits are compared by their
# predictions at the measured points, to REFIT_REL.
REFIT_REL = 1e-5


def host_time(h, layers, batch):
    """The host model's time of one step (HostOverhead: per_step + per_layer*L + per_seq*n)."""
    return h.per_step_s + h.per_layer_s * layers + h.per_sequence_s * batch


def assert_same_host_predictions(new, shipped, points, what=""):
    """Host entries agree in their step time at every measured (layers, batch) point, and in
    the terms that are not a function of the shape."""
    for layers, batch in points:
        assert host_time(new, layers, batch) == pytest.approx(
            host_time(shipped, layers, batch), rel=REFIT_REL
        ), (what, layers, batch)
    for f in ("setup_s", "prefill_serial_fraction"):
        assert getattr(new, f) == pytest.approx(getattr(shipped, f), rel=REFIT_REL, abs=1e-12), (
            what,
            f,
        )
    if shipped.wait_w is None:
        assert new.wait_w is None, what
    else:
        assert new.wait_w == pytest.approx(shipped.wait_w, rel=REFIT_REL), what


def assert_same_kernel_predictions(new, shipped, flops, nbytes, plimit, what=""):
    """Kernel fits agree in time and energy per call at the given (FLOPs, bytes) points."""
    import numpy as np

    from llm_energy_sim.calibrate.fit import predict_kernel

    f, b = np.asarray(flops, float), np.asarray(nbytes, float)
    t_new, e_new = predict_kernel(new, f, b, plimit)
    t_old, e_old = predict_kernel(shipped, f, b, plimit)
    np.testing.assert_allclose(t_new, t_old, rtol=REFIT_REL, err_msg=str(what))
    np.testing.assert_allclose(e_new, e_old, rtol=REFIT_REL, err_msg=str(what))
