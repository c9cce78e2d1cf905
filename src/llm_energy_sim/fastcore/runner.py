"""Run a simulation's TGI servers on the compiled loop (tgicore.c) instead of SimPy.

`use_compiled(servers, n)` says whether a run may and should: every server a TgiScheduler on
a replica whose steps need no plan-cache shapes, no cold start and no step log (the cases
tgicore.c covers), the loop built (build.py: a C compiler on the machine), and the run not
tiny (MIN_REQUESTS; LLM_ENERGY_SIM_CORE=simpy or =compiled overrides the size rule).
`run_compiled` runs it: the outcomes go into the RequestLog's columns, the intervals and
queue notes into each replica's Ledger, the step counts into Replica.steps, as the SimPy
path leaves them; it returns the clock at the end (SimPy's env.now), or None where the
loop met a case it does not cover (then nothing was changed but the log's columns: the
caller runs the SimPy path with a fresh log).

tgicore.c repeats the pricing of cost/stepprice.py and cost/costmodel.py's DecodeSegment.
Before each run the loop prices PROBE_STEPS and PROBE_RUNS and must get the Python
pricers' floats exactly: a cost model changed without tgicore.c runs on SimPy, not wrong.
The constants it prices with are read from the pricers' attributes (private ones among
them: cost/ is left as it is), and the probes catch one whose meaning changed.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from llm_energy_sim.engine.request import OK, REJECTED_QUEUE_FULL, REJECTED_TOO_LONG, UNFINISHED
from llm_energy_sim.engine.requestlog import STATUSES, RequestLog
from llm_energy_sim.engine.workload import Trace
from llm_energy_sim.fastcore.layout import G_, LOG, PF_, PI_, S_, SF_, V_, VF_, C

#: requests from which a run uses the compiled loop (below it, building its tables costs
#: about what the SimPy path takes)
MIN_REQUESTS = 200
#: environment variable: "simpy" (never the compiled loop), "compiled" (whenever it applies)
CORE_ENV = "LLM_ENERGY_SIM_CORE"


def applies(servers: Sequence[Any]) -> bool:
    """Whether tgicore covers these servers (TGI schedulers on plain replicas)."""
    from llm_energy_sim.servers.tgi import TgiScheduler

    for srv in servers:
        rep = srv.replica
        cost = rep.cost
        if type(srv.scheduler) is not TgiScheduler or rep._pricer is None:
            return False
        if rep.cold_start or rep.step_log is not None or rep.plans.on:
            return False
        if cost.shape.packed_attention or cost.shape.pad_q or cost.shape.pad_kv:
            return False
        if cost.decode_pricer.packed:
            return False
    return True


def use_compiled(servers: Sequence[Any], n_requests: int) -> bool:
    """Whether simulate() should run these servers on the compiled loop."""
    mode = os.environ.get(CORE_ENV, "auto")
    if mode == "simpy" or not servers or not applies(servers):
        return False
    if mode != "compiled" and n_requests < MIN_REQUESTS:
        return False
    from llm_energy_sim.fastcore.build import library

    return library() is not None


def _row(cost: Any, rows_t: np.ndarray, rows_e: np.ndarray, t: int) -> None:
    """Fill in the rows part of CostModel._layer_const for t tokens (memoised there too)."""
    got = cost._rows_const.get(t)
    if got is None:
        got = cost._rows_const[t] = cost._rows_part(t)
    rows_t[t], rows_e[t] = got


def _tables(cost: Any, t_max: int, n_max: int) -> tuple[np.ndarray, ...]:
    """CostModel's memoised constants as arrays: the rows part of _layer_const per token
    count (time, energy; NaN until a step asks, tgicore.NEED_ROW), its logits part per
    sequence count (4 values), and DecodePricer's per-batch constants (t_const, e_const,
    host, bytes_n)."""
    rows_t = np.full(t_max, np.nan)
    rows_e = np.full(t_max, np.nan)
    rows_t[0] = rows_e[0] = 0.0
    head = np.zeros((n_max, 4))
    dconst = np.zeros((n_max, 4))
    for n in range(1, n_max):
        got = cost._logits_const.get(n)
        if got is None:
            got = cost._logits_const[n] = cost._logits_part(n)
        head[n] = got
        dconst[n] = cost.decode_pricer._constants(n)
    return rows_t, rows_e, head, dconst


def _params(
    tc: Any, sched: Any, policy: str, n_servers: int, fast_forward: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The loop's PF and PI arrays for replicas of CostModel tc and TgiScheduler sched."""
    s, lim = sched.settings, sched.limits
    sp, dp = tc.step_pricer, tc.decode_pricer
    PI = np.zeros(PI_.SIZE, np.int64)
    PI[PI_.R] = n_servers
    PI[PI_.MAXCONC] = s.max_concurrent_requests
    PI[PI_.MAXBPT] = lim.max_batch_prefill_tokens
    PI[PI_.MAXINPUT] = lim.max_input_tokens
    PI[PI_.MAXTOTAL] = lim.max_total_tokens
    PI[PI_.MBS] = -1 if s.max_batch_size is None else s.max_batch_size
    PI[PI_.MWT] = s.max_waiting_tokens
    PI[PI_.CHUNKED] = int(bool(s.chunked_prefill))
    PI[PI_.BS] = sched.pool.block_size
    PI[PI_.LAYERS] = sp.layers
    PI[PI_.TP] = tc.tp
    PI[PI_.LEAST] = int(policy == "least_loaded")
    PI[PI_.FF] = int(bool(fast_forward))
    PI[PI_.ST_OK] = STATUSES.index(OK)
    PI[PI_.ST_QFULL] = STATUSES.index(REJECTED_QUEUE_FULL)
    PI[PI_.ST_TOOLONG] = STATUSES.index(REJECTED_TOO_LONG)
    PI[PI_.ST_UNF] = STATUSES.index(UNFINISHED)
    PI[PI_.STEP_LIMIT] = int(bool(tc.step_limit))
    PF = np.zeros(PF_.SIZE)
    PF[PF_.WSR] = s.waiting_served_ratio
    PF[PF_.FC] = sp._flops_c
    PF[PF_.QB] = sp._q_bytes
    PF[PF_.KVB_PRE] = sp._kv_bytes
    PF[PF_.DECKV] = sp._dec_kv
    PF[PF_.DECQ] = sp._dec_q
    PF[PF_.KVB] = sp._kvb
    PF[PF_.HOSTFIX] = sp._host_fixed
    PF[PF_.PERSEQ] = sp._per_seq
    PF[PF_.SERIAL] = sp._serial_frac
    PF[PF_.SETUP] = sp._setup
    PF[PF_.WAITW] = tc.wait_w
    PF[PF_.STANDBY] = tc.standby_k
    PF[PF_.PLIMIT] = tc._plimit
    PF[PF_.ACTIVE_IDLE] = tc.profile.idle.active_idle_w
    PF[PF_.DFC] = dp._flops_per_ctx
    PF[PF_.DBC] = dp._bytes_per_ctx
    for base, kclass in ((PF_.PRE, "attn_prefill"), (PF_.DEC, "attn_decode")):
        f = tc._fit(kclass, tc.dt.act_dtype)
        PF[base : base + 6] = (
            f.peak_flops,
            f.bandwidth,
            f.t0_s,
            f.p_base_w,
            f.w_compute,
            f.w_memory,
        )
    return PF, PI


