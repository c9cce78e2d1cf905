"""`sim sweep` on bad input and after kills: corrupted journals and specs are one line
(exit 2, nothing rewritten); a kill at any byte of the journal's rewrite or of an append
loses no finished point; a swept key that an option overrides is an error; pool workers
die with their parent, SIGKILL included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from badinput import SMALL, assert_refused, refused, sim, tree, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_energy_sim.analysis.sweep import journal_path, read_journal, run_sweep, spec_path

FUZZ = settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
AXIS = "seed=0,1,2"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-point sweep: its folder and the journal's text."""
    root = tmp_path_factory.mktemp("sweep")
    write_scenario(root / "s.yaml", SMALL)
    # relative paths (the spec records the scenario as given), so a copy resumes as itself
    r = sim(["sweep", "s.yaml", "--set", AXIS, "--workers", "1", "--out", "o", "--quiet"], root)
    assert r.exit_code == 0, r.output
    return root


def _copy(finished, tmp_path):
    import shutil

    shutil.copytree(finished, tmp_path / "w")
    return tmp_path / "w"


def _resume(root, *extra):
    return sim(
        [
            "sweep",
            "s.yaml",
            "--set",
            AXIS,
            "--workers",
            "1",
            "--out",
            "o",
            "--quiet",
            *extra,
        ],
        root,
    )


@pytest.mark.parametrize(
    "damage",
    [
        "middle-line-garbage",
        "middle-line-list",
        "middle-line-no-point",
        "not-utf8",
        "spec-garbage",
        "spec-list",
        "spec-missing",
        "spec-other-scenario",
        "journal-a-directory",
    ],
)
def test_corrupted_journal_or_spec_is_one_line(finished, tmp_path, damage):
    root = _copy(finished, tmp_path)
    jp, sp = journal_path(root / "o" / "sweep.csv"), spec_path(root / "o" / "sweep.csv")
    lines = jp.read_text().splitlines(keepends=True)
    match damage:
        case "middle-line-garbage":
            jp.write_text(lines[0] + "{garbage\n" + "".join(lines[1:]))
        case "middle-line-list":
            jp.write_text(lines[0] + "[1, 2]\n" + "".join(lines[1:]))
        case "middle-line-no-point":
            jp.write_text(lines[0] + '{"x": 1}\n' + "".join(lines[1:]))
        case "not-utf8":
            jp.write_bytes(b"\xff\xfe\n" + jp.read_bytes())
        case "spec-garbage":
            sp.write_text("{")
        case "spec-list":
            sp.write_text("[]")
        case "spec-missing":
            sp.unlink()
        case "spec-other-scenario":
            sp.write_text(json.dumps({"scenario": "other"}))
        case "journal-a-directory":
            jp.unlink()
            jp.mkdir()
    line = refused(
        ["sweep", "s.yaml", "--set", AXIS, "--workers", "1", "--out", "o", "--quiet"], root
    )
    spec_named = damage in ("spec-garbage", "spec-list")
    assert ("sweep.spec.json" if spec_named else "sweep.jsonl") in line
    if damage == "spec-other-scenario":
        assert "another scenario" in line


@FUZZ
@given(st.integers(0, 10_000))
def test_kill_during_the_journal_rewrite_loses_nothing(finished, tmp_path_factory, cut):
    """A resume rewrites the journal through a temp file: a kill at any byte of that write
    leaves the old journal and a partial temp file; the next resume keeps every point."""
    root = _copy(finished, tmp_path_factory.mktemp("k"))
    jp = journal_path(root / "o" / "sweep.csv")
    text = jp.read_text()
    (jp.parent / f".{jp.name}.tmp-99999").write_text(text[: cut % (len(text) + 1)])
    before = read_journal(jp)
    r = _resume(root)
    assert r.exit_code == 0, r.output
    after = read_journal(jp)
    assert {row["point"] for row in after} == {row["point"] for row in before}
    assert len(after) == 3


@FUZZ
@given(st.integers(1, 10_000))
def test_kill_during_an_append_reruns_only_that_point(finished, tmp_path_factory, cut):
    """A kill inside an append leaves a torn last line: the resume drops it, reruns that
    point alone, and keeps the others."""
    root = _copy(finished, tmp_path_factory.mktemp("a"))
    jp = journal_path(root / "o" / "sweep.csv")
    lines = jp.read_text().splitlines(keepends=True)
    last = lines[-1]
    jp.write_text("".join(lines[:-1]) + last[: 1 + cut % (len(last) - 1)])
    r = _resume(root)
    assert r.exit_code == 0, r.output
    rows = read_journal(jp)
    assert len(rows) == 3 and len({row["point"] for row in rows}) == 3
    assert jp.read_text().endswith("\n")


