"""Click options shared by several `sim` commands (a module of its own: the commands living
in other modules import it without importing sim.cli, which registers them)."""

from __future__ import annotations

from pathlib import Path

import click


def host_speed_option(help_text: str):
    """`--host-speed TABLE|DIR` (repeatable), the option of every command that takes the
    serving machine's measured host speed into hardware.host_time_factor."""
    return click.option(
        "--host-speed",
        "host_tables",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="TABLE|DIR",
        help=help_text,
    )
