"""The package's layering (docs/development.md): each layer imports only from the layers
below it, peers never import each other, there is no import cycle, and no private name
crosses a module boundary. Checked on the source's import statements, including the lazy
ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llm_energy_sim import LAYERS

PACKAGE = Path(__import__("llm_energy_sim").__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of this package."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "llm_energy_sim":
                continue
            names = [a.name for a in node.names]
            # `from pkg import submodule` imports the submodule
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
            if subs:
                found += [(s, [], node.lineno) for s in subs]
                names = [n for n in names if f"{mod}.{n}" not in MODULES]
            if names or not subs:
                found.append((mod, names, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "llm_energy_sim":
                    found.append((a.name, [], node.lineno))
    return found


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(component: str) -> int:
    for i, layer in enumerate(LAYERS):
        if component in layer:
            return i
    raise AssertionError(f"component {component!r} is in no layer of llm_energy_sim.LAYERS")


EDGES = [(m, dep, names, line) for m, p in MODULES.items() for dep, names, line in _imports(m, p)]


def test_every_component_is_in_a_layer():
    for m in MODULES:
        if _component(m):
            _rank(_component(m))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_from_lower_layers(module):
    here = _component(module)
    for m, dep, _names, line in EDGES:
        if m != module:
            continue
        there = _component(dep)
        if there in ("", here):
            continue
        assert _rank(there) < _rank(here), (
            f"{MODULES[m].name}:{line} imports {dep} ({there}) from layer {here}"
        )


def test_no_private_name_crosses_a_module():
    bad = [
        f"{m}:{line} takes {n} from {dep}"
        for m, dep, names, line in EDGES
        for n in names
        if n.startswith("_") and dep != m
    ]
    assert not bad, bad


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, dep, _n, _l in EDGES:
        while dep not in MODULES and "." in dep:
            dep = dep.rsplit(".", 1)[0]
        if dep in MODULES and dep != m and not m.startswith(dep + "."):
            graph[m].add(dep)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles
