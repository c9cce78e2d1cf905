"""Names that become file names (scenario names, model-card names, calibration names):
a name, never a path, so nothing is read or written outside the folder it belongs to."""

from __future__ import annotations

import re

#: letters, digits and . _ - + = @ , (no separators, no leading dot, no control characters)
_NAME = re.compile(r"[A-Za-z0-9_+=@,-][A-Za-z0-9._+=@,-]*")
MAX_NAME = 200


def is_name(text: str) -> bool:
    """True when `text` can be used as one file or folder name: non-empty, at most 200
    characters of letters, digits and ._+=@,- , not starting with a dot (so never '.'/'..'
    or a hidden file) and holding no path separator."""
    return isinstance(text, str) and len(text) <= MAX_NAME and _NAME.fullmatch(text) is not None


def check_name(text: str, what: str) -> str:
    """`text` itself, or ValueError saying what a name may hold (pydantic validators turn it
    into the usual one-line field error)."""
    if not is_name(text):
        raise ValueError(
            f"{what} is a name, not a path: {text!r} must be 1-{MAX_NAME} letters, digits "
            "or ._+=@,- (no '/', no leading '.')"
        )
    return text


def refuse_bool_numbers(model_cls, data):
    """`data` itself, or ValueError when a field annotated as a number (int or float) is
    given a boolean (pydantic's lax mode would read `requests: true` as 1 request)."""
    from typing import get_args

    if not isinstance(data, dict):
        return data
    for name, field in model_cls.model_fields.items():
        value = data.get(name)
        if not isinstance(value, bool):
            continue
        kinds = {field.annotation, *get_args(field.annotation)}
        if bool not in kinds and kinds & {int, float}:
            raise ValueError(f"'{name}' is {value}, a boolean; give a number")
    return data
