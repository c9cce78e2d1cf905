"""Record the results of every shipped scenario, and check later code reproduces them.

A speed change must not change a result: this tool runs `sim run` (in a subprocess, with
whichever package `python -m llm_energy_sim.cli` imports: set PYTHONPATH to record an older
checkout) on every scenario under scenarios/ (validation/ included) and keeps summary.json,
the requests table and the timeline table of each. `check` runs them again and compares
every number to the recorded one within a relative 1e-9 (NaN equal to NaN), every string
exactly; the wall time, provenance and profile path (where the package is installed) of
a run are not compared.

    python tools/results_reference.py record REF_DIR [--requests N] [--full poisson_1m]
    python tools/results_reference.py check REF_DIR [--only NAME ...]

--requests caps every scenario with more requests than N (default 20,000: all but
poisson_1m run whole); --full NAME runs that scenario whole anyway. `check` uses the caps
recorded in REF_DIR/index.json. Exit code 1 when a result differs (the first differences
are printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
#: summary keys that describe the run, not its result
UNCOMPARED = {"simulation_wall_s", "provenance", "profile_path"}  # profile_path: install dir
RTOL = 1e-9


def shipped_scenarios() -> list[Path]:
    """Every shipped scenario file, sorted (scenarios/*.yaml, then scenarios/validation)."""
    return sorted(SCENARIOS.glob("*.yaml")) + sorted(SCENARIOS.glob("validation/*.yaml"))


def scenario_requests(path: Path) -> int:
    return int(yaml.safe_load(path.read_text())["workload"]["requests"])


def read_table(directory: Path, stem: str) -> pd.DataFrame:
    """A results table as Parquet or CSV, whichever the run wrote."""
    pq = directory / f"{stem}.parquet"
    if pq.is_file():
        return pd.read_parquet(pq)
    return pd.read_csv(directory / f"{stem}.csv")


def run_scenario(path: Path, requests: int | None, out: Path) -> str | None:
    """`sim run` one scenario into `out`; the error text when it fails, else None."""
    cmd = [sys.executable, "-m", "llm_energy_sim.cli", "run", str(path), "--out", str(out)]
    cmd += ["--quiet"] + ([] if requests is None else ["--requests", str(requests)])
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if p.returncode != 0:
        return (p.stderr.strip().splitlines() or ["(no output)"])[-1]
    return None


def key(path: Path) -> str:
    return str(path.relative_to(SCENARIOS).with_suffix(""))


def record(ref: Path, cap: int, full: set[str]) -> None:
    ref.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {}
    for path in shipped_scenarios():
        name = key(path)
        n = scenario_requests(path)
        requests = None if (n <= cap or path.stem in full) else cap
        out = ref / name.replace("/", "__")
        err = run_scenario(path, requests, out)
        index[name] = {"requests": requests, "error": err}
        if err is None:
            for stem in ("requests", "timeline"):  # compact and exact: Parquet
                df = read_table(out, stem)
                for f in out.glob(f"{stem}.*"):
                    f.unlink()
                df.to_parquet(out / f"{stem}.parquet", index=False)
        print(f"{name:40s} requests={requests or n:<8} {'ok' if err is None else err}")
    (ref / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def _diff_json(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in UNCOMPARED:
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'new' if k in b else 'reference'}")
            else:
                _diff_json(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff_json(x, y, f"{where}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not (math.isclose(a, b, rel_tol=RTOL, abs_tol=0.0) or (a != a and b != b)):
            out.append(f"{where}: {a!r} -> {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} -> {b!r}")


def diff_tables(ref: pd.DataFrame, new: pd.DataFrame, name: str) -> list[str]:
    """Differences of two tables: column sets, lengths, values (numbers within RTOL)."""
    if list(ref.columns) != list(new.columns):
        return [f"{name}: columns {list(ref.columns)} -> {list(new.columns)}"]
    if len(ref) != len(new):
        return [f"{name}: {len(ref)} rows -> {len(new)}"]
    out = []
    for c in ref.columns:
        a, b = ref[c].to_numpy(), new[c].to_numpy()
        if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
            a, b = a.astype(float), b.astype(float)
            ok = np.isclose(a, b, rtol=RTOL, atol=0.0) | (np.isnan(a) & np.isnan(b))
            if not ok.all():
                i = int(np.argmin(ok))
                rel = np.nanmax(np.abs(a - b) / np.maximum(np.abs(a), 1e-300))
                out.append(f"{name}.{c}: row {i} {a[i]!r} -> {b[i]!r} (max rel {rel:.3g})")
        elif not (a.astype(str) == b.astype(str)).all():
            i = int(np.argmin(a.astype(str) == b.astype(str)))
            out.append(f"{name}.{c}: row {i} {a[i]!r} -> {b[i]!r}")
    return out


def check_one(ref: Path, name: str, entry: dict) -> list[str]:
    """Rerun one recorded scenario; its differences from the record (empty when equal)."""
    path = SCENARIOS / f"{name}.yaml"
    recorded = ref / name.replace("/", "__")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        err = run_scenario(path, entry["requests"], out)
        if err != entry["error"]:
            return [f"{name}: error {entry['error']!r} -> {err!r}"]
        if err is not None:
            return []
        diffs: list[str] = []
        _diff_json(
            json.loads((recorded / "summary.json").read_text()),
            json.loads((out / "summary.json").read_text()),
            f"{name}:summary",
            diffs,
        )
        for stem in ("requests", "timeline"):
            diffs += diff_tables(
                read_table(recorded, stem), read_table(out, stem), f"{name}:{stem}"
            )
        return diffs


def check(ref: Path, only: list[str]) -> int:
    index = json.loads((ref / "index.json").read_text())
    bad = 0
    for name, entry in index.items():
        if only and name not in only and Path(name).name not in only:
            continue
        diffs = check_one(ref, name, entry)
        bad += bool(diffs)
        print(f"{name:40s} {'same' if not diffs else f'{len(diffs)} differences'}")
        for d in diffs[:10]:
            print(f"    {d}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("ref", type=Path)
    r.add_argument("--requests", type=int, default=20_000)
    r.add_argument("--full", action="append", default=[])
    c = sub.add_parser("check")
    c.add_argument("ref", type=Path)
    c.add_argument("--only", action="append", default=[])
    args = ap.parse_args(argv)
    if args.cmd == "record":
        record(args.ref, args.requests, set(args.full))
        return 0
    return check(args.ref, args.only)


if __name__ == "__main__":
    sys.exit(main())
