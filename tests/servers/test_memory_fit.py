"""GPU memory checks of the HF generate() servers (sequential, static): weights per GPU under
tensor parallel plus the KV cache of the request (sequential) or padded batch (static) must fit
in the profile's GPU memory, else a one-line UserError says what does not fit and what to change."""

from __future__ import annotations

import re

import pytest
import yaml
from click.testing import CliRunner

from llm_energy_sim.analysis.grid import run_point
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import default_profile_name, load_profile
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.engine.request import OK
from llm_energy_sim.servers.memory import GIB, kv_bytes_per_token_per_gpu, weight_bytes_per_gpu
from llm_energy_sim.simulation import simulate


def _scenario(tmp_path, server, prompt=256, output=16, requests=6, **top):
    data = {
        "name": "mem",
        "model": "llama-3.1-8b",
        "dtype": "bfloat16",
        "server": server,
        "workload": {
            "requests": requests,
            "arrival": {"kind": "burst"},
            "prompt_tokens": {"kind": "fixed", "value": prompt},
            "output_tokens": {"kind": "fixed", "value": output},
        },
        **top,
    }
    p = tmp_path / "mem.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _needed_gib(msg: str) -> float:
    return float(re.search(r"needs ([0-9.]+) GiB per GPU", msg).group(1))


H100_GIB = load_profile(default_profile_name("h100-sxm"))[0].gpu.memory_bytes / GIB


def test_per_gpu_sizes_shard_weights_and_kv_heads():
    card = load_model_card("llama-3.1-70b")  # 8 KV heads of 128, 80 layers
    assert weight_bytes_per_gpu(card, "bfloat16", 4) == pytest.approx(card.num_params() * 2 / 4)
    assert weight_bytes_per_gpu(card, "int4", 1) < weight_bytes_per_gpu(card, "fp8", 1)
    assert kv_bytes_per_token_per_gpu(card, "bfloat16", 1) == 2 * 80 * 8 * 128 * 2
    assert kv_bytes_per_token_per_gpu(card, "bfloat16", 4) == 2 * 80 * 2 * 128 * 2
    # more GPUs than KV heads: each GPU still holds (a replica of) one head
    assert kv_bytes_per_token_per_gpu(card, "bfloat16", 16) == 2 * 80 * 1 * 128 * 2


# ---- sequential -------------------------------------------------------------------------------
def test_sequential_that_fits_runs(tmp_path):
    res = simulate(load_scenario(_scenario(tmp_path, {"kind": "sequential"})))
    assert all(r.status == OK for r in res.requests)


def test_sequential_70b_bf16_on_one_h100_does_not_fit_and_says_what_to_change(tmp_path):
    path = _scenario(tmp_path, {"kind": "sequential"}, model="llama-3.1-70b")
    with pytest.raises(UserError) as exc:
        simulate(load_scenario(path))
    msg = str(exc.value)
    assert "\n" not in msg
    for part in ("'mem'", "llama-3.1-70b", "bfloat16", "tp=1", "does not fit", "79.6 GiB"):
        assert part in msg, msg
    assert "hardware.gpus_per_replica" in msg and "dtype" in msg
    card = load_model_card("llama-3.1-70b")
    assert _needed_gib(msg) == pytest.approx(card.num_params() * 2 / GIB, abs=0.06)
    # the same model over 2 GPUs fits, and so it does on one H200 (141 GB)
    ok = simulate(load_scenario(path, {"hardware.gpus_per_replica": 2}))
    assert all(r.status == OK for r in ok.requests)
    ok = simulate(load_scenario(path, {"hardware.gpu": "h200"}))
    assert all(r.status == OK for r in ok.requests)


def test_sequential_request_whose_kv_cache_does_not_fit(tmp_path):
    """70B bf16 over 2 H100s: 65.7 GiB of weights per GPU leave ~14 GiB, i.e. ~91k tokens of
    KV cache at 160 KiB per token per GPU; one 120k-token request does not fit."""
    path = _scenario(
        tmp_path,
        {"kind": "sequential"},
        prompt=120_000,
        output=100,
        requests=2,
        model="llama-3.1-70b",
        hardware={"gpus_per_replica": 2},
    )
    with pytest.raises(UserError, match=r"tp=2 does not fit .*120000 prompt \+ 100 output") as e:
        simulate(load_scenario(path))
    card = load_model_card("llama-3.1-70b")
    need = (
        weight_bytes_per_gpu(card, "bfloat16", 2)
        + 120_100 * kv_bytes_per_token_per_gpu(card, "bfloat16", 2)
    ) / GIB
    assert _needed_gib(str(e.value)) == pytest.approx(need, abs=0.06)
    assert need > H100_GIB
    # shorter requests fit
    simulate(load_scenario(path, {"workload.prompt_tokens.value": 60_000}))


# ---- static -----------------------------------------------------------------------------------
def test_static_batch_that_fits_runs(tmp_path):
    path = _scenario(tmp_path, {"kind": "static", "batch_size": 32}, 4000, 300, 32, dtype="float32")
    res = simulate(load_scenario(path))
    assert all(r.status == OK for r in res.requests)


def test_static_padded_batch_that_does_not_fit(tmp_path):
    """8B float32: 29.9 GiB of weights + 64 x (4000 + 300) tokens x 256 KiB = 67.2 GiB of KV."""
    path = _scenario(tmp_path, {"kind": "static", "batch_size": 64}, 4000, 300, 64, dtype="float32")
    with pytest.raises(UserError) as exc:
        simulate(load_scenario(path))
    msg = str(exc.value)
    for part in ("llama-3.1-8b", "float32", "tp=1", "batch of 64", "server.batch_size"):
        assert part in msg, msg
    card = load_model_card("llama-3.1-8b")
    need = (card.num_params() * 4 + 64 * 4300 * 2 * 32 * 1024 * 4) / GIB
    assert _needed_gib(msg) == pytest.approx(need, abs=0.06)
    assert need > H100_GIB


def test_static_prompts_are_padded_to_the_longest_of_the_batch(tmp_path):
    """Batch of 64: one 4000-token prompt pads the other 63 (each 100 tokens) to 4000."""
    path = _scenario(tmp_path, {"kind": "static", "batch_size": 64}, 100, 300, 64, dtype="float32")
    simulate(load_scenario(path))  # 64 x 400 tokens fit
    data = yaml.safe_load(path.read_text())
    data["workload"]["prompt_tokens"] = {"kind": "uniform", "min": 100, "max": 4000}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="batch of 64 x"):
        simulate(load_scenario(path))


# ---- through the CLI, sweeps and plans ----------------------------------------------------------
def test_cli_exits_2_and_a_sweep_point_is_an_error_row(tmp_path):
    path = _scenario(tmp_path, {"kind": "sequential"}, model="llama-3.1-70b")
    r = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not fit" in r.output and "Traceback" not in r.output
    row = run_point(path, {"dtype": "bfloat16"}, 4)
    assert "does not fit" in row["error"]
    assert not run_point(path, {"dtype": "int4"}, 4)["error"]  # 4-bit 70B: ~35 GiB
