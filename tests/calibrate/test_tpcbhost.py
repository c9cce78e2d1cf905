"""The continuous batching host benchmark under tensor parallelism on CPU: two torchrun ranks
(gloo), a tiny model, transformers' TP-aware CB manager driven by rank 0; and its fit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

RAW_ROOT = Path(__file__).resolve().parents[2] / "measurements" / "calibration"

DRIVER = """\
import os
import sys
from pathlib import Path
from llm_energy_sim.config.modelcard import load_model_card_file
from llm_energy_sim.calibrate.tpcbhost import measure
card = Path(sys.argv[1])
out = Path(sys.argv[2])
n = measure(out / "tpcbhost.csv", shapes=(("tiny", 1), ("tiny", 3)), dtype="float32",
            batches=(1, 4), prompt=16, new_tokens=4, model_root=out / "models",
            card_loader=lambda name: load_model_card_file(card),
            misses_csv=out / "shapemiss.csv", miss_prompt=40)
if os.environ.get("RANK") == "0":
    print("ROWS", n, flush=True)
"""


def test_tp_cb_host_bench_two_ranks_on_cpu_and_its_fit(tmp_path: Path, torchrun2):
    r = torchrun2(DRIVER, str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ROWS 4" in r.stdout and "planned CB runs" in r.stdout
    df = pd.read_csv(tmp_path / "tpcbhost.csv")
    assert list(df["tp"]) == [2] * 4 and list(df["layers"]) == [1, 1, 3, 3]
    assert list(df["batch"]) == [1, 4, 1, 4] and list(df["method"]) == ["tpcb-v1"] * 4
    for col in ("prefill_s", "decode_s_per_token", "step_median_s"):
        assert (df[col] > 0).all() and (df[col] < 5).all(), col
    assert (df["error"].isna()).all()
    # attention shape misses of CB under TP: shapemiss.csv's columns, engine transformers_cb_tp
    from llm_energy_sim.calibrate.fit import fit_shape_misses
    from llm_energy_sim.calibrate.shapemiss import CB_BATCH, FIELDS

    miss = pd.read_csv(tmp_path / "shapemiss.csv")
    assert list(miss.columns) == ["key", *FIELDS]
    assert list(miss["engine"]) == ["transformers_cb_tp"] * 2 and list(miss["layers"]) == [1, 3]
    assert (miss["batch"] == CB_BATCH).all() and (miss["fresh_steps"] > 0).all()
    assert (miss["cached_step_s"] > 0).all() and (miss["fresh_step_s"] > 0).all()
    assert "transformers_cb_tp" in fit_shape_misses(miss)
    r = torchrun2(DRIVER, str(tmp_path))  # a rerun skips what is measured (resumable)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ROWS 0" in r.stdout
    assert len(pd.read_csv(tmp_path / "tpcbhost.csv")) == 4
    assert len(pd.read_csv(tmp_path / "shapemiss.csv")) == 2

    # the fit: the tiny card is no models/ card the cost model can cost, so the rows are
    # relabelled as the GPU run's shape (Qwen2.5-7B width at 1 and 3 layers, bf16)
    from llm_energy_sim.calibrate.fit import fit_profile, fit_tp_hosts
    from llm_energy_sim.config.profile import load_profile

    node = tmp_path / "node"
    node.mkdir()
    df.assign(model="qwen2.5-7b", dtype="bfloat16").to_csv(node / "tpcbhost.csv", index=False)
    miss.assign(model="qwen2.5-7b", dtype="bfloat16").to_csv(node / "shapemiss.csv", index=False)
    shipped, _ = load_profile("h100-sxm")
    # start from a profile without CB-under-TP entries, so the fit is what adds them
    base = shipped.model_copy(
        update={"host": {k: v for k, v in shipped.host.items() if "cb_tp" not in k}}
    )
    hosts = fit_tp_hosts([node], base, "transformers_cb")
    assert set(hosts) == {"transformers_cb_tp2", "transformers_cb_tp"}
    ho = hosts["transformers_cb_tp2"]
    assert "transformers continuous batching" in ho.source and "node/tpcbhost.csv" in ho.source
    assert ho.per_step_s + ho.per_layer_s > 0 and ho.fit_error.n_points == 4
    # fit_profile takes it from a --with dir; HF generate's TP entries are untouched by it
    prof = fit_profile(RAW_ROOT / "h100-v2", "t", base, (node,))
    got = prof.host_overhead("transformers_cb", "bfloat16", 2)
    assert got is prof.host["transformers_cb_tp2"]
    assert got.per_layer_s == pytest.approx(ho.per_layer_s, rel=1e-6)
    assert prof.host_overhead("transformers_cb", "bfloat16", 8) is prof.host["transformers_cb_tp"]
    assert prof.host_overhead("transformers_cb", "bfloat16", 1) is prof.host["transformers_cb"]
    assert "node/shapemiss.csv" in got.source  # the TP misses, pooled, attached to it
    assert "transformers_cb_tp2" not in base.host
