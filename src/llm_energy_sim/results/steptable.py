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

STEPS_FILE = "steps.csv"
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
    """steps.csv with `prefill` parsed to (new, past) tuples and `replica` filled in."""
    from llm_energy_sim.config.errors import UserError

    try:
        df = pd.read_csv(path, dtype={"prefill": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a step log ({exc})") from exc
    need = {"start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum"}
    if missing := need - set(df.columns):
        raise UserError(f"{path}: not a step log (missing columns {sorted(missing)})")
    if "replica" not in df.columns:
        df["replica"] = 0
    df["prefill"] = [parse_prefill(t) for t in df["prefill"]]
    return df[["start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum", "replica"]]
