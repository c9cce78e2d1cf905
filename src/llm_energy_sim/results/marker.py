"""The completion marker of a results directory: `.complete`, written LAST, after every other
file of the directory is written and flushed. A directory without it is incomplete (a run
killed while writing, or files copied in by hand) and every reader refuses it.

Both helpers are tiny on purpose: writers call `mark_complete(dir)` as their final step,
readers call `require_complete(dir)` before reading anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from llm_energy_sim.config.errors import UserError

MARKER = ".complete"


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries to disk (best effort: not every platform allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def mark_complete(directory: Path) -> Path:
    """Flush every file in `directory` to disk, then write `directory/.complete` (via a temp
    file and os.replace, so the marker itself is never torn). Returns the marker's path."""
    directory = Path(directory)
    for p in directory.iterdir():
        if p.is_file() and p.name != MARKER:
            with p.open("rb+") as f:
                os.fsync(f.fileno())
    tmp = directory / f"{MARKER}.tmp"
    with tmp.open("w") as f:
        f.write("complete\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / MARKER)
    _fsync_dir(directory)
    return directory / MARKER


def is_complete(directory: Path) -> bool:
    """True when `directory` holds the completion marker."""
    return (Path(directory) / MARKER).is_file()


def require_complete(directory: Path, what: str = "results directory") -> None:
    """UserError (one line) unless `directory` is a directory holding `.complete`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such {what}")
    if not is_complete(directory):
        raise UserError(
            f"{directory}: incomplete {what} (no {MARKER} marker: a run was interrupted while "
            "writing it, or it was not written by sim); rerun it"
        )
