"""Named energy windows over the GPUs' total-energy counters (the idea of Zeus's ZeusMonitor).

`begin_window(name)` reads the clock and every metered GPU's cumulative joules;
`end_window(name)` reads both again and returns their differences as a Measurement. Windows
are keyed by name, so differently named windows may nest or overlap. Both ends read the clock
first and the counters second, so the time and the energy windows have the same length. The
caller synchronises the device before either end (a window measures what has finished).

A monitor of no GPU is timing only: its windows carry time, and energy None; calibration
stages run that way on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from llm_energy_sim.meter.nvml import Nvml

Reader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Measurement:
    """One closed window: wall seconds, joules per metered GPU (index order) and their sum;
    energy_j and total_j are None on a timing-only monitor."""

    name: str
    time_s: float
    energy_j: np.ndarray | None
    total_j: float | None

    @property
    def mean_power_w(self) -> float | None:
        """Mean power per metered GPU over the window (total_j / time_s / GPUs)."""
        if self.energy_j is None or self.total_j is None:
            return None
        return self.total_j / self.time_s / len(self.energy_j)


class Window:
    """What `EnergyMonitor.window` yields: its Measurement once the block has exited."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._measurement: Measurement | None = None

    @property
    def measurement(self) -> Measurement:
        if self._measurement is None:
            raise RuntimeError(f"window {self.name!r} is still open")
        return self._measurement


class EnergyMonitor:
    """Named windows over the energy counters of the GPUs with the given indices.

    `EnergyMonitor([0, 1])` meters GPUs 0 and 1 through NVML (meter/nvml.py: a UserError
    without it); `EnergyMonitor.timing_only()` meters none. Seams, as keyword arguments: `read`,
    a plain callable returning the cumulative joules of each metered GPU (NVML's counters by
    default; given, no NVML is opened and state()/info() are empty); `clock`, the wall clock in
    seconds (time.perf_counter by default). No indices: timing only, whatever `read` is.
    """

    def __init__(
        self,
        gpu_indices: Sequence[int],
        *,
        read: Reader | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.gpu_indices = tuple(gpu_indices)
        self._nvml: Nvml | None = None
        if read is None and self.gpu_indices:
            self._nvml = Nvml(self.gpu_indices)
            read = self._nvml.energy_j
        self._read = read if self.gpu_indices else None
        self._clock = clock
        self._open: dict[str, tuple[float, np.ndarray | None]] = {}

    @classmethod
    def timing_only(cls, clock: Callable[[], float] = time.perf_counter) -> EnergyMonitor:
        """A monitor of no GPU: windows carry time only."""
        return cls((), clock=clock)

    @property
    def metered(self) -> bool:
        """Whether windows carry energy."""
        return self._read is not None

    def begin_window(self, name: str) -> None:
        """Open the window `name` (ValueError if a window of that name is open)."""
        if name in self._open:
            raise ValueError(f"energy window {name!r} is already open")
        t = self._clock()
        self._open[name] = (t, self._read() if self._read else None)

    def end_window(self, name: str) -> Measurement:
        """Close the window `name` (ValueError if none is open) and return its Measurement."""
        if name not in self._open:
            raise ValueError(f"no energy window {name!r} is open")
        t1 = self._clock()
        e1 = self._read() if self._read else None
        t0, e0 = self._open.pop(name)
        if e1 is None or e0 is None:
            return Measurement(name, t1 - t0, None, None)
        de = np.asarray(e1, dtype=float) - np.asarray(e0, dtype=float)
        return Measurement(name, t1 - t0, de, float(de.sum()))

    def discard_window(self, name: str) -> None:
        """Forget the window `name` if it is open (a measurement abandoned by an error)."""
        self._open.pop(name, None)

    @contextmanager
    def window(self, name: str) -> Iterator[Window]:
        """begin_window on entry, end_window on a normal exit (the Measurement lands on the
        yielded Window); an exception discards the window, so the name can be opened again."""
        w = Window(name)
        self.begin_window(name)
        try:
            yield w
        except BaseException:
            self.discard_window(name)
            raise
        w._measurement = self.end_window(name)

    def state(self) -> dict:
        """The first metered GPU's clocks and throttle state (meter/nvml.py); {} without NVML."""
        return self._nvml.state() if self._nvml else {}

    def info(self) -> dict:
        """The first metered GPU's name, driver, memory, power limit; {} without NVML."""
        return self._nvml.info() if self._nvml else {}
