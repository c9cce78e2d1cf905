"""results.provenance: version, commit (None outside a checkout, never an error), overrides."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import llm_energy_sim
from llm_energy_sim.results.provenance import git_commit, provenance

PACKAGE_DIR = Path(llm_energy_sim.__file__).resolve().parent


def _tracked() -> bool:
    if shutil.which("git") is None:
        return False
    r = subprocess.run(
        ["git", "-C", str(PACKAGE_DIR), "ls-files", "--error-unmatch", "__init__.py"],
        capture_output=True,
    )
    return r.returncode == 0


@pytest.mark.skipif(not _tracked(), reason="the package does not run from a git checkout")
def test_commit_of_the_checkout():
    head = subprocess.run(
        ["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    commit, dirty = git_commit()
    assert commit == head and len(commit) == 40
    assert isinstance(dirty, bool)


def test_no_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == (None, None)


def test_no_git_on_path_is_no_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    p = provenance("sim run", "scenarios/x.yaml", ["dtype=int8"], 5)
    assert p.commit is None and p.dirty is None


def test_fields():
    p = provenance("sim replay", Path("scenarios/x.yaml"), ("a.b=1", "c=d"), None).to_dict()
    assert p["version"] == llm_energy_sim.__version__ and p["package"] == "llm-energy-sim"
    assert p["command"] == "sim replay" and p["scenario_path"] == "scenarios/x.yaml"
    assert p["overrides"] == {"set": ["a.b=1", "c=d"], "requests": None}
    assert p["created_utc"].endswith("+00:00")
