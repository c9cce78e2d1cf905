"""Results directory: summary.json, requests.parquet|csv, timeline.csv (+ PNG plots) and a
terminal table.

`sim run` and `sim replay` write the directory whole (results/staging.py: `staged_dir`, the
marker being summary.json); readers take it from any `sim run` / `sim replay` directory,
tables as CSV or Parquet (results/tables.py). `sim run` writes its requests as Parquet unless
asked for CSV (`--requests-format csv`): a million requests are 237 MB of CSV and take
seconds to format.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.marker import require_complete
from llm_energy_sim.results.schema import REQUEST_COLUMNS, Summary, check_requests
from llm_energy_sim.results.tables import read_table, table_path

if TYPE_CHECKING:  # pandas, pyarrow and rich are imported where used (sim run needs no pandas)
    import pandas as pd
    from rich.console import Console

REQUESTS_FILE = "requests.csv"  # the CSV form; requests_path() names the one written
REQUESTS_FORMATS = ("parquet", "csv")
#: rows per Parquet row group (and per slice converted to Arrow at a time)
PARQUET_ROWS = 1 << 15
TIMELINE_FILE = "timeline.csv"
SUMMARY_FILE = "summary.json"
#: larger than this a summary.json is refused before it is read (they are a few kB)
MAX_SUMMARY_BYTES = 16 * 2**20
#: the timeline columns every reader needs
TIMELINE_COLUMNS: dict[str, type] = {"t_start_s": float, "t_end_s": float, "power_total_w": float}


def write_summary(out_dir: Path, summary: Summary) -> Path:
    """out_dir/summary.json from the model (written to a temporary file, then renamed)."""
    path = out_dir / SUMMARY_FILE
    tmp = path.with_name(f".{SUMMARY_FILE}.tmp")
    tmp.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def requests_path(out_dir: Path, requests_format: str) -> Path:
    """Where the requests table of that format goes: requests.parquet or requests.csv."""
    if requests_format not in REQUESTS_FORMATS:
        raise ValueError(f"requests format {requests_format!r}: one of {REQUESTS_FORMATS}")
    return Path(out_dir) / f"requests.{requests_format}"


def write_requests_parquet(path: Path, requests: Any) -> None:
    """The requests table as Parquet, converted to Arrow a row group at a time (memory: one
    slice, not a second copy of the table). `requests` is a DataFrame, or a table of numpy
    columns with `columns`, len() and `rows(lo, hi)` (results.accounting.RequestTable)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if hasattr(requests, "iloc"):  # a DataFrame
        schema = pa.Schema.from_pandas(requests.iloc[:0], preserve_index=False)
        with pq.ParquetWriter(path, schema) as writer:
            for lo in range(0, max(len(requests), 1), PARQUET_ROWS):
                part = requests.iloc[lo : lo + PARQUET_ROWS]
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
        return
    n, schema = len(requests), None
    for lo in range(0, max(n, 1), PARQUET_ROWS):
        cols = requests.rows(lo, min(lo + PARQUET_ROWS, n))
        table = pa.Table.from_arrays([_arrow(v) for v in cols.values()], names=list(cols))
        if schema is None:
            schema = table.schema
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table)
    writer.close()


def write_requests_csv(path: Path, requests: Any) -> None:
    """The requests table of numpy columns (results.accounting.RequestTable) as CSV, a slice of
    PARQUET_ROWS rows at a time: the text DataFrame.to_csv(index=False) writes for the whole
    table, without holding the table or its text (a million rows are 237 MB of CSV)."""
    import pandas as pd

    n = len(requests)
    with open(path, "w", newline="") as f:
        for lo in range(0, max(n, 1), PARQUET_ROWS):
            part = pd.DataFrame(requests.rows(lo, min(lo + PARQUET_ROWS, n)))
            part["status"] = part["status"].astype("str")
            part.to_csv(f, index=False, header=lo == 0)


def _arrow(v: np.ndarray):
    """A numpy column as an Arrow array over the same memory, strings as large_string
    (pa.array would import pandas to look at its argument: 0.2 s of `sim run`)."""
    import pyarrow as pa

    if v.dtype == object:
        data = [str(x).encode() for x in v.tolist()]
        offsets = np.zeros(len(data) + 1, np.int64)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
        return pa.Array.from_buffers(pa.large_string(), len(data), buffers)
    arrow_type, np_type = {"f": (pa.float64(), np.float64), "i": (pa.int64(), np.int64)}[
        v.dtype.kind
    ]
    v = np.ascontiguousarray(v, dtype=np_type)
    return pa.Array.from_buffers(arrow_type, len(v), [None, pa.py_buffer(v)])


