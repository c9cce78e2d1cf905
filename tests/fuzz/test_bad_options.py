"""Options the issue-18 review found unchecked or checked too late, and outputs it found
not written whole: each refused with exit code 2, one line, no traceback (nothing written
where the command had not started), and each output rewritten without stale files.

Found: `sim validate mlenergy --seed -1` (a numpy traceback); `sim run --requests 3 --set
workload.requests=5` (the option won silently); `sim sweep --plot NOSUCH` (refused only
after the whole sweep ran); `sim sweep --dask NOTANADDRESS` (an "infrastructure" error,
exit 1); `--workers 100000` (a pool forks every worker at once: the machine hung); a
killed plan's temp CSV (never removed); `sim steps` (wrote into any --out file by file: a
rerun without --plot kept the previous PNG)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from badinput import SMALL, assert_refused, refused, sim, tree, write_scenario

from llm_energy_sim.cli.options import max_workers


@pytest.mark.parametrize("seed", ["-1", str(2**63), "x"])
def test_validate_seed(tmp_path, seed):
    line = refused(["validate", "mlenergy", "--seed", seed, "--out", tmp_path / "v"], tmp_path)
    assert "--seed" in line


@pytest.mark.parametrize("command", ["run", "replay", "sweep"])
def test_requests_with_a_set_of_workload_requests(tmp_path, command):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    extra = {
        "run": [],
        "replay": ["--engine", "tgi", "--endpoint", "http://127.0.0.1:9", "--no-meter"],
        "sweep": ["--set", "seed=1,2"],
    }[command]
    args = [command, path, "--requests", "3", "--set", "workload.requests=5", *extra]
    line = refused([*args, "--out", tmp_path / "o", "--quiet"], tmp_path)
    assert "--requests" in line


@pytest.mark.parametrize("metric", ["bogus", "energy.bogus", "latency_s.ttft", "set.seed,x"])
def test_sweep_plot_metric_is_checked_at_the_first_point(tmp_path, metric):
    """Refused as soon as one point has run (its row names every column), not after the
    whole sweep; that point is kept, and a rerun with good metrics runs only the rest."""
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["sweep", path, "--set", "seed=1,2,3", "--workers", "1", "--out", tmp_path / "o"]
    line = assert_refused(sim([*args, "--plot", metric, "--quiet"], tmp_path))
    assert "--plot" in line and metric.split(",")[-1] in line
    journal = tmp_path / "o" / "sweep.jsonl"
    assert len(journal.read_text().splitlines()) == 1
    r = sim([*args, "--plot", "energy.per_request_wh", "--quiet"], tmp_path)
    assert r.exit_code == 0, r.output
    assert len(journal.read_text().splitlines()) == 3


@pytest.mark.parametrize("address", ["notaurl", "tcp://", "tcp://h:notaport"])
def test_sweep_dask_address_that_is_not_one(tmp_path, address):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["sweep", path, "--set", "seed=1,2", "--dask", address, "--out", tmp_path / "o"]
    line = assert_refused(sim([*args, "--quiet"], tmp_path))
    assert "--dask" in line


@pytest.mark.parametrize("command", ["sweep", "optimize"])
def test_too_many_workers(tmp_path, command):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    n = str(max_workers() + 1)
    args = {
        "sweep": ["sweep", path, "--set", "seed=1,2", "--workers", n, "--quiet"],
        "optimize": ["plan", "optimize", path, "--rate", "1", "--workers", n],
    }[command]
    assert "--workers" in refused([*args, "--out", tmp_path / "o.csv"], tmp_path)


def test_a_plans_stale_temp_csv_does_not_survive(tmp_path):
    """A dead writer's .p.csv.tmp-PID is deleted by the next write of p.csv; a live
    process's is left alone."""
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".p.csv.tmp-{dead.stdout.strip()}").write_text("torn,")
        (tmp_path / f".p.csv.tmp-{live.pid}").write_text("being written")
        args = ["plan", "optimize", path, "--rate", "0.5", "--dtypes", "bfloat16", "--tp", "1"]
        args += ["--replicas", "1", "--requests", "3", "--workers", "1"]
        r = sim([*args, "--out", tmp_path / "p.csv"], tmp_path)
        assert r.exit_code == 0, r.output
        hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert hidden == [f".p.csv.tmp-{live.pid}"]
    finally:
        live.kill()
        live.wait()


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("steps")
    write_scenario(root / "s.yaml", SMALL)
    r = sim(["run", "s.yaml", "--out", "run", "--step-log", "--quiet"], root)
    assert r.exit_code == 0, r.output
    return root


def test_steps_rerun_leaves_no_stale_plot(step_run):
    r = sim(["steps", "s.yaml", "run", "--out", "chk"], step_run)
    assert r.exit_code == 0, r.output
    assert (step_run / "chk" / "steps_check.png").is_file()
    r = sim(["steps", "s.yaml", "run", "--out", "chk", "--no-plot"], step_run)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (step_run / "chk").iterdir()) == [
        "steps_check.csv",
        "steps_check.json",
    ]
    assert not any(p.name.startswith(".chk.") for p in step_run.iterdir())


def test_steps_refuses_a_directory_that_is_not_a_check(step_run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    before = tree(tmp_path)
    line = refused(
        ["steps", step_run / "s.yaml", step_run / "run", "--out", tmp_path / "mine"], tmp_path
    )
    assert "steps_check.json" in line and tree(tmp_path) == before
