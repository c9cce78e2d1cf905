"""Fit the CUDA-graph regime's classes from graph.csv (calibrate/graphbench.py).

Per class and profile key (the rows' `kclass` and `fit_key`): time t = max(F/C, B/M) +
count x t0 by least squares on log ratios, with the physics as bounds of the fit itself:
C <= the measured GEMM peak of the dtype (8192^3, timed the same way), M <= the measured
device-to-device copy bandwidth (bytes read + written, as every formula of cost/kernels.py
counts them). Power P = p_base + w_c u_c + w_m u_m by non-negative least squares on the class's
sustained windows; a class without windows takes its nearest measured class's (said in its
source). Host: graph.replay() wall time = a + b x kernels over the idle-GPU rows.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from llm_energy_sim.calibrate.fit import predict_kernel
from llm_energy_sim.calibrate.graphbench import GRAPH_CSV, GPoint
from llm_energy_sim.config.profile import FitError, HostOverhead, KernelFit, Profile
from llm_energy_sim.cost.kernels import head_shape_key

FLOPS_FREE = 1e18  # classes doing no FLOPs: the compute roof never binds
# what bounds a fit where the table measured no cap (a partial table): generous roofs
DEFAULT_PEAK = 2.5e15
DEFAULT_BW = 8e12
LO = (1e11, 1e9, 1e-8)  # C, M, t0 lower bounds
T0_MAX = 1e-2
# the classes fitted, in this order; the others (peak, copy, SDPA comparison) are caps or
# recorded for reference
FIT_CLASSES = (
    "linear_graph",
    "fp8_quant_graph",
    "elementwise_graph",
    "rmsnorm_graph",
    "attn_varlen_graph",
    "attn_decode_graph",
    "attn_packed_graph",
    "attn_masked_sdpa_graph",
    "attn_kv_copy_graph",
    "sampler_graph",
)
# a class (key) with no power window of its own takes the first of these that has one
POWER_FALLBACK = {
    "linear_graph": ("linear_graph:bfloat16",),
    "fp8_quant_graph": ("fp8_quant_graph:fp8", "elementwise_graph:bfloat16"),
    "elementwise_graph": ("elementwise_graph:bfloat16",),
    "rmsnorm_graph": ("rmsnorm_graph:bfloat16", "elementwise_graph:bfloat16"),
    "attn_varlen_graph": ("attn_varlen_graph:bfloat16",),
    "attn_decode_graph": ("attn_decode_graph:bfloat16",),
    "attn_packed_graph": ("attn_packed_graph:bfloat16",),
    "attn_masked_sdpa_graph": ("attn_masked_sdpa_graph:bfloat16",),
    "attn_kv_copy_graph": ("attn_kv_copy_graph:bfloat16", "elementwise_graph:bfloat16"),
    "sampler_graph": ("sampler_graph:random", "sampler_graph:top_p", "elementwise_graph:bfloat16"),
}
FP8_POWER = ("linear_graph:fp8", "linear_graph:bfloat16")
# classes whose rate depends on the attention's head layout, also fitted per head shape
# (cost/kernels.head_shape_key): the paged|sdpa K/V copies, whose strided expansion to the
# query heads runs at 0.96-1.16x one pooled fit over 12/2, 28/4 and 32/8 heads
HEAD_SHAPE_CLASSES = ("attn_kv_copy_graph",)
# the profile's host entry of a graph replay
HOST_KEY = "cuda_graph_replay"


@dataclass(frozen=True)
class Caps:
    """The physics the fits are bounded by: copy bandwidth (B/s, read + write) and the GEMM
    peak per dtype (FLOP/s); None where the table has no such row."""

    copy_bw: float | None
    peak: dict[str, float]

    def flops_cap(self, fit_key: str) -> float:
        dt = "fp8" if fit_key.startswith("fp8") else fit_key
        return self.peak.get(dt) or self.peak.get("bfloat16") or DEFAULT_PEAK

    def bw_cap(self) -> float:
        return self.copy_bw or DEFAULT_BW


def ok_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows that measured a time (no error), their work as cost/kernels.py counts it now."""
    d = raw.copy()
    d["seconds"] = pd.to_numeric(d["seconds"], errors="coerce")
    d = d[d["seconds"] > 0]
    if "error" in d:
        d = d[d["error"].isna() | (d["error"].astype(str) == "")]
    for c in ("flops", "bytes", "count", "energy_j", "power_w", "host_s", "nodes", "metered"):
        if c in d:
            d[c] = pd.to_numeric(d[c], errors="coerce")
    return with_current_work(d)


