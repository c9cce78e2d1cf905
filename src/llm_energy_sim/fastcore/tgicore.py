"""A TGI run's event loop over numpy arrays, for numba (runner.py builds its arrays).

It is simulation.simulate's SimPy run of TgiScheduler servers, rewritten without objects:

- the events: SimPy's queue ordered by (time, priority, insertion id), the servers'
  Initialize events first, a timeout at now + delay (that float), a woken server resumed by
  an event at now, a cut decode run moved to a timeout at its step's end (Server._cut), the
  abandoned timeout still popped (it sets the clock, as in SimPy);
- the servers: servers/base.py Server.run and submit, servers/tgi.py TgiScheduler (plan_step,
  _next_batch, _forward, commit, _retire, _plan_chunks, _steps_until_admissible), the
  balancer (servers/balancer.py), KV blocks as a free count (BlockPool);
- the costs: cost/stepprice.py StepPricer.price, cost/decodecost.py DecodePricer.first_two
  and gpu_busy, cost/costmodel.py DecodeSegment (time, energy, is_affine_over,
  steps_to_reach, last_step_power_per_gpu), _sum_affine, _sum_ratio: the same float
  operations in the same order, from tables of the CostModel's memoised constants;
- the records: engine/replica.py's booking, engine/ledger.py Ledger.add_busy and note_queue,
  engine/requestlog.py's outcome columns (written when a request ends).

Requests in the system live in slots (at most max_concurrent_requests per replica).
`run` returns DONE when no event is left, or asks for more room (MORE_ROOM) or reports
progress (PROGRESS) and is called again with the same arrays; FALLBACK: a case this loop
does not cover came up (the caller runs the SimPy path instead).
"""

from __future__ import annotations

import math

import numpy as np

from llm_energy_sim.fastcore.jit import jit

# return codes of run()
DONE, MORE_ROOM, PROGRESS, FALLBACK, NEED_ROW = 0, 1, 2, 3, 4

BIG = 1 << 62  # math.inf among step counts

# G: global ints
(G_EID, G_HN, G_ARR_NEXT, G_ARR_STATE, G_RR, G_SLOT_TOP, G_SUBMITTED, G_NEED_ROW, G_NEED_SRV) = range(9)
G_SIZE = 9
ARR_INIT, ARR_WAIT, ARR_DONE = 0, 1, 2

# V: per-server ints
(
    V_PHASE,
    V_WAKE_TRIG,
    V_IN_SEG,
    V_EID,
    V_QHEAD,
    V_QLEN,
    V_RLEN,
    V_IN_FLIGHT,
    V_FREE_BLOCKS,
    V_WAITING_TOKENS,
    V_MID_ITER,
    V_RUN_LEFT,
    V_CLOSED,
    V_STEPS,
    V_NLED,
    V_NGAP,
    V_NQN,
    V_HAS_PPREV,
    V_NDEC,
    V_NCHK,
    V_NADM,
    V_SEG_K,
    V_SEG_DONE,
    V_SEG_N,
    V_SEG_SALL,
    V_SEG_CTX,
    V_SIZE,
) = range(27)
PH_INIT, PH_WAIT, PH_FORWARD, PH_DECODE, PH_DONE = 0, 1, 2, 3, 4

# VF: per-server floats
(
    VF_PPREV,
    VF_START,
    VF_WALL,
    VF_ENERGY,
    VF_PGPU,
    VF_GPU0,
    VF_DGPU,
    VF_BUSY0,
    VF_DBUSY,
    VF_HOST,
    VF_WAITW,
    VF_SIZE,
) = range(12)

# SI / SF: per-slot request state
S_RID, S_PROMPT, S_OUTPUT, S_GEN, S_PREF, S_NEXT, S_CPROMPT, S_BLOCKS, S_REPLICA = range(9)
S_ISIZE = 9
SF_TSTART, SF_TFIRST, SF_EPRE, SF_EDEC = range(4)
S_FSIZE = 4

# PI: int parameters
(
    PI_R,
    PI_MAXCONC,
    PI_MAXBPT,
    PI_MAXINPUT,
    PI_MAXTOTAL,
    PI_MBS,
    PI_MWT,
    PI_CHUNKED,
    PI_BS,
    PI_LAYERS,
    PI_TP,
    PI_LEAST,
    PI_FF,
    PI_ST_OK,
    PI_ST_QFULL,
    PI_ST_TOOLONG,
    PI_ST_UNF,
    PI_PROGRESS_EVERY,
    PI_SIZE,
) = range(19)

# PF: float parameters
(
    PF_WSR,
    PF_FC,
    PF_QB,
    PF_KVB_PRE,
    PF_DECKV,
    PF_DECQ,
    PF_KVB,
    PF_HOSTFIX,
    PF_PERSEQ,
    PF_SERIAL,
    PF_SETUP,
    PF_WAITW,
    PF_STANDBY,
    PF_PLIMIT,
    PF_ACTIVE_IDLE,
    PF_DFC,
    PF_DBC,
    PF_PRE,  # 6 values: peak, bandwidth, t0, p_base, w_compute, w_memory (attn_prefill)
) = range(18)
PF_DEC = PF_PRE + 6  # the same six of attn_decode
PF_SIZE = PF_DEC + 6

# event kinds and priorities (SimPy's URGENT, NORMAL)
K_SERVER, K_ARRIVAL = 0, 1
URGENT, NORMAL = 0, 1


# ---- the event queue -------------------------------------------------------------------
@jit
def _before(ht, hi, a, b):
    if ht[a] != ht[b]:
        return ht[a] < ht[b]
    if hi[a, 0] != hi[b, 0]:
        return hi[a, 0] < hi[b, 0]
    return hi[a, 1] < hi[b, 1]


@jit
def _swap(ht, hi, a, b):
    t = ht[a]
    ht[a] = ht[b]
    ht[b] = t
    for c in range(4):
        x = hi[a, c]
        hi[a, c] = hi[b, c]
        hi[b, c] = x


