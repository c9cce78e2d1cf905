"""The study notebooks are executed so they never rot (each takes seconds: shortened traces).

Every notebook must end with its `summary` table: one row per claim of the paper, with the
paper's value, our prediction and an agreement verdict computed in the notebook.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

CHECK_SUMMARY = """\
assert list(summary.columns[:4]) == [summary.columns[0], "paper", "ours", "agreement"], summary.columns
assert summary.columns[0].startswith("paper ("), summary.columns[0]
assert len(summary) >= 3
assert set(summary["agreement"]) <= {"yes", "partly", "no"}, set(summary["agreement"])
assert summary["ours"].map(lambda s: isinstance(s, str) and len(s) > 0).all()
"""


def test_the_four_studies_are_there():
    names = {p.stem for p in NOTEBOOKS}
    assert {
        "fig1_precision",
        "fig2_batching",
        "fig3_arrival_shaping",
        "macro_1e6_requests_per_day",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_and_ends_with_its_summary_table(path: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    last = nb.cells[-1]
    assert last.cell_type == "code" and last.source.rstrip().endswith("summary")
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_SUMMARY))
    nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    ).execute()  # raises CellExecutionError on any failing cell, the check included
    shown = nb.cells[-2].outputs
    assert shown and "agreement" in str(shown[0].get("data", {}))
