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

A single file is replaced the same way by config/files.py (a temp file and os.replace).
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
