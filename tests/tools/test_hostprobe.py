"""The host probe (tools/hostprobe.py): a process of its own that times fixed host work beside
a run. The checks wait for rows instead of counting them after a fixed sleep, so they hold on a
loaded machine too."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from tools.hostprobe import FIELDS, HostProbe, python_slice

pytest.importorskip("torch")

ROWS = 5
DEADLINE_S = 300.0  # a spawned process importing torch on a loaded 2-core machine


def _rows(path) -> int:
    if not path.exists():
        return 0
    return max(len(path.read_text().splitlines()) - 1, 0)


def test_probe_writes_rows_while_running_and_stops(tmp_path):
    out = tmp_path / "probe.csv"
    t_start = time.perf_counter()
    with HostProbe(out, period_s=0.02) as probe:
        deadline = time.perf_counter() + DEADLINE_S
        while _rows(out) < ROWS and time.perf_counter() < deadline:
            time.sleep(0.05)
    t_stop = time.perf_counter()
    assert not probe.alive()
    df = pd.read_csv(out)
    assert tuple(df.columns) == FIELDS
    assert len(df) >= ROWS
    # stamps are this process's perf_counter clock (CLOCK_MONOTONIC), inside the block
    assert df["t_s"].between(t_start, t_stop).all()
    assert (df[["python_s", "torch_s"]] > 0).all().all()
    n = len(df)
    time.sleep(0.2)
    assert len(pd.read_csv(out)) == n  # the process is gone: nothing more is written


def test_python_slice_times_its_calls():
    t = python_slice(2000)
    assert math.isfinite(t) and t > 0
