"""SIGKILL of `sim run` and `sim sweep` at every filesystem change they make (and inside
the writing of each file), in a real subprocess (tests/killpoints.py numbers the changes
with an audit hook, so every kill point is hit deterministically; nothing here depends on
when a kill lands).

`sim run`: after a kill the results directory is absent or incomplete and then refused by
every reader (sim compare either side, sim steps as the measurement and as --predicted,
read_results, read_summary, read_steps) with one line; or it is complete, holds exactly
the files of the previous run or of the new one (never a mix), and reads. A rerun then
writes a complete directory with the new run's files only (no stale file of the previous
run, no hidden temp dirs) and the same requests as an uninterrupted run.

`sim sweep`: a kill never loses a finished point (a point whose journal line was whole
before the kill is there, byte for byte, after the resume, and is not run again), and a
resume leaves every point once, the table whole and no temp file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from badinput import SMALL, assert_refused, sim, write_scenario
from killpoints import changes, run

from llm_energy_sim.analysis.sweep import read_journal
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.marker import is_complete
from llm_energy_sim.results.output import read_results, read_summary
from llm_energy_sim.results.steptable import read_steps

#: big enough that its CSV tables are written in many pieces (200 kB of requests)
SCEN = {
    **SMALL,
    "workload": {
        **SMALL["workload"],
        "requests": 1000,
        "arrival": {"kind": "fixed", "interval_ms": 10},
    },
}
#: the killed run writes text tables (in pieces, through Python) and a step log ...
CSV_RUN = ["--step-log", "--requests-format", "csv"]
CSV_FILES = {".complete", "requests.csv", "steps.csv", "summary.json", "timeline.csv"}
#: ... over a previous run that wrote Parquet and no step log
PARQUET_RUN = ["--requests-format", "parquet"]
PARQUET_FILES = {".complete", "requests.parquet", "summary.json", "timeline.csv"}


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def _run_args(*extra: str) -> list[str]:
    return ["run", "s.yaml", "--out", "out", "--quiet", *extra]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The scenario and an uninterrupted run of each kind: `csv` (the one killed by the
    audit hook) and `parquet` (the previous run it replaces)."""
    root = tmp_path_factory.mktemp("kills")
    write_scenario(root / "s.yaml", SCEN)
    for name, extra in (("csv", CSV_RUN), ("parquet", PARQUET_RUN)):
        r = sim(["run", "s.yaml", "--out", name, "--quiet", *extra], root)
        assert r.exit_code == 0, r.output
    assert _files(root / "csv") == CSV_FILES and _files(root / "parquet") == PARQUET_FILES
    return root


def _work(base: Path, tmp: Path, with_previous: bool) -> Path:
    work = tmp / "w"
    work.mkdir()
    shutil.copy(base / "s.yaml", work / "s.yaml")
    if with_previous:
        shutil.copytree(base / "parquet", work / "out")
    return work


def _kill_points(base: Path, tmp: Path, with_previous: bool) -> list[tuple[int, str, str]]:
    """(number, mode, event) of every kill to try: before each change and, over a previous
    run, inside each file written whole ('w' opens; a fresh run writes the same files)."""
    work = _work(base, tmp, with_previous)
    events = changes(_run_args(*CSV_RUN), work, work, tmp / "log")
    shutil.rmtree(work)
    points = [(int(e.split()[0]), "before", e) for e in events]
    if with_previous:
        points += [(int(e.split()[0]), "during", e) for e in events if e.endswith(" w")]
    assert len(events) >= 10, events  # the hook sees the writes
    return points


def _refused_everywhere(work: Path, out: Path, ref: Path) -> None:
    """Every reader refuses `out` with one line, exit code 2, no traceback."""
    cmp, st = work / "cmp", work / "st"
    for args in (
        ["compare", out, ref, "--out", cmp, "--no-plot"],
        ["compare", ref, out, "--out", cmp, "--no-plot"],
        ["steps", "s.yaml", out, "--out", st, "--no-plot"],
        ["steps", "s.yaml", ref, "--predicted", out, "--out", st, "--no-plot"],
    ):
        assert_refused(sim(args, work))
    for reader in (read_results, read_summary, read_steps):
        with pytest.raises(UserError) as exc:
            reader(out)
        assert len(str(exc.value).splitlines()) == 1


def _check_after_kill(work: Path, base: Path, previous: bool) -> None:
    out, ref = work / "out", base / "csv"
    if out.is_dir() and is_complete(out):
        files = _files(out)
        assert files in ([CSV_FILES, PARQUET_FILES] if previous else [CSV_FILES]), files
        same_as = base / ("csv" if files == CSV_FILES else "parquet")
        pd.testing.assert_frame_equal(read_results(out)[1], read_results(same_as)[1])
        r = sim(["compare", out, ref, "--out", work / "cmp", "--no-plot"], work)
        assert r.exit_code == 0, r.output
        if files == CSV_FILES:
            read_steps(out)
        shutil.rmtree(work / "cmp")
    else:
        _refused_everywhere(work, out, ref)


def _check_rerun(work: Path, base: Path) -> None:
    r = sim(_run_args(*CSV_RUN), work)
    assert r.exit_code == 0, r.output
    out = work / "out"
    assert _files(out) == CSV_FILES  # nothing of the previous run or of the killed one
    assert [p.name for p in work.iterdir() if p.name.startswith(".out.")] == []
    pd.testing.assert_frame_equal(read_results(out)[1], read_results(base / "csv")[1])
    pd.testing.assert_frame_equal(read_steps(out), read_steps(base / "csv"))


