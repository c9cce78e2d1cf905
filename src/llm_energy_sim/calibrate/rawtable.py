"""Append-only raw measurement table: a row per point as soon as it is measured (resumable)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from llm_energy_sim.calibrate.rawread import read_raw, repair_torn
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard


def done_keys(path: Path, key: str = "key") -> set[str]:
    """Keys of the rows measured whole so far: a torn last row (a kill mid-write) is dropped
    from the file first, so its point is measured again; a corrupted table is a UserError."""
    if not path.exists():
        return set()
    repair_torn(path)
    if path.stat().st_size == 0:
        return set()
    df = read_raw(path)  # UserError on a corrupted table
    if key not in df.columns:
        raise UserError(f"{path}: no '{key}' column; not a raw table of this stage")
    with path.open(newline="") as f:
        return {row[key] for row in csv.DictReader(f) if row.get(key)}


def append_row(path: Path, row: dict) -> None:
    """Write one row (header on first write); flushed so an interruption loses nothing else
    (a torn last row left by an earlier kill is dropped first, never glued to this one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn(path)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


# the columns every measured row ends with: the GPU's state beside the point (GpuMeter.state),
# when it was measured, and the error of a configuration that failed
GPU_STATE_FIELDS = ("sm_clock_mhz", "mem_clock_mhz", "throttle_reasons", "temperature_c")
STATE_FIELDS = (*GPU_STATE_FIELDS, "utc", "error")
# the columns every engine-run row starts with: what was run
RUN_FIELDS = ("model", "layers", "dtype", "batch", "prompt", "new_tokens")


def run_columns(card: ModelCard, dtype: str, batch: int, prompt: int, new_tokens: int) -> dict:
    """The RUN_FIELDS of a row: the card's name and layer count, and the run's settings."""
    return {
        "model": card.name,
        "layers": card.num_hidden_layers,
        "dtype": dtype,
        "batch": batch,
        "prompt": prompt,
        "new_tokens": new_tokens,
    }


def blank(x: float | None) -> float | str:
    """A value that may be unknown, as a cell: '' for None (e.g. energy without a meter)."""
    return "" if x is None else x
