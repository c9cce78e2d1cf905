"""How fast this machine's host is against the host a profile was calibrated on.

Host-bound engines (HF eager, transformers CB, DTensor tensor parallelism) run at the speed of
the CPU that launches their kernels, and the same cloud's machines differ by up to 1.9x: the
same transformers CB step took 29.2 ms on one single-H200 machine and 54.5 ms on another
(measurements/calibration/h200-b/shapemiss-check-wide.csv, shapemiss-check-batch.csv). This stage measures one host-fit run, HF generate on the
Qwen2.5-1.5B shape cut to 8 layers (bf16, batch 1, prompt 512, 32 new tokens: calibrate/
hostbench.py's method, about 10 s), and divides its decode time per token by what a profile
predicts for that run. The ratio is the scenario's `hardware.host_time_factor` for this
machine. Rows append to hostspeed.csv (a repeated pass is tagged), so drift shows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from llm_energy_sim.meter.monitor import EnergyMonitor

SHAPE = ("qwen2.5-1.5b", 8, "bfloat16", (1,))


def measure_host_speed(
    out_csv: Path, monitor: EnergyMonitor, tag: str = "", device: str = "cuda", shape=SHAPE
) -> int:
    """Append the host-fit run to out_csv (hostbench columns); returns the rows written."""
    from llm_energy_sim.calibrate.hostbench import run_models

    return run_models([(*shape, tag)], out_csv, monitor, device=device, progress=False)


def host_time_factor(runs: pd.DataFrame, profile, engine: str = "hf_eager") -> pd.DataFrame:
    """Per successful run: measured decode time per token, the profile's prediction for the
    same run (the engine's decode step at the mean context, at the run's TP degree when the
    table has one: calibrate/tphost.py, tpcbhost.py), and their ratio."""
    from llm_energy_sim.calibrate.fit import decode_step

    ok = runs[pd.to_numeric(runs["decode_s_per_token"], errors="coerce") > 0]
    out = []
    for _, r in ok.iterrows():
        tp = int(r["tp"]) if "tp" in r and pd.notna(r["tp"]) else 1
        _, cost = decode_step(r, profile, engine, tp)
        meas = float(r["decode_s_per_token"])
        out.append(
            {
                "utc": r.get("utc", ""),
                "tag": r.get("tag", ""),
                "measured_s": meas,
                "predicted_s": cost.wall_s,
                "host_time_factor": meas / cost.wall_s,
            }
        )
    return pd.DataFrame(out)


def engine_of_table(table: Path) -> str:
    """The engine a host table measured, by its name: CB tables (cbhost, tpcbhost) or HF
    generate (host, hostspeed, tphost)."""
    return "transformers_cb" if "cb" in table.name else "hf_eager"


def engine_seen_factor(path: Path, profile) -> dict:
    """The host speed a live engine's own steps ran at (`sim steps`' steps_check.json), as a
    run row. It is a factor against the profile the check used, so only that profile takes it."""
    import json

    from llm_energy_sim.config.errors import UserError

    try:
        check = json.loads(path.read_text())
        factor, against = check["host_time_factor_seen_by_engine"], check["profile"]
        if not (math.isfinite(float(factor)) and float(factor) > 0):
            raise ValueError(f"host_time_factor_seen_by_engine {factor}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"--host-speed {path}: not a `sim steps` check with host-bound decode steps ({exc})"
        ) from exc
    if against != profile.name:
        raise UserError(
            f"--host-speed {path}: measured against profile '{against}', this run uses "
            f"'{profile.name}' (rerun sim steps with --profile {profile.name})"
        )
    return {"table": str(path), "utc": "", "factor": float(factor)}


def factor_from_tables(paths: list[Path], profile) -> tuple[float, list[dict]]:
    """The mean host_time_factor over every successful run of the given host tables (a CSV or
    Parquet file, or a results directory holding hostspeed.csv|parquet) against `profile`, with the runs used; a
    `sim steps` steps_check.json counts as one run (the speed the engine's steps saw)."""
    from llm_energy_sim.config.errors import UserError
    from llm_energy_sim.results.tables import read_table, table_path

    rows: list[dict] = []
    for p in paths:
        if p.name == "steps_check.json":
            rows.append(engine_seen_factor(p, profile))
            continue
        if p.is_dir() and (p / "summary.json").exists():  # a replay's results directory
            from llm_energy_sim.results.marker import require_complete

            require_complete(p)
        table = (table_path(p, "hostspeed") or p / "hostspeed.csv") if p.is_dir() else p
        if not table.exists():
            raise UserError(
                f"--host-speed {p}: no such file (a host table CSV, or a results "
                "directory with a hostspeed.csv)"
            )
        try:
            runs = read_table(table.parent, table.stem)  # a .parquet or .csv table
            f = host_time_factor(runs, profile, engine_of_table(table))
        except (KeyError, ValueError, pd.errors.ParserError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--host-speed {table}: not a host table ({msg})") from exc
        for r in f.itertuples():
            if not (math.isfinite(r.host_time_factor) and r.host_time_factor > 0):
                raise UserError(
                    f"--host-speed {table}: a run gives host_time_factor {r.host_time_factor}; "
                    "its times must be finite and > 0"
                )
            rows.append(
                {"table": str(table), "utc": str(r.utc), "factor": float(r.host_time_factor)}
            )
    if not rows:
        raise UserError("--host-speed: no successful host runs in " + ", ".join(map(str, paths)))
    return sum(r["factor"] for r in rows) / len(rows), rows


def main(argv: list[str] | None = None) -> None:
    """`python -m llm_energy_sim.calibrate.hostspeed TABLE.csv [PROFILE]`: the host_time_factor of the machine
    that measured a host table (hostspeed.csv, host.csv, or under TP tphost.csv / tpcbhost.csv,
    whose engine is read from the name), per run and their mean, against PROFILE (default h200)."""
    import sys

    from llm_energy_sim.config.errors import UserError
    from llm_energy_sim.config.profile import load_profile

    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit(main.__doc__)
    table = Path(args[0])
    name = args[1] if len(args) > 1 else "h200"
    try:
        mean, runs = factor_from_tables([table], load_profile(name)[0])
    except UserError as exc:
        raise SystemExit(str(exc)) from exc
    print(pd.DataFrame(runs).to_string(index=False))
    print(f"{table} ({engine_of_table(table)}) against {name}: host_time_factor {mean:.2f}")


if __name__ == "__main__":
    main()