@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "over-a-previous-run"])
def test_sim_run_killed_at_every_change(base, tmp_path, previous):
    for n, mode, event in _kill_points(base, tmp_path, previous):
        case = tmp_path / f"k{n}-{mode}"
        case.mkdir()
        work = _work(base, case, previous)
        r = run(_run_args(*CSV_RUN), work, work, n, mode)
        assert r.returncode == -9, (event, mode, r.returncode, r.stderr)
        try:
            _check_after_kill(work, base, previous)
            _check_rerun(work, base)
        except AssertionError as exc:
            raise AssertionError(f"killed {mode} change {event}: {exc}") from exc
        shutil.rmtree(case)


def _staged(work: Path, name: str) -> bool:
    """Whether the hidden directory a run is writing holds `name` with bytes in it."""
    return any(p.stat().st_size > 0 for p in work.glob(f".out.tmp-*/{name}") if p.is_file())


#: moments the test itself sees from outside: the Parquet table is written by pyarrow's
#: own code, which the audit hook does not see
OUTSIDE = {
    "staging-dir": lambda work: any(work.glob(".out.tmp-*")),
    "parquet-bytes": lambda work: _staged(work, "requests.parquet"),
    "timeline-bytes": lambda work: _staged(work, "timeline.csv"),
}


@pytest.mark.parametrize("moment", list(OUTSIDE))
def test_sim_run_killed_from_outside(base, tmp_path, moment):
    """SIGKILL from the test process as soon as it sees `moment` (wherever the kill lands,
    even after the run ended, the same checks hold), over a previous CSV run."""
    work = _work(base, tmp_path, with_previous=False)
    shutil.copytree(base / "csv", work / "out")  # the previous run: CSV and a step log
    args = ["run", "s.yaml", "--out", "out", "--quiet", *PARQUET_RUN]
    proc = subprocess.Popen([sys.executable, "-m", "llm_energy_sim.cli", *args], cwd=work)
    try:
        while proc.poll() is None and not OUTSIDE[moment](work):
            time.sleep(0.0005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    out = work / "out"
    if out.is_dir() and is_complete(out):
        assert _files(out) in (CSV_FILES, PARQUET_FILES)
        read_results(out)
    else:
        _refused_everywhere(work, out, base / "csv")
    r = sim(args, work)
    assert r.exit_code == 0, r.output
    assert _files(out) == PARQUET_FILES
    assert [p.name for p in work.iterdir() if p.name.startswith(".out.")] == []
    pd.testing.assert_frame_equal(read_results(out)[1], read_results(base / "parquet")[1])


# ---- sim sweep ---------------------------------------------------------------------------
AXIS = ["--set", "seed=0,1,2,3"]
POINTS = 4


def _sweep_args(workers: int) -> list:
    return ["sweep", "s.yaml", *AXIS, "--workers", workers, "--out", "o", "--quiet"]


def _sweep_work(tmp: Path, half_done: bool) -> Path:
    """A folder with the scenario; with half_done, a sweep of the same scenario that
    finished seed 0 and 1 and was killed inside its third journal line."""
    work = tmp / "w"
    work.mkdir()
    write_scenario(work / "s.yaml", SMALL)
    if half_done:
        args = ["sweep", "s.yaml", "--set", "seed=0,1,2", "--workers", 1, "--out", "o", "--quiet"]
        assert sim(args, work).exit_code == 0
        jp = work / "o" / "sweep.jsonl"
        text = jp.read_text()
        jp.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 1 + 25])  # a torn 3rd line
    return work


def _whole_lines(jp: Path) -> list[str]:
    if not jp.exists():
        return []
    return [line for line in jp.read_text().splitlines(keepends=True) if line.endswith("\n")]


@pytest.mark.parametrize(
    ("workers", "half_done"),
    [(1, False), (1, True), (2, False)],
    ids=["fresh", "resume", "fresh-pool"],
)
def test_sim_sweep_killed_at_every_change(tmp_path, workers, half_done):
    (tmp_path / "probe").mkdir()
    probe = _sweep_work(tmp_path / "probe", half_done)
    events = changes(_sweep_args(workers), probe, probe, tmp_path / "log")
    appends = [e for e in events if " open " in e and e.endswith(" a")]
    assert len(appends) == POINTS - 2 * half_done, events  # one journal line per point run
    for n in range(1, len(events) + 1):
        case = tmp_path / f"k{n}"
        case.mkdir()
        work = _sweep_work(case, half_done)
        jp = work / "o" / "sweep.jsonl"
        finished_before = _whole_lines(jp)
        r = run(_sweep_args(workers), work, work, n)
        assert r.returncode == -9, (events[n - 1], r.returncode, r.stderr)
        try:
            kept = _whole_lines(jp)  # the points finished when the kill landed
            assert set(finished_before) <= set(kept)
            read_journal(jp)  # a torn last line at most, never a corrupted journal
            r = sim(_sweep_args(workers), work)
            assert r.exit_code == 0, r.output
            lines = jp.read_text().splitlines(keepends=True)
            assert set(kept) <= set(lines)  # kept byte for byte ...
            assert len(lines) == POINTS, lines  # ... and not run again: each point once
            assert len({row["point"] for row in read_journal(jp)}) == POINTS
            table = pd.read_csv(work / "o" / "sweep.csv")
            assert sorted(table["set.seed"]) == [0, 1, 2, 3]
            assert _files(work / "o") == {"sweep.csv", "sweep.jsonl", "sweep.spec.json"}
        except AssertionError as exc:
            raise AssertionError(f"killed before change {events[n - 1]}: {exc}") from exc
        shutil.rmtree(case)
