"""The host probe: a process of its own that times fixed host work beside a run."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tools.hostprobe import FIELDS, HostProbe, python_slice

pytest.importorskip("torch")


def test_probe_writes_rows_while_running_and_stops(tmp_path):
    out = tmp_path / "probe.csv"
    t_start = time.perf_counter()
    with HostProbe(out, period_s=0.02):
        time.sleep(2.0)
    t_stop = time.perf_counter()
    df = pd.read_csv(out)
    assert tuple(df.columns) == FIELDS
    assert len(df) >= 20  # about one row every 20 ms, after the process started
    # stamps are this process's perf_counter clock (CLOCK_MONOTONIC), inside the block
    assert df["t_s"].between(t_start, t_stop).all()
    assert (df[["python_s", "torch_s"]] > 0).all().all()
    n = len(df)
    time.sleep(0.3)
    assert len(pd.read_csv(out)) == n  # the process is gone


def test_python_slice_scales_with_work():
    small = np.median([python_slice(2000) for _ in range(7)])
    large = np.median([python_slice(8000) for _ in range(7)])
    assert 2.0 < large / small < 8.0
