"""The host-speed factor: measured on a machine, applied to every host-side time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import run, scenario

from llm_energy_sim.calibrate.hostspeed import SHAPE, host_time_factor
from llm_energy_sim.config.profile import load_profile

RAW = Path(__file__).resolve().parents[2] / "measurements" / "calibration"


@pytest.mark.parametrize("raw_dir, profile", [("h100-v2", "h100-sxm"), ("h200", "h200")])
def test_factor_is_near_one_on_the_calibration_host(raw_dir, profile):
    """The host-fit run of the calibration itself: the factor is the fit's residual there."""
    runs = pd.read_csv(RAW / raw_dir / "host.csv")
    name, layers, dtype, (batch,) = SHAPE
    sel = runs[
        (runs.model == name)
        & (runs.layers == layers)
        & (runs.dtype == dtype)
        & (runs.batch == batch)
    ]
    f = host_time_factor(sel, load_profile(profile)[0])
    assert len(f) == len(sel) >= 1
    assert ((f.host_time_factor > 0.85) & (f.host_time_factor < 1.15)).all()


def test_host_time_factor_scales_host_bound_latency_not_the_physics():
    """Sequential HF eager on an 8B model is host-bound: a 1.5x slower host gives ~1.5x the
    TPOT; energy stays at or above the idle floor and the attribution still adds up."""
    wl = {
        "requests": 6,
        "arrival": {"kind": "fixed", "interval_ms": 4000},
        "prompt_tokens": {"kind": "fixed", "value": 300},
        "output_tokens": {"kind": "fixed", "value": 40},
    }
    base = scenario(server={"kind": "sequential"}, workload=wl, hardware={"host_time_factor": 1.0})
    slow = scenario(server={"kind": "sequential"}, workload=wl, hardware={"host_time_factor": 1.5})
    (_, df0, s0), (_, df1, s1) = run(base), run(slow)
    ratio = df1["tpot_s"].median() / df0["tpot_s"].median()
    assert 1.35 < ratio < 1.55
    assert s0["host_time_factor"] == 1.0 and s1["host_time_factor"] == 1.5  # recorded
    for res_df, summ in ((df0, s0), (df1, s1)):
        parts = res_df[["energy_prefill_j", "energy_decode_j", "energy_idle_share_j"]].sum(axis=1)
        assert parts.to_numpy() == pytest.approx(res_df["energy_j"].to_numpy(), rel=1e-9)
        assert summ["energy"]["total_j"] >= summ["energy"]["deep_idle_floor_j"]


def test_host_time_factor_scales_per_step_host_times_not_the_cold_start():
    """Misses and per-step host terms follow the host's speed; the one-time cold start does
    not (it did not on the H200 leases, docs/journal/validation.md)."""
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.config.profile import load_profile
    from llm_energy_sim.cost.costmodel import CostModel

    card, prof = load_model_card("llama-3.1-8b"), load_profile("h200")[0]
    base = CostModel(card, "bfloat16", prof, engine="transformers_cb")
    slow = CostModel(card, "bfloat16", prof, engine="transformers_cb", host_time_factor=1.5)
    assert slow.cold_s == base.cold_s > 0
    assert slow.miss_s == pytest.approx(1.5 * base.miss_s) and base.miss_s > 0
    assert slow.host_s(8) == pytest.approx(1.5 * base.host_s(8))


