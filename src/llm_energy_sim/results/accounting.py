"""Energy accounting and latency metrics from a finished simulation.

total      : every GPU of every replica over [0, t_end], idle included (what a meter sees)
per request: total / completed (the reference paper's 'mean energy per request')
attributed : each step's energy shared by its requests by tokens (prefill, decode), plus an
             equal share of the idle energy per completed request, so the parts add up to
             the total
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm_energy_sim.engine.ledger import array_view
from llm_energy_sim.engine.prefix import chunks
from llm_energy_sim.engine.requestlog import STATUSES
from llm_energy_sim.results.metrics import scenario_fields, summary_blocks
from llm_energy_sim.results.schema import REQUEST_COLUMNS, Batch, Provenance, RequestStatus, Summary
from llm_energy_sim.simulation import SimResult

if TYPE_CHECKING:
    import pandas as pd

_OK_CODE = STATUSES.index(RequestStatus.OK)
_STATUS_STRINGS = np.array([s.value for s in STATUSES], dtype=object)


class RequestTable:
    """requests.csv of a simulated run as numpy columns (results.schema.RequestRow), from the
    run's request log and trace without copying them: `rows(lo, hi)` builds the columns of a
    slice (what the Parquet writer takes a row group at a time), `table[name]` one whole
    column. A million requests' table is 150 MB built whole; a slice of it is what a writer
    holds."""

    def __init__(self, res: SimResult) -> None:
        self.res = res
        self.n = res.log.n
        self._ok = res.log.status == _OK_CODE
        n_ok = int(self._ok.sum())
        self._idle_share = ledger_figures(res).idle_j / n_ok if n_ok else 0.0

    @property
    def columns(self) -> list[str]:
        return list(REQUEST_COLUMNS)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "status":
            return _STATUS_STRINGS[self.res.log.status]
        return self.rows(0, self.n, (name,))[name]

    def rows(self, lo: int, hi: int, names: tuple[str, ...] | None = None) -> dict:
        """The columns `names` (default: every column, in order) of requests lo..hi-1; only
        those asked for are built (a summary asks for one whole column at a time)."""
        names = tuple(REQUEST_COLUMNS) if names is None else names
        return {c: np.ascontiguousarray(self._column(c, lo, hi)) for c in names}

    def _column(self, name: str, lo: int, hi: int) -> np.ndarray:
        """One column of requests lo..hi-1 (a view of the log or the trace where it can be)."""
        log, t = self.res.log, self.res.trace
        views = {
            "replica": log.replica,
            "start_s": log.t_start,
            "first_token_s": log.t_first,
            "finish_s": log.t_finish,
            "computed_prompt_tokens": log.computed_prompt,
            "generated_tokens": log.generated,
            "energy_prefill_j": log.e_prefill,
            "energy_decode_j": log.e_decode,
        }
        if name in views:
            v = views[name][lo:hi]
            return v if v.dtype.kind == "f" else v.astype(np.int64, copy=False)
        if name == "request_id":
            return np.arange(lo, hi, dtype=np.int64)
        if name == "arrival_s":
            return np.asarray(t.arrival_s[lo:hi], float)
        if name in ("prompt_tokens", "output_tokens"):
            return np.asarray(getattr(t, name)[lo:hi], np.int64)
        if name == "status":
            return _STATUS_STRINGS[log.status[lo:hi]]
        ok = self._ok[lo:hi]
        if name == "energy_idle_share_j":
            return np.where(ok, self._idle_share, 0.0)
        if name == "energy_j":
            idle = np.where(ok, self._idle_share, 0.0)
            return log.e_prefill[lo:hi] + log.e_decode[lo:hi] + idle
        if name in ("ttft_s", "e2e_s", "tpot_s"):  # latencies()'s one column
            arrival = np.asarray(t.arrival_s[lo:hi], float)
            first, finish = log.t_first[lo:hi], log.t_finish[lo:hi]
            if name == "ttft_s":
                out = first - arrival
            elif name == "e2e_s":
                out = finish - arrival
            else:
                gen = log.generated[lo:hi].astype(np.int64, copy=False)
                out = np.where(gen > 1, (finish - first) / np.maximum(gen - 1, 1), np.nan)
            out[~ok] = np.nan
            return out
        raise KeyError(name)

    def to_pandas(self) -> pd.DataFrame:
        """The whole table as a DataFrame (status as strings)."""
        import pandas as pd

        df = pd.DataFrame(self.rows(0, self.n))
        df["status"] = df["status"].astype("str")
        return df


def requests_frame(res: SimResult) -> pd.DataFrame:
    """requests.csv of a simulated run as a DataFrame (RequestTable(res).to_pandas())."""
    return RequestTable(res).to_pandas()


@dataclass(frozen=True)
class LedgerFigures:
    """What a run's summary takes from its replicas' ledgers: busy and idle energy (J, all
    GPUs) and the batch sizes."""

    busy_j: float
    idle_j: float
    batch: Batch


def ledger_figures(res: SimResult) -> LedgerFigures:
    """The run's LedgerFigures, worked out once and kept on the result (its ledgers may be
    released afterwards: Ledger.release)."""
    if res.ledger_figures is None:
        res.ledger_figures = LedgerFigures(
            total_busy_energy(res), total_idle_energy(res), _batch(res)
        )
    return res.ledger_figures


def total_idle_energy(res: SimResult) -> float:
    return sum(r.ledger.idle_energy(res.t_end) for r in res.replicas)


def total_busy_energy(res: SimResult) -> float:
    return sum(r.ledger.busy_energy() for r in res.replicas)


def _batch(res: SimResult) -> Batch:
    """Mean batch size over the busy time (steps weighted by duration) and the largest; summed
    a chunk of steps at a time (no whole-run temporaries)."""
    weighted = busy = 0.0
    largest = None
    for r in res.replicas:
        s, e, _, b = r.ledger.arrays()
        for lo, hi in chunks(len(s)):
            d = e[lo:hi] - s[lo:hi]
            weighted += float(np.dot(b[lo:hi], d))
            busy += float(d.sum())
            top = float(b[lo:hi].max())
            largest = top if largest is None or top > largest else largest
    return Batch(
        mean_size_when_busy=weighted / busy if busy > 0 else 0.0,
        max_size=largest if largest is not None else 0.0,
    )


def build_summary(
    res: SimResult,
    df: pd.DataFrame | RequestTable,
    grid_g_per_kwh: float | None = None,
    provenance: Provenance | None = None,
) -> Summary:
    """summary.json of a simulated run (from its requests table, a DataFrame or a
    RequestTable); CO2 figures with a grid intensity (gCO2/kWh)."""
    scen = res.scenario
    n_gpus = scen.hardware.replicas * scen.hardware.gpus_per_replica
    figures = ledger_figures(res)
    busy, idle = figures.busy_j, figures.idle_j
    total = busy + idle
    makespan = res.t_end
    summary = Summary(
        **scenario_fields(scen),
        gpus=n_gpus,
        host_time_factor=scen.hardware.host_time_factor,
        profile=res.profile.name,
        profile_path=str(res.profile_path),
        server_limits=res.server_info,
        **summary_blocks(
            df,
            makespan_s=makespan,
            n_gpus=n_gpus,
            total_j=total,
            busy_j=busy,
            idle_j=idle,
            deep_idle_floor_j=res.profile.idle.deep_idle_w * n_gpus * makespan,
            batch=figures.batch,
            live=False,
        ),
        steps=sum(r.steps for r in res.replicas),
    )
    if grid_g_per_kwh is not None:
        e, n_ok = summary.energy, summary.requests.completed
        e.co2_g = total / 3.6e6 * grid_g_per_kwh
        e.co2_g_per_request = e.co2_g / n_ok if n_ok else None
    if provenance is not None:
        summary.provenance = provenance.model_copy(
            update={"host_time_factor": res.host_time_factor_source}
        )
    return summary


def summarize(
    res: SimResult, df: pd.DataFrame | RequestTable, grid_g_per_kwh: float | None = None
) -> dict:
    """build_summary as the summary.json object (what sweeps and grids flatten)."""
    return build_summary(res, df, grid_g_per_kwh).to_dict()


def timeline_frame(res: SimResult, bin_s: float | None = None) -> pd.DataFrame:
    """timeline_columns as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(timeline_columns(res, bin_s))