def with_current_work(d: pd.DataFrame) -> pd.DataFrame:
    """The rows with flops, bytes and count recomputed from their shape columns by
    GPoint.work, the formulas the simulator prices with today: a table keeps what was
    measured, its work columns what the formulas said when it was (a formula revised since,
    as the masked SDPA's rounds of thread blocks, refits without re-measuring). Rows whose
    shape columns do not make a point keep theirs."""
    if d.empty or not {"kind", "op", "dtype"} <= set(d.columns):
        return d
    names = [f.name for f in fields(GPoint)]
    text = {"kind", "op", "dtype", "gpu_state"}
    work = []
    for row in d[[c for c in names if c in d.columns]].itertuples(index=False):
        kw = {}
        for name, v in zip(row._fields, row, strict=True):
            missing = v is None or (isinstance(v, float) and np.isnan(v))
            if name in text:
                kw[name] = "" if missing else str(v)
            elif name == "metered":
                kw[name] = bool(0 if missing else v)
            else:
                kw[name] = int(0 if missing else v)
        try:
            point = GPoint(**kw)
            work.append((*point.work(), point.active()))
        except (ValueError, KeyError, TypeError):
            work.append((np.nan, np.nan, np.nan, 1.0))
    w = np.array(work, float)
    out = d.copy()
    for i, c in enumerate(("flops", "bytes", "count")):
        if c in out:
            out[c] = np.where(np.isnan(w[:, i]), out[c].to_numpy(float), w[:, i])
    out["active"] = w[:, 3]
    return out


def _active(rows: pd.DataFrame) -> np.ndarray:
    """The rows' share of SMs held (with_current_work), 1 where not known."""
    if "active" not in rows:
        return np.ones(len(rows))
    return rows["active"].fillna(1.0).to_numpy(float)


def measured_caps(d: pd.DataFrame) -> Caps:
    """The largest measured copy bandwidth and, per dtype, GEMM rate (timing rows)."""
    timing = d[d["metered"].fillna(0) == 0]
    copy = timing[timing["kind"] == "copy"]
    bw = float((copy["bytes"] / copy["seconds"]).max()) if len(copy) else None
    peak = timing[timing["kind"] == "peak"]
    rates = (peak["flops"] / peak["seconds"]).groupby(peak["dtype"]).max()
    return Caps(bw, {str(k): float(v) for k, v in rates.items()})


def held_out(keys: pd.Series) -> np.ndarray:
    """About one point in five, by a hash of its key (as calibrate/fit.py holds out)."""
    if len(keys) < 5:
        return np.zeros(len(keys), bool)
    return keys.map(lambda k: zlib.crc32(str(k).encode()) % 5 == 0).to_numpy()


def fit_roofline(
    F: np.ndarray, B: np.ndarray, n: np.ndarray, t: np.ndarray, c_max: float, m_max: float
) -> tuple[float, float, float]:
    """(C, M, t0) of t = max(F/C, B/M) + n t0, least squares on log(pred/t), with C <= c_max
    and M <= m_max as bounds of the fit (no FLOPs: C is FLOPS_FREE, not fitted)."""
    no_flops = not (F > 0).any()
    lo = np.log(LO[1:] if no_flops else LO)
    hi = np.log((m_max, T0_MAX) if no_flops else (c_max, m_max, T0_MAX))
    hi = np.maximum(hi, lo + 1e-6)

    def pred(p):
        if no_flops:
            M, t0 = np.exp(p)
            return B / M + n * t0
        C, M, t0 = np.exp(p)
        return np.maximum(F / C, B / M) + n * t0

    guess = [(B / t).max(), max(t.min() * 0.3, 1e-7)]
    if not no_flops:
        guess = [(F / t).max(), *guess]
    x0 = np.clip(np.log(np.maximum(guess, 1e-30)), lo + 1e-9, hi - 1e-9)
    best = None
    # the max() makes the surface piecewise: start also from the roofs themselves
    for start in (x0, np.clip(hi - 0.05, lo + 1e-9, hi - 1e-9)):
        sol = least_squares(lambda p: np.log(pred(p) / t), start, bounds=(lo, hi))
        if best is None or sol.cost < best.cost:
            best = sol
    p = np.exp(best.x)
    return (FLOPS_FREE, float(p[0]), float(p[1])) if no_flops else tuple(map(float, p))