#: the Core struct's array pointers, in its order
POINTERS = (
    "G", "GF", "V", "VF", "SI", "SF", "FREE", "qbuf", "rbuf", "pdec", "pchk", "padm", "ht", "hi",
    "l_end", "l_en", "l_b", "g_at", "g_st", "g_p", "n_t", "n_l", "PF", "PI", "rows_t", "rows_e",
    "head", "dconst", "arr", "prm", "outp", "rows",
)  # fmt: skip


class Core(ctypes.Structure):
    """tgicore.c's Core: pointers to the arrays (in its order), then the sizes."""

    _fields_ = [(name, ctypes.c_void_p) for name in POINTERS]
    _fields_ += [("off", ctypes.c_int64 * len(LOG))]
    _fields_ += [
        (name, ctypes.c_int64)
        for name in ("itemsize", "n", "R", "QC", "NS", "H", "CH", "T", "NMAX", "progress_at")
    ]


#: forward steps priced by both sides before a run: prefill chunks (tokens, past), decodes,
#: their KV sum (steps beyond a scenario's limits are left out)
PROBE_STEPS = (
    (((1000, 0),), 0, 0),
    (((512, 300), (7, 0)), 5, 6000),
    (((64, 4000),), 30, 45_000),
    ((), 3, 2400),
)
#: decode runs priced by both sides: batch, KV sum, steps, elapsed seconds (for a cut)
PROBE_RUNS = (
    (1, 300, 3, 0.01),
    (4, 5000, 50, 0.3),
    (60, 90_000, 250, 2.0),
    (100, 150_000, 200, 2.0),
)


