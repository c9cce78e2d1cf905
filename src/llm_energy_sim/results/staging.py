"""Write an output directory whole: into a hidden sibling first, swapped in when complete.

``with staged_dir(out) as tmp:`` yields an empty directory beside `out`; when the block ends
without an exception the previous `out` (plots and files of an earlier run included) is
replaced by it: `out` is renamed aside, `tmp` renamed to `out`, the old one deleted. On an
exception or a kill inside the block the previous `out` stays as it was and nothing of the
new run is mixed into it (a kill leaves at most a hidden ``.NAME.tmp-*`` sibling, removed by
the next write to `out`). ``keep=True`` starts `tmp` as a copy of `out`: an amendment
(a file added to a finished results directory) is written the same way.

An existing `out` is only replaced when it is empty or holds `marker` (the file that makes
it an output of this kind, summary.json for results): `--out` pointed at any other
directory is a UserError, never a deletion.

A single file (a sweep's journal, spec and table, a plan's CSV) is replaced the same way
through `temp_path(path)`, ``.NAME.tmp-PID`` beside it, and os.replace; a writer calls
`remove_stale_temps(path)` first, so the temp file of a killed writer does not survive a
rerun.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llm_energy_sim.config.errors import UserError


def _target(out_dir: Path) -> Path:
    """The directory to replace: absolute, through a symlink to where it points."""
    out_dir = Path(os.path.abspath(out_dir))
    return out_dir.resolve() if out_dir.is_symlink() else out_dir


def check_replaceable(out_dir: Path, marker: str) -> None:
    """UserError unless out_dir is absent, an empty directory, or one holding `marker`."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory")
    if (out_dir / marker).exists() or not any(out_dir.iterdir()):
        return
    raise UserError(
        f"{out_dir}: exists and has no {marker}, so it is not an output to replace; "
        "give another --out"
    )


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


def _clear_leftovers(parent: Path, name: str) -> None:
    """Hidden siblings of a write to parent/name that a kill left behind."""
    for prefix in (f".{name}.tmp-", f".{name}.old-"):
        for p in parent.glob(f"{prefix}*"):
            shutil.rmtree(p, ignore_errors=True)


@contextmanager
def staged_dir(out_dir: Path, marker: str, keep: bool = False) -> Iterator[Path]:
    """Yield a directory to write `out_dir`'s files into; it becomes `out_dir` on success."""
    out_dir = _target(out_dir)
    check_replaceable(out_dir, marker)
    if keep and not out_dir.is_dir():
        raise UserError(f"{out_dir}: no such directory")
    parent, name = out_dir.parent, out_dir.name
    parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(parent, name)
    tmp = parent / f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    if keep:
        shutil.copytree(out_dir, tmp, symlinks=True)
    else:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        old = parent / f".{name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)
