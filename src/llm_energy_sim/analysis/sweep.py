"""`sim sweep`: run a scenario over the cartesian grid of `--set key=v1,v2,...` overrides.

Each finished point is appended at once as one JSON line to a journal beside the table
(`sweep.jsonl`), so a sweep killed half-way resumes by skipping the points already there;
the tidy table (`sweep.csv`, or `.parquet`) is written from the journal, one row per grid
point. A spec file records the scenario's content and `--requests`, so a resume never mixes
rows of two different sweeps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from llm_energy_sim.analysis.grid import (
    POINT_KEY,
    SET_PREFIX,
    InfrastructureError,
    ScenarioRef,
    as_ref,
    parse_sets,
    point_key,
    run_parallel,
    run_point,
)
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.files import remove_stale_temps, temp_path, write_text_atomic
from llm_energy_sim.results.pngsave import pyplot, save_figure

__all__ = ["parse_sets", "run_point", "run_sweep", "plot_sweep"]

SUMMARY_COLUMNS = [
    "energy.per_request_wh",
    "energy.per_request_active_wh",
    "latency_s.ttft.p90",
    "latency_s.tpot.p90",
    "requests.completed",
]


# ---- the table's columns, from the summary's schema ----------------------------------------
def _summary_columns(model: type, prefix: str = "") -> tuple[dict[str, bool], set[str]]:
    """({column: numeric?}, open prefixes) a flattened summary of `model` can have: a nested
    record's fields by dotted name (numeric when int or float); a free mapping's
    (server_limits) any key under its prefix. Lists are dropped by the flattening."""
    import typing

    from pydantic import BaseModel

    cols: dict[str, bool] = {}
    open_: set[str] = set()
    for name, field in model.model_fields.items():
        kinds = [a for a in (field.annotation, *typing.get_args(field.annotation)) if a]
        record = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if record is not None:
            sub_cols, sub_open = _summary_columns(record, f"{prefix}{name}.")
            cols.update(sub_cols)
            open_ |= sub_open
        elif any(typing.get_origin(k) is dict or k is dict for k in kinds):
            open_.add(f"{prefix}{name}.")
        elif not any(typing.get_origin(k) in (list, tuple) for k in kinds):
            args = typing.get_args(field.annotation) or (field.annotation,)
            scalar = [k for k in args if k is not type(None)]
            cols[f"{prefix}{name}"] = bool(scalar) and all(k in (int, float) for k in scalar)
    return cols, open_


def table_columns() -> tuple[dict[str, bool], set[str]]:
    """The columns the schema gives a sweep's table ({column: numeric?}, open prefixes):
    the flattened summary's, `point`, `error` and the swept settings' (`set.KEY`); a row
    may hold more (the summary's records allow extra fields)."""
    from llm_energy_sim.results.schema import Summary

    cols, open_ = _summary_columns(Summary)
    cols.update({POINT_KEY: False, "error": False})
    return cols, open_ | {SET_PREFIX}


def missing_metrics(metrics: list[str], row: dict[str, Any]) -> list[str]:
    """The --plot metrics that a finished point's row (one without an error) lacks."""
    return [m for m in metrics if m not in row]


def _refuse_metrics(missing: list[str], row: dict[str, Any]) -> None:
    some = ", ".join(c for c in SUMMARY_COLUMNS if c in row)
    raise UserError(f"--plot: no metric {', '.join(missing)} in the sweep's rows (e.g. {some})")


def _bad_cell(row: dict[str, Any], numeric: dict[str, bool]) -> tuple[str, str] | None:
    """(column, what it must be) of the first cell of a journal row that no finished point
    writes, or None: cells are JSON scalars, numbers finite, numbers where the summary has
    numbers, `error` text."""
    import math

    for col, v in row.items():
        if v is not None and not isinstance(v, str | int | float | bool):
            return col, "a single value (text, number, true/false or null)"
        if isinstance(v, float) and not math.isfinite(v) and not col.startswith(SET_PREFIX):
            return col, "a finite number"  # (a swept value is as given: its point failed)
        if numeric.get(col) and (isinstance(v, bool | str)):
            return col, "a number (or null)"
        if col == "error" and not isinstance(v, str):
            return col, "text ('' when the point ran)"
    return None


# ---- the journal: one JSON line per finished point ------------------------------------------
def journal_path(table: Path) -> Path:
    return table.with_suffix(".jsonl")


def spec_path(table: Path) -> Path:
    return table.with_suffix(".spec.json")


def _read_text(path: Path) -> str:
    """A journal's or spec's text; UserError (one line) when unreadable or not UTF-8."""
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {exc.start}); --restart discards it"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Rows written so far. A last line cut short by a kill (no newline at its end) is
    ignored: that point reruns. Any other line that is not a JSON object with a `point`,
    or holds a cell no finished point writes (a list or mapping, a non-finite number, text
    where the summary has a number, an `error` that is not text), is a corrupted journal:
    UserError naming the line and column (--restart discards it)."""
    if not path.exists():
        return []
    text = _read_text(path)
    lines = text.split("\n")
    numeric, _ = table_columns()
    rows = []
    for i, line in enumerate(lines):
        last = i == len(lines) - 1  # after the final newline: '' or a torn line
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if last:
                continue
            row = None
        if not (isinstance(row, dict) and isinstance(row.get(POINT_KEY), str)):
            if last:
                continue
            raise UserError(
                f"{path}: line {i + 1} is not a finished point (a JSON object with "
                f"'{POINT_KEY}'); the journal is corrupted: --restart discards it"
            )
        bad = _bad_cell(row, numeric)
        if bad is not None:
            col, allowed = bad
            raise UserError(
                f"{path}: line {i + 1}, column '{col}': {row[col]!r:.60}; must be {allowed}; "
                "the journal is corrupted: --restart discards it"
            )
        rows.append(row)
    return rows


def _append(path: Path, row: dict[str, Any]) -> None:
    """One point's line, flushed to disk before the next point is counted as done."""
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_spec(path: Path) -> dict[str, Any]:
    """The spec of an earlier run; UserError (one line) when it is not a JSON object."""
    try:
        spec = json.loads(_read_text(path))
    except (json.JSONDecodeError, RecursionError):
        spec = None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: corrupted sweep spec (not a JSON object); --restart discards it")
    return spec