@jit
def push(G, ht, hi, t, prio, kind, target):
    """Schedule an event at time t; its insertion id (-1: the queue is full)."""
    n = G[G_HN]
    if n >= len(ht):
        return -1
    eid = G[G_EID]
    G[G_EID] = eid + 1
    ht[n] = t
    hi[n, 0] = prio
    hi[n, 1] = eid
    hi[n, 2] = kind
    hi[n, 3] = target
    G[G_HN] = n + 1
    i = n
    while i > 0:
        p = (i - 1) // 2
        if _before(ht, hi, i, p):
            _swap(ht, hi, i, p)
            i = p
        else:
            break
    return eid


@jit
def pop(G, ht, hi):
    """Remove the first event; its (time, insertion id, kind, target)."""
    t, eid, kind, target = ht[0], hi[0, 1], hi[0, 2], hi[0, 3]
    n = G[G_HN] - 1
    G[G_HN] = n
    if n > 0:
        ht[0] = ht[n]
        for c in range(4):
            hi[0, c] = hi[n, c]
        i = 0
        while True:
            left = 2 * i + 1
            if left >= n:
                break
            j = left
            if left + 1 < n and _before(ht, hi, left + 1, left):
                j = left + 1
            if _before(ht, hi, j, i):
                _swap(ht, hi, i, j)
                i = j
            else:
                break
    return t, eid, kind, target


# ---- costs ------------------------------------------------------------------------------
@jit
def price_forward(PF, PI, rows_t, rows_e, head, pre_new, pre_past, n_pre, n_decode, ctx_sum):
    """StepPricer.price(prefill, n_decode, ctx_sum) (no graph tokens, no miss, warm):
    (wall_s, energy_j); wall -1.0 where the step's rows lie beyond the tables, -2.0 where
    the rows table has no entry for its tokens yet (then energy_j is the token count)."""
    new_sum = 0
    fl = 0.0
    by = 0.0
    any_fresh = False
    flops_c, q_bytes, kv_bytes = PF[PF_FC], PF[PF_QB], PF[PF_KVB_PRE]
    for i in range(n_pre):
        new = pre_new[i]
        past = pre_past[i]
        new_sum += new
        fl += flops_c * (past * new + new * (new + 1) / 2.0)
        by += q_bytes * new + kv_bytes * (past + new)
        if past == 0:
            any_fresh = True
    tokens = new_sum + n_decode
    if tokens == 0:
        return 0.0, 0.0
    n_seqs = n_pre + n_decode
    if tokens >= len(rows_t) or n_seqs >= head.shape[0]:
        return -1.0, 0.0
    if rows_t[tokens] != rows_t[tokens]:  # NaN: not computed yet
        return -2.0, float(tokens)
    # CostModel._layer_const(tokens, n_seqs)
    t_const = rows_t[tokens] + head[n_seqs, 0] + head[n_seqs, 2]
    e_const = rows_e[tokens] + head[n_seqs, 1] + head[n_seqs, 3]
    plimit = PF[PF_PLIMIT]
    t = 0.0
    e = 0.0
    if n_pre:
        peak, bw, t0 = PF[PF_PRE], PF[PF_PRE + 1], PF[PF_PRE + 2]
        pb, wc, wm = PF[PF_PRE + 3], PF[PF_PRE + 4], PF[PF_PRE + 5]
        tc = fl / peak
        tm = by / bw
        g = (tc if tc > tm else tm) + t0
        if g > 0:
            ge = pb * g + wc * tc + wm * tm
            t += g
            e += ge if ge < plimit * g else plimit * g
    if n_decode:
        peak, bw, t0 = PF[PF_DEC], PF[PF_DEC + 1], PF[PF_DEC + 2]
        pb, wc, wm = PF[PF_DEC + 3], PF[PF_DEC + 4], PF[PF_DEC + 5]
        tc = flops_c * ctx_sum / peak
        tm = (PF[PF_DECKV] * ctx_sum * PF[PF_KVB] + PF[PF_DECQ] * n_decode) / bw
        g = (tc if tc > tm else tm) + t0
        if g > 0:
            ge = pb * g + wc * tc + wm * tm
            t += g
            e += ge if ge < plimit * g else plimit * g
    L = PI[PI_LAYERS]
    gpu = t_const + L * t
    busy = e_const + L * e
    host = PF[PF_HOSTFIX] + PF[PF_PERSEQ] * n_seqs
    wall = gpu if gpu > host else host
    if n_pre:
        wall += PF[PF_SERIAL] * (gpu if gpu < host else host)
        if PF[PF_SETUP] and any_fresh:
            wall += PF[PF_SETUP]
    tp = PI[PI_TP]
    wait_e = wait_power_w(PF, tp, gpu, tp * busy) * (wall - gpu)
    return wall, tp * (busy + wait_e)


@jit
def wait_power_w(PF, tp, gpu_s, busy_j):
    """CostModel.wait_power_w."""
    k = PF[PF_STANDBY]
    w = PF[PF_WAITW]
    if k == 0.0 or gpu_s <= 0:
        return w
    p_busy = busy_j / (tp * gpu_s)
    return w + k * (p_busy - w)


@jit
def _attn_decode(PF, ctx_sum, bytes_n):
    """DecodePricer's attention group of one decode step: (t, e) per layer."""
    fc, bc, kvb = PF[PF_DFC], PF[PF_DBC], PF[PF_KVB]
    peak, bw, t0 = PF[PF_DEC], PF[PF_DEC + 1], 1 * PF[PF_DEC + 2]
    pb, wc, wm = PF[PF_DEC + 3], PF[PF_DEC + 4], PF[PF_DEC + 5]
    tc = fc * ctx_sum / peak
    tm = (bc * ctx_sum * kvb + bytes_n) / bw
    t = (tc if tc >= tm else tm) + t0
    if t <= 0:
        return 0.0, 0.0
    e = pb * t + wc * tc + wm * tm
    lim = PF[PF_PLIMIT] * t
    if lim < e:
        e = lim
    return t, e