def timeline_columns(res: SimResult, bin_s: float | None = None) -> dict[str, np.ndarray]:
    """Per time bin: mean power of each GPU (W), busy fraction, mean batch size, queue length."""
    t_end = res.t_end
    if bin_s is None:
        bin_s = res.scenario.output.timeline_bin_s or max(t_end / 2000.0, 0.01)
    # bins of bin_s, the last one cut at t_end so the bins integrate to the total exactly
    edges = np.arange(0.0, t_end, bin_s)
    edges = edges[edges < t_end - 1e-9 * bin_s]
    edges = np.append(edges, t_end) if t_end > 0 else np.array([0.0, bin_s])
    out = {"t_start_s": edges[:-1], "t_end_s": edges[1:]}
    width = np.diff(edges)
    power_total = None
    for rep in res.replicas:
        led = rep.ledger
        cum = led.cumulative_energy(edges, t_end)
        power = np.diff(cum) / width / led.n_gpus
        for g in range(led.n_gpus):
            out[f"power_w_r{rep.index}g{g}"] = power
            power_total = power if power_total is None else power_total + power
        s, e, _, b = led.arrays()
        busy_time = _overlap_sum(s, e, np.ones_like(s), edges)
        batch_time = _overlap_sum(s, e, b, edges)
        out[f"busy_frac_r{rep.index}"] = busy_time / width
        out[f"batch_r{rep.index}"] = np.where(
            busy_time > 0, batch_time / np.maximum(busy_time, 1e-300), 0.0
        )
        out[f"queue_r{rep.index}"] = _step_mean(
            array_view(led.queue_t), array_view(led.queue_len), edges
        )
    out["power_total_w"] = power_total if power_total is not None else np.zeros(len(width))
    return out


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(2 * len(a))
    out[0::2], out[1::2] = a, b
    return out


