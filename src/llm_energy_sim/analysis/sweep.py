"""`sim sweep`: run a scenario over the cartesian grid of `--set key=v1,v2,...` overrides.

Each finished point is appended at once as one JSON line to a journal beside the table
(`sweep.jsonl`), so a sweep killed half-way resumes by skipping the points already there;
the tidy table (`sweep.csv`, or `.parquet`) is written from the journal, one row per grid
point. A spec file records the scenario's content and `--requests`, so a resume never mixes
rows of two different sweeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from llm_energy_sim.analysis.grid import (
    POINT_KEY,
    SET_PREFIX,
    ScenarioRef,
    as_ref,
    parse_sets,
    point_key,
    run_parallel,
    run_point,
)
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.pngsave import pyplot, save_figure

__all__ = ["parse_sets", "run_point", "run_sweep", "plot_sweep"]

SUMMARY_COLUMNS = [
    "energy.per_request_wh",
    "energy.per_request_active_wh",
    "latency_s.ttft.p90",
    "latency_s.tpot.p90",
    "requests.completed",
]


# ---- the journal: one JSON line per finished point ------------------------------------------
def journal_path(table: Path) -> Path:
    return table.with_suffix(".jsonl")


def spec_path(table: Path) -> Path:
    return table.with_suffix(".spec.json")


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Rows written so far; a last line cut short by a kill is ignored (that point reruns)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()


def _check_spec(table: Path, spec: dict[str, Any], restart: bool) -> None:
    """Start afresh, or resume only a sweep of the same scenario content and trace length."""
    sp, jp = spec_path(table), journal_path(table)
    if restart:
        jp.unlink(missing_ok=True)
    elif sp.exists() and jp.exists():
        old = json.loads(sp.read_text())
        if old != spec:
            raise UserError(
                f"{jp} holds a sweep of another scenario or --requests ({old}); "
                "give another --out or --restart"
            )
    sp.write_text(json.dumps(spec, indent=1) + "\n")


def write_table(rows: list[dict[str, Any]], table: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if table.suffix == ".parquet":
        try:
            df.to_parquet(table, index=False)
        except ImportError:
            raise UserError("a .parquet table needs pyarrow: pip install pyarrow") from None
    else:
        df.to_csv(table, index=False)
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
) -> pd.DataFrame:
    """Run every point whose row is not yet in the journal; return the tidy table (grid order)."""
    from tqdm import tqdm

    ref = as_ref(scenario)
    table = Path(table)
    table.parent.mkdir(parents=True, exist_ok=True)
    _check_spec(
        table, {"scenario": ref.source, "digest": ref.digest(), "requests": requests}, restart
    )
    jp = journal_path(table)
    done = {r[POINT_KEY]: r for r in read_journal(jp)}
    if jp.exists():  # drop a line cut short by a kill, so the next append starts a clean line
        jp.write_text("".join(json.dumps(r, default=str) + "\n" for r in done.values()))
    todo = [p for p in points if point_key(p) not in done]
    bar = tqdm(
        total=len(points),
        initial=len(points) - len(todo),
        desc="sweep",
        unit="run",
        disable=not progress,
    )
    try:
        for row in run_parallel(run_point, [(ref, p, requests) for p in todo], workers, dask):
            _append(jp, row)
            done[row[POINT_KEY]] = row
            bar.update(1)
    finally:  # interrupted or not, the table shows every point finished so far
        bar.close()
        rows = [done[k] for k in (point_key(p) for p in points) if k in done]
        df = write_table(rows, table)
    return df


# ---- plot ----------------------------------------------------------------------------------
def _swept(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(SET_PREFIX) and df[c].nunique() > 1]


def plot_sweep(df: pd.DataFrame, metrics: list[str], out_png: Path) -> None:
    """One panel per metric against the first numeric swept key (else the first swept key),
    one line per combination of the other swept keys."""
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
            ax.plot(xs, g[m], marker="o", label=label or None)
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
        t.add_row(*(_fmt(r.get(c)) for c in cols))
    Console().print(t)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
