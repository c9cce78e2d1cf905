"""Helpers of the bad-input suite (tests/fuzz): run `sim` in-process on a bad input and
assert that it was refused cleanly: exit code 2 (or the given code), one line on stderr,
no traceback, and nothing written (the tree of files under the watched folder unchanged)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from llm_energy_sim.cli.main import main

#: a scenario that runs in well under a second
SMALL = {
    "name": "small",
    "model": "qwen2.5-0.5b",
    "dtype": "bfloat16",
    "server": {"kind": "sequential"},
    "workload": {
        "requests": 3,
        "arrival": {"kind": "fixed", "interval_ms": 500},
        "prompt_tokens": {"kind": "fixed", "value": 10},
        "output_tokens": {"kind": "fixed", "value": 5},
    },
}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root: relative path -> (size, mtime in ns)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


@contextlib.contextmanager
def cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def sim(args: list[str], where: Path) -> Result:
    """`sim ARGS` in-process, from folder `where`."""
    with cwd(where):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def assert_refused(
    result: Result, before: dict | None = None, root: Path | None = None, code: int = 2
) -> str:
    """The run was refused cleanly; returns its one line."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"traceback: {exc!r}\n{result.output}"
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    if before is not None:
        assert tree(root) == before, "something was written"
    return lines[0]


def write_scenario(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def refused(args: list[str], root: Path, code: int = 2) -> str:
    """Run `sim ARGS` from root and assert a clean refusal that wrote nothing under root."""
    before = tree(root)
    return assert_refused(sim(args, root), before, root, code)


#: a committed raw calibration directory (microbench.csv, provenance.json, ...)
REPO_RAW = Path(__file__).resolve().parents[1] / "measurements" / "calibration" / "h100-v2"


def fail_like_infrastructure(x: int) -> int:
    """A worker function that fails the way a lost mount or a dead node does (not a user
    mistake): an OSError."""
    raise OSError(f"disk vanished under point {x}")
