"""`sim models`, `sim profiles`, `sim scenarios`: what this installation ships and finds."""

from __future__ import annotations

import click

from llm_energy_sim.config.modelcard import load_model_card_file, model_card_paths
from llm_energy_sim.config.paths import PROFILES_DIR, SCENARIOS_DIR
from llm_energy_sim.config.profile import DEFAULT_PROFILES_BY_GPU, load_profile


@click.command("models")
def models_cmd() -> None:
    """List the model cards found (your --models-dir / $SIM_MODELS_DIR first, then shipped)."""
    for name, path in model_card_paths().items():
        card = load_model_card_file(path)
        click.echo(
            f"{name:<22} {card.num_params() / 1e9:6.1f}B  {card.num_hidden_layers:3d} layers  "
            f"{card.architecture:<18} {path}"
        )


@click.command("profiles")
def profiles_cmd() -> None:
    """List the shipped calibration profiles (the default of each hardware.gpu marked *)."""
    defaults = {names[0] for names in DEFAULT_PROFILES_BY_GPU.values()}
    for path in sorted(PROFILES_DIR.glob("*.json")):
        profile, _ = load_profile(str(path))
        mark = "*" if path.stem in defaults else " "
        click.echo(f"{mark} {path.stem:<22} {profile.gpu.name:<28} {path}")


@click.command("scenarios")
def scenarios_cmd() -> None:
    """List the shipped scenarios (`sim run scenarios/NAME.yaml` runs one from anywhere)."""
    for path in sorted(SCENARIOS_DIR.rglob("*.yaml")):
        click.echo(f"scenarios/{path.relative_to(SCENARIOS_DIR)}")