def fit_power(rows: pd.DataFrame, C: float, M: float) -> tuple[float, float, float, int] | None:
    """(p_base, w_compute, w_memory, windows) from metered rows: P = p_base + w_c u_c +
    w_m u_m, u_c = F/(C t), u_m = B/(M t), non-negative least squares; a utilisation that
    stays under 5% in every window is not identified and keeps weight 0."""
    e = rows[rows["energy_j"].notna() & (rows["energy_j"] > 0)]
    if e.empty:
        return None
    t = e["seconds"].to_numpy(float)
    u = np.column_stack(
        [np.ones(len(e)), e["flops"].to_numpy(float) / C / t, e["bytes"].to_numpy(float) / M / t]
    )
    used = u.max(axis=0) > 0.05
    used[0] = True
    coef = np.zeros(3)
    coef[used], _ = nnls(u[:, used], e["energy_j"].to_numpy(float) / t)
    return float(coef[0]), float(coef[1]), float(coef[2]), len(e)


def fit_error_of(n: int, err_t: np.ndarray, err_e: np.ndarray) -> FitError:
    def stat(x, q):
        x = x[np.isfinite(x)]
        return float(np.percentile(x, q)) if len(x) else None

    return FitError(
        n_points=n,
        time_median_ape=stat(err_t, 50),
        time_p90_ape=stat(err_t, 90),
        energy_median_ape=stat(err_e, 50),
        energy_p90_ape=stat(err_e, 90),
    )


def fit_graph_kernels(
    raw: pd.DataFrame, plimit: float, source: str, head_rows: pd.DataFrame | None = None
) -> dict[str, dict[str, KernelFit]]:
    """Every FIT_CLASSES class and key with >= 3 timed rows, bounded by the table's caps;
    then, for HEAD_SHAPE_CLASSES, one fit per head shape measured at >= 3 points of raw and
    head_rows together (with_head_shape_fits)."""
    fits = _fit_pooled(raw, plimit, source)
    rows = raw if head_rows is None else pd.concat([raw, head_rows], ignore_index=True)
    return with_head_shape_fits(fits, rows, source)


def with_head_shape_fits(
    fits: dict[str, dict[str, KernelFit]], raw: pd.DataFrame, source: str
) -> dict[str, dict[str, KernelFit]]:
    """fits plus, per HEAD_SHAPE_CLASSES class and pooled key, a fit for each (heads,
    kv_heads) timed at >= 3 points, under cost/kernels.head_shape_key: its own rate and
    floor, bounded by the rows' caps; the pooled fit's power at its energy per byte (no
    head shape has windows enough of its own)."""
    d = ok_rows(raw)
    cap = measured_caps(d).bw_cap()
    timing = d[d["metered"].fillna(0) == 0]
    for kc in HEAD_SHAPE_CLASSES:
        for key, pooled in list(fits.get(kc, {}).items()):
            mine = timing[(timing["kclass"] == kc) & (timing["fit_key"] == key)]
            for (h, kvh), part in mine.groupby(["heads", "kv_heads"]):
                part = part.sort_values("key").reset_index(drop=True)
                if len(part) < 3:
                    continue
                F, B, n, t = (
                    part[c].to_numpy(float) for c in ("flops", "bytes", "count", "seconds")
                )
                C, M, t0 = fit_roofline(F, B, n, t, FLOPS_FREE, cap)
                kf = pooled.model_copy(
                    update={
                        "bandwidth": M,
                        "t0_s": t0,
                        "w_memory": pooled.w_memory * M / pooled.bandwidth,
                        "source": f"{source}; {len(part)} points at {int(h)}/{int(kvh)} heads "
                        f"(its own rate and floor; power: the pooled {key} fit's at its energy "
                        "per byte)",
                    }
                )
                pred = B / M + n * t0
                err = np.abs(pred / t - 1) * 100  # in sample: a few points per head shape
                fe = fit_error_of(len(part), err, np.array([np.nan]))
                fits[kc][head_shape_key(str(key), int(h), int(kvh))] = kf.model_copy(
                    update={"fit_error": fe}
                )
    return fits


