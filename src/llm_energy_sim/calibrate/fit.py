"""Fit the profile from raw tables: kernel rooflines and power, idle/standby, host overhead.

Every class holds out about one point in five (chosen by a hash of the point's key) from its
fit and reports the median and p90 absolute percentage error of time and energy on those
held-out points.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from llm_energy_sim.calibrate.rawread import MICROBENCH_COLUMNS, measured_rows, read_raw
from llm_energy_sim.config.dtypes import HEAD_SHAPE_SEP, dtype_info
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import (
    FitError,
    GpuSpec,
    HostOverhead,
    IdlePower,
    KernelFit,
    Profile,
)
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.cost.kernels import (
    FP32_GEMV,
    FP32_SMALL,
    NF4_GEMV,
    head_shape_key,
    linear_fit_dtype,
)

FLOPS_FREE = 1e18  # elementwise kernels do no FLOPs: their compute roof never binds
# rows a head layout of the packed attention needs for a fit of its own (time and power: a
# roofline of three parameters and three power weights, one row in five held out)
PACKED_MIN_POINTS = 6


def _ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.abs(pred / meas - 1.0) * 100.0


def _time(p: np.ndarray, F: np.ndarray, B: np.ndarray) -> np.ndarray:
    C, M, t0 = np.exp(p)
    return np.maximum(F / C, B / M) + t0


def fit_kernel_class(
    d: pd.DataFrame, plimit: float, source: str, bw_max: float = 8e12
) -> KernelFit:
    """The roofline time and power fit of one (class, dtype) regime's rows, its bandwidth at
    most bw_max (B/s)."""
    d = d.sort_values("key").reset_index(drop=True)
    # hold out ~1 point in 5 by a hash of its key (every 5th point of the sorted keys would
    # always be the same, smallest projection shape, which the fit would then never see)
    held = (
        d["key"].map(lambda k: zlib.crc32(str(k).encode()) % 5 == 0).to_numpy()
        if len(d) >= 5
        else np.zeros(len(d), bool)
    )
    tr, te = d[~held], (d[held] if held.any() else d)
    F, B, t = (tr[c].to_numpy(float) for c in ("flops", "bytes", "seconds"))
    no_flops = not (F > 0).any()
    if no_flops:
        F = np.zeros_like(F)
    x0 = np.log(
        [
            max((F / t).max(), 1e9) if not no_flops else FLOPS_FREE,
            max((B / t).max(), 1e9),
            max(t.min() * 0.3, 1e-7),
        ]
    )
    # physical bounds: a roof that never binds in the data must not run off to infinity
    lo, hi = np.log([1e11, 1e10, 1e-7]), np.log([2.5e15, bw_max, 1e-2])
    sol = least_squares(
        lambda p: np.log(_time(p, F, B) / t), np.clip(x0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi)
    )
    C, M, t0 = np.exp(sol.x)
    if no_flops:
        C = FLOPS_FREE
    # power: E = p_base*t + w_c*F/C + w_m*B/M, non-negative, on measured time
    e_rows = tr["energy_j"].notna()
    coef = np.zeros(3)
    if e_rows.sum() >= 3:
        A = np.column_stack([t[e_rows], F[e_rows] / C, B[e_rows] / M])
        # a utilisation that stays tiny over the data cannot be fitted: leave its weight at 0
        used = (A / t[e_rows, None]).max(axis=0) > 0.05
        used[0] = True
        sub, _ = nnls(
            (A / t[e_rows, None])[:, used], tr["energy_j"].to_numpy(float)[e_rows] / t[e_rows]
        )
        coef[used] = sub
    fit = KernelFit(
        peak_flops=float(C),
        bandwidth=float(M),
        t0_s=float(t0),
        p_base_w=float(coef[0]),
        w_compute=float(coef[1]),
        w_memory=float(coef[2]),
        source=source,
    )
    Ft, Bt, tt = (te[c].to_numpy(float) for c in ("flops", "bytes", "seconds"))
    tp, ep = predict_kernel(fit, Ft, Bt, plimit)
    err_t = _ape(tp, tt)
    me = te["energy_j"].notna().to_numpy()
    err_e = _ape(ep[me], te["energy_j"].to_numpy(float)[me]) if me.any() else np.array([np.nan])
    return fit.model_copy(update={"fit_error": fit_error_of(len(d), err_t, err_e)})


def fit_error_of(n_points: int, err_t: np.ndarray, err_e: np.ndarray) -> FitError:
    """Median and p90 of held-out absolute percentage errors (energy: NaN where unmetered)."""
    return FitError(
        n_points=n_points,
        time_median_ape=float(np.median(err_t)),
        time_p90_ape=float(np.percentile(err_t, 90)),
        energy_median_ape=_nanstat(err_e, 50),
        energy_p90_ape=_nanstat(err_e, 90),
    )


def _nanstat(x: np.ndarray, q: float) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else None


def fit_kernels(raw: pd.DataFrame, plimit: float, source: str) -> dict[str, dict[str, KernelFit]]:
    ok = raw[pd.to_numeric(raw["seconds"], errors="coerce") > 0].copy()
    ok["seconds"] = ok["seconds"].astype(float)
    ok["energy_j"] = pd.to_numeric(ok["energy_j"], errors="coerce")
    out: dict[str, dict[str, KernelFit]] = {}
    for (kc, dt), d in ok.groupby(["kclass", "dtype"]):
        for key, part in kernel_regimes(kc, dt, d):
            if len(part) >= 3:
                # the float32 GEMV's small shapes stay in L2 between repeats; a serving step
                # streams each layer's weights from HBM: its bandwidth at most the table's
                # streaming rate
                cap = streaming_bandwidth(ok) if key == FP32_GEMV else None
                if key == FP32_GEMV:
                    # one row: FLOPs and bytes are proportional, no compute roof can be told
                    # from the bandwidth; a GEMV is memory-bound: fitted on bytes alone, its
                    # roof the same cores' (the GEMM regime's)
                    part = part.assign(flops=0.0)
                fit = fit_kernel_class(part, plimit, source + _rows_measured(part), cap or 8e12)
                if key in (NF4_GEMV, FP32_GEMV) and len(part) >= 4:
                    fit = fit.model_copy(
                        update={"fit_error": leave_one_out_error(part, plimit, cap or 8e12)}
                    )
                gemm = out.get(kc, {}).get(dt)
                if key == FP32_GEMV and gemm is not None:
                    fit = fit.model_copy(update={"peak_flops": gemm.peak_flops})
                if key in (FP32_GEMV, FP32_SMALL) and gemm is not None:
                    # their points all stream near one rate: base power and memory weight
                    # cannot be told apart (free fits put the base at 41 and 80 W on the
                    # H200, below its active idle); the base is the same cores' GEMM's
                    fit = with_base_power(fit, gemm.p_base_w, part, plimit)
                if HEAD_SHAPE_SEP in key and (pooled := out.get(kc, {}).get(dt)) is not None:
                    # one head layout's rows span too few utilisations to tell base power from
                    # the memory weight (free fits put the base at 65-81 W, below the H200's
                    # active idle): the base is the pooled fit's, the weights refitted on it
                    fit = with_base_power(fit, pooled.p_base_w, part, plimit)
                out.setdefault(kc, {})[key] = fit
    for dt, fit in out.get("elementwise_eager", {}).items():
        if own := out.get("elementwise", {}).get(dt):
            out["elementwise_eager"][dt] = _with_base_power(fit, own, ok, dt)
    return out


def streaming_bandwidth(raw: pd.DataFrame) -> float | None:
    """Bytes per second of the largest elementwise rows of a microbenchmark table (one per
    dtype; the median of them): the GPU's HBM streaming rate, read + write, as the fits count
    bytes (None: the table has no elementwise rows)."""
    e = raw[(raw["kclass"] == "elementwise") & (pd.to_numeric(raw["seconds"], errors="coerce") > 0)]
    if e.empty:
        return None
    largest = e[e["elems"] == e["elems"].max()]
    return float((largest["bytes"] / largest["seconds"].astype(float)).median())


def with_base_power(fit: KernelFit, base_w: float, part: pd.DataFrame, plimit: float) -> KernelFit:
    """`fit` with p_base_w = base_w and its compute and memory weights refitted given it
    (non-negative least squares on the metered rows of `part`), energy errors on them."""
    e = part["energy_j"].notna().to_numpy()
    if e.sum() < 2:
        return fit.model_copy(update={"p_base_w": base_w})
    F, B, t = (part[c].to_numpy(float)[e] for c in ("flops", "bytes", "seconds"))
    A = np.column_stack([F / fit.peak_flops, B / fit.bandwidth]) / t[:, None]
    y = part["energy_j"].to_numpy(float)[e] / t - base_w
    w, _ = nnls(A, y)
    out = fit.model_copy(
        update={"p_base_w": base_w, "w_compute": float(w[0]), "w_memory": float(w[1])}
    )
    _, ep = predict_kernel(out, F, B, plimit)
    err_e = _ape(ep, part["energy_j"].to_numpy(float)[e])
    fe = fit.fit_error
    return out.model_copy(
        update={
            "fit_error": fe.model_copy(
                update={
                    "energy_median_ape": float(np.median(err_e)),
                    "energy_p90_ape": float(np.percentile(err_e, 90)),
                }
            )
            if fe is not None
            else None
        }
    )


def _with_base_power(fit: KernelFit, own: KernelFit, ok: pd.DataFrame, dt: str) -> KernelFit:
    """The eager chain is fitted on GPU-bound rows only, where its power is all memory traffic
    and a base term cannot be told apart (it came out 0 W); at decode sizes the chain's launch
    term still runs at the GPU's base power. So: p_base_w of the same GPU's plain elementwise
    fit, w_memory refitted on the chain's rows given it (least squares, >= 0)."""
    rows = ok[(ok["kclass"] == "elementwise_eager") & (ok["dtype"] == dt)]
    rows = rows[pd.to_numeric(rows["m"], errors="coerce") >= EAGER_GPU_BOUND_TOKENS]
    rows = rows[rows["energy_j"].notna()]
    if rows.empty:
        return fit
    t, x = rows["seconds"].to_numpy(float), rows["bytes"].to_numpy(float) / fit.bandwidth
    y = rows["energy_j"].to_numpy(float) - own.p_base_w * t
    w_m = max(float(np.dot(x, y) / np.dot(x, x)), 0.0)
    return fit.model_copy(update={"p_base_w": own.p_base_w, "w_memory": w_m})