def check_table(requests: Any) -> None:
    """check_requests for a table of numpy columns (RequestTable): every column of the
    request row, of its type (a bug if not)."""
    from llm_energy_sim.results.schema import REQUEST_COLUMNS

    if list(requests.columns) != list(REQUEST_COLUMNS):
        raise ValueError(f"requests table columns {requests.columns}")
    kinds = {int: "iu", float: "f", str: "O"}
    first = requests.rows(0, min(len(requests), 1))
    wrong = {
        c: str(a.dtype) for c, a in first.items() if a.dtype.kind not in kinds[REQUEST_COLUMNS[c]]
    }
    if wrong:
        raise ValueError(f"requests table columns of the wrong dtype: {wrong}")


def write_csv(path: Path, columns: dict, float_format: str = "%.9g") -> None:
    """Float columns (numpy arrays of one length) as CSV, as DataFrame.to_csv(index=False,
    float_format=...) writes them (NaN as an empty field)."""

    def cell(v: float) -> str:
        return "" if v != v else float_format % v

    names = list(columns)
    rows = zip(*(np.asarray(columns[c], float).tolist() for c in names), strict=True)
    with open(path, "w", newline="") as f:
        f.write(",".join(names) + "\n")
        f.writelines(",".join(map(cell, row)) + "\n" for row in rows)


def write_results(
    out_dir: Path,
    summary: Summary,
    requests: Any,
    timeline: Any,
    requests_format: str = "csv",
) -> None:
    """summary.json, requests.csv|parquet (`requests_format`) and timeline.csv into out_dir
    (the directory `staged_dir` yields). The requests table (a DataFrame, or a RequestTable
    of numpy columns) must match the schema's request row (a live row for a `sim replay`
    summary); the timeline is a DataFrame or a dict of float columns."""
    frame = hasattr(requests, "iloc")
    if frame:
        check_requests(requests, live=summary.measured is not None)
    else:
        check_table(requests)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = requests_path(out_dir, requests_format)
    if requests_format == "parquet":
        write_requests_parquet(path, requests)
    elif frame:
        requests.to_csv(path, index=False)
    else:
        write_requests_csv(path, requests)
    # nine significant digits: 0.1 ms at a day's run time, far below any bin; the timelines
    # are the bulk of the committed validation results, and half their size with full digits
    if hasattr(timeline, "to_csv"):
        timeline.to_csv(out_dir / TIMELINE_FILE, index=False, float_format="%.9g")
    else:
        write_csv(out_dir / TIMELINE_FILE, timeline, "%.9g")
    write_summary(out_dir, summary)


def read_summary(out_dir: Path) -> Summary:
    """The Summary of a results directory; UserError (one line) when it has no valid
    summary.json."""
    path = out_dir / SUMMARY_FILE
    if not path.is_file():
        raise UserError(f"{out_dir}: not a results directory (no {SUMMARY_FILE})")
    require_complete(out_dir)
    if path.stat().st_size > MAX_SUMMARY_BYTES:
        raise UserError(
            f"{path}: larger than {MAX_SUMMARY_BYTES // 2**20} MiB; not a results summary"
        )
    try:
        return Summary.model_validate(json.loads(path.read_text()))
    except RecursionError:
        raise UserError(f"{path}: not a results summary (nested too deeply)") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UserError(f"{path}: not a results summary ({where}: {first['msg']})") from exc
        raise UserError(f"{path}: unreadable ({exc})") from exc


