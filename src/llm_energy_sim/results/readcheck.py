"""Checks of tables read back from disk (results directories, step logs, calibration tables):
required columns, numbers where numbers belong, finite, whole where counts, non-empty. Each
failure is a one-line UserError naming the file, the row (1-based, the header being row 1 of
a CSV) and the column, and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.config.errors import UserError, require_file


def require_columns(df: pd.DataFrame, columns, path: Path | str) -> None:
    """UserError naming the file and the first missing columns."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} (need {', '.join(columns)})"
        )


def require_rows(df: pd.DataFrame, path: Path | str, what: str = "rows") -> None:
    """UserError when the table has a header and nothing else."""
    if len(df) == 0:
        raise UserError(f"{path}: no {what} (a header only)")


def _bad(path, row: int, col: str, value, allowed: str) -> UserError:
    return UserError(f"{path}: row {row + 2}, column '{col}': {value!r}; must be {allowed}")


def numeric_column(
    df: pd.DataFrame,
    col: str,
    path: Path | str,
    *,
    whole: bool = False,
    low: float | None = None,
    allow_nan: bool = True,
) -> np.ndarray:
    """Column `col` as floats: every non-empty cell a finite number (>= low, whole when
    `whole`); empty cells (NaN) only when `allow_nan`. UserError at the first bad cell."""
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    missing = raw.isna().to_numpy()
    text = np.isnan(values) & ~missing  # a cell that is there but is no number
    bad = text | np.isinf(values)
    if not allow_nan:
        bad |= missing
    finite = np.isfinite(values)
    if low is not None:
        bad |= finite & (values < low)
    if whole:
        bad |= finite & (values != np.round(values))
    if bad.any():
        row = int(np.argmax(bad))
        allowed = "a whole number" if whole else "a finite number"
        if low is not None:
            allowed += f" >= {low:g}"
        if allow_nan:
            allowed += " (or empty)"
        raise _bad(path, row, col, raw.iloc[row], allowed)
    return values


def check_typed(df: pd.DataFrame, spec: Mapping[str, type], path: Path | str) -> None:
    """Every column of `spec` present; int columns whole numbers, float columns finite numbers
    (empty allowed), str columns anything."""
    require_columns(df, list(spec), path)
    for col, kind in spec.items():
        if kind is int:
            numeric_column(df, col, path, whole=True, allow_nan=True)
        elif kind is float:
            numeric_column(df, col, path)


def read_any_table(path: Path, **csv_options) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; UserError (one line) when it is missing, a
    directory, empty, not UTF-8, or not a table."""
    from pyarrow import ArrowException

    path = require_file(path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, **csv_options)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file (no header)") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except (pd.errors.ParserError, ArrowException, ValueError, OSError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"{path}: not a readable table ({msg})") from None
