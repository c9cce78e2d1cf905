"""`sim calibrate --fit-only` on corrupted raw tables, and the resume of a table whose last
row a kill tore: refused with exit code 2, one line naming the file (and the row / column),
nothing written; a torn last row is dropped and measured again, never counted as measured."""

from __future__ import annotations

import shutil

import pytest
from badinput import REPO_RAW, refused, sim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_energy_sim.calibrate.rawtable import append_row, done_keys

FUZZ = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
MICRO = (REPO_RAW / "microbench.csv").read_text()
HEADER, *ROWS = MICRO.splitlines(keepends=True)
COLS = HEADER.strip().split(",")


def _raw(tmp_path, text: str, name: str = "microbench.csv"):
    d = tmp_path / "raw"
    d.mkdir(exist_ok=True)
    if name != "microbench.csv":
        (d / "microbench.csv").write_text(MICRO)
    (d / name).write_text(text) if isinstance(text, str) else (d / name).write_bytes(text)
    shutil.copy(REPO_RAW / "provenance.json", d / "provenance.json")
    return d


def _fit(tmp_path, d, name="t"):
    return refused(
        ["calibrate", "--fit-only", d, "--out", tmp_path / "out", "--name", name], tmp_path
    )


def _cell(row: str, col: str, value: str) -> str:
    cells = row.rstrip("\n").split(",")
    cells[COLS.index(col)] = value
    return ",".join(cells) + "\n"


CORRUPTIONS = {
    "empty": "",
    "header-only": HEADER,
    "header-torn": HEADER[:20],
    "all-errors": HEADER + "".join(_cell(r, "error", "OOM") for r in ROWS[:5]),
    "extra-field": HEADER + ROWS[0] + ROWS[1].rstrip("\n") + ",x\n" + "".join(ROWS[2:10]),
    "missing-field": HEADER + ROWS[0] + ",".join(ROWS[1].split(",")[:-3]) + "\n" + ROWS[2],
    "text-seconds": HEADER + ROWS[0] + _cell(ROWS[1], "seconds", "fast") + ROWS[2],
    "inf-energy": HEADER + ROWS[0] + _cell(ROWS[1], "energy_j", "inf") + ROWS[2],
    "nan-text-flops": HEADER + ROWS[0] + _cell(ROWS[1], "flops", "lots") + ROWS[2],
    "no-seconds-column": HEADER.replace("seconds", "secs") + "".join(ROWS[:5]),
    "unclosed-quote": HEADER + '"' + ROWS[0] + ROWS[1],
    "not-utf8": (HEADER + ROWS[0]).encode() + b"\xff\xfe,1\n",
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupted_microbench_is_refused(tmp_path, kind):
    d = _raw(tmp_path, CORRUPTIONS[kind])
    assert "microbench.csv" in _fit(tmp_path, d)


@FUZZ
@given(
    st.integers(0, 20),
    st.sampled_from(["seconds", "energy_j", "flops", "bytes", "power_w", "m", "batch"]),
    st.sampled_from(["abc", "inf", "-inf", "1e999", "0x1g", "--"]),
)
def test_bad_cell_anywhere_is_named(tmp_path_factory, row, col, value):
    root = tmp_path_factory.mktemp("cell")
    rows = list(ROWS[:21])
    rows[row] = _cell(rows[row], col, value)
    d = _raw(root, HEADER + "".join(rows))
    line = _fit(root, d)
    assert f"row {row + 2}" in line and col in line


@pytest.mark.parametrize("table", ["idle.csv", "host.csv"])
@pytest.mark.parametrize("text", ["", "a,b\n1,2,3\n", b"\xff\n"])
def test_corrupted_other_tables_are_refused(tmp_path, table, text):
    d = _raw(tmp_path, text, table)
    assert table in _fit(tmp_path, d)


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "..", ".hidden", ""])
def test_profile_name_is_a_name(tmp_path, name):
    d = _raw(tmp_path, MICRO)
    assert "--name" in _fit(tmp_path, d, name)


def test_fit_only_of_a_missing_dir_or_a_file_out(tmp_path):
    refused(["calibrate", "--fit-only", tmp_path / "nope", "--out", tmp_path / "o"], tmp_path)
    (tmp_path / "f").write_text("x")
    d = _raw(tmp_path, MICRO)
    refused(["calibrate", "--fit-only", d, "--out", tmp_path / "f"], tmp_path)


@FUZZ
@given(st.integers(1, 400))
def test_torn_last_row_is_measured_again(tmp_path_factory, cut):
    """A kill inside append_row leaves the last row cut short: done_keys drops it (so that
    point is measured again) and keeps every whole row; the next append starts a clean row."""
    root = tmp_path_factory.mktemp("torn")
    path = root / "t.csv"
    for i in range(3):
        append_row(path, {"key": f"k{i}", "seconds": 0.5 + i, "error": ""})
    text = path.read_text()
    last = text.splitlines(keepends=True)[-1]
    path.write_text(text[: len(text) - len(last) + cut % (len(last) - 1)])
    assert done_keys(path) == {"k0", "k1"}
    append_row(path, {"key": "k2", "seconds": 2.5, "error": ""})
    assert done_keys(path) == {"k0", "k1", "k2"}
    assert path.read_text().count("\n") == 4


def test_fit_ignores_a_torn_last_row(tmp_path):
    """The refit of a table whose last row is torn fits the whole rows (exit 0)."""
    d = _raw(tmp_path, MICRO[:-40])
    r = sim(["calibrate", "--fit-only", d, "--out", tmp_path / "out", "--name", "t"], tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "t.json").is_file()
