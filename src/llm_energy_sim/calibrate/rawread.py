"""Reading raw calibration tables back (for a resume and for `sim calibrate --fit-only`).

A table is appended one row at a time as points are measured, so a kill can leave its last
row torn (cut short, with no newline at its end): that row was never measured whole, and is
dropped, on resume (then measured again) and on a refit. Any other damage is a one-line
UserError naming the file, the row and the column: not UTF-8, a row with more or fewer
fields than the header, text or an infinite value in a numeric column.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.config.errors import UserError

#: columns that hold text in some raw table (never checked as numbers)
TEXT_COLUMNS = frozenset(
    {
        "key",
        "kclass",
        "dtype",
        "error",
        "utc",
        "throttle_reasons",
        "model",
        "tag",
        "kind",
        "engine",
        "mode",
        "phase",
        "state",
        "name",
        "note",
        "source",
        "gpu",
        "host",
        "prefill",
        "shape",
        "label",
        "case",
        "what",
    }
)
#: columns that must hold numbers (or be empty) wherever they appear
NUMERIC_COLUMNS = frozenset(
    {
        "seconds",
        "energy_j",
        "power_w",
        "flops",
        "bytes",
        "m",
        "batch",
        "prompt",
        "new_tokens",
        "layers",
        "count",
        "calls",
        "window_s",
        "decode_s_per_token",
        "decode_j_per_token",
        "miss_s",
        "t_s",
    }
)
#: the columns the kernel fit needs in microbench.csv
MICROBENCH_COLUMNS = ("kclass", "dtype", "flops", "bytes", "seconds", "energy_j", "error")


def _text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"{path}: {'not a file' if path.exists() else 'file not found'}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); not a raw table") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


def whole_rows(text: str) -> str:
    """`text` without a torn last row (everything after the last newline)."""
    return text if not text or text.endswith("\n") else text[: text.rfind("\n") + 1]


def repair_torn(path: Path) -> bool:
    """Drop a torn last row of the table at `path` in place (temp file + os.replace, so a
    kill now loses nothing); True when there was one. A file that is one torn line (a header
    cut short) becomes empty."""
    if not path.is_file():
        return False
    text = _text(path)
    kept = whole_rows(text)
    if kept == text:
        return False
    from llm_energy_sim.config.files import remove_stale_temps, temp_path

    remove_stale_temps(path)
    tmp = temp_path(path)
    with tmp.open("w", newline="") as f:
        f.write(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return True


def _check_widths(text: str, path: Path) -> None:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header:
        return
    for i, row in enumerate(rows, start=2):
        if row and len(row) != len(header):
            raise UserError(
                f"{path}: row {i} has {len(row)} fields, the header {len(header)}; "
                "the table is corrupted (delete the row to measure it again)"
            )


def check_numbers(df: pd.DataFrame, path: Path) -> None:
    """Numeric columns (NUMERIC_COLUMNS, and any column not in TEXT_COLUMNS that holds some
    numbers) hold only finite numbers or empty cells; UserError at the first bad cell."""
    for col in df.columns:
        if col in TEXT_COLUMNS or str(col).startswith("_"):
            continue
        raw = df[col]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        present = raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
        if col not in NUMERIC_COLUMNS and not (present & ~np.isnan(values)).any():
            continue  # a text column this list does not know
        bad = present & ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise UserError(
                f"{path}: row {row + 2}, column '{col}': {raw.iloc[row]!r}; must be a finite "
                "number (or empty)"
            )


def read_raw(path: Path, required: tuple[str, ...] = (), what: str = "rows") -> pd.DataFrame:
    """A raw calibration table without its torn last row, checked (see the module doc);
    with `required`, those columns present and at least one row."""
    path = Path(path)
    text = whole_rows(_text(path))
    if not text.strip():
        raise UserError(f"{path}: empty (no header); nothing measured to read")
    _check_widths(text, path)
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, ValueError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"{path}: not a readable table ({msg})") from None
    if required:
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        if len(df) == 0:
            raise UserError(f"{path}: no measured {what} (a header only); nothing to fit")
    check_numbers(df, path)
    return df


def measured_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows without an error; UserError when there are none (nothing to fit)."""
    if "error" in df:
        err = df["error"]
        ok = df[err.isna().to_numpy() | (err.astype(str).str.strip() == "").to_numpy()]
    else:
        ok = df
    if len(ok) == 0:
        raise UserError(f"{path}: no row measured without an error; nothing to fit")
    return ok


def check_tables(*dirs: Path) -> None:
    """Read every raw table (*.csv) of the given directories once, before a fit starts, so
    a corrupted one is refused in a second and before anything is written."""
    for d in dirs:
        for path in sorted(Path(d).glob("*.csv")):
            read_raw(path)
