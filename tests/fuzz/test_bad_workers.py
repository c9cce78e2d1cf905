"""Errors that are not the user's (a worker's OSError, a Dask worker without the scenario's
files) are InfrastructureErrors: one line, exit code 1, never a journaled row, so a resume
retries them."""

from __future__ import annotations

import copy

import pytest
from badinput import SMALL, fail_like_infrastructure, write_scenario

from llm_energy_sim.analysis.grid import (
    InfrastructureError,
    ScenarioRef,
    on_worker,
    run_parallel,
    run_point,
    scenario_files,
)


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_failure_is_an_infrastructure_error(workers):
    with pytest.raises(InfrastructureError) as err:
        list(run_parallel(fail_like_infrastructure, [(1,), (2,)], workers))
    assert err.value.exit_code == 1
    assert "OSError" in str(err.value) and "\n" not in str(err.value)


def test_a_worker_without_the_trace_says_which_file(tmp_path):
    (tmp_path / "trace.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n0,1,1\n")
    data = copy.deepcopy(SMALL)
    data["workload"] = {"requests": 2, "arrival": {"kind": "trace", "path": "trace.csv"}}
    ref = ScenarioRef.from_path(write_scenario(tmp_path / "s.yaml", data))
    assert scenario_files(ref) == [tmp_path / "trace.csv"]
    assert on_worker(run_point, ref, {})["error"] == ""  # the file is there: it runs
    (tmp_path / "trace.csv").unlink()
    with pytest.raises(FileNotFoundError) as err:
        on_worker(run_point, ref, {})
    assert "trace.csv" in str(err.value) and "worker" in str(err.value)


def test_a_dask_worker_without_the_trace_is_an_infrastructure_error(tmp_path):
    """Through a real (in-process) Dask cluster: the point is not a row with a user error
    but an InfrastructureError naming the missing file, so a resume retries it."""
    distributed = pytest.importorskip("dask.distributed")
    (tmp_path / "trace.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n0,1,1\n")
    data = copy.deepcopy(SMALL)
    data["workload"] = {"requests": 2, "arrival": {"kind": "trace", "path": "trace.csv"}}
    ref = ScenarioRef.from_path(write_scenario(tmp_path / "s.yaml", data))
    (tmp_path / "trace.csv").unlink()
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        pytest.raises(InfrastructureError) as err,
    ):
        list(run_parallel(run_point, [(ref, {}, None)], dask_address=cluster.scheduler_address))
    assert "trace.csv" in str(err.value) and err.value.exit_code == 1


def test_an_infrastructure_error_is_retried_on_resume(tmp_path):
    """A sweep point that hit a worker without its file is not journaled (unlike a user
    error): once the file is back, the resumed sweep runs it."""
    distributed = pytest.importorskip("dask.distributed")
    from llm_energy_sim.analysis.sweep import journal_path, read_journal, run_sweep

    trace = "arrival_s,prompt_tokens,output_tokens\n0,1,1\n0,1,1\n"
    data = copy.deepcopy(SMALL)
    data["workload"] = {"requests": 2, "arrival": {"kind": "trace", "path": "trace.csv"}}
    scen = write_scenario(tmp_path / "s.yaml", data)
    table = tmp_path / "o" / "sweep.csv"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        with pytest.raises(InfrastructureError) as err:
            run_sweep(scen, [{"seed": 0}], table, dask=cluster.scheduler_address, progress=False)
        assert "rerun to resume" in str(err.value)
        assert read_journal(journal_path(table)) == []
        (tmp_path / "trace.csv").write_text(trace)
        df = run_sweep(scen, [{"seed": 0}], table, dask=cluster.scheduler_address, progress=False)
    assert list(df["error"]) == [""]
    assert len(read_journal(journal_path(table))) == 1
