"""Whole-file writes: a file (a sweep's journal, spec and table, a plan's CSV, a profile,
a raw table's repair) is written to `temp_path(path)`, ``.NAME.tmp-PID`` beside it, and
renamed over it with os.replace, so a kill leaves the old file or the new one, never a torn
one. A writer calls `remove_stale_temps(path)` first, so the temp file of a killed writer
does not survive a rerun. (A results directory is written whole by results/staging.py.)"""

from __future__ import annotations

import os
from pathlib import Path


def temp_path(path: Path) -> Path:
    """The temp file a whole-file write of `path` goes through: .NAME.tmp-PID beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Delete the .NAME.tmp-PID siblings of `path` whose writer is gone (killed before its
    os.replace); a live writer's (another process's) temp file is left alone."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` whole: a temp file beside it, flushed to disk, then
    os.replace, so a kill at any moment leaves the old file or the new one, never a torn
    one (and at most a temp file, which the next write of `path` deletes)."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_path(path)
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