@jit
def gpu_busy(PF, PI, dconst, n, ctx_sum):
    """DecodePricer.gpu_busy(n, ctx_sum)."""
    t, e = _attn_decode(PF, ctx_sum, dconst[n, 3])
    return dconst[n, 0] + PI[PI_LAYERS] * t, PI[PI_TP] * (dconst[n, 1] + PI[PI_LAYERS] * e)


@jit
def seg_time(VF, V, s, k):
    """DecodeSegment.time(k) of server s's decode run."""
    sa = V[s, V_SEG_SALL]
    host = VF[s, VF_HOST]
    if sa < 0 or sa > k:
        return k * host
    n = k - sa
    if n <= 0:
        return sa * host + 0.0
    return sa * host + (n * VF[s, VF_GPU0] + VF[s, VF_DGPU] * (sa + k - 1) * n / 2.0)


@jit
def sum_affine(a, b, j0, j1):
    """costmodel._sum_affine."""
    n = j1 - j0
    if n <= 0:
        return 0.0
    return n * a + b * (j0 + j1 - 1) * n / 2.0


_PSI_A = np.array(
    [
        8.33333333333333333333e-2,
        -2.10927960927960927961e-2,
        7.57575757575757575758e-3,
        -4.16666666666666666667e-3,
        3.96825396825396825397e-3,
        -8.33333333333333333333e-3,
        8.33333333333333333333e-2,
    ]
)
_EULER = 0.57721566490153286061


@jit
def digamma(x):
    """psi(x) for x > 0 (Cephes psi.c, which scipy.special.digamma follows there)."""
    if x <= 10.0 and x == math.floor(x):
        y = 0.0
        n = int(x)
        for i in range(1, n):
            y += 1.0 / i
        return y - _EULER
    w = 0.0
    s = x
    while s < 10.0:
        w += 1.0 / s
        s += 1.0
    if s < 1.0e17:
        z = 1.0 / (s * s)
        p = _PSI_A[0]
        for i in range(1, 7):
            p = p * z + _PSI_A[i]
        y = z * p
    else:
        y = 0.0
    return math.log(s) - (0.5 / s) - y - w


@jit
def sum_ratio(b0, db, g0, dg, n):
    """costmodel._sum_ratio; (value, ok): ok False where its integer sums would overflow."""
    if n <= 0:
        return 0.0, True
    x = dg / g0
    m = n - 1
    if abs(x) * m < 1e-3:
        if m > 4000:
            return 0.0, False
        S0 = float(n)
        S1 = m * n / 2.0
        S2 = m * n * (2 * m + 1) / 6.0
        S3 = math.pow(m * n / 2.0, 2.0)
        S4 = m * n * (2 * m + 1) * (3 * m * m + 3 * m - 1) / 30.0
        nx = -x
        inv = 0.0
        inv += math.pow(nx, 0.0) * S0
        inv += math.pow(nx, 1.0) * S1
        inv += math.pow(nx, 2.0) * S2
        inv += math.pow(nx, 3.0) * S3
        inv += math.pow(nx, 4.0) * S4
        inv_j = 0.0
        inv_j += math.pow(nx, 0.0) * S1
        inv_j += math.pow(nx, 1.0) * S2
        inv_j += math.pow(nx, 2.0) * S3
        inv_j += math.pow(nx, 3.0) * S4
        return (b0 * inv + db * inv_j) / g0, True
    if dg < 0:
        total = 0.0
        for j in range(n):
            total += (b0 + db * j) / (g0 + dg * j)
        return total, True
    a = g0 / dg
    harm = (digamma(a + n) - digamma(a)) / dg
    return db / dg * n + (b0 - db * a) * harm, True


@jit
def seg_energy(PF, VF, V, s, k):
    """DecodeSegment.energy(k); (value, ok)."""
    sa = V[s, V_SEG_SALL]
    sp = k if (sa < 0 or sa > k) else sa
    busy0, dbusy = VF[s, VF_BUSY0], VF[s, VF_DBUSY]
    gpu0, dgpu = VF[s, VF_GPU0], VF[s, VF_DGPU]
    host, wait_w = VF[s, VF_HOST], VF[s, VF_WAITW]
    busy = k * busy0 + dbusy * (k - 1) * k / 2.0 if k > 0 else 0.0
    gpu = sp * gpu0 + dgpu * (sp - 1) * sp / 2.0 if sp > 0 else 0.0
    idle_s = sp * host - gpu
    sk = PF[PF_STANDBY]
    if sk == 0.0:
        return busy + wait_w * idle_s, True
    r, ok = sum_ratio(busy0, dbusy, gpu0, dgpu, sp)
    standby = host * r - sum_affine(busy0, dbusy, 0, sp)
    return busy + (1.0 - sk) * wait_w * idle_s + sk * standby, ok


@jit
def isclose(a, b, rel_tol):
    """math.isclose(a, b, rel_tol=rel_tol) (abs_tol 0)."""
    if a == b:
        return True
    if math.isinf(a) or math.isinf(b):
        return False
    diff = abs(b - a)
    return (diff <= abs(rel_tol * b)) or (diff <= abs(rel_tol * a))


@jit
def seg_affine_over(PF, PI, dconst, VF, V, s, k):
    """DecodeSegment.is_affine_over(k)."""
    if k <= 2:
        return True
    n = V[s, V_SEG_N]
    gpu, busy = gpu_busy(PF, PI, dconst, n, V[s, V_SEG_CTX] + n * (k - 1))
    gpu_pred = VF[s, VF_GPU0] + VF[s, VF_DGPU] * (k - 1)
    busy_pred = VF[s, VF_BUSY0] + VF[s, VF_DBUSY] * (k - 1)
    return isclose(gpu, gpu_pred, 1e-9) and isclose(busy, busy_pred, 1e-9)


