"""Run a simulation's TGI servers on the compiled loop (tgicore) instead of SimPy.

`use_compiled(servers, n)` says whether a run may and should: every server a TgiScheduler on
a replica whose steps need no plan-cache shapes, no cold start and no step log (the cases
tgicore covers), numba installed, and the run large enough to repay loading the compiled
loop (MIN_REQUESTS; LLM_ENERGY_SIM_CORE=simpy or =compiled overrides the size rule).
`run_compiled` runs it: the outcomes go into the RequestLog's columns, the intervals and
queue notes into each replica's Ledger, the step counts into Replica.steps, as the SimPy
path leaves them; it returns the clock at the end (SimPy's env.now), or None where the
loop met a case it does not cover (then nothing was changed but the log's columns: the
caller runs the SimPy path with a fresh log).
"""

from __future__ import annotations

import importlib.util
import math
import os
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from llm_energy_sim.engine.requestlog import _CODE, RequestLog
from llm_energy_sim.engine.request import OK, REJECTED_QUEUE_FULL, REJECTED_TOO_LONG, UNFINISHED
from llm_energy_sim.engine.workload import Trace

#: requests from which a run uses the compiled loop (below it, loading numba and the cached
#: loop costs more than the SimPy path's ~40 us a request)
MIN_REQUESTS = 5000
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
        if cost.shape.packed_attention or cost.shape.pad_q or cost.shape.cuda_graphs:
            return False
        if cost.decode_pricer.packed:
            return False
    return True


def use_compiled(servers: Sequence[Any], n_requests: int) -> bool:
    """Whether simulate() should run these servers on the compiled loop."""
    mode = os.environ.get(CORE_ENV, "auto")
    if mode == "simpy" or not servers or not applies(servers):
        return False
    if importlib.util.find_spec("numba") is None:
        return False
    return mode == "compiled" or n_requests >= MIN_REQUESTS


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
    """tgicore's PF and PI arrays for replicas of CostModel tc and TgiScheduler sched."""
    from llm_energy_sim.fastcore import tgicore as k

    s, lim = sched.settings, sched.limits
    sp = tc.step_pricer
    dp = tc.decode_pricer
    PI = np.zeros(k.PI_SIZE, np.int64)
    PI[k.PI_R] = n_servers
    PI[k.PI_MAXCONC] = s.max_concurrent_requests
    PI[k.PI_MAXBPT] = lim.max_batch_prefill_tokens
    PI[k.PI_MAXINPUT] = lim.max_input_tokens
    PI[k.PI_MAXTOTAL] = lim.max_total_tokens
    PI[k.PI_MBS] = -1 if s.max_batch_size is None else s.max_batch_size
    PI[k.PI_MWT] = s.max_waiting_tokens
    PI[k.PI_CHUNKED] = int(bool(s.chunked_prefill))
    PI[k.PI_BS] = sched.pool.block_size
    PI[k.PI_LAYERS] = sp.layers
    PI[k.PI_TP] = tc.tp
    PI[k.PI_LEAST] = int(policy == "least_loaded")
    PI[k.PI_FF] = int(bool(fast_forward))
    PI[k.PI_ST_OK] = _CODE[OK]
    PI[k.PI_ST_QFULL] = _CODE[REJECTED_QUEUE_FULL]
    PI[k.PI_ST_TOOLONG] = _CODE[REJECTED_TOO_LONG]
    PI[k.PI_ST_UNF] = _CODE[UNFINISHED]
    PF = np.zeros(k.PF_SIZE)
    PF[k.PF_WSR] = s.waiting_served_ratio
    PF[k.PF_FC] = sp._flops_c
    PF[k.PF_QB] = sp._q_bytes
    PF[k.PF_KVB_PRE] = sp._kv_bytes
    PF[k.PF_DECKV] = sp._dec_kv
    PF[k.PF_DECQ] = sp._dec_q
    PF[k.PF_KVB] = sp._kvb
    PF[k.PF_HOSTFIX] = sp._host_fixed
    PF[k.PF_PERSEQ] = sp._per_seq
    PF[k.PF_SERIAL] = sp._serial_frac
    PF[k.PF_SETUP] = sp._setup
    PF[k.PF_WAITW] = tc.wait_w
    PF[k.PF_STANDBY] = tc.standby_k
    PF[k.PF_PLIMIT] = tc._plimit
    PF[k.PF_ACTIVE_IDLE] = tc.profile.idle.active_idle_w
    PF[k.PF_DFC] = dp._flops_per_ctx
    PF[k.PF_DBC] = dp._bytes_per_ctx
    for base, kclass in ((k.PF_PRE, "attn_prefill"), (k.PF_DEC, "attn_decode")):
        f = tc._fit(kclass, tc.dt.act_dtype)
        PF[base : base + 6] = (f.peak_flops, f.bandwidth, f.t0_s, f.p_base_w, f.w_compute, f.w_memory)
    return PF, PI


def _grow(a: np.ndarray) -> np.ndarray:
    """a with its second axis twice as long (the used part copied)."""
    out = np.zeros((a.shape[0], 2 * a.shape[1]) + a.shape[2:], a.dtype)
    out[:, : a.shape[1]] = a
    return out


