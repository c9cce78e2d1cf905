"""User-facing errors: one line, naming the file and the field, exit code 2."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in user input (file, field, value). The CLI prints it on one line and exits 2."""

    exit_code = 2


def require_file(path: Path) -> Path:
    """path as a Path, or a UserError (one line) when it does not exist or is not a file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    return path
