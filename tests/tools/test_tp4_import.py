"""tools/tp4_import.py on the committed TP 2 sessions that measured the host in the same call
(measurements/live/tp2-b, tp2-c), the stand-in for the TP 4 call not yet made: its refit is the
fit of the shipped TP entries, it lands where the call's host speed says, and its predictions
are `sim run`'s at the factor it reports."""

from __future__ import annotations

import json
import math
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.calibrate.fit import decode_step, host_runs
from llm_energy_sim.calibrate.hostspeed import factor_from_tables, host_time_factor
from llm_energy_sim.cli.main import main as sim
from llm_energy_sim.config.profile import load_profile
from tools import tp4_import
from tools.import_live import to_parquet

REPO = Path(__file__).resolve().parents[2]
LIVE = REPO / "measurements" / "live"
RAW = REPO / "measurements" / "calibration"
TERMS = ("per_step_s", "per_layer_s", "per_sequence_s")


def _host_dir(tmp_path: Path, tables: dict[str, Path]) -> Path:
    """A lease's host/ folder holding raw calibration tables as the import writes them."""
    host = tmp_path / "lease" / "host"
    host.mkdir(parents=True)
    for stem, csv in tables.items():
        to_parquet(csv, host / f"{stem}.parquet")
    return host


def test_refit_of_the_calibration_tables_is_the_shipped_tp2_entries(tmp_path):
    """The shipped hf_eager_tp2 (two passes on the 2-GPU node, h200x2 and h200x2-b) and
    transformers_cb_tp2 (h200x2-cb) through the tool's refit: the same terms."""
    host = _host_dir(
        tmp_path,
        {
            "tphost-before": RAW / "h200x2" / "tphost.csv",
            "tphost-after": RAW / "h200x2-b" / "tphost.csv",
            "tpcbhost-before": RAW / "h200x2-cb" / "tpcbhost.csv",
        },
    )
    prof, path = load_profile("h200")
    data = json.loads(Path(path).read_text())
    new, changed = tp4_import.refit_profile(data, host, "lease", 2)
    assert set(changed) == {"hf_eager_tp2", "transformers_cb_tp2", "transformers_cb_tp"}
    for key in ("hf_eager_tp2", "transformers_cb_tp2"):
        for term in TERMS:
            assert new["host"][key][term] == pytest.approx(data["host"][key][term], rel=1e-6), (
                key,
                term,
            )
        # the host-wait power is fitted over the kernels' modelled energy, which later refits
        # of kernel classes moved a little (the shipped profile's is from the full refit)
        assert new["host"][key]["wait_w"] == pytest.approx(data["host"][key]["wait_w"], rel=0.05)
        # no shape-miss tables in this call: the misses and cold start as they were
        for k in ("attn_shape_miss_s", "attn_shape_miss_per_layer_s", "cold_start_s"):
            assert new["host"][key][k] == data["host"][key][k]
        assert "lease/host/" in new["host"][key]["source"]
    # hf_eager_tp (degrees not measured) stays TP 4's: 2 is not the highest degree measured
    assert new["host"]["hf_eager_tp"] == data["host"]["hf_eager_tp"]
    assert new["host"]["transformers_cb_tp"]["source"].startswith("TP degrees not measured")
    untouched = set(data["host"]) - set(changed)
    assert all(new["host"][k] == data["host"][k] for k in untouched)
    assert {k: v for k, v in new.items() if k != "host" and k != "provenance"} == {
        k: v for k, v in data.items() if k != "host" and k != "provenance"
    }


