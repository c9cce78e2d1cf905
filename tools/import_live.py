"""Copy a device call's results into measurements/ with every CSV table converted once to
Parquet as measurements/README.md states (zstd 19, no dictionary, byte-stream split on float
columns, no statistics, no stored schema; steps.csv read as results/steptable.py reads it),
each checked to read back equal, dtypes included. Other files are copied as they are.

    python tools/import_live.py SRC_DIR DEST_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
from pandas.testing import assert_frame_equal


def read_csv(path: Path) -> pd.DataFrame:
    if path.name == "steps.csv":
        return pd.read_csv(path, dtype={"prefill": str}, keep_default_na=False)
    return pd.read_csv(path)


def to_parquet(src: Path, dest: Path) -> None:
    df = read_csv(src)
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    df.to_parquet(
        dest,
        compression="zstd",
        compression_level=19,
        index=False,
        use_dictionary=False,
        use_byte_stream_split=floats or False,
        write_statistics=False,
        store_schema=False,
    )
    assert_frame_equal(pd.read_parquet(dest), df, check_exact=True)


def import_tree(src: Path, dest: Path) -> int:
    n = 0
    for f in sorted(src.rglob("*")):
        if not f.is_file():
            continue
        out = dest / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == ".csv" and f.stat().st_size > 0:
            to_parquet(f, out.with_suffix(".parquet"))
        else:
            shutil.copy2(f, out)
        n += 1
    return n


if __name__ == "__main__":
    print(f"{import_tree(Path(sys.argv[1]), Path(sys.argv[2]))} files")
