"""steps.csv: one row per forward step of an engine, live (`sim replay`, the engine's own step
log) or simulated (`sim run --step-log`), so the two can be set side by side step by step.

Columns: start_s, end_s (seconds since the first arrival), n_prefill, prefill (each
prefilling sequence as new:past, ';'-separated), n_decode, decode_ctx_sum (the decoding
sequences' KV lengths, each including the token being decoded, summed), replica (absent in
single-replica live logs: 0).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from llm_energy_sim.results.tables import read_table

STEPS_STEM = "steps"
STEPS_FILE = f"{STEPS_STEM}.csv"
COLUMNS = ("start_s", "end_s", "n_prefill", "prefill", "n_decode", "decode_ctx_sum", "replica")
Prefill = tuple[tuple[int, int], ...]


def format_prefill(prefill: Prefill) -> str:
    """'new:past;new:past' (empty when the step prefills nothing)."""
    return ";".join(f"{n}:{p}" for n, p in prefill)


def parse_prefill(text) -> Prefill:
    """'new:past;...' -> ((new, past), ...); ValueError unless whole numbers, new >= 1, past >= 0."""
    if not isinstance(text, str) or not text:
        return ()
    out = []
    for part in text.split(";"):
        n, p = part.split(":")  # ValueError unless exactly one ':'
        n, p = int(n), int(p)
        if n < 1 or p < 0:
            raise ValueError(part)
        out.append((n, p))
    return tuple(out)


def write_steps(out_dir: Path, rows: Iterable[tuple[float, float, Prefill, int, int, int]]) -> Path:
    """rows: (start_s, end_s, prefill, n_decode, decode_ctx_sum, replica)."""
    path = out_dir / STEPS_FILE
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for start, end, prefill, n_dec, ctx, rep in rows:
            w.writerow(
                (
                    f"{start:.6f}",
                    f"{end:.6f}",
                    len(prefill),
                    format_prefill(prefill),
                    n_dec,
                    ctx,
                    rep,
                )
            )
    return path


def read_steps(path: Path) -> pd.DataFrame:
    """The step log of a results directory (steps.parquet or steps.csv; the directory
    complete, with its marker) or of a step-log file, with `prefill` parsed to (new, past)
    tuples and `replica` filled in."""
    from llm_energy_sim.config.errors import UserError
    from llm_energy_sim.results.marker import require_complete
    from llm_energy_sim.results.readcheck import numeric_column, read_any_table, require_columns
    from llm_energy_sim.results.tables import table_path

    path = Path(path)
    csv_options = {"dtype": {"prefill": str}, "keep_default_na": False}
    if path.is_dir():
        require_complete(path)
        df = read_table(path, STEPS_STEM, **csv_options)
        path = table_path(path, STEPS_STEM)
    elif not path.exists():
        raise UserError(f"{path}: no such step log")
    else:
        df = read_any_table(path, **csv_options)
    require_columns(df, ["start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum"], path)
    if "replica" not in df.columns:
        df["replica"] = 0
    for col in ("start_s", "end_s"):
        df[col] = numeric_column(df, col, path, allow_nan=False)
    for col in ("n_decode", "decode_ctx_sum", "replica"):
        df[col] = numeric_column(df, col, path, whole=True, low=0, allow_nan=False).astype(int)
    if (df["end_s"] < df["start_s"]).any():
        row = int((df["end_s"] < df["start_s"]).to_numpy().argmax())
        raise UserError(f"{path}: row {row + 2}: end_s before start_s; a step ends after it starts")
    parsed = []
    for row, text in enumerate(df["prefill"]):
        try:
            parsed.append(parse_prefill(text))
        except ValueError:
            raise UserError(
                f"{path}: row {row + 2}, column 'prefill': {text!r}; must be new:past pairs of "
                "whole numbers separated by ';' (or empty)"
            ) from None
    df["prefill"] = parsed
    return df[["start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum", "replica"]]
