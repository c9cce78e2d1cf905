"""Grids of scenario overrides and a parallel runner for them (shared by `sim sweep` and `sim plan`).

A grid point is a dict of dotted-key overrides; one point runs as one simulation and becomes
one flat row (the overrides as `set.<key>` columns, the summary flattened to dotted columns).
Points travel to workers as a `ScenarioRef` (the scenario's parsed YAML, not its path), so a
Dask worker on another machine needs no copy of the file.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_energy_sim.config.errors import UserError

POINT_KEY = "point"
SET_PREFIX = "set."


class InfrastructureError(UserError):
    """Not a mistake in the input: a worker process died, a Dask worker lacks a file or
    went away. Points it hit are not recorded as done, so a resumed sweep retries them
    (a UserError of a point is recorded as that point's row). One line, exit code 1."""

    exit_code = 1


@dataclass(frozen=True)
class ScenarioRef:
    """A scenario as data: what a worker process needs to load it (with overrides) anywhere."""

    data: dict[str, Any]
    source: str
    base_dir: str

    @classmethod
    def from_path(cls, path: str | Path) -> ScenarioRef:
        from llm_energy_sim.config.yamlio import read_yaml

        p = Path(path)
        data = read_yaml(p)
        if not isinstance(data, dict):
            raise UserError(f"{p}: a scenario must be a YAML mapping")
        return cls(data, str(p), str(p.resolve().parent))

    def load(self, overrides: dict[str, Any] | None = None):
        """The validated Scenario with the overrides applied (UserError on a bad value)."""
        from llm_energy_sim.config.scenario import load_scenario_dict

        return load_scenario_dict(self.data, self.source, overrides, base_dir=Path(self.base_dir))

    def digest(self) -> str:
        """A stable fingerprint of the scenario's content (to refuse resuming another sweep)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()[:16]


def as_ref(scenario: str | Path | ScenarioRef) -> ScenarioRef:
    return scenario if isinstance(scenario, ScenarioRef) else ScenarioRef.from_path(scenario)


# ---- parsing --set key=v1,v2,... ------------------------------------------------------------
def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside brackets/braces, so '{kind: poisson, rate: 2},{...}' is 2 values."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """'hardware.replicas=1,2,4' -> ('hardware.replicas', [1, 2, 4]); values read as YAML."""
    if "=" not in text:
        raise UserError(f"--set '{text}': expected key=v1,v2,... (e.g. dtype=bfloat16,int8)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"--set '{text}': empty key")
    from llm_energy_sim.config.yamlio import load_yaml_text

    values = [load_yaml_text(v.strip(), f"--set '{text}'") for v in split_top_level(raw)]
    if any(v is None for v in values):
        raise UserError(f"--set '{text}': empty value in the list")
    return key, values


def grid_points(axes: Iterable[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """The cartesian product of the axes, in order (first axis slowest); [{}] if none."""
    axes = list(axes)
    keys = [k for k, _ in axes]
    if len(set(keys)) != len(keys):
        raise UserError(f"--set: a key is given twice ({', '.join(keys)})")
    return [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def parse_sets(sets: Iterable[str]) -> list[dict[str, Any]]:
    """['dtype=bfloat16,int8', 'hardware.replicas=1,2'] -> the 4 override dicts."""
    return grid_points(parse_axis(s) for s in sets)


def point_key(overrides: dict[str, Any]) -> str:
    """Canonical text of a grid point: the identity used to skip finished points on resume."""
    return json.dumps(overrides, sort_keys=True, default=str)


# ---- one point -> one flat row ---------------------------------------------------------------
def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary -> {'energy.per_request_wh': ..., 'latency_s.ttft.p90': ...}; lists dropped."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, list | tuple):
            out[f"{prefix}{k}"] = None if isinstance(v, float) and math.isnan(v) else v
    return out


def simulate_summary(
    ref: ScenarioRef, overrides: dict[str, Any], interval: bool = False
) -> dict[str, Any]:
    """Run one simulation and return its flattened summary (UserError propagates); with
    `interval`, also the bound runs of its 80% intervals (analysis/intervals.py), one after
    the other, as intervals.<figure>.lower / .upper columns."""
    from llm_energy_sim.analysis.intervals import flat_bounds, simulate_with_bounds
    from llm_energy_sim.results.accounting import RequestTable, summarize
    from llm_energy_sim.simulation import simulate

    scen = ref.load(overrides)
    if not interval:
        res = simulate(scen)
        return flatten(summarize(res, RequestTable(res)))
    summary, _ = simulate_with_bounds(scen)
    intervals = summary.pop("intervals", None)
    return {**flatten(summary), **flat_bounds(intervals)}


def run_point(
    scenario: str | Path | ScenarioRef,
    overrides: dict[str, Any],
    requests: int | None = None,
    interval: bool = False,
) -> dict[str, Any]:
    """One grid point -> one row. A user error (e.g. the model does not fit the GPU) is a row
    with its message in `error`, not a crash: a grid commonly holds such points. With
    `interval`, the row carries the 80% intervals' bounds (simulate_summary)."""
    ref = as_ref(scenario)
    ov = dict(overrides)
    if requests is not None:
        ov["workload.requests"] = requests
    row: dict[str, Any] = {
        POINT_KEY: point_key(overrides),
        **{f"{SET_PREFIX}{k}": _cell(v) for k, v in overrides.items()},
    }
    try:
        row.update(simulate_summary(ref, ov, interval))
        row["error"] = ""
    except UserError as exc:
        row["error"] = str(exc)
    return row


def _cell(v: Any) -> Any:
    """Scalars stay as they are; a mapping/list value (e.g. an arrival spec) becomes JSON text."""
    return v if isinstance(v, str | int | float | bool) else json.dumps(v, sort_keys=True)


# ---- running many --------------------------------------------------------------------------
def run_parallel(
    fn: Callable[..., Any],
    arg_tuples: list[tuple],
    workers: int = 1,
    dask_address: str | None = None,
) -> Iterator[Any]:
    """Yield fn(*args) for every args tuple as each finishes (order not kept).

    workers=1 runs in this process (no pickling, no pool start-up: what tests and notebooks
    want); more uses a local process pool; a Dask scheduler address sends the work there.
    """
    if not arg_tuples:
        return
    try:
        yield from _run(fn, arg_tuples, workers, dask_address)
    except UserError:
        raise
    except Exception as exc:  # a dead worker (BrokenProcessPool), a lost Dask worker, ...
        msg = " ".join(str(exc).split())[:300]
        raise InfrastructureError(f"a worker failed: {type(exc).__name__}: {msg}") from None


def _run(fn, arg_tuples, workers, dask_address) -> Iterator[Any]:
    if dask_address:
        yield from _run_dask(fn, arg_tuples, dask_address)
    elif workers <= 1:
        for args in arg_tuples:
            yield fn(*args)
    else:
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from llm_energy_sim.analysis.workers import die_with_parent

        with ProcessPoolExecutor(  # no more processes than tasks: a pool forks them all
            max_workers=min(workers, len(arg_tuples)),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        ) as ex:
            futs = [ex.submit(fn, *args) for args in arg_tuples]
            try:
                for f in as_completed(futs):
                    yield f.result()
            finally:  # interrupted: drop what has not started
                for f in futs:
                    f.cancel()


def _run_dask(fn: Callable[..., Any], arg_tuples: list[tuple], address: str) -> Iterator[Any]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise UserError("--dask needs dask.distributed: pip install 'dask[distributed]'") from None
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise UserError(f"--dask {address}: cannot reach the scheduler ({exc})") from None
    except (ValueError, TypeError) as exc:  # not an address: a user error, not a lost worker
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"--dask {address}: not a scheduler address ({msg})") from None
    with client:
        futs = [client.submit(on_worker, fn, *args, pure=False) for args in arg_tuples]
        try:
            for f in as_completed(futs):
                yield f.result()
        finally:
            client.cancel([f for f in futs if not f.done()])


def scenario_files(ref: ScenarioRef) -> list[Path]:
    """The files a scenario reads besides itself (traces, length files, a profile JSON),
    resolved as the client resolves them."""
    found: list[Path] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "path" and isinstance(v, str):
                    found.append(Path(v))
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(ref.data.get("workload"))
    prof = ref.data.get("profile")
    if isinstance(prof, str) and prof.endswith(".json"):
        found.append(Path(prof))
    return [p if p.is_absolute() else Path(ref.base_dir) / p for p in found]


def on_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) on a Dask worker, after checking that the worker has the scenario's files:
    a missing one is a FileNotFoundError naming the host (an infrastructure error, retried
    on resume), not a row recording a user error."""
    import socket

    ref = args[0]
    if isinstance(ref, ScenarioRef):
        for path in scenario_files(ref):
            if not path.exists():
                raise FileNotFoundError(
                    f"Dask worker on {socket.gethostname()} has no {path} (the scenario's "
                    "files must exist at the same path on every worker)"
                )
    return fn(*args)