@jit
def seg_guess(VF, V, s, elapsed):
    """DecodeSegment._guess."""
    sa = V[s, V_SEG_SALL]
    host = VF[s, VF_HOST]
    if sa < 0 or elapsed <= sa * host:
        return math.ceil(elapsed / host) if host > 0 else 0
    dgpu = VF[s, VF_DGPU]
    rest = elapsed - sa * host
    g = VF[s, VF_GPU0] + dgpu * sa
    b = g - dgpu / 2.0
    disc = b * b + 2.0 * dgpu * rest
    if disc <= 0 or b + math.sqrt(disc) <= 0:
        return sa + 1
    return sa + math.ceil(2.0 * rest / (b + math.sqrt(disc)))


@jit
def seg_steps_to_reach(VF, V, s, elapsed, k_max):
    """DecodeSegment.steps_to_reach."""
    if elapsed <= 0.0 or k_max <= 0:
        return 0
    k = min(max(seg_guess(VF, V, s, elapsed), 1), k_max)
    while k > 0 and seg_time(VF, V, s, k - 1) >= elapsed:
        k -= 1
    while k < k_max and seg_time(VF, V, s, k) < elapsed:
        k += 1
    return k


@jit
def seg_last_power(PF, PI, VF, s, k):
    """DecodeSegment.last_step_power_per_gpu(k)."""
    j = k - 1
    gpu = VF[s, VF_GPU0] + VF[s, VF_DGPU] * j
    host = VF[s, VF_HOST]
    wall = max(gpu, host)
    busy = VF[s, VF_BUSY0] + VF[s, VF_DBUSY] * j
    p_wait = VF[s, VF_WAITW]
    sk = PF[PF_STANDBY]
    if sk and gpu > 0:
        p_wait = (1.0 - sk) * VF[s, VF_WAITW] + sk * busy / gpu
    e = busy + p_wait * (wall - gpu)
    return e / wall / PI[PI_TP] if wall > 0 else 0.0


@jit
def seg_build(PF, PI, dconst, VF, V, s, n, ctx_sum0):
    """CostModel.decode_segment(n, ctx_sum0) into server s's segment fields."""
    t_const, e_const, host, bytes_n = dconst[n, 0], dconst[n, 1], dconst[n, 2], dconst[n, 3]
    L, tp = PI[PI_LAYERS], PI[PI_TP]
    t, e = _attn_decode(PF, ctx_sum0, bytes_n)
    t1, e1 = _attn_decode(PF, ctx_sum0 + n, bytes_n)
    gpu0 = t_const + L * t
    busy0 = tp * (e_const + L * e)
    gpu1 = t_const + L * t1
    busy1 = tp * (e_const + L * e1)
    dgpu = gpu1 - gpu0
    VF[s, VF_GPU0] = gpu0
    VF[s, VF_DGPU] = dgpu
    VF[s, VF_BUSY0] = busy0
    VF[s, VF_DBUSY] = busy1 - busy0
    VF[s, VF_HOST] = host
    VF[s, VF_WAITW] = PF[PF_WAITW] * tp
    V[s, V_SEG_N] = n
    V[s, V_SEG_CTX] = ctx_sum0
    if gpu0 >= host:
        V[s, V_SEG_SALL] = 0
    elif dgpu <= 0:
        V[s, V_SEG_SALL] = -1
    else:
        V[s, V_SEG_SALL] = max(0, math.ceil((host - gpu0) / dgpu))


# ---- records -----------------------------------------------------------------------------
@jit
def note_queue(V, n_t, n_l, s, now):
    """Ledger.note_queue(now, len(queue)) of server s."""
    j = V[s, V_NQN]
    n_t[s, j] = now
    n_l[s, j] = V[s, V_QLEN]
    V[s, V_NQN] = j + 1


@jit
def ledger_add(PF, V, VF, led, s, start, end, energy, batch, p_last):
    """Ledger.add_busy of server s's replica."""
    l_end, l_en, l_b, g_at, g_st, g_p = led[0], led[1], led[2], led[3], led[4], led[5]
    n = V[s, V_NLED]
    if n == 0 or start != l_end[s, n - 1]:
        gi = V[s, V_NGAP]
        g_at[s, gi] = n
        g_st[s, gi] = start
        g_p[s, gi] = VF[s, VF_PPREV] if V[s, V_HAS_PPREV] else PF[PF_ACTIVE_IDLE]
        V[s, V_NGAP] = gi + 1
    l_end[s, n] = end
    l_en[s, n] = energy
    l_b[s, n] = batch
    V[s, V_NLED] = n + 1
    VF[s, VF_PPREV] = p_last
    V[s, V_HAS_PPREV] = 1


@jit
def write_row(io, SI, SF, slot, status, t_finish):
    """RequestLog.close of the request in `slot`: its outcome into the columns."""
    i = SI[slot, S_RID]
    io[3][i] = SI[slot, S_REPLICA]
    io[4][i] = status
    io[5][i] = SF[slot, SF_TSTART]
    io[6][i] = SF[slot, SF_TFIRST]
    io[7][i] = t_finish
    io[8][i] = SI[slot, S_CPROMPT]
    io[9][i] = SI[slot, S_GEN]
    io[10][i] = SF[slot, SF_EPRE]
    io[11][i] = SF[slot, SF_EDEC]


@jit
def free_slot(G, SI, FREE, slot):
    SI[slot, S_RID] = -1
    FREE[G[G_SLOT_TOP]] = slot
    G[G_SLOT_TOP] += 1