def _check_spec(table: Path, spec: dict[str, Any], restart: bool) -> None:
    """Start afresh, or resume only a sweep of the same scenario content and trace length."""
    sp, jp = spec_path(table), journal_path(table)
    if restart:
        jp.unlink(missing_ok=True)
    elif jp.exists():
        if not sp.exists():
            raise UserError(
                f"{jp}: a journal without its spec {sp.name}; give another --out or --restart"
            )
        old = read_spec(sp)
        if old != spec:
            raise UserError(
                f"{jp} holds a sweep of another scenario or --requests ({old}); "
                "give another --out or --restart"
            )


def _write_spec(table: Path, spec: dict[str, Any]) -> None:
    """The spec beside the journal, (re)written only when it is not already this one."""
    sp, text = spec_path(table), json.dumps(spec, indent=1) + "\n"
    if not (sp.is_file() and sp.read_text() == text):
        write_text_atomic(sp, text)


def write_table(rows: list[dict[str, Any]], table: Path) -> pd.DataFrame:
    """The tidy table, written to a temp file and renamed over `table` (never torn)."""
    df = pd.DataFrame(rows)
    remove_stale_temps(table)
    tmp = temp_path(table)
    if table.suffix == ".parquet":
        try:
            df.to_parquet(tmp, index=False)
        except ImportError:
            raise UserError("a .parquet table needs pyarrow: pip install pyarrow") from None
    else:
        df.to_csv(tmp, index=False)
    os.replace(tmp, table)
    return df


