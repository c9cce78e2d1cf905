"""results.staging.staged_dir: a directory is written whole and replaces the previous one."""

from __future__ import annotations

import pytest

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.staging import staged_dir

MARK = "summary.json"


def _siblings(d):
    return sorted(p.name for p in d.parent.iterdir() if p.name != d.name)


def test_replaces_every_file_of_the_previous_write(tmp_path):
    out = tmp_path / "run"
    with staged_dir(out, MARK) as tmp:
        (tmp / MARK).write_text("{}")
        (tmp / "power.png").write_bytes(b"png")
        assert not out.exists()  # nothing is visible before the block ends
    assert sorted(p.name for p in out.iterdir()) == sorted([MARK, "power.png"])
    with staged_dir(out, MARK) as tmp:
        (tmp / MARK).write_text('{"second": 1}')
    assert [p.name for p in out.iterdir()] == [MARK]
    assert (out / MARK).read_text() == '{"second": 1}'
    assert _siblings(out) == []  # no temporary or old directory left beside it


def test_a_failed_write_leaves_the_previous_one(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARK).write_text("old")
    with pytest.raises(RuntimeError), staged_dir(out, MARK) as tmp:
        (tmp / MARK).write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in out.iterdir()] == [MARK]
    assert (out / MARK).read_text() == "old"
    assert _siblings(out) == []


def test_leftovers_of_a_killed_write_are_cleared(tmp_path):
    out = tmp_path / "run"
    (tmp_path / ".run.tmp-deadbeef").mkdir()
    (tmp_path / ".run.tmp-deadbeef" / MARK).write_text("torn")
    with staged_dir(out, MARK) as tmp:
        (tmp / MARK).write_text("new")
    assert _siblings(out) == []


def test_keep_amends_a_copy(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARK).write_text("s")
    (out / "requests.csv").write_text("r")
    with staged_dir(out, MARK, keep=True) as tmp:
        assert (tmp / "requests.csv").read_text() == "r"
        (tmp / "hostspeed.csv").write_text("h")
        assert not (out / "hostspeed.csv").exists()
    assert sorted(p.name for p in out.iterdir()) == ["hostspeed.csv", "requests.csv", MARK]


def test_never_replaces_a_directory_of_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as err, staged_dir(tmp_path, MARK):
        pass
    assert "\n" not in str(err.value) and MARK in str(err.value)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged_dir(empty, MARK) as tmp:
        (tmp / MARK).write_text("{}")
    assert (empty / MARK).exists()


def test_through_a_symlink_the_target_is_replaced(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with staged_dir(link, MARK) as tmp:
        (tmp / MARK).write_text("{}")
    assert link.is_symlink() and (real / MARK).exists()
