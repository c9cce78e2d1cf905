"""`sim calibrate`'s stages as objects: the list and its order, --stages validation, resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_energy_sim.calibrate.stages import STAGE_NAMES, STAGES, Stage, select
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError


def test_stages_run_in_this_order():
    assert STAGE_NAMES == (
        "idle",
        "grid",
        "graph",
        "host",
        "cbhost",
        "cbhost-graphs",
        "shapemiss",
        "coldstart",
        "hostspeed",
        "check",
        "repeat",
        "interconnect",
    )
    assert len(set(STAGE_NAMES)) == len(STAGES)


def test_every_stage_names_its_tables_and_runs_before_cuda_only_first():
    for s in STAGES:
        assert isinstance(s, Stage) and s.writes and all(w.endswith(".csv") for w in s.writes)
        assert type(s).run is not Stage.run, s.name
    before = [s.before_cuda for s in STAGES]
    assert before == sorted(before, reverse=True)  # the idle reading precedes any CUDA context
    assert [s.name for s in STAGES if s.before_cuda] == ["idle"]


def test_selection_follows_the_list_order_not_the_given_one():
    assert [s.name for s in select("interconnect, host,idle")] == ["idle", "host", "interconnect"]
    # a name that is a prefix of another picks only itself
    assert [s.name for s in select("hostspeed")] == ["hostspeed"]


@pytest.mark.parametrize("spec", ["host,bogus", "", " , "])
def test_an_unknown_or_empty_selection_is_a_one_line_error_listing_the_names(spec):
    with pytest.raises(UserError) as exc:
        select(spec)
    msg = str(exc.value)
    assert "\n" not in msg and "allowed: " + ", ".join(STAGE_NAMES) in msg
    if "bogus" in spec:
        assert "unknown bogus" in msg


def test_cli_rejects_an_unknown_stage_with_exit_2(tmp_path: Path):
    r = CliRunner().invoke(main, ["calibrate", "--out", str(tmp_path), "--stages", "idle,gird"])
    assert r.exit_code == 2
    assert "unknown gird" in r.output and "Traceback" not in r.output


def test_done_tells_a_rerun_what_to_skip(tmp_path: Path):
    by_name = {s.name: s for s in STAGES}
    assert not by_name["idle"].done(tmp_path) and not by_name["interconnect"].done(tmp_path)
    (tmp_path / "idle.csv").write_text("state,t_s,power_w,duty\n")
    (tmp_path / "allreduce.csv").write_text("backend\n")
    assert by_name["idle"].done(tmp_path) and by_name["interconnect"].done(tmp_path)
    # the others resume row by row (their runners skip the keys already in the table)
    assert not any(s.done(tmp_path) for s in STAGES if s.name not in ("idle", "interconnect"))


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is not None, reason="NVML bindings here")
def test_measuring_without_nvml_is_a_one_line_exit_2(tmp_path: Path):
    r = CliRunner().invoke(main, ["calibrate", "--out", str(tmp_path), "--stages", "grid"])
    assert r.exit_code == 2
    assert "NVML" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "provenance.json").exists()


def test_a_stage_that_is_done_is_skipped_and_said_so(tmp_path: Path):
    from llm_energy_sim.calibrate.session import run_stage
    from llm_energy_sim.calibrate.stages import Context
    from llm_energy_sim.meter.monitor import EnergyMonitor

    class Marker(Stage):
        name, writes = "marker", ("marker.csv",)

        def done(self, out_dir: Path) -> bool:
            return (out_dir / "marker.csv").exists()

        def run(self, ctx: Context) -> None:
            with ctx.monitor.window("marker") as w:
                pass
            ctx.path("marker.csv").write_text(f"seconds\n{w.measurement.time_s}\n")

    lines: list[str] = []
    ctx = Context(tmp_path, EnergyMonitor.timing_only(), ("bfloat16",), echo=lines.append)
    run_stage(Marker(), ctx)
    first = (tmp_path / "marker.csv").read_text()
    run_stage(Marker(), ctx)
    assert (tmp_path / "marker.csv").read_text() == first
    assert lines == ["marker: marker.csv already measured, kept (delete to redo)"]