# ---- the scheduler (TgiScheduler) -----------------------------------------------------------
@jit
def reserve(PI, SI, slot):
    """TgiScheduler._reserve: blocks for prompt + max_new_tokens - 1 tokens."""
    tokens = SI[slot, S_PROMPT] + SI[slot, S_OUTPUT] - 1
    return -(-tokens // PI[PI_BS])


@jit
def decoding(SI, slot):
    return SI[slot, S_GEN] >= 1 and SI[slot, S_PREF] >= SI[slot, S_PROMPT]


@jit
def current_tokens(V, SI, rbuf, s):
    """TgiScheduler._current_tokens."""
    n = 0
    for j in range(V[s, V_RLEN]):
        r = rbuf[s, j]
        n += 1 if decoding(SI, r) else SI[r, S_NEXT]
    return n


@jit
def next_batch(st, tab, s, now, has_min, min_size, has_max, max_size, budget):
    """TgiScheduler._next_batch: the requests taken into padm[s] (slot, chunk); how many."""
    V, SI, qbuf, padm, led_nt, led_nl = st[2], st[4], st[7], st[11], st[14], st[15]
    PI = tab[1]
    qlen = V[s, V_QLEN]
    if qlen == 0 or (has_min and qlen < min_size):
        return 0
    if has_max and max_size == 0:
        return 0
    bs = PI[PI_BS]
    budget = (-(-budget // bs)) * bs
    qc = qbuf.shape[1]
    chunked = PI[PI_CHUNKED] != 0
    npick = 0
    prefill_tokens = 0
    h0 = V[s, V_QHEAD]
    for j in range(qlen):
        slot = qbuf[s, (h0 + j) % qc]
        blocks = reserve(PI, SI, slot)
        if blocks > V[s, V_FREE_BLOCKS]:
            break
        prompt = SI[slot, S_PROMPT]
        if prefill_tokens + prompt > budget:
            if chunked:
                chunk = budget - prefill_tokens
                if chunk > 0:
                    _take(V, SI, s, slot, blocks, qc)
                    padm[s, npick, 0] = slot
                    padm[s, npick, 1] = chunk
                    npick += 1
            break
        _take(V, SI, s, slot, blocks, qc)
        padm[s, npick, 0] = slot
        padm[s, npick, 1] = prompt
        npick += 1
        prefill_tokens += prompt
        if has_max and npick == max_size:
            break
    if has_min and npick < min_size:
        for j in range(npick - 1, -1, -1):  # put back in order, release their blocks
            slot = padm[s, j, 0]
            V[s, V_FREE_BLOCKS] += SI[slot, S_BLOCKS]
            SI[slot, S_BLOCKS] = 0
            h = (V[s, V_QHEAD] - 1) % qc
            V[s, V_QHEAD] = h
            qbuf[s, h] = slot
            V[s, V_QLEN] += 1
        return 0
    note_queue(V, led_nt, led_nl, s, now)
    return npick


@jit
def _take(V, SI, s, slot, blocks, qc):
    V[s, V_QHEAD] = (V[s, V_QHEAD] + 1) % qc
    V[s, V_QLEN] -= 1
    V[s, V_FREE_BLOCKS] -= blocks
    SI[slot, S_BLOCKS] += blocks


@jit
def forward(st, s, npick, with_running):
    """TgiScheduler._forward: the plan's decodes (pdec) and chunks (pchk: slot, tokens,
    past), the picked requests admitted."""
    V, SI, rbuf, pdec, pchk, padm = st[2], st[4], st[8], st[9], st[10], st[11]
    ndec = 0
    nchk = 0
    if with_running:
        for j in range(V[s, V_RLEN]):
            r = rbuf[s, j]
            if decoding(SI, r):
                pdec[s, ndec] = r
                ndec += 1
            else:
                pchk[s, nchk, 0] = r
                pchk[s, nchk, 1] = SI[r, S_NEXT]
                pchk[s, nchk, 2] = SI[r, S_PREF]
                nchk += 1
    for j in range(npick):
        r = padm[s, j, 0]
        SI[r, S_CPROMPT] = SI[r, S_PROMPT]
        pchk[s, nchk, 0] = r
        pchk[s, nchk, 1] = padm[s, j, 1]
        pchk[s, nchk, 2] = SI[r, S_PREF]
        nchk += 1
    V[s, V_NDEC] = ndec
    V[s, V_NCHK] = nchk
    V[s, V_NADM] = npick


@jit
def steps_until_admissible(st, tab, s):
    """TgiScheduler._steps_until_admissible (BIG for math.inf)."""
    V, SI, qbuf, rbuf = st[2], st[4], st[7], st[8]
    PF, PI = tab[0], tab[1]
    if V[s, V_QLEN] == 0:
        return BIG
    head = qbuf[s, V[s, V_QHEAD]]
    if reserve(PI, SI, head) > V[s, V_FREE_BLOCKS]:
        return BIG
    if PI[PI_CHUNKED]:
        return 1 if PI[PI_MAXBPT] - current_tokens(V, SI, rbuf, s) > 0 else BIG
    if SI[head, S_PROMPT] > PI[PI_MAXBPT]:
        return BIG
    if PI[PI_MBS] >= 0 and V[s, V_RLEN] >= PI[PI_MBS]:
        return BIG
    if V[s, V_QLEN] >= int(math.floor(V[s, V_RLEN] * PF[PF_WSR])):
        return 1
    return max(PI[PI_MWT] - V[s, V_WAITING_TOKENS], 1)


@jit
def plan_step(st, tab, s, now):
    """TgiScheduler.plan_step: 0 nothing to run, 1 a forward, 2 a decode run (of SEG_K
    steps at most)."""
    V, SI, rbuf, pdec = st[2], st[4], st[8], st[9]
    PF, PI = tab[0], tab[1]
    chunked = PI[PI_CHUNKED] != 0
    mbs = PI[PI_MBS]
    maxbpt = PI[PI_MAXBPT]
    while True:
        if not V[s, V_MID_ITER]:
            if V[s, V_RLEN] == 0:
                if V[s, V_QLEN] == 0:
                    return 0
                npick = next_batch(st, tab, s, now, False, 0, mbs >= 0, mbs, maxbpt)
                if npick == 0:
                    return 0
                forward(st, s, npick, False)
                return 1
            if V[s, V_QLEN]:
                if chunked:
                    has_min, min_size, has_max, max_size = False, 0, False, 0
                    budget = max(maxbpt - current_tokens(V, SI, rbuf, s), 0)
                else:
                    has_min = not (V[s, V_WAITING_TOKENS] >= PI[PI_MWT])
                    min_size = int(math.floor(V[s, V_RLEN] * PF[PF_WSR]))
                    has_max = mbs >= 0
                    max_size = mbs - V[s, V_RLEN]
                    budget = maxbpt
                npick = next_batch(st, tab, s, now, has_min, min_size, has_max, max_size, budget)
                if npick:
                    V[s, V_MID_ITER] = 1
                    forward(st, s, npick, chunked)
                    return 1
        V[s, V_MID_ITER] = 0
        if V[s, V_RLEN] == 0:
            continue
        left = BIG
        nr = V[s, V_RLEN]
        for j in range(nr):
            r = rbuf[s, j]
            if SI[r, S_GEN] < 1 or SI[r, S_PREF] < SI[r, S_PROMPT]:
                forward(st, s, 0, True)
                return 1
            pdec[s, j] = r
            if SI[r, S_OUTPUT] - SI[r, S_GEN] < left:
                left = SI[r, S_OUTPUT] - SI[r, S_GEN]
        V[s, V_NDEC] = nr
        V[s, V_NCHK] = 0
        V[s, V_NADM] = 0
        V[s, V_SEG_K] = min(left, steps_until_admissible(st, tab, s))
        V[s, V_RUN_LEFT] = left
        return 2


@jit
def retire(st, tab, io, s, now):
    """TgiScheduler._retire: free and finish every running request with all its tokens."""
    G, V, SI, SF, FREE, rbuf = st[0], st[2], st[4], st[5], st[6], st[8]
    ok = tab[1][PI_ST_OK]
    kept = 0
    for j in range(V[s, V_RLEN]):
        r = rbuf[s, j]
        if SI[r, S_GEN] >= SI[r, S_OUTPUT] and SI[r, S_GEN] >= 1 and SI[r, S_PREF] >= SI[r, S_PROMPT]:
            V[s, V_FREE_BLOCKS] += SI[r, S_BLOCKS]
            SI[r, S_BLOCKS] = 0
            V[s, V_IN_FLIGHT] -= 1
            write_row(io, SI, SF, r, ok, now)
            free_slot(G, SI, FREE, r)
        else:
            rbuf[s, kept] = r
            kept += 1
    V[s, V_RLEN] = kept


@jit
def plan_chunks(st, tab, s):
    """TgiScheduler._plan_chunks: next chunk per prefilling request, newest last."""
    V, SI, rbuf = st[2], st[4], st[8]
    PI = tab[1]
    budget = PI[PI_MAXBPT] - (V[s, V_RLEN] - 1)
    for j in range(V[s, V_RLEN] - 1, -1, -1):
        r = rbuf[s, j]
        left = SI[r, S_PROMPT] - SI[r, S_PREF]
        if left > 0:
            SI[r, S_NEXT] = max(min(left, budget), 1)
            budget -= SI[r, S_NEXT]


@jit
def commit_forward(st, tab, io, s, now):
    """TgiScheduler.commit of a forward (steps = 1)."""
    V, SI, SF, rbuf, pdec, pchk, padm = st[2], st[4], st[5], st[8], st[9], st[10], st[11]
    if V[s, V_NADM]:
        V[s, V_WAITING_TOKENS] = 1
    else:
        V[s, V_WAITING_TOKENS] += 1
    for j in range(V[s, V_NDEC]):
        SI[pdec[s, j], S_GEN] += 1
    for j in range(V[s, V_NCHK]):
        r = pchk[s, j, 0]
        SI[r, S_PREF] += pchk[s, j, 1]
        if SI[r, S_PREF] >= SI[r, S_PROMPT]:
            SI[r, S_GEN] = 1
            SF[r, SF_TFIRST] = now
    n = V[s, V_RLEN]
    for j in range(V[s, V_NADM]):
        rbuf[s, n] = padm[s, j, 0]
        n += 1
    V[s, V_RLEN] = n
    retire(st, tab, io, s, now)
    plan_chunks(st, tab, s)


@jit
def commit_decode(st, tab, io, s, steps, now):
    """TgiScheduler.commit of a decode run that ran `steps` steps."""
    V, SI, pdec = st[2], st[4], st[9]
    V[s, V_WAITING_TOKENS] += steps
    for j in range(V[s, V_NDEC]):
        SI[pdec[s, j], S_GEN] += steps
    if steps >= V[s, V_RUN_LEFT]:
        retire(st, tab, io, s, now)


# ---- the servers (Server.run, submit, _cut) ---------------------------------------------------
@jit
def book_forward(st, tab, led, s, end):
    """Replica.book_forward: the step's energy shared by its requests by tokens."""
    V, VF, SF, pdec, pchk = st[2], st[3], st[5], st[9], st[10]
    PF = tab[0]
    energy = VF[s, VF_ENERGY]
    total = V[s, V_NDEC]
    for j in range(V[s, V_NCHK]):
        total += pchk[s, j, 1]
    part = energy * 1 / total
    for j in range(V[s, V_NDEC]):
        SF[pdec[s, j], SF_EDEC] += part
    for j in range(V[s, V_NCHK]):
        SF[pchk[s, j, 0], SF_EPRE] += energy * pchk[s, j, 1] / total
    batch = V[s, V_NDEC] + V[s, V_NCHK]
    ledger_add(PF, V, VF, led, s, VF[s, VF_START], end, energy, batch, VF[s, VF_PGPU])
    V[s, V_STEPS] += 1


@jit
def book_decode(st, tab, led, s, done, end):
    """Replica.book_decode: `done` steps' energy shared equally by the batch; False where the
    energy's closed form fell outside this loop's cases."""
    V, VF, SF, pdec = st[2], st[3], st[5], st[9]
    PF, PI = tab[0], tab[1]
    if done == 0:
        return True
    n = V[s, V_NDEC]
    energy, ok = seg_energy(PF, VF, V, s, done)
    share = energy / n
    for j in range(n):
        SF[pdec[s, j], SF_EDEC] += share
    p_last = seg_last_power(PF, PI, VF, s, done)
    ledger_add(PF, V, VF, led, s, VF[s, VF_START], end, energy, n, p_last)
    V[s, V_STEPS] += done
    return ok


@jit
def start_forward(st, tab, s, now):
    """Price server s's planned forward and sleep until its end (NEED_ROW: the rows table
    lacks the step's token count, G_NEED_ROW; call again once it is filled in)."""
    G, V, VF, SI, pdec, pchk, ht, hi = st[0], st[2], st[3], st[4], st[9], st[10], st[12], st[13]
    PF, PI, rows_t, rows_e, head = tab[0], tab[1], tab[2], tab[3], tab[4]
    nchk, ndec = V[s, V_NCHK], V[s, V_NDEC]
    ctx = 0
    for j in range(ndec):
        r = pdec[s, j]
        ctx += SI[r, S_PROMPT] + SI[r, S_GEN]
    wall, energy = price_forward(
        PF, PI, rows_t, rows_e, head, pchk[s, :, 1], pchk[s, :, 2], nchk, ndec, ctx
    )
    if wall == -2.0:
        G[G_NEED_ROW] = int(energy)
        G[G_NEED_SRV] = s
        return NEED_ROW
    if wall < 0:
        return FALLBACK
    VF[s, VF_WALL] = wall
    VF[s, VF_ENERGY] = energy
    VF[s, VF_PGPU] = energy / wall / PI[PI_TP] if wall > 0 else 0.0
    V[s, V_PHASE] = PH_FORWARD
    eid = push(G, ht, hi, now + wall, NORMAL, K_SERVER, s)
    if eid < 0:
        return FALLBACK
    V[s, V_EID] = eid
    return DONE


@jit
def go(st, tab, led, s, now):
    """Server.run from its plan_step on: plan, then wait, run a forward or a decode run.
    The return code (DONE or FALLBACK)."""
    G, V, VF, SI, SF, pdec, pchk, padm, ht, hi = (
        st[0], st[2], st[3], st[4], st[5], st[9], st[10], st[11], st[12], st[13]
    )
    PF, PI, rows_t, rows_e, head, dconst = tab
    kind = plan_step(st, tab, s, now)
    if kind == 0:
        if V[s, V_CLOSED] and V[s, V_QLEN] == 0 and V[s, V_RLEN] == 0:
            V[s, V_PHASE] = PH_DONE
        else:
            V[s, V_PHASE] = PH_WAIT
            V[s, V_WAKE_TRIG] = 0
        return DONE
    VF[s, VF_START] = now
    if kind == 1:
        for j in range(V[s, V_NADM]):
            r = padm[s, j, 0]
            if SF[r, SF_TSTART] != SF[r, SF_TSTART]:
                SF[r, SF_TSTART] = now
        return start_forward(st, tab, s, now)
    n = V[s, V_NDEC]
    ctx = 0
    for j in range(n):
        r = pdec[s, j]
        ctx += SI[r, S_PROMPT] + SI[r, S_GEN]
    k = V[s, V_SEG_K]
    if not PI[PI_FF]:
        k = 1
    seg_build(PF, PI, dconst, VF, V, s, n, ctx)
    while k > 2 and not seg_affine_over(PF, PI, dconst, VF, V, s, k):
        k = max(2, k // 2)
    V[s, V_SEG_K] = k
    V[s, V_SEG_DONE] = k
    eid = push(G, ht, hi, now + seg_time(VF, V, s, k), NORMAL, K_SERVER, s)
    if eid < 0:
        return FALLBACK
    V[s, V_EID] = eid
    V[s, V_IN_SEG] = 1
    V[s, V_PHASE] = PH_DECODE
    return DONE


@jit
def resume_server(st, tab, led, io, s, now):
    """Server s's process resumed at `now`: book and commit what ran, then go on."""
    V, VF = st[2], st[3]
    ph = V[s, V_PHASE]
    if ph == PH_FORWARD:
        book_forward(st, tab, led, s, now)
        commit_forward(st, tab, io, s, now)
    elif ph == PH_DECODE:
        V[s, V_IN_SEG] = 0
        done = V[s, V_SEG_DONE]
        if not book_decode(st, tab, led, s, done, now):
            return FALLBACK
        commit_decode(st, tab, io, s, done, now)
    elif ph == PH_WAIT:
        V[s, V_WAKE_TRIG] = 0
    return go(st, tab, led, s, now)


@jit
def cut(st, s, now):
    """Server._cut: end the decode run at the end of its step in progress."""
    G, V, VF, ht, hi = st[0], st[2], st[3], st[12], st[13]
    V[s, V_IN_SEG] = 0
    start = VF[s, VF_START]
    done = seg_steps_to_reach(VF, V, s, now - start, V[s, V_SEG_K])
    end = start + seg_time(VF, V, s, done)
    V[s, V_SEG_DONE] = done
    delay = end - now if now < end else 0.0
    eid = push(G, ht, hi, now + delay, NORMAL, K_SERVER, s)
    V[s, V_EID] = eid
    return eid >= 0


@jit
def submit(st, tab, led, io, s, i, now):
    """Server.submit of request i to server s (TgiScheduler.admit, enqueue, wake or cut);
    False where the event queue is full."""
    G, V, SI, SF, FREE, qbuf, ht, hi = st[0], st[2], st[4], st[5], st[6], st[7], st[12], st[13]
    PI = tab[1]
    prm, outp = io[1], io[2]
    was_empty = V[s, V_QLEN] == 0
    p, o = prm[i], outp[i]
    status = -1
    if V[s, V_IN_FLIGHT] >= PI[PI_MAXCONC]:
        status = PI[PI_ST_QFULL]
    elif p > PI[PI_MAXINPUT] or p + o > PI[PI_MAXTOTAL]:
        status = PI[PI_ST_TOOLONG]
    if status >= 0:
        io[3][i] = s
        io[4][i] = status
        io[7][i] = now
        return True
    V[s, V_IN_FLIGHT] += 1
    G[G_SLOT_TOP] -= 1
    slot = FREE[G[G_SLOT_TOP]]
    SI[slot, S_RID] = i
    SI[slot, S_PROMPT] = p
    SI[slot, S_OUTPUT] = o
    SI[slot, S_GEN] = 0
    SI[slot, S_PREF] = 0
    SI[slot, S_NEXT] = 0
    SI[slot, S_CPROMPT] = 0
    SI[slot, S_BLOCKS] = 0
    SI[slot, S_REPLICA] = s
    SF[slot, SF_TSTART] = np.nan
    SF[slot, SF_TFIRST] = np.nan
    SF[slot, SF_EPRE] = 0.0
    SF[slot, SF_EDEC] = 0.0
    qc = qbuf.shape[1]
    qbuf[s, (V[s, V_QHEAD] + V[s, V_QLEN]) % qc] = slot
    V[s, V_QLEN] += 1
    note_queue(V, st[14], st[15], s, now)
    if V[s, V_PHASE] == PH_WAIT:
        if not V[s, V_WAKE_TRIG]:
            V[s, V_WAKE_TRIG] = 1
            eid = push(G, ht, hi, now, NORMAL, K_SERVER, s)
            V[s, V_EID] = eid
            return eid >= 0
    elif V[s, V_IN_SEG] and (was_empty or not PI[PI_CHUNKED]):
        return cut(st, s, now)
    return True


@jit
def pick(st, tab):
    """Balancer.pick (the only server when there is one)."""
    G, V = st[0], st[2]
    PI = tab[1]
    R = PI[PI_R]
    if R == 1:
        return 0
    if PI[PI_LEAST]:
        best = 0
        low = V[0, V_QLEN] + V[0, V_RLEN]
        for s in range(1, R):
            load = V[s, V_QLEN] + V[s, V_RLEN]
            if load < low:
                low = load
                best = s
        return best
    i = G[G_RR]
    G[G_RR] = (i + 1) % R
    return i


@jit
def room(st, led):
    """Whether every server's records have room for another event's."""
    V = st[2]
    for s in range(V.shape[0]):
        if V[s, V_NLED] + 2 > led[0].shape[1] or V[s, V_NGAP] + 2 > led[3].shape[1]:
            return False
        if V[s, V_NQN] + 2 > st[14].shape[1]:
            return False
    return True


ARR_SCAN, ARR_DUE = 3, 4


@jit
def resume_arrivals(st, tab, led, io, now):
    """simulate's arrivals process: submit every request due, then sleep until the next
    (a timeout of arrival - now); close the servers after the last."""
    G, V, ht, hi = st[0], st[2], st[12], st[13]
    arr = io[0]
    n = len(arr)
    if G[G_ARR_STATE] == ARR_WAIT:
        G[G_ARR_STATE] = ARR_DUE
    elif G[G_ARR_STATE] == ARR_INIT:
        G[G_ARR_STATE] = ARR_SCAN
    while True:
        if G[G_ARR_STATE] == ARR_DUE:
            if not room(st, led):
                return MORE_ROOM
            i = G[G_ARR_NEXT]
            if not submit(st, tab, led, io, pick(st, tab), i, now):
                return FALLBACK
            G[G_ARR_NEXT] = i + 1
            G[G_SUBMITTED] += 1
            G[G_ARR_STATE] = ARR_SCAN
        i = G[G_ARR_NEXT]
        if i >= n:
            break
        a = arr[i]
        if a > now:
            if push(G, ht, hi, now + (a - now), NORMAL, K_ARRIVAL, 0) < 0:
                return FALLBACK
            G[G_ARR_STATE] = ARR_WAIT
            return DONE
        G[G_ARR_STATE] = ARR_DUE
    for s in range(V.shape[0]):  # Server.close
        V[s, V_CLOSED] = 1
        if V[s, V_PHASE] == PH_WAIT and not V[s, V_WAKE_TRIG]:
            V[s, V_WAKE_TRIG] = 1
            eid = push(G, ht, hi, now, NORMAL, K_SERVER, s)
            if eid < 0:
                return FALLBACK
            V[s, V_EID] = eid
    G[G_ARR_STATE] = ARR_DONE
    return DONE


@jit
def run(st, tab, led, io, progress_at):
    """Process events until none is left (DONE), the records need room (MORE_ROOM: grow
    them, call again), `progress_at` requests were submitted (PROGRESS) or FALLBACK."""
    G, GF, ht, hi = st[0], st[1], st[12], st[13]
    V = st[2]
    if G[G_NEED_SRV] >= 0:  # a forward waiting for its price (NEED_ROW)
        s = G[G_NEED_SRV]
        G[G_NEED_SRV] = -1
        code = start_forward(st, tab, s, GF[0])
        if code != DONE:
            return code
    if G[G_ARR_STATE] == ARR_DUE or G[G_ARR_STATE] == ARR_SCAN:  # an arrival in progress
        code = resume_arrivals(st, tab, led, io, GF[0])
        if code != DONE:
            return code
    while G[G_HN] > 0:
        if not room(st, led):
            return MORE_ROOM
        if G[G_SUBMITTED] >= progress_at:
            return PROGRESS
        t, eid, kind, target = pop(G, ht, hi)
        GF[0] = t
        if kind == K_SERVER:
            if eid != V[target, V_EID]:
                continue  # a cut decode run's timeout: it only moves the clock
            code = resume_server(st, tab, led, io, target, t)
        else:
            code = resume_arrivals(st, tab, led, io, t)
        if code != DONE:
            return code
    return DONE


@jit
def finish_open(st, io, status):
    """RequestLog.close_all: the requests still in the system, with `status` (unfinished)."""
    SI, SF = st[4], st[5]
    for slot in range(SI.shape[0]):
        if SI[slot, S_RID] >= 0:
            write_row(io, SI, SF, slot, status, np.nan)