#: (column, value) of a journal cell no finished point writes
BAD_CELLS = [
    ("energy.per_request_wh", {"a": [1]}),
    ("energy.per_request_wh", [1, 2]),
    ("energy.per_request_wh", "abc"),
    ("energy.per_request_wh", True),
    ("energy.per_request_wh", float("inf")),
    ("requests.completed", float("nan")),
    ("latency_s.ttft.p90", "-Infinity"),
    ("error", 5),
    ("error", None),
    ("set.seed", {"x": 1}),
]


@FUZZ
@given(st.sampled_from(BAD_CELLS), st.integers(0, 2))
def test_a_journal_cell_no_point_writes_is_one_line(finished, tmp_path_factory, cell, line_no):
    """A hand-edited journal line with a cell that sim never writes: refused on one line
    naming the line and the column (it used to reach the table, then a traceback in the
    plot or the terminal table)."""
    root = _copy(finished, tmp_path_factory.mktemp("c"))
    jp = journal_path(root / "o" / "sweep.csv")
    lines = jp.read_text().splitlines()
    row = json.loads(lines[line_no])
    row[cell[0]] = cell[1]
    lines[line_no] = json.dumps(row)
    jp.write_text("\n".join(lines) + "\n")
    before = tree(root)
    line = assert_refused(_resume(root, "--plot", "energy.per_request_wh"), before, root)
    assert f"line {line_no + 1}" in line and cell[0] in line


def test_a_non_finite_swept_value_resumes(tmp_path):
    """The control: a swept value refused by the scenario (a point's error row, its set.
    cell non-finite as given) is a finished point, and the journal resumes."""
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["sweep", path, "--set", "hardware.host_time_factor=1,.inf", "--workers", "1"]
    for _ in range(2):
        r = sim([*args, "--out", tmp_path / "o", "--quiet"], tmp_path)
        assert r.exit_code == 0, r.output
    rows = read_journal(tmp_path / "o" / "sweep.jsonl")
    assert len(rows) == 2 and sum(bool(r["error"]) for r in rows) == 1


def test_option_overriding_a_swept_key_is_an_error(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    line = refused(
        [
            "sweep",
            scen,
            "--set",
            "workload.requests=2,3",
            "--requests",
            "1",
            "--out",
            tmp_path / "o",
            "--quiet",
        ],
        tmp_path,
    )
    assert "--requests" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "bogus.key=1,2"],
        ["--set", "seed=0,1", "--workers", "0"],
        ["--set", "seed=0,1", "--requests", "0"],
        ["--set", "seed=["],
        ["--set", "seed="],
        ["--set", "seed=0,1", "--set", "seed=2"],
        ["--set", "workload.requests=100000000"],
    ],
)
def test_bad_sweep_options(tmp_path, args):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    refused(["sweep", scen, *args, "--out", tmp_path / "o", "--quiet"], tmp_path)


def test_sweep_journal_rewrite_is_atomic_in_the_api(tmp_path):
    """run_sweep leaves no temp file behind and a journal with one line per point."""
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    run_sweep(scen, [{"seed": 0}, {"seed": 1}], tmp_path / "o" / "t.csv", workers=1, progress=False)
    run_sweep(scen, [{"seed": 0}, {"seed": 1}], tmp_path / "o" / "t.csv", workers=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["t.csv", "t.jsonl", "t.spec.json"]


WORKER_PROBE = r"""
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from llm_energy_sim.analysis.workers import die_with_parent

def hang(path):
    open(path, "a").write(f"{os.getpid()}\n")
    time.sleep(600)

if __name__ == "__main__":
    ex = ProcessPoolExecutor(2, initializer=die_with_parent, initargs=(os.getpid(),))
    for _ in range(2):
        ex.submit(hang, sys.argv[1])
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_a_sigkilled_parent(tmp_path):
    """The pool `sim sweep` uses (die_with_parent as its initializer): SIGKILL the parent
    and both workers end (waited for up to 60 s, a liveness bound, not a timing claim)."""
    script = tmp_path / "probe.py"
    script.write_text(WORKER_PROBE)
    pids = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, str(script), str(pids)])
    try:
        for _ in range(600):
            if pids.exists() and len(pids.read_text().split()) == 2:
                break
            time.sleep(0.1)
        workers = [int(p) for p in pids.read_text().split()]
        assert all(_alive(p) for p in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        for _ in range(600):
            if not any(_alive(p) for p in workers):
                break
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
