"""Options and option handling shared by several `sim` commands."""

from __future__ import annotations

import math
import os
from pathlib import Path

import click

from llm_energy_sim.config.errors import UserError


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


def overrides(requests: int | None, sets: tuple[str, ...]) -> dict:
    """The --set overrides, with --requests as workload.requests; UserError when a --set
    key is one --requests sets (it would be overridden silently)."""
    from llm_energy_sim.config.scenario import parse_override

    ov = dict(parse_override(s) for s in sets)
    if requests is not None:
        check_not_overridden(ov, {"workload.requests": "--requests"})
        ov["workload.requests"] = requests
    return ov


def load_with_host_speed(scenario: Path, ov: dict, host_tables, profile: str | None):
    """The scenario with its overrides; with host tables, hardware.host_time_factor set from
    them (against the profile the run uses). Returns (scenario, the host runs used or None)."""
    from llm_energy_sim.config.scenario import load_scenario

    scen = load_scenario(scenario, ov)
    if not host_tables:
        return scen, None
    if "hardware.host_time_factor" in ov:
        raise UserError("give either --host-speed or --set hardware.host_time_factor, not both")
    from llm_energy_sim.calibrate.hostspeed import factor_from_tables
    from llm_energy_sim.simulation import profile_for

    prof, _ = profile_for(scen, profile)
    ov = dict(ov)
    ov["hardware.host_time_factor"], host_runs = factor_from_tables(list(host_tables), prof)
    return load_scenario(scenario, ov), host_runs


class FiniteFloat(click.ParamType):
    """A finite float (NaN and +-inf refused) within (or at) the given bounds; a bad value is
    click's usual one-line usage error (exit code 2)."""

    name = "float"

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def _allowed(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return "a finite number" + (f" {' and '.join(parts)}" if parts else "")

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float) and math.isfinite(value):
            v = value
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not {self._allowed()}", param, ctx)
        too_low = self.low is not None and (v <= self.low if self.low_open else v < self.low)
        too_high = self.high is not None and (v >= self.high if self.high_open else v > self.high)
        if not math.isfinite(v) or too_low or too_high:
            self.fail(f"{value!r} is not {self._allowed()}", param, ctx)
        return v


def max_workers() -> int:
    """The most local worker processes `--workers` may ask for: 4 per CPU core (a pool
    forks them all at once, each holding a run; more gives no speed, only memory)."""
    return 4 * (os.cpu_count() or 1)


def check_workers(workers: int, dask_address: str | None = None) -> None:
    """UserError (one line) unless 1 <= --workers <= max_workers() (unused with --dask)."""
    if workers < 1:
        raise UserError("--workers must be >= 1")
    if dask_address is None and workers > max_workers():
        raise UserError(
            f"--workers {workers}: at most {max_workers()} local processes on this machine "
            f"(4 per CPU core); use --dask for more"
        )


#: a positive finite float (rates, SLOs, seconds)
POSITIVE = FiniteFloat(0.0, low_open=True)
#: an integer >= 1 (counts of requests, workers, replicas)
AT_LEAST_ONE = click.IntRange(min=1)


def check_not_overridden(keys, option_keys: dict[str, str]) -> None:
    """UserError when a --set key is (or lies under) a key that an option sets, e.g.
    `--set workload.requests=10,30 --requests 20`: the option would win silently."""
    for key in keys:
        for owned, option in option_keys.items():
            if key == owned or key.startswith(owned + ".") or owned.startswith(key + "."):
                raise UserError(
                    f"--set {key}: {option} sets {owned} on every run; give one or the other"
                )


def _creatable_dir(d: Path, what: str) -> None:
    """UserError unless `d` is a directory or could be made one (its nearest existing
    ancestor a writable directory)."""
    d = Path(os.path.abspath(d))
    probe = d
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {d}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {d}: cannot write in {probe} (permission denied)")


def check_out_dir(out_dir: Path, what: str = "--out") -> None:
    """UserError (one line) unless `out_dir` is a directory or can be created: not a file,
    not under a file, in a writable place. Called before any work, so nothing is written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{what} {out_dir}: exists and is a file, not a directory")
    _creatable_dir(out_dir, what)


def check_out_file(out: Path, what: str = "--out") -> None:
    """UserError (one line) unless `out` can be written as a file: not a directory, its
    folder a directory or creatable."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{what} {out}: is a directory; give a file name")
    _creatable_dir(out.parent, what)


def write_csv_atomic(df, out: Path) -> None:
    """`df` as CSV at `out`, written to a temp file beside it and renamed over it, so a kill
    leaves the old file or the new one, never a torn one."""
    from llm_energy_sim.config.files import remove_stale_temps, temp_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    tmp = temp_path(out)
    df.to_csv(tmp, index=False)
    os.replace(tmp, out)