def run_sweep(
    scenario: str | Path | ScenarioRef,
    points: list[dict[str, Any]],
    table: Path,
    workers: int = 2,
    dask: str | None = None,
    requests: int | None = None,
    progress: bool = True,
    restart: bool = False,
    metrics: list[str] | None = None,
    interval: bool = True,
) -> pd.DataFrame:
    """Run every point whose row is not yet in the journal; return the tidy table (grid
    order). `metrics` (the --plot ones) are checked against the first finished row without
    an error, from the journal or as soon as one finishes: a UserError then, not after the
    whole sweep (the finished points are kept). With `interval`, every row carries its 80%
    intervals' bounds (grid.simulate_summary)."""
    from tqdm import tqdm

    ref = as_ref(scenario)
    table = Path(table)
    spec = {
        "scenario": ref.source,
        "digest": ref.digest(),
        "requests": requests,
        "interval": interval,
    }
    _check_spec(table, spec, restart)
    jp = journal_path(table)
    done = {r[POINT_KEY]: r for r in read_journal(jp)}  # checked before anything is written
    old = _read_text(jp) if jp.exists() else None
    table.parent.mkdir(parents=True, exist_ok=True)
    for path in (table, spec_path(table), jp):  # what a killed run left half-written
        remove_stale_temps(path)
    _write_spec(table, spec)
    kept = "".join(json.dumps(r, default=str) + "\n" for r in done.values())
    if old is not None and old != kept:  # drop a torn last line: appends start a clean line
        write_text_atomic(jp, kept)
    pending = list(metrics or [])  # checked against the first row that ran

    def check(row: dict[str, Any]) -> None:
        nonlocal pending
        if pending and not row.get("error"):
            if missing := missing_metrics(pending, row):
                _refuse_metrics(missing, row)
            pending = []

    for row in done.values():
        check(row)
    todo = [p for p in points if point_key(p) not in done]
    bar = tqdm(
        total=len(points),
        initial=len(points) - len(todo),
        desc="sweep",
        unit="run",
        disable=not progress,
    )
    try:
        args = [(ref, p, requests, interval) for p in todo]
        for row in run_parallel(run_point, args, workers, dask):
            _append(jp, row)
            done[row[POINT_KEY]] = row
            bar.update(1)
            check(row)
    except InfrastructureError as exc:
        raise InfrastructureError(
            f"{exc}; the {len(done)} finished points are kept in {jp}: rerun to resume"
        ) from None
    finally:  # interrupted or not, the table shows every point finished so far
        bar.close()
        rows = [done[k] for k in (point_key(p) for p in points) if k in done]
        df = write_table(rows, table)
    return df


# ---- plot ----------------------------------------------------------------------------------
def _swept(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(SET_PREFIX) and df[c].nunique() > 1]


def _bound_columns(metric: str) -> tuple[str | None, str | None]:
    """The lower / upper bound columns of a summary column with an 80% interval."""
    from llm_energy_sim.analysis.intervals import FIGURE_COLUMNS, bound_column

    for fig, col in FIGURE_COLUMNS.items():
        if col == metric:
            return bound_column(fig, "lower"), bound_column(fig, "upper")
    return None, None


def plot_sweep(df: pd.DataFrame, metrics: list[str], out_png: Path) -> None:
    """One panel per metric against the first numeric swept key (else the first swept key),
    one line per combination of the other swept keys, a metric's 80% interval as a band
    around its line where the rows carry one."""
    plt = pyplot()

    missing = [m for m in metrics if m not in df.columns]
    if missing:
        some = ", ".join(c for c in SUMMARY_COLUMNS if c in df.columns)
        raise UserError(f"--plot: no metric {', '.join(missing)} in the table (e.g. {some})")
    keys = _swept(df) or [c for c in df.columns if c.startswith(SET_PREFIX)]
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(df[k])]
    x = (numeric or keys or [None])[0]
    hue = [k for k in keys if k != x]
    ok = df[df["error"].fillna("") == ""] if "error" in df.columns else df
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 3.4 * len(metrics)), squeeze=False)
    for ax, m in zip(axes[:, 0], metrics, strict=True):
        groups = ok.groupby(hue, dropna=False) if hue else [((), ok)]
        for name, g in groups:
            if x in numeric:  # a numeric axis in value order, a categorical one in grid order
                g = g.sort_values(x)
            xs = [v if x in numeric else str(v) for v in g[x]] if x else list(range(len(g)))
            label = ", ".join(
                f"{k[len(SET_PREFIX) :]}={v}"
                for k, v in zip(hue, name if isinstance(name, tuple) else (name,), strict=True)
            )
            line = ax.plot(xs, g[m], marker="o", label=label or None)[0]
            lo, hi = _bound_columns(m)
            if lo in g.columns and g[lo].notna().any():  # the 80% interval as a band
                ax.fill_between(xs, g[lo], g[hi], color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel(x[len(SET_PREFIX) :] if x else "point")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        if hue:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def print_table(df: pd.DataFrame, metrics: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = [c for c in df.columns if c.startswith(SET_PREFIX)]
    cols = keys + [m for m in metrics if m in df.columns] + ["error"]
    t = Table(show_header=True, header_style="bold")
    for c in cols:
        t.add_column(c[len(SET_PREFIX) :] if c in keys else c, overflow="fold")
    for _, r in df.iterrows():
        t.add_row(*(_cell(r, c) for c in cols))
    Console().print(t)


def _cell(r: pd.Series, c: str) -> str:
    """A table cell: the value, and '[lo, hi]' where the row carries its 80% interval."""
    lo, hi = _bound_columns(c)
    text = _fmt(r.get(c))
    if lo is not None and _fmt(r.get(lo)) != "-":
        text += f" [{_fmt(r.get(lo))}, {_fmt(r.get(hi))}]"
    return text


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