def _to_array(code: str, a: np.ndarray) -> array:
    """A typed array holding a copy of the 1-D numpy array a."""
    out = array(code)
    out.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))
    return out


def run_compiled(
    servers: Sequence[Any], policy: str, trace: Trace, log: RequestLog, progress: bool
) -> float | None:
    """Run every request of `trace` through `servers` on the compiled loop (see the module
    docstring); the clock at the end, or None (FALLBACK: run the SimPy path instead)."""
    from llm_energy_sim.fastcore import tgicore as k

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
    G = np.zeros(k.G_SIZE, np.int64)
    GF = np.zeros(1)
    V = np.zeros((R, k.V_SIZE), np.int64)
    VF = np.zeros((R, k.VF_SIZE))
    V[:, k.V_FREE_BLOCKS] = [s.scheduler.pool.free_blocks for s in servers]
    V[:, k.V_WAITING_TOKENS] = 1
    SI = np.full((n_slots, k.S_ISIZE), -1, np.int64)
    SF = np.zeros((n_slots, k.S_FSIZE))
    FREE = np.arange(n_slots - 1, -1, -1, dtype=np.int64)
    G[k.G_SLOT_TOP] = n_slots
    G[k.G_NEED_SRV] = -1
    qbuf = np.zeros((R, maxconc), np.int64)
    rbuf = np.zeros((R, maxconc), np.int64)
    pdec = np.zeros((R, maxconc), np.int64)
    pchk = np.zeros((R, maxconc, 3), np.int64)
    padm = np.zeros((R, maxconc, 2), np.int64)
    ht = np.zeros(8 * R + 16)
    hi = np.zeros((8 * R + 16, 4), np.int64)
    cap = max(1024, min(1 << 20, 4 * n // R + 64))
    n_t = np.zeros((R, cap))
    n_l = np.zeros((R, cap), np.int32)
    led = [np.zeros((R, cap)), np.zeros((R, cap)), np.zeros((R, cap), np.int32)]
    led += [np.zeros((R, cap), np.int64), np.zeros((R, cap)), np.zeros((R, cap))]
    for s in range(R):  # the processes' Initialize events: the servers', then the arrivals'
        V[s, k.V_EID] = k.push(G, ht, hi, 0.0, k.URGENT, k.K_SERVER, s)
    k.push(G, ht, hi, 0.0, k.URGENT, k.K_ARRIVAL, 0)
    rows = log.rows
    io = (
        np.ascontiguousarray(trace.arrival_s, np.float64),
        np.ascontiguousarray(trace.prompt_tokens, np.int64),
        np.ascontiguousarray(trace.output_tokens, np.int64),
        *(rows[name] for name in ("replica", "status", "t_start", "t_first", "t_finish")),
        *(rows[name] for name in ("computed_prompt", "generated", "e_prefill", "e_decode")),
    )
    tab = (PF, PI, rows_t, rows_e, head, dconst)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="req", desc="simulating", leave=False, disable=None)
    every = max(n // 100, 1 << 14)
    shown = 0
    while True:
        st = (G, GF, V, VF, SI, SF, FREE, qbuf, rbuf, pdec, pchk, padm, ht, hi, n_t, n_l)
        code = k.run(st, tab, tuple(led), io, shown + every if bar is not None else n + 1)
        if code == k.MORE_ROOM:
            if (V[:, k.V_NQN] + 2 > n_t.shape[1]).any():
                n_t, n_l = _grow(n_t), _grow(n_l)
            if (V[:, k.V_NLED] + 2 > led[0].shape[1]).any():
                led[:3] = [_grow(a) for a in led[:3]]
            if (V[:, k.V_NGAP] + 2 > led[3].shape[1]).any():
                led[3:] = [_grow(a) for a in led[3:]]
            continue
        if code == k.NEED_ROW:
            _row(tc, rows_t, rows_e, int(G[k.G_NEED_ROW]))
            continue
        if code == k.PROGRESS:
            bar.update(int(G[k.G_SUBMITTED]) - shown)
            shown = int(G[k.G_SUBMITTED])
            continue
        break
    if bar is not None:
        bar.update(int(G[k.G_SUBMITTED]) - shown)
        bar.close()
    if code == k.FALLBACK:
        return None
    k.finish_open(st, io, PI[k.PI_ST_UNF])
    for s, srv in enumerate(servers):
        rep, led_s = srv.replica, srv.replica.ledger
        m, g, q = int(V[s, k.V_NLED]), int(V[s, k.V_NGAP]), int(V[s, k.V_NQN])
        led_s.ends, led_s.energy = _to_array("d", led[0][s, :m]), _to_array("d", led[1][s, :m])
        led_s.batch = _to_array("i", led[2][s, :m])
        led_s.gap_at, led_s.gap_start = _to_array("q", led[3][s, :g]), _to_array("d", led[4][s, :g])
        led_s.gap_p = _to_array("d", led[5][s, :g])
        led_s.queue_t, led_s.queue_len = _to_array("d", n_t[s, :q]), _to_array("i", n_l[s, :q])
        led_s._p_prev = float(VF[s, k.VF_PPREV]) if V[s, k.V_HAS_PPREV] else None
        led_s._arrays = led_s._gap_e = None
        rep.steps = int(V[s, k.V_STEPS])
        srv.scheduler.closed = True
    return float(GF[0])