def test_hostspeed_stage_on_cpu(tiny_models, tmp_path: Path):
    """The stage's measurement is hostbench's own run (timing only on CPU), resumable."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.meter.monitor import EnergyMonitor

    out = tmp_path / "hostspeed.csv"
    shape = ("tiny-llama", 2, "float32", (1,))
    assert measure_host_speed(out, EnergyMonitor.timing_only(), device="cpu", shape=shape) == 1
    df = pd.read_csv(out)
    assert (df["decode_s_per_token"] > 0).all() and df["error"].isna().all()
    assert measure_host_speed(out, EnergyMonitor.timing_only(), device="cpu", shape=shape) == 0


def test_replay_records_the_live_host_speed_and_compare_reports_it(tiny_models, tmp_path: Path):
    """sim replay's --hostspeed path on CPU: the tiny model stands in for the host-fit shape
    (the real one is too big for CI's CPU); the factor lands in summary.json and sim compare
    prints it beside the factor the prediction used."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import json
    import shutil

    from click.testing import CliRunner

    from llm_energy_sim.cli.main import main
    from llm_energy_sim.cli.replay import measure_host_pass, record_host_speed
    from llm_energy_sim.config.scenario import load_scenario

    scen_args = ["--requests", "3", "--set", "model=tiny-llama", "--set", "dtype=float32"]
    meas, pred = tmp_path / "meas", tmp_path / "pred"
    path = "scenarios/validation/sequential.yaml"
    r = CliRunner().invoke(
        main,
        ["replay", path, "--engine", "transformers", "--device", "cpu", "--no-meter"]
        + scen_args
        + ["--out", str(meas), "--quiet"],
    )
    assert r.exit_code == 0, r.output
    scen = load_scenario(Path(path), {"workload.requests": 3, "model": "tiny-llama"})
    tiny = ("tiny-llama", 2, "float32", (1,))
    before = tmp_path / "before" / "hostspeed.csv"
    before.parent.mkdir()
    measure_host_pass(before, "cpu", False, "before", tiny)
    f = record_host_speed(meas, scen, "cpu", False, shape=tiny, before_csv=before)
    hs = json.loads((meas / "summary.json").read_text())["host_speed"]
    assert set(hs["passes"]) == {"before", "after"}
    assert hs["host_time_factor"] == pytest.approx(f) and f > 0
    assert f == pytest.approx(sum(hs["passes"].values()) / 2)  # the lease's mean of both passes
    assert set(hs["by_profile"]) == {"h100-sxm", "h200"}
    assert hs["profile"] == "h100-sxm" and len(pd.read_csv(meas / "hostspeed.csv")) == 2
    r = CliRunner().invoke(main, ["run", path, *scen_args, "--out", str(pred), "--quiet"])
    assert r.exit_code == 0, r.output
    cmp = ["compare", str(pred), str(meas), "--out", str(tmp_path / "cmp"), "--no-plot"]
    r = CliRunner().invoke(main, cmp)
    assert r.exit_code == 0, r.output
    assert f"host_time_factor {f:.2f} against h100-sxm" in r.output

    # the next replay's bracket starts with this one's after pass (sim replay --hostspeed
    # measures one pass between consecutive replays)
    from llm_energy_sim.cli.replay import _as_next_before

    nxt = _as_next_before(meas / "hostspeed.csv")
    row = pd.read_csv(nxt)
    after = pd.read_csv(meas / "hostspeed.csv").iloc[-1]
    assert len(row) == 1 and row["tag"].iloc[0].startswith("before-")
    assert row["key"].iloc[0].endswith(row["tag"].iloc[0])
    assert row["decode_s_per_token"].iloc[0] == pytest.approx(after["decode_s_per_token"])
    meas2 = tmp_path / "meas2"
    shutil.copytree(meas, meas2)
    (meas2 / "hostspeed.csv").unlink()
    record_host_speed(meas2, scen, "cpu", False, shape=tiny, before_csv=nxt)
    hs2 = json.loads((meas2 / "summary.json").read_text())["host_speed"]
    assert hs2["passes"]["before"] == pytest.approx(hs["passes"]["after"])
    assert len(pd.read_csv(meas2 / "hostspeed.csv")) == 2


def test_run_takes_the_host_speed_of_measured_runs(tmp_path: Path):
    """sim run --host-speed: the mean factor of the given host runs (here lease B's committed
    runs before and after its replays) against the run's profile, recorded with the runs;
    a missing table or a clash with --set is a one-line user error."""
    import json

    from click.testing import CliRunner

    from llm_energy_sim.cli.main import main
    from llm_energy_sim.config.profile import load_profile
    from llm_energy_sim.results.tables import read_table

    root = Path(__file__).resolve().parents[2]
    lease = root / "measurements/live/h200-b"
    before = read_table(lease / "host", "hostspeed-before")
    # a host table given as a file is read as CSV: the committed Parquet table, written out
    before.to_csv(tmp_path / "hostspeed-before.csv", index=False)
    tables = [tmp_path / "hostspeed-before.csv", lease / "burst"]
    want = pd.concat(
        [
            host_time_factor(t, load_profile("h200")[0])
            for t in (before, read_table(tables[1], "hostspeed"))
        ]
    ).host_time_factor
    scen = str(root / "scenarios/validation/fixed500ms.yaml")
    args = ["run", scen, "--profile", "h200", "--requests", "5"]
    out = tmp_path / "pred"
    hs = [a for t in tables for a in ("--host-speed", str(t))]
    r = CliRunner().invoke(main, [*args, *hs, "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(want) == 2 and summary["host_time_factor"] == pytest.approx(want.mean())
    assert 1.4 < summary["host_time_factor"] < 1.75  # the slow lease
    assert [x["factor"] for x in summary["host_time_factor_runs"]] == pytest.approx(list(want))
    r = CliRunner().invoke(main, [*args, "--host-speed", str(tmp_path / "none.csv"), "--quiet"])
    assert r.exit_code == 2 and "no such file" in r.output
    clash = ["--set", "hardware.host_time_factor=1.2", "--quiet"]
    r = CliRunner().invoke(main, [*args, *hs, *clash])
    assert r.exit_code == 2 and "not both" in r.output
