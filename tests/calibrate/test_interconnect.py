"""All-reduce benchmark on CPU (gloo, 2 processes) and the interconnect fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm_energy_sim.calibrate.interconnect import fit_allreduce, measure_allreduce


def test_allreduce_benchmark_runs_on_cpu_with_gloo(tmp_path):
    pytest.importorskip("torch")
    out = measure_allreduce(
        tmp_path / "ar.csv",
        world=2,
        backend="gloo",
        sizes=[4096, 65536, 1 << 24],
        window_s=0.05,
        repeats=2,
    )
    df = pd.read_csv(out)
    assert len(df) == 3 * 2
    assert (df.group == 2).all() and (df.seconds_per_call > 0).all()
    # bigger messages take longer (medians over repeats)
    med = df.groupby("bytes").seconds_per_call.median()
    assert med.loc[1 << 24] > 5 * med.loc[4096]


def test_fit_recovers_alpha_and_bandwidth_from_exact_model():
    rows = []
    for g, alpha, bw in ((2, 12e-6, 180e9), (4, 20e-6, 140e9)):
        for b in [2**k for k in range(12, 29)]:
            t = alpha + 2 * (g - 1) / g * b / bw
            rows.append(
                {"group": g, "bytes": b, "seconds_per_call": t, "power_w_per_group_gpu": 300.0 + g}
            )
    fits = {f.group: f for f in fit_allreduce(rows)}
    assert fits[2].alpha_s == pytest.approx(12e-6, rel=1e-4)
    assert fits[2].bus_bandwidth == pytest.approx(180e9, rel=1e-4)
    assert fits[4].bus_bandwidth == pytest.approx(140e9, rel=1e-4)
    assert fits[4].power_w == pytest.approx(304.0)
    assert fits[2].time_p90_ape < 1e-3
    assert np.isfinite(fits[4].time_median_ape)
