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
    if not isinstance(text, str) or not text:
        return ()
    return tuple((int(n), int(p)) for n, p in (part.split(":") for part in text.split(";")))


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
    """The step log of a results directory (steps.parquet or steps.csv) or of a step-log
    file, with `prefill` parsed to (new, past) tuples and `replica` filled in."""
    from pyarrow import ArrowException

    from llm_energy_sim.config.errors import UserError

    path = Path(path)
    try:
        csv_options = {"dtype": {"prefill": str}, "keep_default_na": False}
        if path.is_dir():
            df = read_table(path, STEPS_STEM, **csv_options)
        elif path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, **csv_options)
    except (pd.errors.ParserError, UnicodeDecodeError, ArrowException) as exc:
        raise UserError(f"{path}: not a step log ({exc})") from exc
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such step log") from exc
    need = {"start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum"}
    if missing := need - set(df.columns):
        raise UserError(f"{path}: not a step log (missing columns {sorted(missing)})")
    if "replica" not in df.columns:
        df["replica"] = 0
    df["prefill"] = [parse_prefill(t) for t in df["prefill"]]
    return df[["start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum", "replica"]]
