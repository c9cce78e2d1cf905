"""User-facing errors: one line, naming the file and the field, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in user input (file, field, value). The CLI prints it on one line and exits 2."""

    exit_code = 2