def _overlap_sum(s: np.ndarray, e: np.ndarray, w: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """For each bin, sum over intervals of weight * overlap time (cumulative-integral trick).

    A replica's intervals follow one another (s[i] <= e[i] <= s[i+1]), so their start and
    end points in time order are s0, e0, s1, e1, ...: the integral is summed over them a
    chunk of intervals at a time and read at the bin edges (the same floats as sorting the
    points and summing them whole, _overlap_sum_sorting, which any other intervals take)."""
    n = len(s)
    if n == 0:
        return np.zeros(len(edges) - 1)
    if not (np.all(e >= s) and np.all(s[1:] >= e[:-1])):
        return _overlap_sum_sorting(s, e, w, edges)
    x = np.asarray(edges, float)
    k = np.searchsorted(s, x, side="right") + np.searchsorted(e, x, side="right") - 1
    order = np.argsort(k, kind="stable")
    ks = k[order]
    rate_k, integral_k, t_k = np.zeros(len(x)), np.zeros(len(x)), np.zeros(len(x))
    rate_carry, integral_carry = None, 0.0
    for a, b in chunks(n):
        t = _interleave(s[a:b], e[a:b])  # points 2a..2b-1
        dw = _interleave(w[a:b], -w[a:b])
        rate = np.cumsum(dw) if rate_carry is None else np.cumsum(np.r_[rate_carry, dw])[1:]
        t_next = np.r_[t[1:], s[b]] if b < n else t[1:]
        g = rate[: len(t_next)] * (t_next - t[: len(t_next)])
        integral = np.cumsum(np.r_[integral_carry, g])  # the integral at points 2a..
        lo, hi = np.searchsorted(ks, [2 * a, 2 * b])
        sel = order[lo:hi]
        at = ks[lo:hi] - 2 * a
        rate_k[sel], integral_k[sel], t_k[sel] = rate[at], integral[at], t[at]
        rate_carry, integral_carry = rate[-1], integral[-1]
    found = k >= 0
    base = np.where(found, integral_k, 0.0)
    r = np.where(found, rate_k, 0.0)
    return np.diff(base + r * (x - np.where(found, t_k, x)))


def _overlap_sum_sorting(
    s: np.ndarray, e: np.ndarray, w: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """_overlap_sum of any intervals: every start and end point sorted, summed whole."""
    t = np.concatenate([s, e])
    dw = np.concatenate([w, -w])
    order = np.argsort(t, kind="stable")
    t, dw = t[order], dw[order]
    rate = np.cumsum(dw)  # weight active after each breakpoint
    integral = np.concatenate([[0.0], np.cumsum(rate[:-1] * np.diff(t))])

    def at(x):
        k = np.searchsorted(t, x, side="right") - 1
        base = np.where(k >= 0, integral[np.clip(k, 0, None)], 0.0)
        r = np.where(k >= 0, rate[np.clip(k, 0, None)], 0.0)
        return base + r * (x - np.where(k >= 0, t[np.clip(k, 0, None)], x))

    return np.diff(at(edges))


def _step_mean(t: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-average of a step function (value v[i] from t[i] on, 0 before) over each bin
    (t in time order), its integral summed a chunk of steps at a time and read at the edges."""
    q = len(t)
    if q == 0:
        return np.zeros(len(edges) - 1)
    x = np.asarray(edges, float)
    k = np.searchsorted(t, x, side="right") - 1
    order = np.argsort(k, kind="stable")
    ks = k[order]
    level_k, integral_k, t_k = np.zeros(len(x)), np.zeros(len(x)), np.zeros(len(x))
    level_carry, integral_carry = None, 0.0
    for a, b in chunks(q):
        tc = np.asarray(t[a:b], float)
        dv = np.diff(np.r_[v[a - 1] if a else 0.0, np.asarray(v[a:b], float)])
        level = np.cumsum(dv) if level_carry is None else np.cumsum(np.r_[level_carry, dv])[1:]
        t_next = np.r_[tc[1:], t[b] if b < q else edges[-1]]
        integral = np.cumsum(np.r_[integral_carry, level * (t_next - tc)])
        lo, hi = np.searchsorted(ks, [a, b])
        sel = order[lo:hi]
        at = ks[lo:hi] - a
        level_k[sel], integral_k[sel], t_k[sel] = level[at], integral[at], tc[at]
        level_carry, integral_carry = level[-1], integral[-1]
    value = np.where(k >= 0, integral_k + level_k * (x - t_k), 0.0)
    return np.diff(value) / np.diff(edges)
