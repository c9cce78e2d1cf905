"""The tensor-parallel host benchmark on CPU: two torchrun ranks (gloo), a tiny model."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

CARD = """\
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

DRIVER = """\
import sys
from pathlib import Path
from sim.modelcard import load_model_card_file
from calibrate.tphost import measure
card = Path(sys.argv[1])
out = Path(sys.argv[2])
n = measure(out / "tphost.csv", shapes=(("tiny", 1), ("tiny", 3)), dtype="float32", prompt=16,
            new_tokens=4, repeats=(2, 2), model_root=out / "models",
            card_loader=lambda name: load_model_card_file(card), misses_csv=out / "shapemiss.csv")
import os
if os.environ.get("RANK") == "0":
    print("ROWS", n, flush=True)
"""


def _torchrun(tmp_path: Path) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    return subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(tmp_path / "drive.py"),
            str(tmp_path / "card.yaml"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_tp_host_bench_two_ranks_on_cpu(tmp_path: Path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    (tmp_path / "card.yaml").write_text(CARD)
    (tmp_path / "drive.py").write_text(textwrap.dedent(DRIVER))
    r = _torchrun(tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ROWS 2" in r.stdout
    df = pd.read_csv(tmp_path / "tphost.csv")
    assert list(df["tp"]) == [2, 2] and list(df["layers"]) == [1, 3]
    assert (df["prefill_s"] > 0).all() and (df["decode_s_per_token"] > 0).all()
    # attention shape misses under TP: shapemiss.csv's columns, engine hf_eager_tp, fit reads it
    from calibrate.fit import fit_shape_misses

    miss = pd.read_csv(tmp_path / "shapemiss.csv")
    assert list(miss["engine"]) == ["hf_eager_tp"] * 2 and list(miss["layers"]) == [1, 3]
    assert (miss["cached_step_s"] > 0).all() and (miss["fresh_step_s"] > 0).all()
    assert "hf_eager_tp" in fit_shape_misses(miss)
    r = _torchrun(tmp_path)  # a rerun skips what is measured (resumable)
    assert r.returncode == 0 and "ROWS 0" in r.stdout