def test_tp2b_refit_predictions_and_table(tmp_path):
    """tp2-b (HF generate and CB under TP 2, both TP host benchmarks in the call): the refit
    puts the call's host speed into the entries (measured against the profile before it the
    call ran at 1.2x), predictions at the call's factor are `sim run`'s, measured figures are
    the summaries'."""
    lease = LIVE / "tp2-b"
    prof_out = tmp_path / "h200.json"
    md = tmp_path / "table.md"
    rc = tp4_import.main(
        [str(lease), "--tp", "2", "--out", str(tmp_path / "pred"), "--markdown", str(md),
         "--write", "--profile-out", str(prof_out)]
    )  # fmt: skip
    assert rc == 0
    rows = {r["case"]: r for r in json.loads((tmp_path / "pred" / "tp_session.json").read_text())}
    assert set(rows) == {p.name for p in lease.iterdir() if (p / "summary.json").is_file()}
    shipped, _ = load_profile("h200")
    refit, _ = load_profile(str(prof_out))
    tphost, tpcb = lease / "host" / "tphost.parquet", lease / "host" / "tpcbhost.parquet"
    for table, engine in ((tphost, "hf_eager"), (tpcb, "transformers_cb")):
        runs = pd.read_parquet(table)
        before = host_time_factor(runs, shipped, engine)["host_time_factor"].mean()
        after = host_time_factor(runs, refit, engine)["host_time_factor"].mean()
        assert before > 1.1  # a slower host than the entries' calibration node ...
        assert after == pytest.approx(1.0, abs=0.05)  # ... which the refit now carries
        # the refit's decode steps at the call's shapes: on average the shipped ones at the
        # call's host speed (shape by shape the split between the terms moves)
        ratios = [
            decode_step(r, refit, engine, 2)[1].wall_s
            / decode_step(r, shipped, engine, 2)[1].wall_s
            for _, r in host_runs(runs).iterrows()
        ]
        assert sum(ratios) / len(ratios) == pytest.approx(before, rel=0.05), engine
    for name, r in rows.items():
        measured = json.loads((lease / name / "summary.json").read_text())
        assert r["energy_wh_measured"] == pytest.approx(measured["energy"]["per_request_wh"])
        cb = "cb" in name
        assert r["factor_from"] == ("TP tpcbhost benchmark" if cb else "TP tphost benchmark")
        table = tpcb if cb else tphost
        assert r["host_time_factor"] == pytest.approx(factor_from_tables([table], refit)[0])
        assert r["before_host_time_factor"] == pytest.approx(
            factor_from_tables([table], shipped)[0]
        )
        # the same prediction by hand: sim run at that factor on the refitted profile
        scen = REPO / "scenarios" / "validation" / f"{name[4:].replace('-', '_')}.yaml"
        out = tmp_path / f"run-{name}"
        res = CliRunner().invoke(
            sim,
            ["run", str(scen), "--profile", str(prof_out), "--no-interval", "--quiet",
             "--set", f"hardware.host_time_factor={r['host_time_factor']!r}", "--out", str(out)],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        pred = json.loads((out / "summary.json").read_text())
        assert r["energy_wh_predicted"] == pytest.approx(pred["energy"]["per_request_wh"])
        assert r["tpot_p50_predicted"] == pytest.approx(pred["latency_s"]["tpot"]["p50"])
        e = r["energy_wh_predicted"] / r["energy_wh_measured"] - 1
        assert r["energy"] == pytest.approx(e)
        assert r["meets_targets"] == all(
            abs(r[k]) <= t for k, t in tp4_import.TARGETS.items() if math.isfinite(r[k])
        )
    # HF generate: the call's own shape misses agree with the pooled ones at its host speed, so
    # refit and shipped-at-the-call's-factor predict within a few points of each other
    for name in ("val-tp2-70b8l-sequential", "val-tp2-70b8l-fixed2s"):
        for k in ("energy", "tpot_p50"):
            assert rows[name][k] == pytest.approx(rows[name][f"before_{k}"], abs=0.04), (name, k)
    text = md.read_text()
    assert all(name in text for name in rows) and "cases meet every target" in text
    assert "`hf_eager_tp2`" in text and "tphost.parquet: 2 runs" in text
    # the written profile is the refit: --check says so, and says so when it is not
    check = ["--tp", "2", "--profile-out", str(prof_out), "--check"]
    assert tp4_import.main([str(lease), *check]) == 0
    prof_out.write_text(prof_out.read_text().replace('"name": "h200"', '"name": "h200-x"'))
    assert tp4_import.main([str(lease), *check]) == 1


def test_tp2c_burst_schedule_against_the_step_log(tmp_path):
    """tp2-c (CB under TP 2 with step logs): the simulated burst batches as the engine did,
    step by step, at the refitted profile."""
    rc = tp4_import.main([str(LIVE / "tp2-c"), "--out", str(tmp_path / "pred")])
    assert rc == 0
    rows = {r["case"]: r for r in json.loads((tmp_path / "pred" / "tp_session.json").read_text())}
    steps = pd.read_parquet(LIVE / "tp2-c" / "val-tp2-70b8l-cb-burst" / "steps.parquet")
    assert rows["val-tp2-70b8l-cb-burst"]["schedule"] == f"{len(steps)} of {len(steps)}"
    for r in rows.values():
        assert r["engine_saw"] is not None and 0.5 < r["engine_saw"] < 2.0


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    def refused(args: list[str], words: str) -> None:
        assert tp4_import.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err

    refused([str(tmp_path / "nope.tgz"), "--lease", "x"], "no such file")
    refused([str(LIVE / "tp2-b"), "--tp", "4"], "TP degree [2] (--tp 4)")
    bad = tmp_path / "bad.tgz"
    (tmp_path / "junk").mkdir()
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(tmp_path / "junk", arcname="junk")
    refused([str(bad), "--lease", "x", "--measurements", str(tmp_path)], "no replay/ and host/")
    refused([str(bad), "--measurements", str(tmp_path)], "--lease NAME")
    session = tmp_path / "s"
    (session / "replay").mkdir(parents=True)
    (session / "host").mkdir()
    live = str(tmp_path / "live")
    refused([str(session), "--lease", "x", "--measurements", live], "no TP host benchmark")
    assert not (tmp_path / "live" / "x").exists()  # refused before anything is written
    (session / "host" / "tphost-before").mkdir()
    shutil.copy(RAW / "h200x2-b" / "tphost.csv", session / "host" / "tphost-before")
    shutil.copytree(LIVE / "tp2-b", tmp_path / "live" / "taken")
    refused([str(session), "--lease", "taken", "--measurements", live], "exists")
