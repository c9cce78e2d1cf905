"""Provenance of a results directory: the package version, the git commit when the package
runs from a checkout, the scenario file, the command line's overrides and the UTC time.

The commit is git's HEAD of the checkout holding this package's source, None when the
package is not a tracked file of one (an installed wheel, no git on PATH, any git failure):
provenance never makes a run fail.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import llm_energy_sim
from llm_energy_sim.results.schema import Overrides, Provenance

PACKAGE = "llm-energy-sim"
GIT_TIMEOUT_S = 10.0


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", "--no-optional-locks", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(directory: Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files differ from it) of the checkout whose tracked
    files include this package's __init__.py (or `directory`'s); (None, None) otherwise."""
    here = Path(directory or Path(llm_energy_sim.__file__).resolve().parent)
    tracked = _git(here, "ls-files", "--error-unmatch", "--", "__init__.py")
    if directory is None and (tracked is None or tracked.returncode != 0):
        return None, None
    head = _git(here, "rev-parse", "--verify", "HEAD")
    if head is None or head.returncode != 0:
        return None, None
    status = _git(here, "status", "--porcelain", "--untracked-files=no")
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return head.stdout.strip(), dirty


def provenance(
    command: str,
    scenario_path: Path | str | None,
    sets: Sequence[str] = (),
    requests: int | None = None,
) -> Provenance:
    """The provenance of a run of `command` on `scenario_path` with these --set / --requests."""
    commit, dirty = git_commit()
    return Provenance(
        command=command,
        package=PACKAGE,
        version=llm_energy_sim.__version__,
        commit=commit,
        dirty=dirty,
        scenario_path=None if scenario_path is None else str(scenario_path),
        overrides=Overrides(set=list(sets), requests=requests),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
