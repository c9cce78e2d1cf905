"""docs/accuracy.md's generated tables are what `sim validate matrix` gives on the committed
live runs (tools/update_accuracy_tables.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.update_accuracy_tables import DOC, blocks, render

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_tables_are_current():
    run = subprocess.run(
        [sys.executable, "tools/update_accuracy_tables.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_render_replaces_only_the_marked_block():
    doc = "intro\n<!-- generated: a (x) -->\nold\n<!-- end: a -->\noutro\n"
    assert (
        render(doc, {"a": "new"})
        == "intro\n<!-- generated: a (x) -->\nnew\n<!-- end: a -->\noutro\n"
    )


def test_every_block_has_its_markers_in_the_document():
    text = DOC.read_text()
    for name in blocks():
        assert f"<!-- generated: {name} " in text and f"<!-- end: {name} -->" in text