def _rows_measured(d: pd.DataFrame) -> str:
    """'; rows measured FIRST..LAST' (UTC) where a class's rows came later than the table's
    first pass (a class appended to the table after the grid's first run)."""
    if "utc" not in d:
        return ""
    utc = d["utc"].dropna().astype(str)
    if utc.empty:
        return ""
    return f"; rows measured {utc.min()}..{utc.max()}"


def predict_kernel(
    fit: KernelFit, F: np.ndarray, B: np.ndarray, plimit: float, active=1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Time and energy per call of a fitted class: the roofline (the compute term over the
    share of SMs held, KernelGroup.active), and its power model clipped at the power limit
    (llm_energy_sim.cost.costmodel.CostModel.group_cost, vectorised for fits and plots)."""
    tc, tm = F / fit.peak_flops, B / fit.bandwidth
    t = np.maximum(tc / active, tm) + fit.t0_s
    e = np.minimum(fit.p_base_w * t + fit.w_compute * tc + fit.w_memory * tm, plimit * t)
    return t, e


def leave_one_out_error(d: pd.DataFrame, plimit: float, bw_max: float = 8e12) -> FitError:
    """Held-out error of a class too small for the 1-in-5 hold-out (the five one-row NF4
    points hold none of them out): each point predicted by the fit of all the others (with
    the same bandwidth bound)."""
    err_t, err_e = [], []
    for i in range(len(d)):
        f = fit_kernel_class(d.drop(index=d.index[i]), plimit, "", bw_max)
        r = d.iloc[i]
        t, e = predict_kernel(f, float(r["flops"]), float(r["bytes"]), plimit)
        err_t.append(abs(t / float(r["seconds"]) - 1.0) * 100.0)
        if np.isfinite(r["energy_j"]):
            err_e.append(abs(e / float(r["energy_j"]) - 1.0) * 100.0)
    return fit_error_of(len(d), np.array(err_t), np.array(err_e, float))


EAGER_GPU_BOUND_TOKENS = 1024


def kernel_regimes(kc: str, dt: str, d: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of one (class, dtype) split by the kernel they run: NF4 linears of one token
    row (column m) run bitsandbytes' small-M kernel, fitted apart as NF4_GEMV; the 'int4'
    roofline then sees the dequantise-then-GEMM rows only. float32 linears of one row run a
    GEMV, fitted apart as FP32_GEMV, 2-8 rows a small-tile GEMM (FP32_SMALL, where the table
    has such rows), and the 'float32' roofline sees the tiled SIMT GEMM rows. The HF eager small-op chain
    (elementwise_eager) is fitted on its GPU-bound rows (EAGER_GPU_BOUND_TOKENS and more):
    below, its ~34 launches take longer on the host than on the GPU (0.25-0.45 ms a layer
    whatever the bytes, H200), and host time belongs to the engine's host model, not to GPU
    time. transformers CB's packed attention (attn_packed) measured at more than one head
    layout is fitted pooled and, per layout with PACKED_MIN_POINTS rows or more, under
    cost/kernels.head_shape_key: its rate per byte depends on the layout, which the cost
    model keys it by. Everything else is one regime."""
    if kc == "attn_packed" and {"heads", "kv_heads"} <= set(d.columns):
        shapes = d.groupby(["heads", "kv_heads"])
        own = [
            (head_shape_key(dt, int(h), int(kvh)), part)
            for (h, kvh), part in shapes
            if len(part) >= PACKED_MIN_POINTS
        ]
        return [(dt, d)] + (own if shapes.ngroups > 1 else [])
    if kc == "elementwise_eager" and "m" in d:
        return [(dt, d[pd.to_numeric(d["m"], errors="coerce") >= EAGER_GPU_BOUND_TOKENS])]
    if kc != "linear" or dt not in ("int4", "float32") or "m" not in d:
        return [(dt, d)]
    # the simulator's own rule (llm_energy_sim.cost.kernels.linear_fit_dtype) picks each row's fit
    key = pd.to_numeric(d["m"], errors="coerce").map(lambda m: linear_fit_dtype(m, dt))
    if dt == "int4":
        return [(dt, d[key == dt]), (NF4_GEMV, d[key == NF4_GEMV])]
    return [
        (dt, d[key == dt]),
        (FP32_GEMV, d[key == FP32_GEMV]),
        (FP32_SMALL, d[key == FP32_SMALL]),
    ]


def _gap_mean(f: float, ts: float, td: float, A: float, D: float, p_last: float, g: float) -> float:
    from llm_energy_sim.config.profile import IdlePower as IP
    from llm_energy_sim.cost.idle import gap_energy_per_gpu

    ip = IP(
        deep_idle_w=D,
        active_idle_w=A,
        host_wait_w=A,
        standby_fraction=f,
        standby_tau_s=ts,
        deep_decay_tau_s=td,
        source="",
    )
    return float(gap_energy_per_gpu(ip, p_last, g)) / g


def fit_idle(
    idle: pd.DataFrame, host_wait_w: float, source: str, step_standby_fraction: float = 0.0
) -> IdlePower:
    """Deep and active idle as measured; standby fraction/tau and deep-decay tau fitted jointly
    to the decay curve after a GEMM burst and to the two duty-cycle means."""
    get = lambda s: float(idle.loc[idle.state == s, "power_w"].iloc[0])  # noqa: E731
    D, A, P = get("deep_idle_no_context"), get("active_idle_context"), get("gemm_back_to_back")
    A = max(A, D)
    decay = idle[idle.state == "decay_after_gemm"]
    t, pw = decay["t_s"].astype(float).to_numpy(), decay["power_w"].astype(float).to_numpy()
    duties = idle[idle.state.str.startswith("duty_")]

    def resid(p):
        f, ts, td = 1 / (1 + np.exp(-p[0])), np.exp(p[1]), np.exp(p[2])
        idle_t = D + (A - D) * np.exp(-t / td)
        r = list((idle_t + f * (P - idle_t) * np.exp(-t / ts) - pw) / pw)
        for _, row in duties.iterrows():
            on, off = (float(x) / 1e3 for x in row.state.replace("ms", "").split("_")[1:4:2])
            pred = (P * on + _gap_mean(f, ts, td, A, D, P, off) * off) / (on + off)
            r.append(3 * (pred - row.power_w) / row.power_w)
        return r

    sol = least_squares(
        resid,
        [0.0, np.log(0.1), np.log(100.0)],
        bounds=([-10, np.log(1e-3), np.log(1.0)], [10, np.log(30), np.log(1e4)]),
    )
    f, ts, td = 1 / (1 + np.exp(-sol.x[0])), float(np.exp(sol.x[1])), float(np.exp(sol.x[2]))
    return IdlePower(
        deep_idle_w=D,
        active_idle_w=A,
        host_wait_w=max(host_wait_w, D),
        step_standby_fraction=float(step_standby_fraction),
        standby_fraction=float(f),
        standby_tau_s=ts,
        deep_decay_tau_s=td,
        source=source,
    )


HOST_GROUPS = {
    # 16/32-bit models launch the same kernels, so they share one host cost; bitsandbytes
    # layers run extra Python and kernels per linear, so int8 and int4 get their own
    "": ("float32", "bfloat16", "float16"),
    "int8": ("int8",),
    "int4": ("int4",),
}


def host_runs(host: pd.DataFrame) -> pd.DataFrame:
    """Successful HF generate runs, averaged over the passes of one configuration (passes are
    tagged; host time drifts between them, so one run is one sample of it)."""
    h = host[host["error"].isna() | (host["error"].astype(str) == "")].copy()
    h = h[pd.to_numeric(h["decode_s_per_token"], errors="coerce") > 0]
    cols = ["prefill_s", "prefill_j", "decode_s_per_token", "decode_j_per_token"]
    for c in cols:
        h[c] = pd.to_numeric(h[c], errors="coerce")
    keys = ["model", "layers", "dtype", "batch", "prompt", "new_tokens"]
    g = h.groupby(keys, sort=False)
    out = g[cols].mean()
    out["passes"] = g.size()
    out["decode_s_spread"] = g["decode_s_per_token"].max() / g["decode_s_per_token"].min() - 1.0
    return out.reset_index()


def _card(name: str, layers: int):
    card = load_model_card(name)
    if int(layers) != card.num_hidden_layers:  # a cut-down copy, as measured
        card = card.model_copy(update={"num_hidden_layers": int(layers)})
    return card


def decode_step(r, profile: Profile, engine: str = "hf_eager", tp: int = 1):
    """Cost of the average decode step of run r (context grows over the new tokens)."""
    cm = CostModel(_card(r["model"], r["layers"]), r["dtype"], profile, engine=engine, tp=tp)
    b, ctx = int(r["batch"]), int(r["prompt"]) + int(r["new_tokens"]) // 2
    return cm, cm.step_cost(StepWork(n_decode=b, decode_ctx_sum=b * ctx))


# a run whose measured time exceeds its modelled GPU time by more than this fraction of it
# is paced by the host: its time fits the host model and its wait carries the wait power
HOST_PACED_FRACTION = 0.2


def fit_host(
    runs: pd.DataFrame,
    profile: Profile,
    source: str,
    engine: str = "hf_eager",
    tp: int = 1,
    standby_k: float = 0.0,
    prior: tuple[str, HostOverhead] | None = None,
    decode_sync: bool = False,
) -> tuple[HostOverhead, float]:
    """HF eager decode steps are host-bound: fit host = a + b*layers + c*batch (parameters
    >= 0) so that max(GPU time, host) (the serial terms added where a synchronous loop or
    per-call syncs put them in series: CostModel.step_cost) matches the measured decode time
    per token (least
    squares on the log ratio, soft-L1 so one slow run cannot drag the fit). A run the GPU
    paces (measured time within a fifth of its modelled GPU time) only bounds the host from
    above, so a slope is fitted only where the host-paced runs identify it (more than one
    layer count, or batch size, among them); otherwise it is pinned to the prior entry's
    (name, entry; 0 without one) and said so in the source: along an unidentified direction
    the optimum is wherever the optimizer stops, which moves with the CPU's floating point.
    Then the host-wait power per GPU: the measured energy (all tp GPUs) not explained by the
    kernels, over the time the GPU waits, less the in-step standby share
    standby_k*(P_busy - host_wait)."""
    from llm_energy_sim.cost.costmodel import ENGINE_SHAPES

    # a CUDA-graph engine launches one replay per step, not a kernel per op: its host work has
    # no per-layer term (the replay's per-kernel cost is cuda_graph_replay's, nanoseconds)
    per_layer = 0.0 if ENGINE_SHAPES[engine].cuda_graphs else 1.0
    # a synchronous loop (EngineShape.host_serial): the per-step and per-sequence terms add
    # to every step, GPU-paced ones too, and only the launches overlap the GPU
    serial = np.array([1.0, 0.0, 1.0]) if ENGINE_SHAPES[engine].host_serial else np.zeros(3)
    if decode_sync:  # kernels that sync per call: host and kernels add up (HostOverhead)
        serial = np.ones(3)
    X, gpu_s, busy_j = [], [], []
    for _, r in runs.iterrows():
        cm, c = decode_step(r, profile, engine, tp)
        X.append((1.0, per_layer * cm.card.num_hidden_layers, int(r["batch"])))
        gpu_s.append(c.gpu_s)
        busy_j.append(c.busy_energy_j)
    X, gpu, busy = np.array(X, float), np.array(gpu_s), np.array(busy_j)
    y = runs["decode_s_per_token"].to_numpy(float)
    paced = y - gpu > HOST_PACED_FRACTION * y
    if not paced.any() or serial.any():  # every run's time fits the model: all of them
        paced = np.ones_like(y, dtype=bool)
    free, pinned = _identified_columns(X[paced], per_layer > 0)
    coef = np.zeros(3)  # the pinned slopes: prior's, else 0
    if prior is not None:
        coef[1:] = (prior[1].per_layer_s * per_layer, prior[1].per_sequence_s)
    coef[free] = 0.0  # fitted below
    Xf, fixed = np.ascontiguousarray(X[:, free]), X[:, ~free] @ coef[~free]
    # the design split into the part that overlaps the GPU and the part serial with it
    Xo, Xs = Xf * (1.0 - serial[free]), Xf * serial[free]
    fixed_o, fixed_s = (
        X[:, ~free] @ (coef[~free] * (1 - serial[~free])),
        X[:, ~free] @ (coef[~free] * serial[~free]),
    )

    def step_time(c: np.ndarray) -> np.ndarray:
        """max(GPU, overlapping host) + serial host, per run (CostModel.step_cost)."""
        return np.maximum(Xo @ c + fixed_o, gpu) + Xs @ c + fixed_s

    coef0, _ = nnls(Xf, np.maximum(y - fixed, 0.0))
    sol = least_squares(
        lambda c: np.log(step_time(c) / y),
        np.maximum(coef0, 1e-6),
        bounds=(0.0, np.inf),
        loss="soft_l1",
        f_scale=0.1,
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    coef[free] = sol.x
    err = _ape(np.maximum(X @ (coef * (1 - serial)), gpu) + X @ (coef * serial), y)
    e = runs["decode_j_per_token"].to_numpy(float)
    wait = y - gpu
    ok = np.isfinite(e) & (wait > HOST_PACED_FRACTION * y)
    # per GPU: the meter sums all tp GPUs, and the cost model multiplies wait power by tp
    p_wait = (e[ok] - busy[ok]) / wait[ok] / tp
    p_busy = busy[ok] / gpu[ok] / tp
    per_run = (p_wait - standby_k * p_busy) / (1.0 - standby_k)
    host_wait = float(np.median(per_run)) if ok.any() else float("nan")
    ho = HostOverhead(
        decode_sync=decode_sync,
        per_step_s=float(coef[0]),
        per_layer_s=float(coef[1]),
        per_sequence_s=float(coef[2]),
        fit_error=FitError(
            n_points=len(y),
            time_median_ape=float(np.median(err)),
            time_p90_ape=float(np.percentile(err, 90)),
        ),
        source=f"{source} (errors on the fit runs themselves: no run held out)"
        + "".join(
            f"; {name} not identified (one {what} among the host-paced runs): "
            + (f"{prior[0]}'s" if prior is not None else "0")
            for name, what in pinned
        ),
    )
    return ho, host_wait


def _identified_columns(X: np.ndarray, fit_layers: bool) -> tuple[np.ndarray, list]:
    """Which of (per_step, per_layer, per_sequence) the design X identifies: the intercept
    always; a slope when its column adds to the rank of the columns kept before it (a single
    layer count or batch size makes it a multiple of the intercept). Returns the mask and
    (name, what varies too little) of each slope left out (the per-layer term of a CUDA-graph
    engine is absent by construction, not unidentified)."""
    free = np.array([True, False, False])
    pinned = []
    for j, (name, what) in (
        (1, ("per_layer_s", "layer count")),
        (2, ("per_sequence_s", "batch size")),
    ):
        if j == 1 and not fit_layers:
            continue
        trial = free.copy()
        trial[j] = True
        if np.linalg.matrix_rank(X[:, trial] / np.abs(X[:, trial]).max(axis=0)) == trial.sum():
            free = trial
        else:
            pinned.append((name, what))
    return free, pinned


def _prefill_step(r, profile: Profile, engine: str = "hf_eager"):
    """GPU time and busy energy of run r's prefill step (batch x prompt tokens, no past)."""
    cm = CostModel(_card(r["model"], r["layers"]), r["dtype"], profile, engine=engine)
    b, p = int(r["batch"]), int(r["prompt"])
    return cm.card.num_hidden_layers, cm.step_cost(StepWork(prefill=((p, 0),) * b))


def _robust_scalar(f, x0: float, hi: float) -> float:
    """One parameter in [0, hi] by soft-L1 least squares on log ratios (as the host fit)."""
    sol = least_squares(
        f, [min(max(x0, 1e-9), hi - 1e-9)], bounds=(0.0, hi), loss="soft_l1", f_scale=0.1
    )
    return float(sol.x[0])


@dataclass
class PrefillFit:
    """The generate() prefill terms, fitted on the HF generate runs (fit data only)."""

    setup_s: float  # per generate() call, shared by every dtype (the same Python)
    serial: dict[str, float]  # prefill_serial_fraction per host entry
    host_wait_w: float  # per GPU, in-step waits, with the standby term below
    step_standby_fraction: float
    errors: dict[str, FitError]  # prefill time (and energy) errors on the fit runs


def fit_prefill(runs: pd.DataFrame, profile: Profile, hosts: dict[str, HostOverhead]) -> PrefillFit:
    """generate(1) = set-up + one prefill step. With the decode-fitted host entries fixed:

    1. setup_s: 16/32-bit runs, wall = setup + max(gpu, host) (these layers never sync the
       host inside a forward);
    2. prefill_serial_fraction s of each bitsandbytes entry, with that setup:
       wall = setup + max(gpu, host) + s*min(gpu, host);
    3. in-step wait power, jointly on the 16/32-bit runs' decode and prefill energies over
       the measured waits: p_wait = w + k*(P_busy - w) (w: host_wait_w, k: step standby)."""
    rows = []
    for _, r in runs.iterrows():
        key = "hf_eager" + ("" if r["dtype"] in HOST_GROUPS[""] else f":{r['dtype']}")
        ho = hosts.get(key, hosts["hf_eager"])
        layers, pre = _prefill_step(r, profile)
        _, dec = decode_step(r, profile)
        host = ho.per_step_s + ho.per_layer_s * layers + ho.per_sequence_s * int(r["batch"])
        rows.append(
            {
                "key": key,
                "gpu": pre.gpu_s,
                "busy": pre.busy_energy_j,
                "host": host,
                "d_gpu": dec.gpu_s,
                "d_busy": dec.busy_energy_j,
            }
        )
    d = pd.concat([runs.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    y = d["prefill_s"].to_numpy(float)
    overlap = np.maximum(d["gpu"], d["host"]).to_numpy(float)
    short = np.minimum(d["gpu"], d["host"]).to_numpy(float)
    plain = (d["key"] == "hf_eager").to_numpy()
    setup = _robust_scalar(
        lambda p: np.log((p[0] + overlap[plain]) / y[plain]),
        float(np.median(y[plain] - overlap[plain])),
        0.1,
    )
    serial: dict[str, float] = {}
    wall = setup + overlap
    for key in sorted(set(d["key"]) - {"hf_eager"}):
        m = (d["key"] == key).to_numpy()
        serial[key] = _robust_scalar(
            lambda p, m=m: np.log((setup + overlap[m] + p[0] * short[m]) / y[m]), 0.5, 1.0
        )
        wall[m] += serial[key] * short[m]
    errors = {}
    for key in sorted(set(d["key"])):
        m = (d["key"] == key).to_numpy()
        err = _ape(wall[m], y[m])
        errors[key] = FitError(
            n_points=int(m.sum()),
            time_median_ape=float(np.median(err)),
            time_p90_ape=float(np.percentile(err, 90)),
        )
    # in-step wait power: measured energy minus the kernels' over the measured wait
    e, w, busy, gpu = [], [], [], []
    for ph in (
        ("decode_j_per_token", "decode_s_per_token", "d_busy", "d_gpu"),
        ("prefill_j", "prefill_s", "busy", "gpu"),
    ):
        q = d[plain]
        e.append(q[ph[0]].to_numpy(float))
        w.append(q[ph[1]].to_numpy(float) - q[ph[3]].to_numpy(float))
        busy.append(q[ph[2]].to_numpy(float))
        gpu.append(q[ph[3]].to_numpy(float))
    e, w, busy, gpu = (np.concatenate(a) for a in (e, w, busy, gpu))
    t = w + gpu
    ok = np.isfinite(e) & (w > HOST_PACED_FRACTION * t)  # waits long enough to carry their power
    e, w, busy, p_busy = e[ok], w[ok], busy[ok], busy[ok] / gpu[ok]
    sol = least_squares(
        lambda p: (busy + (p[0] + p[1] * (p_busy - p[0])) * w) / e - 1.0,
        [profile.idle.active_idle_w, 0.2],
        bounds=([profile.idle.deep_idle_w, 0.0], [profile.gpu.power_limit_w, 0.95]),
        loss="soft_l1",
        f_scale=0.1,
    )
    return PrefillFit(
        setup_s=setup,
        serial=serial,
        host_wait_w=float(sol.x[0]),
        step_standby_fraction=float(sol.x[1]),
        errors=errors,
    )


def fit_hosts(
    host: pd.DataFrame, profile: Profile, source: str
) -> tuple[dict[str, HostOverhead], float, float]:
    """The hf_eager entries of profile.host ('hf_eager' for 16/32-bit, 'hf_eager:int8' and
    'hf_eager:int4') with their generate() prefill terms (fit_prefill), 'transformers_cb'
    copied from hf_eager (not measured, said so; no generate() set-up), the host-wait power
    and the in-step standby fraction (both from the 16/32-bit runs)."""
    runs = host_runs(host)
    hosts = dict(profile.host)
    host_wait = profile.idle.host_wait_w
    standby_k = profile.idle.step_standby_fraction
    for suffix, dts in HOST_GROUPS.items():
        rows = runs[runs["dtype"].isin(dts)]
        if len(rows) < 3:
            continue
        # bitsandbytes entries: a slope their runs leave free is the 16/32-bit entry's
        prior = ("hf_eager", hosts["hf_eager"]) if suffix and "hf_eager" in hosts else None
        ho, wait = fit_host(rows, profile, f"{source}; dtypes {', '.join(dts)}", prior=prior)
        hosts["hf_eager" + (f":{suffix}" if suffix else "")] = ho
        if not suffix and np.isfinite(wait):
            host_wait = wait
    if hosts.get("hf_eager") is not profile.host.get("hf_eager"):  # fitted here
        fitted = [
            k for k in hosts if k.startswith("hf_eager") and hosts[k] is not profile.host.get(k)
        ]
        pre = fit_prefill(runs[runs["dtype"].isin(sum(HOST_GROUPS.values(), ()))], profile, hosts)
        for key in fitted:
            err = pre.errors.get(key)
            hosts[key] = hosts[key].model_copy(
                update={
                    "setup_s": pre.setup_s,
                    "prefill_serial_fraction": pre.serial.get(key, 0.0),
                    "source": hosts[key].source
                    + "; setup_s (shared) and prefill_serial_fraction from the generate(1) "
                    "prefill runs"
                    + (
                        f" (prefill time error on them: median {err.time_median_ape:.1f}%, "
                        f"p90 {err.time_p90_ape:.1f}%)"
                        if err
                        else ""
                    ),
                }
            )
        host_wait, standby_k = pre.host_wait_w, pre.step_standby_fraction
        hosts["transformers_cb"] = hosts["hf_eager"].model_copy(
            update={
                "fit_error": None,
                "setup_s": 0.0,
                "prefill_serial_fraction": 0.0,
                "source": "not measured by sim calibrate: copied from hf_eager (transformers CB "
                "runs the same eager modeling code per step; requests join a running loop, so "
                "no generate() set-up); " + hosts["hf_eager"].source,
            }
        )
    return hosts, host_wait, standby_k


# CB host tables (calibrate/cbbench.py) and the cost-model engine each one measures
CB_HOST_TABLES = {
    "cbhost.csv": ("transformers_cb", "transformers continuous batching decode"),
    "cbhost_graphs.csv": (
        "transformers_cb_graphs",
        "transformers continuous batching decode, steps as CUDA graph replays",
    ),
}


def fit_cb_host(
    raw_dir: Path, profile: Profile, where: str, table: str = "cbhost.csv"
) -> HostOverhead:
    """transformers CB steps (calibrate/cbbench.py): the same host fit as HF eager, with the
    step's GPU time from the engine's own kernels (packed masked attention; under CUDA graphs
    the profile's graph-regime classes), and the power while that engine's host keeps the GPU
    waiting."""
    engine, what = CB_HOST_TABLES[table]
    if engine not in profile.host:  # the fit reads only the steps' GPU side from CostModel
        profile = profile.model_copy(
            update={"host": {**profile.host, engine: profile.host["transformers_cb"]}}
        )
    runs = host_runs(read_raw(raw_dir / table))
    src = f"{what} on {where}; raw: {raw_dir.name}/{table}"
    ho, wait = fit_host(
        runs, profile, src, engine=engine, standby_k=profile.idle.step_standby_fraction
    )
    if not np.isfinite(wait) or wait <= 0:
        return ho.model_copy(update={"wait_w": None})
    if wait < profile.idle.deep_idle_w:
        # no GPU draws less than its deep idle: a residual below it means the kernels'
        # modelled energy is too high, not that the wait is cheap; the wait is held at the
        # active idle power (a GPU with a context, between kernels)
        floor = profile.idle.active_idle_w
        note = f"; host-wait power fitted {wait:.0f} W, below deep idle: held at {floor:.0f} W"
        return ho.model_copy(update={"wait_w": floor, "source": ho.source + note})
    return ho.model_copy(update={"wait_w": wait})


TP_HOST_TABLES = {
    # engine: (its raw tables under tensor parallelism, what they measure)
    "hf_eager": ("tphost*.csv", "HF generate"),
    "transformers_cb": ("tpcbhost*.csv", "transformers continuous batching decode"),
}


def fit_tp_hosts(
    dirs: list[Path], profile: Profile, engine: str = "hf_eager"
) -> dict[str, HostOverhead]:
    """An engine under transformers tensor parallelism (HF generate: calibrate/tphost.py;
    transformers CB: calibrate/tpcbhost.py): host time per step, per layer and per sequence
    with DTensor dispatch (and CB's per-step scheduler-state collectives), the GPU side costed
    as that engine at the run's TP degree, with its wait power. One entry '{engine}_tp{N}' per
    TP degree measured, over every pass at that degree (the engine's tables in all dirs; host
    time drifts between passes, so they are averaged), and '{engine}_tp' (degrees not
    measured) = the highest degree's."""
    pattern, _ = TP_HOST_TABLES[engine]
    parts = [
        (read_raw(f), f"{d.name}/{f.name} ({_where(d)})")
        for d in dirs
        for f in sorted(d.glob(pattern))
    ]
    return fit_tp_host_tables(parts, profile, engine)


def fit_tp_host_tables(
    parts: list[tuple[pd.DataFrame, str]], profile: Profile, engine: str = "hf_eager"
) -> dict[str, HostOverhead]:
    """fit_tp_hosts on tables already read: (rows of a TP host table, the source its entries
    name), e.g. the committed Parquet tables of a live session (tools/tp4_import.py). Same
    entries, same fit."""
    _, what = TP_HOST_TABLES[engine]
    raw = pd.concat([t.assign(_src=src) for t, src in parts], ignore_index=True)
    out: dict[str, HostOverhead] = {}
    for tp, g in raw.groupby("tp"):
        tp = int(tp)
        src = f"{what} under tp_plan='auto' on {tp} GPUs, passes averaged; raw: " + "; ".join(
            sorted(g["_src"].unique())
        )
        ho, wait = fit_host(
            host_runs(g),
            profile,
            src,
            engine=engine,
            tp=tp,
            standby_k=profile.idle.step_standby_fraction,
            prior=(engine, profile.host[engine]) if engine in profile.host else None,
        )
        update = {"wait_w": wait if np.isfinite(wait) and wait > 0 else None}
        if engine == "hf_eager":
            # the same generate() call: its set-up is the one fitted on one GPU (said so); the
            # TP runs are too few to fit it or a serial fraction
            update["setup_s"] = (
                profile.host["hf_eager"].setup_s if "hf_eager" in profile.host else 0.0
            )
            update["source"] = (
                ho.source + "; setup_s copied from hf_eager (the same generate() call)"
            )
        out[f"{engine}_tp{tp}"] = ho.model_copy(update=update)
    top = max(int(k.removeprefix(f"{engine}_tp")) for k in out)
    out[f"{engine}_tp"] = out[f"{engine}_tp{top}"].model_copy(
        update={
            "source": f"TP degrees not measured: the entry of the highest measured, {top}; "
            + out[f"{engine}_tp{top}"].source
        }
    )
    return out


def _one_gpu_engine(engine: str) -> str:
    """'hf_eager_tp4' / 'hf_eager_tp' -> 'hf_eager' (the engine a TP entry runs per rank)."""
    return re.sub(r"_tp\d*$", "", engine)


MISS_MIN_S = 0.005  # below this a dtype has no plan cache: fresh and cached steps differ by noise


def _miss_line(g: pd.DataFrame) -> tuple[float, float]:
    """(per-step, per-layer) seconds of a miss: least squares over the measured layer counts
    when there are two or more and the slope comes out >= 0, else the median as a constant;
    a per-step part below MISS_MIN_S with no slope is noise: (0, 0)."""
    if g["layers"].nunique() >= 2:
        b, a = np.polyfit(g["layers"].astype(float), g["miss_s"].astype(float), 1)
        if b >= 0 and a >= 0:
            return float(a), float(b)
    m = float(g["miss_s"].median())
    return (m, 0.0) if m >= MISS_MIN_S else (0.0, 0.0)


def fit_shape_misses(
    raw: pd.DataFrame,
) -> dict[str, tuple[dict[str, float], dict[str, float], float | None]]:
    """Per engine: per dtype the per-step and per-layer parts of (fresh - cached) step time
    (calibrate/shapemiss.py), and the GPU's power during the misses, from the energy of both
    runs (fresh step energy minus cached, over the time added), median over the rows with a
    real miss. Rows of a dtype whose attention runs in another (bitsandbytes: the activation
    dtype, config/dtypes.py) are left out: the miss is that dtype's cuDNN plan, which the
    cost model takes from the activation dtype's entry, and the bench of miss-v1 ran them after
    their activation dtype at the same prompt lengths, so their plans were already cached (a
    fresh process measured 39-59 ms, measurements/calibration/h200-bnbprobe)."""
    ok = raw[raw["error"].isna() | (raw["error"].astype(str) == "")].copy()
    ok = ok[[dtype_info(str(d)).act_dtype == str(d) for d in ok["dtype"]]]
    ok["p_miss"] = (
        ok["fresh_power_w"] * ok["fresh_step_s"] - ok["cached_power_w"] * ok["cached_step_s"]
    ) / (ok["fresh_step_s"] - ok["cached_step_s"])
    out: dict[str, tuple[dict[str, float], dict[str, float], float | None]] = {}
    for engine, g in ok.groupby("engine"):
        lines = {str(d): _miss_line(x) for d, x in g.groupby("dtype")}
        real = g[(g["miss_s"] > MISS_MIN_S) & g["p_miss"].notna()]
        out[str(engine)] = (
            {d: a for d, (a, _) in lines.items()},
            {d: b for d, (_, b) in lines.items()},
            float(real["p_miss"].median()) if len(real) else None,
        )
    return out


def with_shape_misses(
    hosts: dict[str, HostOverhead],
    misses: dict[str, tuple[tuple[dict[str, float], dict[str, float], float | None], str]],
) -> dict[str, HostOverhead]:
    """Attach the misses ((per step, per layer, power), source) of each measured engine to
    its host entries; a TP entry of any degree takes the TP engine's ('hf_eager_tp') when
    measured, with the one-GPU engine's values for dtypes not measured under TP, else the
    one-GPU engine's (each rank builds its own plan, in parallel; said so)."""
    out = dict(hosts)
    for key, ho in hosts.items():
        base = _one_gpu_engine(key.split(":")[0])
        tp = key.split(":")[0] != base
        own = misses.get(f"{base}_tp") if tp else misses.get(base)
        one = misses.get(base)
        if own is None and one is None:
            continue
        (m, per_layer, power), src = own or one
        if own is not None and one is not None and tp:
            m = {**one[0][0], **m}
            per_layer = {**one[0][1], **per_layer}
        note = f"; attention shape misses: {src}" + (
            " (measured on one GPU; assumed the same per rank under TP)" if tp and not own else ""
        )
        out[key] = ho.model_copy(
            update={
                "attn_shape_miss_s": m,
                "attn_shape_miss_per_layer_s": per_layer,
                "attn_shape_miss_w": power,
                "source": ho.source + note,
            }
        )
    return out


def with_cold_start(
    hosts: dict[str, HostOverhead], raw: pd.DataFrame, src: str
) -> dict[str, HostOverhead]:
    """Each measured engine's cold start: the median over its shapes and dtypes of first minus
    second request in a fresh process (calibrate/coldstart.py); the TP entry gets HF eager's
    (not measured under TP, said so)."""
    cold = raw.groupby("engine")["cold_s"].median().to_dict()
    out = dict(hosts)
    for key, ho in hosts.items():
        engine = key.split(":")[0]
        base = _one_gpu_engine(engine)
        if base not in cold:
            continue
        note = f"; cold start: {src}" + (
            " (one GPU; assumed the same under TP)" if base != engine else ""
        )
        out[key] = ho.model_copy(
            update={"cold_start_s": max(float(cold[base]), 0.0), "source": ho.source + note}
        )
    return out


def fit_interconnect(raw_dir: Path, where: str) -> dict:
    """All-reduce fits from the table `sim calibrate --stages interconnect` measured here."""
    from llm_energy_sim.calibrate.interconnect import fit_allreduce, fits_to_profile_entries

    fits = fit_allreduce(read_raw(raw_dir / "allreduce.csv"))
    src = f"NCCL all-reduce (bf16) on {where}; raw: {raw_dir.name}/allreduce.csv"
    return fits_to_profile_entries(fits, src)


def _provenance(d: Path) -> dict:
    """A raw dir's provenance.json (GPU name, driver, power limit, when), {} when absent."""
    path = d / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _where(d: Path) -> str:
    prov = _provenance(d)
    return f"{prov.get('gpu_name', 'GPU')} (driver {prov.get('driver', '?')}), measured {prov.get('measured_utc', 'unknown date')} by sim calibrate"


def _find(name: str, raw_dir: Path, extra: tuple[Path, ...]) -> Path | None:
    """A raw table in raw_dir, else in the extra dirs (multi-GPU tables of another node)."""
    for d in (raw_dir, *extra):
        if (d / name).exists():
            return d
    return None


def _measured_misses(dirs: tuple[Path, ...]) -> dict[str, tuple]:
    """engine -> ((per step, per layer, power), source) of every engine with shapemiss rows
    in dirs. Each one-GPU engine's from the first dir that measured it (dtypes it did not
    measure from the next that did); the TP engines' pooled over every multi-GPU measurement
    (the miss shows no trend with the TP degree: 31 ms at TP 4, 38-41 ms at TP 2, 33 ms on one
    GPU of the same nodes)."""
    measured: dict[str, tuple] = {}
    tp_rows: list[pd.DataFrame] = []
    for d in dirs:
        if not (d / "shapemiss.csv").exists():
            continue
        table = read_raw(d / "shapemiss.csv")
        tp_rows.append(table[table["engine"].str.endswith("_tp")].assign(_src=d.name))
        src = f"fresh vs cached steps on {_where(d)}; raw: {d.name}/shapemiss.csv"
        for engine, fit in fit_shape_misses(table).items():
            if engine.endswith("_tp"):
                continue
            if engine not in measured:
                measured[engine] = (fit, src)
                continue
            # dtypes the first dir did not measure (e.g. bitsandbytes): from this one
            (m, per_layer, power), first = measured[engine]
            extra = [dt for dt in fit[0] if dt not in m]
            if extra:
                m = {**m, **{dt: fit[0][dt] for dt in extra}}
                per_layer = {**per_layer, **{dt: fit[1][dt] for dt in extra}}
                measured[engine] = ((m, per_layer, power), f"{first}; {', '.join(extra)}: {src}")
    tp_table = pd.concat(tp_rows, ignore_index=True) if tp_rows else pd.DataFrame()
    if len(tp_table):
        by_name = {d.name: d for d in dirs}
        src = "fresh vs cached steps under TP, pooled over " + ", ".join(
            f"{n}/shapemiss.csv ({_where(by_name[n])})" for n in sorted(tp_table["_src"].unique())
        )
        for engine, fit in fit_shape_misses(tp_table.drop(columns="_src")).items():
            measured[engine] = (fit, src)
    return measured


# kernel classes that a profile may take from a sibling GPU of the same architecture (another
# Hopper part, measured with the same microbenchmark) until its own GPU measures them
SIBLING_CLASSES = ("elementwise_eager",)


def _large_elementwise_bw(raw: pd.DataFrame, dtype: str) -> float | None:
    """Measured bandwidth of the largest plain elementwise add of a table (HBM-bound)."""
    e = raw[(raw["kclass"] == "elementwise") & (raw["dtype"] == dtype)]
    e = e[pd.to_numeric(e["seconds"], errors="coerce") > 0]
    if e.empty:
        return None
    big = e.loc[pd.to_numeric(e["elems"]).idxmax()]
    return float(big["bytes"]) / float(big["seconds"])


def with_sibling_classes(
    kernels: dict, raw: pd.DataFrame, extra_dirs: tuple[Path, ...]
) -> dict[str, dict[str, KernelFit]]:
    """A SIBLING_CLASSES class this GPU has not measured, derived from the first extra dir
    whose microbench.csv has it: the sibling's fit with its bandwidth scaled by the ratio of
    the two GPUs' measured bandwidth on the largest plain elementwise add (same size, same
    dtype), the power coefficients of this GPU's own elementwise fit, the launch term as
    measured (same die). Each derived entry says so in its source."""
    out = dict(kernels)
    for kc in SIBLING_CLASSES:
        if kc in out:
            continue
        for d in extra_dirs:
            if not (d / "microbench.csv").exists():
                continue
            sib_raw = read_raw(d / "microbench.csv")
            plimit = _provenance(d).get("power_limit_w", 700.0)
            sib = fit_kernels(
                sib_raw[sib_raw["kclass"] == kc], float(plimit), f"microbenchmarks on {_where(d)}"
            ).get(kc)
            if not sib:
                continue
            derived = {}
            for dt, kf in sib.items():
                here, there = _large_elementwise_bw(raw, dt), _large_elementwise_bw(sib_raw, dt)
                own = kernels.get("elementwise", {}).get(dt)
                if not (here and there and own):
                    continue
                r = here / there
                derived[dt] = kf.model_copy(
                    update={
                        "bandwidth": kf.bandwidth * r,
                        "p_base_w": own.p_base_w,
                        "w_compute": own.w_compute,
                        "w_memory": own.w_memory,
                        "source": f"derived, not measured on this GPU: {d.name}/microbench.csv's "
                        f"fit with its bandwidth x {r:.3f} (this GPU's / that GPU's measured "
                        f"bandwidth on the largest elementwise add, {dt}) and this GPU's "
                        f"elementwise power coefficients; fit error is the sibling's; "
                        f"{kf.source}",
                    }
                )
            if derived:
                out[kc] = derived
                break
    return out


def fit_profile(
    raw_dir: Path, name: str, base: Profile, extra_dirs: tuple[Path, ...] = ()
) -> Profile:
    """Refit everything from the raw tables in raw_dir (microbench.csv, idle.csv, host.csv)."""
    prov = _provenance(raw_dir)
    where = _where(raw_dir)
    gpu = GpuSpec(
        name=prov.get("gpu_name", base.gpu.name),
        memory_bytes=float(prov.get("memory_bytes", base.gpu.memory_bytes)),
        power_limit_w=float(prov.get("power_limit_w", base.gpu.power_limit_w)),
        source=f"NVML on {where}",
    )
    table = raw_dir / "microbench.csv"
    raw = read_raw(table, MICROBENCH_COLUMNS, "kernel timings")
    measured_rows(raw, table)  # a header-only or all-error table fits nothing
    kernels = fit_kernels(
        raw, gpu.power_limit_w, f"microbenchmarks on {where}; raw: {raw_dir.name}/microbench.csv"
    )
    kernels = with_sibling_classes(kernels, raw, extra_dirs)
    for (
        kc,
        by,
    ) in base.kernels.items():  # classes/dtypes not measured keep the bootstrap values, said so
        for dt, kf in by.items():
            kernels.setdefault(kc, {}).setdefault(
                dt, kf.model_copy(update={"source": "not measured; bootstrap: " + kf.source})
            )
    prof = base.model_copy(
        update={
            "name": name,
            "gpu": gpu,
            "kernels": kernels,
            "description": f"Fitted from sim calibrate measurements on {where}.",
            "provenance": {
                **prov,
                "kind": "fitted",
                "fitted_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        }
    )
    host_src = f"HF eager generate decode on {where}; raw: {raw_dir.name}/host.csv"
    if (raw_dir / "host.csv").exists():
        hosts, host_wait, standby_k = fit_hosts(read_raw(raw_dir / "host.csv"), prof, host_src)
        idle = prof.idle.model_copy(
            update={"host_wait_w": host_wait, "step_standby_fraction": standby_k}
        )
        prof = prof.model_copy(update={"host": hosts, "idle": idle})
    else:
        host_wait, standby_k = base.idle.host_wait_w, base.idle.step_standby_fraction
    for table, (engine, _) in CB_HOST_TABLES.items():
        if (raw_dir / table).exists():
            entry = fit_cb_host(raw_dir, prof, where, table)
            prof = prof.model_copy(update={"host": {**prof.host, engine: entry}})
    for engine, (pattern, _) in TP_HOST_TABLES.items():
        if tp_dirs := [d for d in (raw_dir, *extra_dirs) if any(d.glob(pattern))]:
            hosts = fit_tp_hosts(tp_dirs, prof, engine)
            prof = prof.model_copy(update={"host": {**prof.host, **hosts}})
    measured = _measured_misses((raw_dir, *extra_dirs))
    if measured:
        prof = prof.model_copy(update={"host": with_shape_misses(prof.host, measured)})
    if d := _find("coldstart.csv", raw_dir, extra_dirs):
        src = f"fresh processes on {_where(d)}; raw: {d.name}/coldstart.csv"
        hosts = with_cold_start(prof.host, read_raw(d / "coldstart.csv"), src)
        prof = prof.model_copy(update={"host": hosts})
    if d := _find("allreduce.csv", raw_dir, extra_dirs):
        # measured here wins; group sizes not measured here keep the base's (said in their source)
        ic = {**prof.interconnect, **fit_interconnect(d, _where(d))}
        prof = prof.model_copy(update={"interconnect": ic})
    if (raw_dir / "idle.csv").exists():
        idle = fit_idle(
            read_raw(raw_dir / "idle.csv"),
            host_wait,
            f"idle states, decay after a GEMM burst and duty cycles on {where}; raw: {raw_dir.name}/idle.csv; host_wait and step_standby_fraction from {raw_dir.name}/host.csv",
            standby_k,
        )
        prof = prof.model_copy(update={"idle": idle})
    return Profile(**prof.model_dump())