def read_results(out_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(summary.json as a dict, requests, timeline) of a complete results directory; tables
    from Parquet or CSV. UserError (one line) without summary.json, the `.complete` marker or
    a table, or with a table whose columns are missing or hold no numbers where numbers go."""
    from llm_energy_sim.results.readcheck import check_typed, require_rows

    out_dir = Path(out_dir)
    summary = read_summary(out_dir).to_dict()
    requests = read_table(out_dir, "requests")
    where = table_path(out_dir, "requests")
    check_typed(requests, REQUEST_COLUMNS, where)
    require_rows(requests, where, "requests")
    timeline = read_table(out_dir, "timeline")
    check_typed(timeline, TIMELINE_COLUMNS, table_path(out_dir, "timeline"))
    return summary, requests, timeline


def _fmt(v, unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v * scale:.{digits}g}{unit}"


def _bounds(summary: dict, figure: str, unit: str = "", digits: int = 3) -> str:
    """' [lower, upper]' of a figure's 80% interval (summary 'intervals'), '' without one."""
    e = ((summary.get("intervals") or {}).get("figures") or {}).get(figure)
    if not e:
        return ""
    return f" [{_fmt(e['lower'], digits=digits)}, {_fmt(e['upper'], unit, digits=digits)}]"


def print_summary(summary: dict, console: Console | None = None) -> None:
    """The terminal table of a summary; a figure with an 80% interval shows 'value [lo, hi]'."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    e, lat, req = summary["energy"], summary["latency_s"], summary["requests"]
    b = functools.partial(_bounds, summary)
    t = Table(
        title=f"{summary['scenario']}: {summary['model']} {summary['dtype']} on {summary['server']}, "
        f"{summary['gpus']} GPU(s)",
        show_header=True,
        header_style="bold",
    )
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("requests completed / total", f"{req['completed']} / {req['total']}")
    if req["rejected_429"] or req["rejected_422"]:
        t.add_row(
            "rejected (429 queue full / 422 too long)",
            f"{req['rejected_429']} / {req['rejected_422']}",
        )
    t.add_row("makespan", _fmt(summary["makespan_s"], " s", digits=4) + b("makespan_s", " s", 4))
    t.add_row(
        "energy per request (total, idle incl.)",
        _fmt(e["per_request_wh"], " Wh", digits=4) + b("energy_per_request_wh", " Wh", 4),
    )
    t.add_row(
        "  active (prefill+decode) / idle share",
        f"{_fmt(e['per_request_active_wh'], ' Wh')} / {_fmt(e['per_request_idle_share_wh'], ' Wh')}",
    )
    t.add_row("total energy", _fmt(e["total_wh"], " Wh", digits=4) + b("total_energy_wh", " Wh", 4))
    t.add_row("idle fraction of energy", _fmt(e["idle_fraction"], " %", 100, 3))
    t.add_row(
        "deep-idle floor (all GPUs x makespan)", _fmt(e["deep_idle_floor_j"], " Wh", 1 / 3600, 4)
    )
    t.add_row("mean power per GPU", _fmt(e["mean_power_per_gpu_w"], " W", digits=4))
    t.add_row(
        "energy / input token (effective | computed)",
        f"{_fmt(e['per_input_token_effective_j'], ' J')} | {_fmt(e['per_input_token_computed_j'], ' J')}",
    )
    t.add_row("energy / output token", _fmt(e["per_output_token_j"], " J"))
    for name in ("ttft", "tpot", "e2e"):
        s = lat[name]
        if name != "e2e" and summary.get("intervals"):  # one row per quantile: value [lo, hi]
            for q in ("p50", "p90"):
                t.add_row(f"{name.upper()} {q}", _fmt(s[q], " s") + b(f"{name}_{q}_s", " s"))
            t.add_row(f"{name.upper()} p99", _fmt(s["p99"], " s"))
            continue
        t.add_row(
            f"{name.upper()} p50 / p90 / p99",
            f"{_fmt(s['p50'], ' s')} / {_fmt(s['p90'], ' s')} / {_fmt(s['p99'], ' s')}",
        )
    t.add_row(
        "throughput",
        f"{_fmt(summary['throughput']['requests_per_s'], ' req/s')}, {_fmt(summary['throughput']['output_tokens_per_s'], ' tok/s')}",
    )
    t.add_row("mean batch size (busy)", _fmt(summary["batch"]["mean_size_when_busy"], digits=3))
    if "co2_g" in e:
        t.add_row("CO2", f"{_fmt(e['co2_g'], ' g')} ({_fmt(e['co2_g_per_request'], ' g/request')})")
    console.print(t)
    console.print(f"profile: {summary['profile']} ({summary['profile_path']})")
    prov = summary.get("provenance") or {}
    if "host_time_factor" in summary:
        why = f" ({prov['host_time_factor']})" if prov.get("host_time_factor") else ""
        console.print(f"host_time_factor {summary['host_time_factor']:.4g}{why}", markup=False)
    iv = summary.get("intervals")
    if iv:
        rr, mr = iv.get("run_to_run"), iv.get("model_residuals")
        if mr:  # the residuals hold run-to-run noise; the spread is used without them
            runs = mr.get("runs", "held-out live configurations")
            spread = f"; the model's errors on {mr['cases']} {runs}"
        elif rr:
            spread = f"; run-to-run spread of repeated live runs ({rr['dof']} dof)"
        else:
            spread = ""
        console.print(
            f"[lo, hi]: {iv['level']:.0%} prediction interval: {iv['host']}{spread}",
            markup=False,
            highlight=False,
        )
