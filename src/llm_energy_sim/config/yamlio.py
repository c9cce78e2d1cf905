"""YAML loading with one-line errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llm_energy_sim.config.errors import UserError, require_file

#: deeper than this a YAML document is refused (PyYAML recurses once per level)
MAX_DEPTH = 64
#: larger than this a YAML file is refused (scenarios and cards are a few kB)
MAX_BYTES = 16 * 1024 * 1024


def _depth(text: str) -> int:
    """An upper bound on the nesting of flow collections ([ and {) in `text`."""
    depth = top = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return top


def _indent_depth(text: str) -> int:
    """Distinct indentation levels of block collections, a bound on block nesting."""
    return len({len(line) - len(line.lstrip(" -")) for line in text.splitlines() if line.strip()})


def load_yaml_text(text: str, where: str) -> Any:
    """yaml.safe_load of `text` with one-line UserErrors naming `where` (not valid YAML,
    nested deeper than MAX_DEPTH)."""
    if _depth(text) > MAX_DEPTH or _indent_depth(text) > MAX_DEPTH:
        raise UserError(f"{where}: nested deeper than {MAX_DEPTH} levels; not a scenario")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        msg = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise UserError(f"{where}{line}: not valid YAML: {msg}") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deeply; not a scenario") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping or raise a one-line UserError naming the file (missing, a
    directory, unreadable, not UTF-8, too large, too deep, not YAML, not a mapping)."""
    path = require_file(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a YAML file")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    data = load_yaml_text(text, str(path))
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of fields at the top level")
    return data


def validation_message(path: Path | str, exc: ValidationError) -> str:
    """Turn a pydantic error into one line: file, dotted field, what is wrong / allowed."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{path}: field '{field}': {msg}{more}"
