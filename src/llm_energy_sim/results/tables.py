"""Read one table of a results directory: ``stem.parquet`` when present, else ``stem.csv``.

Results directories (``sim run``, ``sim replay``, committed measured runs) hold their tables as CSV;
a directory converted to Parquet keeps the same stems. Readers go through :func:`read_table` so both
forms read the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_sim.config.errors import UserError

if TYPE_CHECKING:
    import pandas as pd


def table_path(directory: Path, stem: str) -> Path | None:
    """The file holding table ``stem`` in ``directory`` (Parquet first, then CSV), or None."""
    for suffix in (".parquet", ".csv"):
        path = Path(directory) / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def has_table(directory: Path, stem: str) -> bool:
    """True when ``directory`` holds ``stem.parquet`` or ``stem.csv``."""
    return table_path(directory, stem) is not None


def read_table(directory: Path, stem: str, **csv_options) -> pd.DataFrame:
    """``directory/stem.parquet`` if present else ``directory/stem.csv`` as a DataFrame
    (`csv_options` go to pandas.read_csv; Parquet keeps its own dtypes).

    Raises UserError (one line, naming the directory and the stem) when neither exists, and
    (naming the file) when it is empty, not UTF-8 or not a table.
    """
    from llm_energy_sim.results.readcheck import read_any_table

    path = table_path(directory, stem)
    if path is None:
        raise UserError(f"{directory}: no {stem}.parquet or {stem}.csv")
    return read_any_table(path, **csv_options)
