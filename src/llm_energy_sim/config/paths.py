"""Where the shipped data lives: model cards, profiles and scenarios are package data, so an
installed wheel finds them from any directory; users add model cards from directories of
their own ($SIM_MODELS_DIR, or `sim --models-dir DIR`)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
PROFILES_DIR = DATA_DIR / "profiles"
MODELS_DIR = DATA_DIR / "models"
SCENARIOS_DIR = DATA_DIR / "scenarios"

#: environment variable naming extra model-card folders (os.pathsep-separated)
MODELS_ENV = "SIM_MODELS_DIR"


def models_dirs() -> list[Path]:
    """Model-card folders searched in order: each folder of $SIM_MODELS_DIR, ./models, the
    shipped cards (the first folder that has a card of that name wins)."""
    dirs = [Path(d) for d in os.environ.get(MODELS_ENV, "").split(os.pathsep) if d]
    dirs += [Path.cwd() / "models", MODELS_DIR]
    seen: list[Path] = []
    for d in dirs:
        if d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def shipped_scenario(path: Path) -> Path | None:
    """A shipped scenario a path names when it does not exist here: `scenarios/burst.yaml`
    (as in a source checkout), `burst.yaml` or `burst`, from any directory."""
    parts = list(path.parts)
    if parts and parts[0] == "scenarios":
        parts = parts[1:]
    if not parts:
        return None
    rel = Path(*parts)
    for cand in (rel, rel.with_suffix(".yaml")):
        full = SCENARIOS_DIR / cand
        if full.is_file():
            return full
    return None