def _probe(lib: Any, ref: Any, arrays: dict[str, np.ndarray], tc: Any, t_max: int) -> bool:
    """Whether the loop prices the probes exactly as StepPricer.price and DecodeSegment do."""
    out = np.zeros(6)
    nmax = arrays["head"].shape[0]
    pchk = arrays["pchk"]
    for pre, nd, ctx in PROBE_STEPS:
        tokens = sum(t for t, _ in pre) + nd
        if tokens >= t_max or len(pre) + nd >= nmax or len(pre) > pchk.shape[1]:
            continue
        _row(tc, arrays["rows_t"], arrays["rows_e"], tokens)
        for j, (t, past) in enumerate(pre):
            pchk[0, j, 1:] = (t, past)
        code = lib.tgi_probe_forward(ref, len(pre), nd, ctx, out.ctypes.data)
        if code != C.DONE or (out[0], out[1]) != tc.step_pricer.price(list(pre), nd, ctx):
            return False
    for n, ctx0, k, elapsed in PROBE_RUNS:
        if n >= nmax:
            continue
        seg = tc.decode_segment(n, ctx0)
        lib.tgi_probe_segment(ref, n, ctx0, k, elapsed, out.ctypes.data)
        want = (seg.time(k), seg.energy(k), seg.last_step_power_per_gpu(k))
        want += (seg.steps_to_reach(elapsed, k), seg.is_affine_over(k), True)
        if tuple(out.tolist()) != tuple(float(w) for w in want):
            return False
    return True


#: event-queue slots beyond the fewest a run starts with (3 per replica and 3; the queue
#: doubles when cut decode runs' abandoned timeouts fill it)
QUEUE_SPARE = 64
#: rows of each record buffer per server, drained into the ledgers when one is full
CHUNK = 1 << 15


def _ptr(a: np.ndarray) -> int:
    if not a.flags.c_contiguous:
        raise ValueError("tgicore takes C-contiguous arrays")
    return a.ctypes.data


def _append(dst: Any, a: np.ndarray) -> None:
    """Append the 1-D numpy array a to the typed array dst (one copy)."""
    if len(a):
        dst.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))


