"""YAML loading with one-line errors that name the file.

Every YAML document `sim` reads (scenarios, model cards, `--set` values) goes through
`load_yaml_text`, which refuses before anything is built: a file above MAX_BYTES, text
nested deeper than MAX_DEPTH, and a document whose aliases expand past MAX_NODES nodes or
MAX_NODE_DEPTH levels, or refer to themselves (a "billion laughs" document is a few hundred
bytes that PyYAML composes as a small graph of shared nodes; pydantic, json.dumps and the
merge key `<<` copy it out into 10^9 nodes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llm_energy_sim.config.errors import UserError, require_file

#: deeper than this a YAML document is refused (PyYAML recurses once per level)
MAX_DEPTH = 64
#: larger than this a YAML file is refused (scenarios and cards are at most 3 kB; PyYAML
#: parses about 0.25 MiB a second)
MAX_BYTES = 1024 * 1024
#: more nodes than this, in the text or with every alias expanded, and a YAML document is
#: refused (the largest shipped scenario has about 60; PyYAML composes ~50,000 a second)
MAX_NODES = 20_000
#: deeper than this, with every alias expanded, a document is refused (text nested
#: MAX_DEPTH levels deep composes to at most about twice as many nodes deep)
MAX_NODE_DEPTH = 2 * MAX_DEPTH


class _Refused(Exception):
    """A composed YAML graph that may not be constructed (the message says why)."""


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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_expansion(root: yaml.Node) -> None:
    """_Refused when the node graph `root`, with every alias expanded, holds more than
    MAX_NODES nodes, nests deeper than MAX_NODE_DEPTH or contains itself. One pass over the
    distinct nodes (an alias is the node it names), so a bomb is measured, not expanded."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()  # begun, not finished: the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES} nodes, aliases expanded (an alias bomb?)")
            if depth[key] > MAX_NODE_DEPTH:
                raise _Refused(f"nested deeper than {MAX_NODE_DEPTH} levels, aliases expanded")
            continue
        if key in size:
            continue
        if key in open_:
            raise _Refused("an alias refers to a node that contains it (a recursive document)")
        open_.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


class _CountingLoader(yaml.SafeLoader):
    """yaml.SafeLoader that stops composing (so stops parsing) past MAX_NODES nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} nodes")
        return super().compose_node(parent, index)


def _safe_load(text: str) -> Any:
    """yaml.safe_load, composing at most MAX_NODES nodes, with the composed graph checked
    by check_expansion before any object is built from it."""
    loader = _CountingLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml_text(text: str, where: str) -> Any:
    """yaml.safe_load of `text` with one-line UserErrors naming `where` (larger than
    MAX_BYTES, nested deeper than MAX_DEPTH, aliases expanding past MAX_NODES nodes or
    referring to themselves, not valid YAML)."""
    if len(text) > MAX_BYTES:
        raise UserError(f"{where}: larger than {MAX_BYTES // 2**20} MiB; not a scenario or card")
    if _depth(text) > MAX_DEPTH or _indent_depth(text) > MAX_DEPTH:
        raise UserError(f"{where}: nested deeper than {MAX_DEPTH} levels; not a scenario")
    try:
        return _safe_load(text)
    except _Refused as exc:
        raise UserError(f"{where}: refused: {exc}") from None
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
            raise UserError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a scenario or card")
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
