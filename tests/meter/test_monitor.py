"""The energy monitor's window arithmetic on CPU: timing only (no NVML here), and energy
through a reading function given as a plain callable (what NVML's counters are read by)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.meter.monitor import EnergyMonitor


def _counters(*readings):
    """A reading function returning these cumulative joules per GPU, one reading a call."""
    it = iter(np.asarray(r, dtype=float) for r in readings)
    return lambda: next(it)


def _clock(*times):
    it = iter(times)
    return lambda: next(it)


def test_window_is_the_difference_of_its_two_readings_per_gpu():
    mon = EnergyMonitor(
        [0, 1], read=_counters([100.0, 200.0], [110.5, 230.0]), clock=_clock(5.0, 7.0)
    )
    mon.begin_window("w")
    m = mon.end_window("w")
    assert m.name == "w" and m.time_s == 2.0
    assert m.energy_j.tolist() == [10.5, 30.0]
    assert m.total_j == 40.5
    assert m.mean_power_w == 40.5 / 2.0 / 2  # per metered GPU


def test_named_windows_nest_and_overlap():
    # readings: a begins, b begins, a ends, c begins, b ends, c ends
    read = _counters([0.0], [1.0], [3.0], [4.0], [8.0], [9.0])
    mon = EnergyMonitor([0], read=read, clock=_clock(0.0, 1.0, 3.0, 4.0, 8.0, 9.0))
    mon.begin_window("a")
    mon.begin_window("b")
    a = mon.end_window("a")
    mon.begin_window("c")
    b = mon.end_window("b")
    c = mon.end_window("c")
    assert (a.time_s, a.total_j) == (3.0, 3.0)
    assert (b.time_s, b.total_j) == (7.0, 7.0)
    assert (c.time_s, c.total_j) == (5.0, 5.0)


def test_timing_only_monitor_carries_time_and_no_energy():
    mon = EnergyMonitor.timing_only(clock=_clock(1.0, 1.25))
    assert not mon.metered
    with mon.window("t") as w:
        pass
    m = w.measurement
    assert m.time_s == 0.25
    assert m.energy_j is None and m.total_j is None and m.mean_power_w is None
    assert mon.state() == {} and mon.info() == {}


def test_timing_only_on_the_real_clock_never_reads_a_counter():
    mon = EnergyMonitor([], read=lambda: pytest.fail("a monitor of no GPU read a counter"))
    with mon.window("t") as w:
        sum(range(1000))
    assert w.measurement.time_s >= 0.0 and w.measurement.total_j is None


def test_window_names_are_checked():
    mon = EnergyMonitor.timing_only()
    mon.begin_window("x")
    with pytest.raises(ValueError, match="already open"):
        mon.begin_window("x")
    with pytest.raises(ValueError, match="no energy window 'y'"):
        mon.end_window("y")
    mon.end_window("x")
    with pytest.raises(ValueError):
        mon.end_window("x")  # closed windows are gone


def test_an_error_inside_a_window_discards_it_so_the_name_can_be_reused():
    read = _counters([0.0], [5.0], [6.0])  # the first window's begin reading is dropped
    mon = EnergyMonitor([0], read=read, clock=_clock(0.0, 10.0, 11.0))
    with pytest.raises(RuntimeError), mon.window("point"):
        raise RuntimeError("a kernel a backend refuses")
    with mon.window("point") as w, pytest.raises(RuntimeError, match="still open"):
        _ = w.measurement
    assert (w.measurement.time_s, w.measurement.total_j) == (1.0, 1.0)


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is not None, reason="NVML bindings here")
def test_without_nvml_a_metered_monitor_is_a_one_line_user_error():
    with pytest.raises(UserError, match="NVML") as exc:
        EnergyMonitor([0])
    assert "\n" not in str(exc.value)