def run_compiled(
    servers: Sequence[Any], policy: str, trace: Trace, log: RequestLog, progress: bool
) -> float | None:
    """Run every request of `trace` through `servers` on the compiled loop (see the module
    docstring); the clock at the end, or None (FALLBACK: run the SimPy path instead)."""
    from llm_energy_sim.fastcore.build import library

    lib = library()
    R = len(servers)
    sched = servers[0].scheduler
    tc = servers[0].replica.cost
    n = len(trace)
    maxconc = sched.settings.max_concurrent_requests
    bs = sched.pool.block_size
    t_max = sched.limits.max_batch_prefill_tokens + maxconc + bs + 2
    rows_t, rows_e, head, dconst = _tables(tc, t_max, maxconc + 2)
    PF, PI = _params(tc, sched, policy, R, servers[0].replica.fast_forward)
    n_slots = R * maxconc
    G = np.zeros(G_.SIZE, np.int64)
    GF = np.zeros(1)
    V = np.zeros((R, V_.SIZE), np.int64)
    VF = np.zeros((R, VF_.SIZE))
    V[:, V_.FREE_BLOCKS] = [s.scheduler.pool.free_blocks for s in servers]
    V[:, V_.WAITING_TOKENS] = 1
    G[G_.SLOT_TOP] = n_slots
    arrays = {
        "G": G,
        "GF": GF,
        "V": V,
        "VF": VF,
        "SI": np.full((n_slots, S_.SIZE), -1, np.int64),
        "SF": np.zeros((n_slots, SF_.SIZE)),
        "FREE": np.arange(n_slots - 1, -1, -1, dtype=np.int64),
        "qbuf": np.zeros((R, maxconc), np.int64),
        "rbuf": np.zeros((R, maxconc), np.int64),
        "pdec": np.zeros((R, maxconc), np.int64),
        "pchk": np.zeros((R, maxconc, 3), np.int64),
        "padm": np.zeros((R, maxconc, 2), np.int64),
        "ht": np.zeros(3 * R + 3 + QUEUE_SPARE),
        "hi": np.zeros((3 * R + 3 + QUEUE_SPARE, 4), np.int64),
        "l_end": np.zeros((R, CHUNK)),
        "l_en": np.zeros((R, CHUNK)),
        "l_b": np.zeros((R, CHUNK), np.int32),
        "g_at": np.zeros((R, CHUNK), np.int64),
        "g_st": np.zeros((R, CHUNK)),
        "g_p": np.zeros((R, CHUNK)),
        "n_t": np.zeros((R, CHUNK)),
        "n_l": np.zeros((R, CHUNK), np.int32),
        "PF": PF,
        "PI": PI,
        "rows_t": rows_t,
        "rows_e": rows_e,
        "head": head,
        "dconst": dconst,
        "arr": np.ascontiguousarray(trace.arrival_s, np.float64),
        "prm": np.ascontiguousarray(trace.prompt_tokens, np.int64),
        "outp": np.ascontiguousarray(trace.output_tokens, np.int64),
        "rows": log.rows,
    }
    core = Core(**{k: _ptr(a) for k, a in arrays.items()})
    core.off[:] = [log.rows.dtype.fields[name][1] for name in LOG]
    core.itemsize, core.n, core.R, core.QC, core.NS = log.rows.itemsize, n, R, maxconc, n_slots
    core.H, core.CH, core.T, core.NMAX = len(arrays["ht"]), CHUNK, t_max, maxconc + 2
    ref = ctypes.byref(core)
    if not _probe(lib, ref, arrays, tc, t_max):
        return None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="req", desc="simulating", leave=False, disable=None)
    every = max(n // 100, 1 << 14)
    shown = 0
    core.progress_at = every if bar is not None else n + 1
    ledgers = [srv.replica.ledger for srv in servers]
    code = lib.tgi_start(ref)
    while code == C.DONE or code in (C.MORE_ROOM, C.NEED_ROW, C.PROGRESS):
        code = lib.tgi_run(ref)
        if code == C.MORE_ROOM:
            _drain(arrays, ledgers)
            if G[G_.HN] + 2 * R + 2 > core.H:  # the event queue: cut runs' timeouts pile up
                _grow_queue(arrays, core)
        elif code == C.NEED_ROW:
            _row(tc, rows_t, rows_e, int(G[G_.NEED_ROW]))
        elif code == C.PROGRESS:
            bar.update(int(G[G_.SUBMITTED]) - shown)
            shown = int(G[G_.SUBMITTED])
            core.progress_at = shown + every
        else:
            break
    if bar is not None:
        bar.update(int(G[G_.SUBMITTED]) - shown)
        bar.close()
    if code != C.DONE:
        for led in ledgers:
            led.release()  # back to empty: the SimPy path starts again
        return None
    lib.tgi_finish_open(ref, int(PI[PI_.ST_UNF]))
    _drain(arrays, ledgers)
    for s, srv in enumerate(servers):
        led = srv.replica.ledger
        led._p_prev = float(VF[s, VF_.PPREV]) if V[s, V_.HAS_PPREV] else None
        led._arrays = led._gap_e = None
        srv.replica.steps = int(V[s, V_.STEPS])
        srv.scheduler.closed = True
    return float(GF[0])


def _grow_queue(arrays: dict[str, np.ndarray], core: Core) -> None:
    """The event queue's arrays twice as long (its events kept), and the Core pointed at them."""
    for name in ("ht", "hi"):
        old = arrays[name]
        arrays[name] = np.zeros((2 * len(old),) + old.shape[1:], old.dtype)
        arrays[name][: len(old)] = old
        setattr(core, name, _ptr(arrays[name]))
    core.H = len(arrays["ht"])


def _drain(arrays: dict[str, np.ndarray], ledgers: Sequence[Any]) -> None:
    """Move every server's buffered intervals, gaps and queue notes into its Ledger."""
    V = arrays["V"]
    for s, led in enumerate(ledgers):
        m, g, q = (int(V[s, f]) for f in (V_.NLED, V_.NGAP, V_.NQN))
        _append(led.ends, arrays["l_end"][s, :m])
        _append(led.energy, arrays["l_en"][s, :m])
        _append(led.batch, arrays["l_b"][s, :m])
        _append(led.gap_at, arrays["g_at"][s, :g])
        _append(led.gap_start, arrays["g_st"][s, :g])
        _append(led.gap_p, arrays["g_p"][s, :g])
        _append(led.queue_t, arrays["n_t"][s, :q])
        _append(led.queue_len, arrays["n_l"][s, :q])
        V[s, V_.LED_BASE] += m
        V[s, V_.NLED] = V[s, V_.NGAP] = V[s, V_.NQN] = 0
