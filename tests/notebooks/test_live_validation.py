"""The notebooks of Figures 1 and 2 state which of their configurations the live H200 matrix
validated (issue 17 item 4): the committed tables are what notebooks/build_notebooks.py makes
from the committed matrix now, apart from the error figures (they move with the cost model and
are refreshed by a rebuild), and every validated cell names a matrix case of exactly that
model, dtype, server and batch."""

from __future__ import annotations

import importlib.util
import re

import pytest
from conftest import REPO

from llm_energy_sim.cli.validate import load_matrix

nbformat = pytest.importorskip("nbformat")  # as the notebook tests: the notebook extra

HEADING = "### Which cells were validated live"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_nb", REPO / "notebooks/build_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rows(build):
    return load_matrix(build.MATRIX_DIR)["rows"]


def _committed(name: str) -> str:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    (md,) = [c.source for c in nb.cells if c.cell_type == "markdown" and HEADING in c.source]
    return md


def _no_errors(md: str) -> str:
    return re.sub(r"[+-]\d+\.\d%", "ERR", md)


@pytest.mark.parametrize(
    "fig, name", [("fig1", "fig1_precision.ipynb"), ("fig2", "fig2_batching.ipynb")]
)
def test_the_committed_table_is_the_one_the_matrix_gives(build, rows, fig, name):
    assert _no_errors(_committed(name)) == _no_errors(build.live_validation_markdown(fig, rows))


def test_figure_1_cells_validated_are_the_sequential_matrix_cases(build, rows):
    md = _committed("fig1_precision.ipynb")
    table = {
        cells[0]: dict(zip(build.FIG1_DTYPES, cells[1:], strict=True))
        for line in md.splitlines()
        if line.startswith("| ")
        and (cells := [c.strip() for c in line.strip("|").split("|")])
        and cells[0] in build.FIG1_MODELS
    }
    assert set(table) == set(build.FIG1_MODELS)
    want = {
        (r["model"], r["dtype"]): r["case"]
        for r in rows
        if r["server"] == "sequential" and r["model"] in build.FIG1_MODELS
    }
    assert want  # the matrix has HF generate cases of the figure's models
    for m, by in table.items():
        for d, cell in by.items():
            if (m, d) in want:
                assert cell.startswith("live: ") and want[m, d] in cell
            else:
                assert cell == "unvalidated"
    n = sum(1 for by in table.values() for c in by.values() if c != "unvalidated")
    assert f"**{n} of {len(build.FIG1_MODELS) * len(build.FIG1_DTYPES)} configurations" in md


def test_figure_2_batches_are_unvalidated_unless_the_matrix_has_them(build, rows):
    md = _committed("fig2_batching.ipynb")
    have = {
        int(r["server"].removeprefix("static b"))
        for r in rows
        if (r["model"], r["dtype"]) == (build.FIG2_MODEL, build.FIG2_DTYPE)
        and r["server"].startswith("static b")
    }
    for b in build.FIG2_BATCHES:
        (line,) = [x for x in md.splitlines() if x.startswith(f"| {b} | ")]
        assert ("| unvalidated |" in line) == (b not in have)
    # the nearest cases named are matrix cases of the same batch
    for r in rows:
        if r["case"] in md:
            b = r["server"].removeprefix("static b")
            assert any(x.startswith(f"| {b} | ") and r["case"] in x for x in md.splitlines())