def _fit_pooled(raw: pd.DataFrame, plimit: float, source: str) -> dict[str, dict[str, KernelFit]]:
    """Every FIT_CLASSES class and key with >= 3 timed rows, bounded by the table's caps."""
    d = ok_rows(raw)
    caps = measured_caps(d)
    caps_note = (
        f"caps: copy {caps.bw_cap() / 1e12:.2f} TB/s"
        + ("" if caps.copy_bw else " (not measured: default)")
        + ", GEMM peak "
        + (", ".join(f"{k} {v / 1e12:.0f}" for k, v in sorted(caps.peak.items())) or "default")
        + " TFLOP/s"
    )
    timing, metered = d[d["metered"].fillna(0) == 0], d[d["metered"].fillna(0) == 1]
    fits: dict[str, dict[str, KernelFit]] = {}
    power: dict[str, tuple] = {}
    for kc in FIT_CLASSES:
        for key, part in timing[timing["kclass"] == kc].groupby("fit_key"):
            part = part.sort_values("key").reset_index(drop=True)
            if len(part) < 3:
                continue
            held = held_out(part["key"])
            tr = part[~held]
            F, B, n, t = (tr[c].to_numpy(float) for c in ("flops", "bytes", "count", "seconds"))
            F = F / _active(tr)  # the compute term runs over the SMs held (KernelGroup.active)
            C, M, t0 = fit_roofline(F, B, n, t, caps.flops_cap(str(key)), caps.bw_cap())
            win = metered[(metered["kclass"] == kc) & (metered["fit_key"] == key)]
            pw = fit_power(win, C, M)
            if pw is not None:
                power[f"{kc}:{key}"] = pw
            fits.setdefault(kc, {})[str(key)] = KernelFit(
                peak_flops=C,
                bandwidth=M,
                t0_s=t0,
                p_base_w=0.0,
                w_compute=0.0,
                w_memory=0.0,
                source=f"{source}; {len(part)} points, {caps_note}",
            )
    # power: own windows, else the nearest measured class's
    for kc, by in fits.items():
        for key, kf in by.items():
            own = f"{kc}:{key}"
            chain = (own,) + (FP8_POWER if key.startswith("fp8") and kc == "linear_graph" else ())
            chain += POWER_FALLBACK.get(kc, ())
            src = next((c for c in chain if c in power), None)
            if src is None:
                note = "; power: no window measured (0 W: take it from another class)"
                pb = wc = wm = 0.0
            else:
                pb, wc, wm, nwin = power[src]
                note = f"; power from {nwin} sustained windows" + (
                    f" of {src} (none of its own)" if src != own else ""
                )
                src_kc, src_key = src.split(":", 1)
                other = fits.get(src_kc, {}).get(src_key)
                if src != own and other is not None:
                    # what a byte moved or a FLOP done costs is the GPU's, not the class's: the
                    # dynamic terms keep the source's energy per byte and per FLOP, so a class
                    # streaming at a fraction of the source's rate draws that fraction
                    wm *= kf.bandwidth / other.bandwidth
                    if other.peak_flops < FLOPS_FREE and kf.peak_flops < FLOPS_FREE:
                        wc *= kf.peak_flops / other.peak_flops
                    note += " at its energy per byte and per FLOP"
            by[key] = kf.model_copy(
                update={
                    "p_base_w": pb,
                    "w_compute": wc if kf.peak_flops < FLOPS_FREE else 0.0,
                    "w_memory": wm,
                    "source": kf.source + note,
                }
            )
            by[key] = by[key].model_copy(
                update={"fit_error": _errors(by[key], timing, metered, kc, key, plimit)}
            )
    return fits


def _errors(
    kf: KernelFit, timing: pd.DataFrame, metered: pd.DataFrame, kc: str, key: str, plimit: float
) -> FitError:
    """Time: held-out timing rows (all rows where fewer than 5); energy: the class's own
    sustained windows (in sample: there are two or three)."""
    part = timing[(timing["kclass"] == kc) & (timing["fit_key"] == key)]
    part = part.sort_values("key").reset_index(drop=True)
    held = held_out(part["key"])
    te = part[held] if held.any() else part
    n = te["count"].to_numpy(float)
    tp, _ = predict_kernel(
        kf, te["flops"].to_numpy(float), te["bytes"].to_numpy(float), plimit, _active(te)
    )
    tp = tp + (n - 1) * kf.t0_s  # predict_kernel charges one launch
    err_t = np.abs(tp / te["seconds"].to_numpy(float) - 1) * 100
    win = metered[(metered["kclass"] == kc) & (metered["fit_key"] == key)]
    win = win[win["energy_j"].notna() & (win["energy_j"] > 0)]
    err_e = np.array([np.nan])
    if len(win):
        _, ep = predict_kernel(
            kf, win["flops"].to_numpy(float), win["bytes"].to_numpy(float), plimit, _active(win)
        )
        err_e = np.abs(ep / win["energy_j"].to_numpy(float) - 1) * 100
    return fit_error_of(len(part), err_t, err_e)


