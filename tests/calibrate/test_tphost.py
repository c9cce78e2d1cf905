"""The tensor-parallel host benchmark on CPU: two torchrun ranks (gloo), a tiny model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DRIVER = """\
import sys
from pathlib import Path
from llm_energy_sim.config.modelcard import load_model_card_file
from llm_energy_sim.calibrate.tphost import measure
card = Path(sys.argv[1])
out = Path(sys.argv[2])
n = measure(out / "tphost.csv", shapes=(("tiny", 1), ("tiny", 3)), dtype="float32", prompt=16,
            new_tokens=4, repeats=(2, 2), model_root=out / "models",
            card_loader=lambda name: load_model_card_file(card), misses_csv=out / "shapemiss.csv")
import os
if os.environ.get("RANK") == "0":
    print("ROWS", n, flush=True)
"""


def test_tp_host_bench_two_ranks_on_cpu(tmp_path: Path, torchrun2):
    r = torchrun2(DRIVER, str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ROWS 2" in r.stdout
    df = pd.read_csv(tmp_path / "tphost.csv")
    assert list(df["tp"]) == [2, 2] and list(df["layers"]) == [1, 3]
    assert (df["prefill_s"] > 0).all() and (df["decode_s_per_token"] > 0).all()
    # attention shape misses under TP: shapemiss.csv's columns, engine hf_eager_tp, fit reads it
    from llm_energy_sim.calibrate.fit import fit_shape_misses

    miss = pd.read_csv(tmp_path / "shapemiss.csv")
    assert list(miss["engine"]) == ["hf_eager_tp"] * 2 and list(miss["layers"]) == [1, 3]
    assert (miss["cached_step_s"] > 0).all() and (miss["fresh_step_s"] > 0).all()
    assert "hf_eager_tp" in fit_shape_misses(miss)
    r = torchrun2(DRIVER, str(tmp_path))  # a rerun skips what is measured (resumable)
    assert r.returncode == 0 and "ROWS 0" in r.stdout


def test_tp_host_entries_per_degree_from_every_pass():
    """Each measured TP degree gets its own host entry, fitted over every pass at that degree
    (two leases of the 2-GPU node); unmeasured degrees fall back to the highest measured; the
    TP misses are pooled over both multi-GPU nodes."""
    from llm_energy_sim.calibrate.fit import fit_tp_hosts, host_runs
    from llm_energy_sim.config.profile import load_profile

    raw = Path(__file__).resolve().parents[2] / "measurements" / "calibration"
    prof, _ = load_profile("h200")
    hosts = fit_tp_hosts([raw / "h200x4", raw / "h200x2", raw / "h200x2-b"], prof)
    assert set(hosts) == {"hf_eager_tp2", "hf_eager_tp4", "hf_eager_tp"}
    for table in ("h200x2/tphost.csv", "h200x2-b/tphost.csv"):
        assert table in hosts["hf_eager_tp2"].source
    assert "h200x4/tphost-2.csv" in hosts["hf_eager_tp4"].source
    passes = host_runs(
        pd.concat([pd.read_csv(raw / d / "tphost.csv") for d in ("h200x2", "h200x2-b")])
    )
    assert list(passes["passes"]) == [2, 2]
    for key in hosts:  # the shipped profile is this fit, every term
        for term in ("per_step_s", "per_layer_s", "per_sequence_s"):
            assert getattr(prof.host[key], term) == pytest.approx(
                getattr(hosts[key], term), rel=1e-6, abs=1e-12
            ), (key, term)
        # the tables hold batch 1 only: the per-sequence slope is the one-GPU entry's
        assert hosts[key].per_sequence_s == prof.host["hf_eager"].per_sequence_s
        assert "per_sequence_s not identified (one batch size" in hosts[key].source
    assert prof.host_overhead("hf_eager", "bfloat16", 2) is prof.host["hf_eager_tp2"]
    assert prof.host_overhead("hf_eager", "bfloat16", 4) is prof.host["hf_eager_tp4"]
    assert prof.host_overhead("hf_eager", "bfloat16", 8) is prof.host["hf_eager_tp"]
    assert prof.host["hf_eager_tp"].per_layer_s == prof.host["hf_eager_tp4"].per_layer_s
    # pooled TP misses: the rows of both nodes, one line over their layer counts
    miss = prof.host["hf_eager_tp2"]
    assert "h200x2-b/shapemiss.csv" in miss.source and "h200x4/shapemiss.csv" in miss.source
    assert 0.025 < miss.attn_shape_miss_s["bfloat16"] < 0.05


def test_command_line_cut_down_options(tmp_path):
    """run_cli: --shapes, --dtype, --prompt, --new-tokens, --model-root (and --batches for the
    CB benchmark) reach the benchmark as its arguments; a bad value is a usage error (exit 2)."""
    from llm_energy_sim.calibrate.tphost import run_cli

    got = {}

    def bench(out_csv, **kw):  # the benchmark's signature: the table, then keyword options
        got.update(kw, out_csv=out_csv)

    args = ["--out", str(tmp_path / "o"), "--shapes", "tiny:1,tiny:3", "--dtype", "float32"]
    args += ["--prompt", "16", "--new-tokens", "4", "--batches", "1,4", "--misses"]
    run_cli("doc", bench, "tpcbhost.csv", args, batches=True)
    assert got == {
        "out_csv": tmp_path / "o" / "tpcbhost.csv",
        "misses_csv": tmp_path / "o" / "shapemiss.csv",
        "shapes": (("tiny", 1), ("tiny", 3)),
        "dtype": "float32",
        "prompt": 16,
        "new_tokens": 4,
        "batches": (1, 4),
    }
    got.clear()
    run_cli("doc", bench, "tphost.csv", ["--out", str(tmp_path / "p")])
    assert got == {"out_csv": tmp_path / "p" / "tphost.csv", "misses_csv": None}
    for bad in (
        ["--shapes", "tiny"],
        ["--shapes", "tiny:0"],
        ["--prompt", "1,2"],
        ["--batches", "1"],
    ):
        with pytest.raises(SystemExit) as exc:
            run_cli("doc", bench, "tphost.csv", ["--out", str(tmp_path / "q"), *bad])
        assert exc.value.code == 2, bad
