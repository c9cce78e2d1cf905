"""A host-speed probe that runs beside a live run, in a process of its own.

The lent machines' hosts change speed within minutes: on one H200 lease the same HF generate
decode took 64-74 ms a step for 50 s and then 24-31 ms (docs/validation.md, lease D), and a
10 s host-fit run before and after one call measured 0.94 and 1.43 times the calibration
host. A factor measured once per call cannot follow that. This probe times a fixed slice of
host work every `period_s` (pure-Python calls and CPU-side torch dispatch of tiny tensors,
the two kinds of work an eager engine's host does per kernel launch) and writes its seconds
per slice as it goes, so a run's host speed can be read along its whole length.

It never touches the GPU, so it neither waits for nor perturbs the engine's kernels; it holds
one CPU core (the lent nodes have 16). Times are time.perf_counter(), which is CLOCK_MONOTONIC
on Linux and therefore comparable with the engine process's own stamps.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import time
from pathlib import Path

FIELDS = ("t_s", "python_s", "torch_s")
PYTHON_CALLS = 4000  # about 1 ms on a 2026 server core
TORCH_OPS = 200  # about 1 ms of dispatcher work


class _Obj:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a, self.b = 1, 2

    def step(self, x: int) -> int:
        return self.a + x * self.b


def python_slice(n: int = PYTHON_CALLS) -> float:
    """Seconds for n small method calls with attribute and dict traffic (interpreter speed)."""
    o, d = _Obj(), {}
    t = time.perf_counter()
    for i in range(n):
        d[i & 63] = o.step(i)
    return time.perf_counter() - t


def torch_slice(n: int = TORCH_OPS) -> float:
    """Seconds for n in-place adds on a tiny CPU tensor (torch's per-op dispatch path)."""
    import torch

    x = torch.zeros(8)
    t = time.perf_counter()
    for _ in range(n):
        x.add_(1.0)
    return time.perf_counter() - t


def probe_loop(out_csv: str, stop, period_s: float = 0.05, flush_s: float = 1.0) -> None:
    """Time one slice of each kind every period_s until `stop` is set; rows are flushed every
    flush_s, so a killed run keeps all but the last second."""
    import torch

    torch.set_num_threads(1)
    path = Path(out_csv)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(FIELDS)
        last_flush = time.perf_counter()
        while not stop.is_set():
            t = time.perf_counter()
            w.writerow((f"{t:.6f}", f"{python_slice():.7f}", f"{torch_slice():.7f}"))
            if t - last_flush > flush_s:
                f.flush()
                last_flush = t
            stop.wait(max(period_s - (time.perf_counter() - t), 0.0))


class HostProbe:
    """Context manager: the probe process runs while the block runs."""

    def __init__(self, out_csv: Path, period_s: float = 0.05) -> None:
        ctx = mp.get_context("spawn")  # no CUDA state is inherited
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=probe_loop, args=(str(out_csv), self._stop, period_s), daemon=True
        )

    def __enter__(self) -> HostProbe:
        self._proc.start()
        return self

    def alive(self) -> bool:
        return self._proc.is_alive()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