def fit_graph_host(raw: pd.DataFrame, source: str) -> HostOverhead | None:
    """graph.replay() host time = a + b x kernels in the graph (idle-GPU rows, non-negative
    least squares). per_step_s = a; b goes into per_kernel_s where the profile schema has
    the field, else into the source (with the busy-GPU figures)."""
    d = ok_rows(raw)
    d = d[(d["kind"] == "host_replay") & d["host_s"].notna()]
    idle, busy = d[d["gpu_state"] == "idle"], d[d["gpu_state"] == "busy"]
    if len(idle) < 2:
        return None
    X = np.column_stack([np.ones(len(idle)), idle["nodes"].to_numpy(float)])
    y = idle["host_s"].to_numpy(float)
    (a, b), _ = nnls(X, y)
    err = np.abs((X @ np.array([a, b])) / y - 1) * 100
    busy_note = ", ".join(
        f"{int(r.nodes)} kernels {r.host_s * 1e6:.1f} us"
        for r in busy.sort_values("nodes").itertuples()
    )
    extra = {"per_kernel_s": float(b)} if "per_kernel_s" in HostOverhead.model_fields else {}
    return HostOverhead(
        per_step_s=float(a),
        per_layer_s=0.0,
        per_sequence_s=0.0,
        **extra,
        fit_error=FitError(
            n_points=len(y),
            time_median_ape=float(np.median(err)),
            time_p90_ape=float(np.percentile(err, 90)),
        ),
        source=(
            f"host wall time of one torch.cuda.CUDAGraph.replay() with the GPU idle = "
            f"{a * 1e6:.2f} us + {b * 1e9:.2f} ns per captured kernel ({len(y)} graphs of "
            f"{', '.join(str(int(x)) for x in sorted(idle['nodes']))} kernels); per_step_s is "
            f"the constant, the per-kernel term is the slope"
            + (
                f"; GPU busy (replays queued behind a running kernel): {busy_note}"
                if busy_note
                else ""
            )
            + f"; {source}"
        ),
    )


def with_graph_fits(
    profile: Profile,
    raw_dir: Path,
    head_tables: tuple[Path, ...] = (),
    more_rows: pd.DataFrame | None = None,
    more_source: str = "",
) -> Profile:
    """The profile with the graph classes (and the replay host entry) of raw_dir/graph.csv,
    the head-shape fits also from head_tables (more graph-stage rows of those classes), the
    pooled fits also from more_rows (graph-stage rows of other probes, appended);
    measured classes replace the profile's, the rest is kept."""
    raw = pd.read_csv(raw_dir / GRAPH_CSV)
    if more_rows is not None and len(more_rows):
        raw = pd.concat([raw, more_rows], ignore_index=True)
    extra = pd.concat([pd.read_csv(t) for t in head_tables]) if head_tables else None
    where = f"{profile.gpu.name}" if profile.gpu else "GPU"
    src = f"CUDA-graph replays (sim calibrate --stages graph) on {where}; raw: {raw_dir.name}/{GRAPH_CSV}"
    if "utc" in raw and raw["utc"].notna().any():
        utc = raw["utc"].dropna().astype(str)
        src += f", measured {utc.min()}..{utc.max()}"
    kernels = {**profile.kernels}
    if more_source:
        src += f"; pooled fits also from {more_source}"
    if head_tables:
        src += "; head-shape fits also from " + ", ".join(
            f"{t.parent.name}/{t.name}" for t in head_tables
        )
    for kc, by in fit_graph_kernels(raw, profile.gpu.power_limit_w, src, extra).items():
        kernels[kc] = {**kernels.get(kc, {}), **by}
    host = dict(profile.host)
    if (ho := fit_graph_host(raw, src)) is not None:
        host[HOST_KEY] = ho
    return Profile(**profile.model_copy(update={"kernels": kernels, "host": host}).model_dump())


def graph_table(raw_dir: Path) -> Path | None:
    """raw_dir/graph.csv when it exists."""
    p = raw_dir / GRAPH_CSV
    return p if p.exists() else None
