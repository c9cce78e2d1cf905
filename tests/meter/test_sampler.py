"""The replay's energy sampler on CPU, reading through a plain callable (NVML's counters on
a GPU): the first and last readings always land, times are relative to t0, and runs of
repeated readings become ramps to the counter's next update."""

from __future__ import annotations

import numpy as np
import pytest

from llm_energy_sim.meter.sampler import EnergySampler, counter_steps


def test_repeated_readings_become_a_ramp_to_the_next_update():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    e = np.array([[0.0], [0.0], [0.0], [6.0], [6.0]])
    assert counter_steps(t, e)[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 6.0]


def test_sampler_keeps_every_reading_and_releases_the_meter():
    calls: list[float] = []
    closed: list[bool] = []

    def read() -> np.ndarray:
        calls.append(float(len(calls)))  # a counter that moves by 1 J every reading
        return np.array([calls[-1], 2 * calls[-1]])

    s = EnergySampler(read, ["0:a", "1:b"], lambda: closed.append(True), poll_s=0.001)
    t0 = s.t[0] + 10.0
    samples = s.stop(t0)
    assert closed == [True] and samples.gpu_names == ("0:a", "1:b")
    n = len(calls)
    assert n >= 2 and samples.energy_j.shape == (n, 2)  # the first and the last reading
    assert samples.energy_j[:, 0].tolist() == calls
    assert samples.energy_j[:, 1].tolist() == [2 * c for c in calls]
    assert samples.t_s[0] == pytest.approx(-10.0) and (np.diff(samples.t_s) >= 0).all()


def test_times_start_at_the_first_sample_when_the_run_never_started():
    s = EnergySampler(lambda: np.array([1.0]), ["0:a"])
    samples = s.stop(float("nan"))
    assert samples.t_s[0] == 0.0
