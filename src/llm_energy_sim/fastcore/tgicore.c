/* A TGI run's event loop over arrays (fastcore/runner.py builds them, build.py compiles this
 * file with layout.py's #defines before it).
 *
 * It is simulation.simulate's SimPy run of TgiScheduler servers without objects:
 * - events: SimPy's queue ordered by (time, priority, insertion id), the servers' Initialize
 *   events first, a timeout at now + delay (that double), a woken server resumed by an event
 *   at now, a cut decode run moved to a timeout at its step's end (Server._cut), the
 *   abandoned timeout still popped (it moves the clock, as in SimPy);
 * - servers: servers/base.py Server.run and submit, servers/tgi.py TgiScheduler (plan_step,
 *   _next_batch, _forward, commit, _retire, _plan_chunks, _steps_until_admissible), the
 *   balancer (servers/balancer.py), KV blocks as a free count (BlockPool);
 * - costs: cost/stepprice.py StepPricer.price, cost/decodecost.py DecodePricer.first_two and
 *   gpu_busy, cost/costmodel.py DecodeSegment (time, energy, is_affine_over, steps_to_reach,
 *   last_step_power_per_gpu), _sum_affine, _sum_ratio: the same double operations in the
 *   same order (compiled without contraction into fused multiply-adds), from tables of the
 *   CostModel's memoised constants;
 * - records: engine/replica.py's booking, engine/ledger.py Ledger.add_busy and note_queue
 *   (into buffers of CH rows per server that the runner drains), engine/requestlog.py's
 *   outcome columns (written when a request ends).
 * Requests in the system live in slots (at most max_concurrent_requests per replica).
 * tgi_run returns C_DONE when no event is left; C_MORE_ROOM (drain the record buffers),
 * C_PROGRESS, C_NEED_ROW (fill in rows_t/rows_e[G_NEED_ROW]): call it again; C_FALLBACK: a case
 * this loop does not cover (the caller runs the SimPy path instead).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef int64_t i64;
/* the integer sums of _sum_ratio's series, exact as Python's ints below WIDE_MAX_M terms
 * (converting one to double rounds it once, as Python's int / float does) */
#ifdef __SIZEOF_INT128__
typedef __int128 wide;
#define WIDE_MAX_M 10000000
#else
typedef int64_t wide;
#define WIDE_MAX_M 4000
#endif

typedef struct {
    i64 *G;
    double *GF;
    i64 *V;
    double *VF;
    i64 *SI;
    double *SF;
    i64 *FREE;
    i64 *qbuf, *rbuf, *pdec, *pchk, *padm; /* [R][QC], [R][QC][3], [R][QC][2] */
    double *ht;
    i64 *hi; /* [H][4]: priority, insertion id, kind, target */
    double *l_end, *l_en;
    int32_t *l_b;
    i64 *g_at;
    double *g_st, *g_p, *n_t;
    int32_t *n_l; /* records: [R][CH] each */
    double *PF;
    i64 *PI;
    double *rows_t, *rows_e, *head, *dconst; /* [T], [T], [NMAX][4], [NMAX][4] */
    double *arr;
    i64 *prm, *outp;
    char *rows; /* the RequestLog's structured array */
    i64 off[9]; /* byte offsets of layout.LOG's fields in a row */
    i64 itemsize, n, R, QC, NS, H, CH, T, NMAX, progress_at;
} Core;

#define BIG ((i64)1 << 62)
#define K_SERVER 0
#define K_ARRIVAL 1
#define URGENT 0
#define NORMAL 1

#define GV(s, f) (c->V[(s) * V_SIZE + (f)])
#define GVF(s, f) (c->VF[(s) * VF_SIZE + (f)])
#define SLI(r, f) (c->SI[(r) * S_SIZE + (f)])
#define SLF(r, f) (c->SF[(r) * SF_SIZE + (f)])
#define QB(s, j) (c->qbuf[(s) * c->QC + (j)])
#define RB(s, j) (c->rbuf[(s) * c->QC + (j)])
#define PD(s, j) (c->pdec[(s) * c->QC + (j)])
#define PC(s, j, f) (c->pchk[((s) * c->QC + (j)) * 3 + (f)])
#define PA(s, j, f) (c->padm[((s) * c->QC + (j)) * 2 + (f)])

static i64 ceil_div(i64 a, i64 b) { /* Python's -(-a // b), b > 0 */
    i64 q = a / b, r = a % b;
    if (r != 0 && ((r > 0) == (b > 0))) q += 1;
    return q;
}

static i64 pymod(i64 a, i64 b) { /* Python's a % b, b > 0 */
    i64 r = a % b;
    return r < 0 ? r + b : r;
}

/* ---- the event queue ---------------------------------------------------------------- */
static int before(Core *c, i64 a, i64 b) {
    if (c->ht[a] != c->ht[b]) return c->ht[a] < c->ht[b];
    if (c->hi[a * 4] != c->hi[b * 4]) return c->hi[a * 4] < c->hi[b * 4];
    return c->hi[a * 4 + 1] < c->hi[b * 4 + 1];
}

static void swap(Core *c, i64 a, i64 b) {
    double t = c->ht[a];
    c->ht[a] = c->ht[b];
    c->ht[b] = t;
    for (int k = 0; k < 4; k++) {
        i64 x = c->hi[a * 4 + k];
        c->hi[a * 4 + k] = c->hi[b * 4 + k];
        c->hi[b * 4 + k] = x;
    }
}

/* Schedule an event at time t; its insertion id (-1: the queue is full). */
static i64 push(Core *c, double t, i64 prio, i64 kind, i64 target) {
    i64 n = c->G[G_HN];
    if (n >= c->H) return -1;
    i64 eid = c->G[G_EID]++;
    c->ht[n] = t;
    c->hi[n * 4] = prio;
    c->hi[n * 4 + 1] = eid;
    c->hi[n * 4 + 2] = kind;
    c->hi[n * 4 + 3] = target;
    c->G[G_HN] = n + 1;
    i64 i = n;
    while (i > 0) {
        i64 p = (i - 1) / 2;
        if (!before(c, i, p)) break;
        swap(c, i, p);
        i = p;
    }
    return eid;
}

static void pop(Core *c, double *t, i64 *eid, i64 *kind, i64 *target) {
    *t = c->ht[0];
    *eid = c->hi[1];
    *kind = c->hi[2];
    *target = c->hi[3];
    i64 n = --c->G[G_HN];
    if (n <= 0) return;
    c->ht[0] = c->ht[n];
    for (int k = 0; k < 4; k++) c->hi[k] = c->hi[n * 4 + k];
    i64 i = 0;
    for (;;) {
        i64 l = 2 * i + 1;
        if (l >= n) break;
        i64 j = l;
        if (l + 1 < n && before(c, l + 1, l)) j = l + 1;
        if (!before(c, j, i)) break;
        swap(c, i, j);
        i = j;
    }
}

/* ---- costs ------------------------------------------------------------------------------ */
/* CostModel.wait_power_w */
static double wait_power_w(Core *c, i64 tp, double gpu_s, double busy_j) {
    double k = c->PF[PF_STANDBY], w = c->PF[PF_WAITW];
    if (k == 0.0 || gpu_s <= 0) return w;
    double p_busy = busy_j / (tp * gpu_s);
    return w + k * (p_busy - w);
}

/* CostModel.power_limited: a CUDA-graph step's GPU time at the power limit */
static double power_limited(Core *c, double gpu_s, double busy_j) {
    double plimit = c->PF[PF_PLIMIT];
    if (c->PI[PI_STEP_LIMIT] && busy_j > plimit * gpu_s) return busy_j / plimit;
    return gpu_s;
}

/* StepPricer.price of server s's planned forward (no graph tokens, no miss, warm). 0: priced;
 * C_NEED_ROW: the rows table lacks its token count (G_NEED_ROW); C_FALLBACK: beyond the
 * tables. */
static int price_forward(Core *c, i64 s, i64 n_decode, i64 ctx_sum, double *wall_out,
                         double *energy_out) {
    const double *PF = c->PF;
    i64 n_pre = GV(s, V_NCHK);
    i64 new_sum = 0;
    double fl = 0.0, by = 0.0;
    int any_fresh = 0;
    double flops_c = PF[PF_FC], q_bytes = PF[PF_QB], kv_bytes = PF[PF_KVB_PRE];
    for (i64 i = 0; i < n_pre; i++) {
        i64 nw = PC(s, i, 1), past = PC(s, i, 2);
        new_sum += nw;
        fl += flops_c * ((double)(past * nw) + (double)(nw * (nw + 1)) / 2.0);
        by += q_bytes * (double)nw + kv_bytes * (double)(past + nw);
        if (past == 0) any_fresh = 1;
    }
    i64 tokens = new_sum + n_decode;
    if (tokens == 0) {
        *wall_out = 0.0;
        *energy_out = 0.0;
        return C_DONE;
    }
    i64 n_seqs = n_pre + n_decode;
    if (tokens >= c->T || n_seqs >= c->NMAX) return C_FALLBACK;
    if (c->rows_t[tokens] != c->rows_t[tokens]) { /* NaN: not computed yet */
        c->G[G_NEED_ROW] = tokens;
        return C_NEED_ROW;
    }
    const double *h = c->head + n_seqs * 4;
    double t_const = c->rows_t[tokens] + h[0] + h[2]; /* CostModel._layer_const */
    double e_const = c->rows_e[tokens] + h[1] + h[3];
    double plimit = PF[PF_PLIMIT];
    int step_limit = (int)c->PI[PI_STEP_LIMIT];
    double t = 0.0, e = 0.0;
    if (n_pre) {
        const double *f = PF + PF_PRE;
        double tc = fl / f[0], tm = by / f[1];
        double g = (tc > tm ? tc : tm) + f[2];
        if (g > 0) {
            double ge = f[3] * g + f[4] * tc + f[5] * tm;
            t += g;
            e += ge < plimit * g || step_limit ? ge : plimit * g;
        }
    }
    if (n_decode) {
        const double *f = PF + PF_DEC;
        double tc = flops_c * (double)ctx_sum / f[0];
        double tm = (PF[PF_DECKV] * (double)ctx_sum * PF[PF_KVB] + PF[PF_DECQ] * (double)n_decode)
                    / f[1];
        double g = (tc > tm ? tc : tm) + f[2];
        if (g > 0) {
            double ge = f[3] * g + f[4] * tc + f[5] * tm;
            t += g;
            e += ge < plimit * g || step_limit ? ge : plimit * g;
        }
    }
    i64 L = c->PI[PI_LAYERS], tp = c->PI[PI_TP];
    double busy = e_const + (double)L * e;
    double gpu = power_limited(c, t_const + (double)L * t, busy);
    double host = PF[PF_HOSTFIX] + PF[PF_PERSEQ] * (double)n_seqs;
    double wall = gpu > host ? gpu : host;
    if (n_pre) {
        wall += PF[PF_SERIAL] * (gpu < host ? gpu : host);
        if (PF[PF_SETUP] != 0.0 && any_fresh) wall += PF[PF_SETUP];
    }
    double wait_e = wait_power_w(c, tp, gpu, (double)tp * busy) * (wall - gpu);
    *wall_out = wall;
    *energy_out = (double)tp * (busy + wait_e);
    return C_DONE;
}

/* DecodePricer's attention group of one decode step, per layer */
static void attn_decode(Core *c, i64 ctx_sum, double bytes_n, double *t_out, double *e_out) {
    const double *PF = c->PF, *f = c->PF + PF_DEC;
    double tc = PF[PF_DFC] * (double)ctx_sum / f[0];
    double tm = (PF[PF_DBC] * (double)ctx_sum * PF[PF_KVB] + bytes_n) / f[1];
    double t = (tc >= tm ? tc : tm) + 1 * f[2];
    if (t <= 0) {
        *t_out = *e_out = 0.0;
        return;
    }
    double e = f[3] * t + f[4] * tc + f[5] * tm;
    double lim = PF[PF_PLIMIT] * t;
    if (lim < e && !c->PI[PI_STEP_LIMIT]) e = lim;
    *t_out = t;
    *e_out = e;
}

/* DecodePricer.gpu_busy(n, ctx_sum) */
static void gpu_busy(Core *c, i64 n, i64 ctx_sum, double *gpu, double *busy) {
    const double *d = c->dconst + n * 4;
    double t, e;
    attn_decode(c, ctx_sum, d[3], &t, &e);
    i64 L = c->PI[PI_LAYERS];
    double e_step = d[1] + (double)L * e;
    *gpu = power_limited(c, d[0] + (double)L * t, e_step);
    *busy = (double)c->PI[PI_TP] * e_step;
}

/* DecodeSegment.time(k) of server s's decode run */
static double seg_time(Core *c, i64 s, i64 k) {
    i64 sa = GV(s, V_SEG_SALL);
    double host = GVF(s, VF_HOST);
    if (sa < 0 || sa > k) return (double)k * host;
    i64 n = k - sa;
    if (n <= 0) return (double)sa * host + 0.0;
    return (double)sa * host
           + ((double)n * GVF(s, VF_GPU0) + GVF(s, VF_DGPU) * (double)(sa + k - 1) * (double)n / 2.0);
}

/* costmodel._sum_affine */
static double sum_affine(double a, double b, i64 j0, i64 j1) {
    i64 n = j1 - j0;
    if (n <= 0) return 0.0;
    return (double)n * a + b * (double)(j0 + j1 - 1) * (double)n / 2.0;
}

/* psi(x), x > 0 (Cephes psi.c, which scipy.special.digamma follows away from its root) */
static double digamma(double x) {
    static const double A[7] = {8.33333333333333333333E-2, -2.10927960927960927961E-2,
                                7.57575757575757575758E-3, -4.16666666666666666667E-3,
                                3.96825396825396825397E-3, -8.33333333333333333333E-3,
                                8.33333333333333333333E-2};
    if (x <= 10.0 && x == floor(x)) {
        double y = 0.0;
        i64 n = (i64)x;
        for (i64 i = 1; i < n; i++) y += 1.0 / (double)i;
        return y - 0.57721566490153286061;
    }
    double w = 0.0, s = x, y = 0.0;
    while (s < 10.0) {
        w += 1.0 / s;
        s += 1.0;
    }
    if (s < 1.0e17) {
        double z = 1.0 / (s * s), p = A[0];
        for (int i = 1; i < 7; i++) p = p * z + A[i];
        y = z * p;
    }
    return log(s) - (0.5 / s) - y - w;
}

/* CPython's float ** int for the small powers _sum_ratio takes */
static double pypow(double x, int p) {
    if (p == 0) return 1.0;
    if (x < 0.0) {
        double r = pow(-x, (double)p);
        return (p % 2) ? -r : r;
    }
    return pow(x, (double)p);
}

/* costmodel._sum_ratio; 0 where its integer sums would overflow (then *ok = 0) */
static double sum_ratio(double b0, double db, double g0, double dg, i64 n, int *ok) {
    if (n <= 0) return 0.0;
    double x = dg / g0;
    i64 m = n - 1;
    if (fabs(x) * (double)m < 1e-3) {
        if (m > WIDE_MAX_M) { /* its integer sums would overflow `wide` */
            *ok = 0;
            return 0.0;
        }
        double S[5];
        S[0] = (double)n;
        S[1] = (double)(m * n) / 2.0;
        S[2] = (double)(wide)(m * n * (wide)(2 * m + 1)) / 6.0;
        S[3] = pypow((double)(m * n) / 2.0, 2);
        S[4] = (double)((wide)(m * n) * (2 * m + 1) * (3 * m * m + 3 * m - 1)) / 30.0;
        double inv = 0.0, inv_j = 0.0;
        for (int p = 0; p < 5; p++) inv += pypow(-x, p) * S[p];
        for (int p = 0; p < 4; p++) inv_j += pypow(-x, p) * S[p + 1];
        return (b0 * inv + db * inv_j) / g0;
    }
    if (dg < 0) {
        double total = 0.0;
        for (i64 j = 0; j < n; j++) total += (b0 + db * (double)j) / (g0 + dg * (double)j);
        return total;
    }
    double a = g0 / dg;
    double harm = (digamma(a + (double)n) - digamma(a)) / dg;
    return db / dg * (double)n + (b0 - db * a) * harm;
}

/* DecodeSegment.energy(k) */
static double seg_energy(Core *c, i64 s, i64 k, int *ok) {
    i64 sa = GV(s, V_SEG_SALL);
    i64 sp = (sa < 0 || sa > k) ? k : sa;
    double busy0 = GVF(s, VF_BUSY0), dbusy = GVF(s, VF_DBUSY);
    double gpu0 = GVF(s, VF_GPU0), dgpu = GVF(s, VF_DGPU);
    double host = GVF(s, VF_HOST), wait_w = GVF(s, VF_WAITW);
    double busy = k > 0 ? (double)k * busy0 + dbusy * (double)(k - 1) * (double)k / 2.0 : 0.0;
    double gpu = sp > 0 ? (double)sp * gpu0 + dgpu * (double)(sp - 1) * (double)sp / 2.0 : 0.0;
    double idle_s = (double)sp * host - gpu;
    double sk = c->PF[PF_STANDBY];
    if (sk == 0.0) return busy + wait_w * idle_s;
    double standby = host * sum_ratio(busy0, dbusy, gpu0, dgpu, sp, ok) - sum_affine(busy0, dbusy, 0, sp);
    return busy + (1.0 - sk) * wait_w * idle_s + sk * standby;
}

/* math.isclose(a, b, rel_tol=rel_tol) */
static int isclose(double a, double b, double rel_tol) {
    if (a == b) return 1;
    if (isinf(a) || isinf(b)) return 0;
    double diff = fabs(b - a);
    return (diff <= fabs(rel_tol * b)) || (diff <= fabs(rel_tol * a));
}

/* DecodeSegment.is_affine_over(k) */
static int seg_affine_over(Core *c, i64 s, i64 k) {
    if (k <= 2) return 1;
    i64 n = GV(s, V_SEG_N);
    double gpu, busy;
    gpu_busy(c, n, GV(s, V_SEG_CTX) + n * (k - 1), &gpu, &busy);
    double gpu_pred = GVF(s, VF_GPU0) + GVF(s, VF_DGPU) * (double)(k - 1);
    double busy_pred = GVF(s, VF_BUSY0) + GVF(s, VF_DBUSY) * (double)(k - 1);
    return isclose(gpu, gpu_pred, 1e-9) && isclose(busy, busy_pred, 1e-9);
}

/* DecodeSegment._guess */
static i64 seg_guess(Core *c, i64 s, double elapsed) {
    i64 sa = GV(s, V_SEG_SALL);
    double host = GVF(s, VF_HOST);
    if (sa < 0 || elapsed <= (double)sa * host) return host > 0 ? (i64)ceil(elapsed / host) : 0;
    double dgpu = GVF(s, VF_DGPU);
    double rest = elapsed - (double)sa * host;
    double g = GVF(s, VF_GPU0) + dgpu * (double)sa;
    double b = g - dgpu / 2.0;
    double disc = b * b + 2.0 * dgpu * rest;
    if (disc <= 0 || b + sqrt(disc) <= 0) return sa + 1;
    return sa + (i64)ceil(2.0 * rest / (b + sqrt(disc)));
}

/* DecodeSegment.steps_to_reach */
static i64 seg_steps_to_reach(Core *c, i64 s, double elapsed, i64 k_max) {
    if (elapsed <= 0.0 || k_max <= 0) return 0;
    i64 k = seg_guess(c, s, elapsed);
    if (k < 1) k = 1;
    if (k > k_max) k = k_max;
    while (k > 0 && seg_time(c, s, k - 1) >= elapsed) k--;
    while (k < k_max && seg_time(c, s, k) < elapsed) k++;
    return k;
}

/* DecodeSegment.last_step_power_per_gpu(k) */
static double seg_last_power(Core *c, i64 s, i64 k) {
    i64 j = k - 1;
    double gpu = GVF(s, VF_GPU0) + GVF(s, VF_DGPU) * (double)j;
    double host = GVF(s, VF_HOST);
    double wall = gpu > host ? gpu : host; /* max(gpu, host): the first of equals */
    if (!(host > gpu)) wall = gpu;
    double busy = GVF(s, VF_BUSY0) + GVF(s, VF_DBUSY) * (double)j;
    double p_wait = GVF(s, VF_WAITW);
    double sk = c->PF[PF_STANDBY];
    if (sk != 0.0 && gpu > 0) p_wait = (1.0 - sk) * GVF(s, VF_WAITW) + sk * busy / gpu;
    double e = busy + p_wait * (wall - gpu);
    return wall > 0 ? e / wall / (double)c->PI[PI_TP] : 0.0;
}

/* CostModel.decode_segment(n, ctx_sum0) into server s's segment fields */
static void seg_build(Core *c, i64 s, i64 n, i64 ctx_sum0) {
    const double *d = c->dconst + n * 4;
    i64 L = c->PI[PI_LAYERS], tp = c->PI[PI_TP];
    double t, e, t1, e1;
    attn_decode(c, ctx_sum0, d[3], &t, &e);
    attn_decode(c, ctx_sum0 + n, d[3], &t1, &e1);
    double e_step = d[1] + (double)L * e, e_step1 = d[1] + (double)L * e1;
    double gpu0 = power_limited(c, d[0] + (double)L * t, e_step), busy0 = (double)tp * e_step;
    double gpu1 = power_limited(c, d[0] + (double)L * t1, e_step1), busy1 = (double)tp * e_step1;
    double dgpu = gpu1 - gpu0, host = d[2];
    GVF(s, VF_GPU0) = gpu0;
    GVF(s, VF_DGPU) = dgpu;
    GVF(s, VF_BUSY0) = busy0;
    GVF(s, VF_DBUSY) = busy1 - busy0;
    GVF(s, VF_HOST) = host;
    GVF(s, VF_WAITW) = c->PF[PF_WAITW] * (double)tp;
    GV(s, V_SEG_N) = n;
    GV(s, V_SEG_CTX) = ctx_sum0;
    if (gpu0 >= host)
        GV(s, V_SEG_SALL) = 0;
    else if (dgpu <= 0)
        GV(s, V_SEG_SALL) = -1;
    else {
        i64 sa = (i64)ceil((host - gpu0) / dgpu);
        GV(s, V_SEG_SALL) = sa > 0 ? sa : 0;
    }
}

/* ---- records ------------------------------------------------------------------------------ */
/* Ledger.note_queue(now, len(queue)) of server s */
static void note_queue(Core *c, i64 s, double now) {
    i64 j = GV(s, V_NQN)++;
    c->n_t[s * c->CH + j] = now;
    c->n_l[s * c->CH + j] = (int32_t)GV(s, V_QLEN);
}

/* Ledger.add_busy of server s's replica */
static void ledger_add(Core *c, i64 s, double start, double end, double energy, i64 batch,
                       double p_last) {
    i64 n = GV(s, V_NLED), total = GV(s, V_LED_BASE) + n;
    if (total == 0 || start != GVF(s, VF_LAST_END)) {
        i64 gi = GV(s, V_NGAP)++;
        c->g_at[s * c->CH + gi] = total;
        c->g_st[s * c->CH + gi] = start;
        c->g_p[s * c->CH + gi] = GV(s, V_HAS_PPREV) ? GVF(s, VF_PPREV) : c->PF[PF_ACTIVE_IDLE];
    }
    c->l_end[s * c->CH + n] = end;
    c->l_en[s * c->CH + n] = energy;
    c->l_b[s * c->CH + n] = (int32_t)batch;
    GV(s, V_NLED) = n + 1;
    GVF(s, VF_LAST_END) = end;
    GVF(s, VF_PPREV) = p_last;
    GV(s, V_HAS_PPREV) = 1;
}

static void put_i32(Core *c, i64 i, int f, i64 v) {
    int32_t x = (int32_t)v;
    memcpy(c->rows + i * c->itemsize + c->off[f], &x, 4);
}

static void put_f64(Core *c, i64 i, int f, double v) {
    memcpy(c->rows + i * c->itemsize + c->off[f], &v, 8);
}

/* RequestLog.close of the request in `slot`: its outcome into the columns */
static void write_row(Core *c, i64 slot, i64 status, double t_finish) {
    i64 i = SLI(slot, S_RID);
    int8_t st = (int8_t)status;
    put_i32(c, i, 0, SLI(slot, S_REPLICA));
    memcpy(c->rows + i * c->itemsize + c->off[1], &st, 1);
    put_f64(c, i, 2, SLF(slot, SF_TSTART));
    put_f64(c, i, 3, SLF(slot, SF_TFIRST));
    put_f64(c, i, 4, t_finish);
    put_i32(c, i, 5, SLI(slot, S_CPROMPT));
    put_i32(c, i, 6, SLI(slot, S_GEN));
    put_f64(c, i, 7, SLF(slot, SF_EPRE));
    put_f64(c, i, 8, SLF(slot, SF_EDEC));
}

static void free_slot(Core *c, i64 slot) {
    SLI(slot, S_RID) = -1;
    c->FREE[c->G[G_SLOT_TOP]++] = slot;
}

/* ---- the scheduler (TgiScheduler) ------------------------------------------------------------ */
static i64 reserve(Core *c, i64 slot) { /* _reserve: prompt + max_new_tokens - 1 tokens */
    return ceil_div(SLI(slot, S_PROMPT) + SLI(slot, S_OUTPUT) - 1, c->PI[PI_BS]);
}

static int decoding(Core *c, i64 r) {
    return SLI(r, S_GEN) >= 1 && SLI(r, S_PREF) >= SLI(r, S_PROMPT);
}

static i64 current_tokens(Core *c, i64 s) { /* _current_tokens */
    i64 n = 0;
    for (i64 j = 0; j < GV(s, V_RLEN); j++) {
        i64 r = RB(s, j);
        n += decoding(c, r) ? 1 : SLI(r, S_NEXT);
    }
    return n;
}

static void take(Core *c, i64 s, i64 slot, i64 blocks) {
    GV(s, V_QHEAD) = pymod(GV(s, V_QHEAD) + 1, c->QC);
    GV(s, V_QLEN) -= 1;
    GV(s, V_FREE_BLOCKS) -= blocks;
    SLI(slot, S_BLOCKS) += blocks;
}

/* _next_batch: the requests taken into padm[s] (slot, chunk); how many */
static i64 next_batch(Core *c, i64 s, double now, int has_min, i64 min_size, int has_max,
                      i64 max_size, i64 budget) {
    i64 qlen = GV(s, V_QLEN);
    if (qlen == 0 || (has_min && qlen < min_size)) return 0;
    if (has_max && max_size == 0) return 0;
    i64 bs = c->PI[PI_BS];
    budget = ceil_div(budget, bs) * bs;
    int chunked = c->PI[PI_CHUNKED] != 0;
    i64 npick = 0, prefill_tokens = 0, h0 = GV(s, V_QHEAD);
    for (i64 j = 0; j < qlen; j++) {
        i64 slot = QB(s, pymod(h0 + j, c->QC));
        i64 blocks = reserve(c, slot);
        if (blocks > GV(s, V_FREE_BLOCKS)) break;
        i64 prompt = SLI(slot, S_PROMPT);
        if (prefill_tokens + prompt > budget) {
            if (chunked) {
                i64 chunk = budget - prefill_tokens;
                if (chunk > 0) {
                    take(c, s, slot, blocks);
                    PA(s, npick, 0) = slot;
                    PA(s, npick, 1) = chunk;
                    npick++;
                }
            }
            break;
        }
        take(c, s, slot, blocks);
        PA(s, npick, 0) = slot;
        PA(s, npick, 1) = prompt;
        npick++;
        prefill_tokens += prompt;
        if (has_max && npick == max_size) break;
    }
    if (has_min && npick < min_size) {
        for (i64 j = npick - 1; j >= 0; j--) { /* put back in order, release their blocks */
            i64 slot = PA(s, j, 0);
            GV(s, V_FREE_BLOCKS) += SLI(slot, S_BLOCKS);
            SLI(slot, S_BLOCKS) = 0;
            i64 h = pymod(GV(s, V_QHEAD) - 1, c->QC);
            GV(s, V_QHEAD) = h;
            QB(s, h) = slot;
            GV(s, V_QLEN) += 1;
        }
        return 0;
    }
    note_queue(c, s, now);
    return npick;
}

/* _forward: the plan's decodes (pdec) and chunks (pchk: slot, tokens, past); the picked
 * requests admitted */
static void forward(Core *c, i64 s, i64 npick, int with_running) {
    i64 ndec = 0, nchk = 0;
    if (with_running) {
        for (i64 j = 0; j < GV(s, V_RLEN); j++) {
            i64 r = RB(s, j);
            if (decoding(c, r)) {
                PD(s, ndec++) = r;
            } else {
                PC(s, nchk, 0) = r;
                PC(s, nchk, 1) = SLI(r, S_NEXT);
                PC(s, nchk, 2) = SLI(r, S_PREF);
                nchk++;
            }
        }
    }
    for (i64 j = 0; j < npick; j++) {
        i64 r = PA(s, j, 0);
        SLI(r, S_CPROMPT) = SLI(r, S_PROMPT);
        PC(s, nchk, 0) = r;
        PC(s, nchk, 1) = PA(s, j, 1);
        PC(s, nchk, 2) = SLI(r, S_PREF);
        nchk++;
    }
    GV(s, V_NDEC) = ndec;
    GV(s, V_NCHK) = nchk;
    GV(s, V_NADM) = npick;
}

static i64 floor_ratio(Core *c, i64 n) { /* math.floor(n * waiting_served_ratio) */
    return (i64)floor((double)n * c->PF[PF_WSR]);
}

/* _steps_until_admissible (BIG for math.inf) */
static i64 steps_until_admissible(Core *c, i64 s) {
    if (GV(s, V_QLEN) == 0) return BIG;
    i64 head = QB(s, GV(s, V_QHEAD));
    if (reserve(c, head) > GV(s, V_FREE_BLOCKS)) return BIG;
    if (c->PI[PI_CHUNKED]) return c->PI[PI_MAXBPT] - current_tokens(c, s) > 0 ? 1 : BIG;
    if (SLI(head, S_PROMPT) > c->PI[PI_MAXBPT]) return BIG;
    if (c->PI[PI_MBS] >= 0 && GV(s, V_RLEN) >= c->PI[PI_MBS]) return BIG;
    if (GV(s, V_QLEN) >= floor_ratio(c, GV(s, V_RLEN))) return 1;
    i64 w = c->PI[PI_MWT] - GV(s, V_WAITING_TOKENS);
    return w > 1 ? w : 1;
}

/* plan_step: 0 nothing to run, 1 a forward, 2 a decode run (of SEG_K steps at most) */
static int plan_step(Core *c, i64 s, double now) {
    int chunked = c->PI[PI_CHUNKED] != 0;
    i64 mbs = c->PI[PI_MBS], maxbpt = c->PI[PI_MAXBPT];
    for (;;) {
        if (!GV(s, V_MID_ITER)) {
            if (GV(s, V_RLEN) == 0) {
                if (GV(s, V_QLEN) == 0) return 0;
                i64 npick = next_batch(c, s, now, 0, 0, mbs >= 0, mbs, maxbpt);
                if (npick == 0) return 0;
                forward(c, s, npick, 0);
                return 1;
            }
            if (GV(s, V_QLEN)) {
                int has_min = 0, has_max = 0;
                i64 min_size = 0, max_size = 0, budget;
                if (chunked) {
                    budget = maxbpt - current_tokens(c, s);
                    if (budget < 0) budget = 0;
                } else {
                    has_min = !(GV(s, V_WAITING_TOKENS) >= c->PI[PI_MWT]);
                    min_size = floor_ratio(c, GV(s, V_RLEN));
                    has_max = mbs >= 0;
                    max_size = mbs - GV(s, V_RLEN);
                    budget = maxbpt;
                }
                i64 npick = next_batch(c, s, now, has_min, min_size, has_max, max_size, budget);
                if (npick) {
                    GV(s, V_MID_ITER) = 1;
                    forward(c, s, npick, chunked);
                    return 1;
                }
            }
        }
        GV(s, V_MID_ITER) = 0;
        if (GV(s, V_RLEN) == 0) continue;
        i64 left = BIG, nr = GV(s, V_RLEN);
        for (i64 j = 0; j < nr; j++) {
            i64 r = RB(s, j);
            if (SLI(r, S_GEN) < 1 || SLI(r, S_PREF) < SLI(r, S_PROMPT)) {
                forward(c, s, 0, 1);
                return 1;
            }
            PD(s, j) = r;
            if (SLI(r, S_OUTPUT) - SLI(r, S_GEN) < left) left = SLI(r, S_OUTPUT) - SLI(r, S_GEN);
        }
        GV(s, V_NDEC) = nr;
        GV(s, V_NCHK) = 0;
        GV(s, V_NADM) = 0;
        i64 k = steps_until_admissible(c, s);
        GV(s, V_SEG_K) = left < k ? left : k;
        GV(s, V_RUN_LEFT) = left;
        return 2;
    }
}

/* _retire: free and finish every running request with all its tokens */
static void retire(Core *c, i64 s, double now) {
    i64 kept = 0;
    for (i64 j = 0; j < GV(s, V_RLEN); j++) {
        i64 r = RB(s, j);
        if (SLI(r, S_GEN) >= SLI(r, S_OUTPUT) && SLI(r, S_GEN) >= 1
            && SLI(r, S_PREF) >= SLI(r, S_PROMPT)) {
            GV(s, V_FREE_BLOCKS) += SLI(r, S_BLOCKS);
            SLI(r, S_BLOCKS) = 0;
            GV(s, V_IN_FLIGHT) -= 1;
            write_row(c, r, c->PI[PI_ST_OK], now);
            free_slot(c, r);
        } else {
            RB(s, kept++) = r;
        }
    }
    GV(s, V_RLEN) = kept;
}

/* _plan_chunks: next chunk per prefilling request, budget shared newest-last */
static void plan_chunks(Core *c, i64 s) {
    i64 budget = c->PI[PI_MAXBPT] - (GV(s, V_RLEN) - 1);
    for (i64 j = GV(s, V_RLEN) - 1; j >= 0; j--) {
        i64 r = RB(s, j);
        i64 left = SLI(r, S_PROMPT) - SLI(r, S_PREF);
        if (left > 0) {
            i64 nc = left < budget ? left : budget;
            SLI(r, S_NEXT) = nc > 1 ? nc : 1;
            budget -= SLI(r, S_NEXT);
        }
    }
}

/* commit of a forward (steps = 1) */
static void commit_forward(Core *c, i64 s, double now) {
    if (GV(s, V_NADM))
        GV(s, V_WAITING_TOKENS) = 1;
    else
        GV(s, V_WAITING_TOKENS) += 1;
    for (i64 j = 0; j < GV(s, V_NDEC); j++) SLI(PD(s, j), S_GEN) += 1;
    for (i64 j = 0; j < GV(s, V_NCHK); j++) {
        i64 r = PC(s, j, 0);
        SLI(r, S_PREF) += PC(s, j, 1);
        if (SLI(r, S_PREF) >= SLI(r, S_PROMPT)) {
            SLI(r, S_GEN) = 1;
            SLF(r, SF_TFIRST) = now;
        }
    }
    i64 n = GV(s, V_RLEN);
    for (i64 j = 0; j < GV(s, V_NADM); j++) RB(s, n++) = PA(s, j, 0);
    GV(s, V_RLEN) = n;
    retire(c, s, now);
    plan_chunks(c, s);
}

/* commit of a decode run that ran `steps` steps */
static void commit_decode(Core *c, i64 s, i64 steps, double now) {
    GV(s, V_WAITING_TOKENS) += steps;
    for (i64 j = 0; j < GV(s, V_NDEC); j++) SLI(PD(s, j), S_GEN) += steps;
    if (steps >= GV(s, V_RUN_LEFT)) retire(c, s, now);
}

/* ---- the servers (Server.run, submit, _cut) ------------------------------------------------ */
/* Replica.book_forward: the step's energy shared by its requests by tokens */
static void book_forward(Core *c, i64 s, double end) {
    double energy = GVF(s, VF_ENERGY);
    i64 total = GV(s, V_NDEC);
    for (i64 j = 0; j < GV(s, V_NCHK); j++) total += PC(s, j, 1);
    double part = energy * 1 / (double)total;
    for (i64 j = 0; j < GV(s, V_NDEC); j++) SLF(PD(s, j), SF_EDEC) += part;
    for (i64 j = 0; j < GV(s, V_NCHK); j++)
        SLF(PC(s, j, 0), SF_EPRE) += energy * (double)PC(s, j, 1) / (double)total;
    ledger_add(c, s, GVF(s, VF_START), end, energy, GV(s, V_NDEC) + GV(s, V_NCHK), GVF(s, VF_PGPU));
    GV(s, V_STEPS) += 1;
}

/* Replica.book_decode: `done` steps' energy shared equally by the batch; 0 where the
 * energy's closed form fell outside this loop's cases */
static int book_decode(Core *c, i64 s, i64 done, double end) {
    if (done == 0) return 1;
    i64 n = GV(s, V_NDEC);
    int ok = 1;
    double energy = seg_energy(c, s, done, &ok);
    double share = energy / (double)n;
    for (i64 j = 0; j < n; j++) SLF(PD(s, j), SF_EDEC) += share;
    ledger_add(c, s, GVF(s, VF_START), end, energy, n, seg_last_power(c, s, done));
    GV(s, V_STEPS) += done;
    return ok;
}

/* price server s's planned forward and sleep until its end */
static int start_forward(Core *c, i64 s, double now) {
    i64 ndec = GV(s, V_NDEC), ctx = 0;
    for (i64 j = 0; j < ndec; j++) {
        i64 r = PD(s, j);
        ctx += SLI(r, S_PROMPT) + SLI(r, S_GEN);
    }
    double wall, energy;
    int code = price_forward(c, s, ndec, ctx, &wall, &energy);
    if (code == C_NEED_ROW) {
        c->G[G_NEED_SRV] = s;
        return C_NEED_ROW;
    }
    if (code != C_DONE) return code;
    GVF(s, VF_WALL) = wall;
    GVF(s, VF_ENERGY) = energy;
    GVF(s, VF_PGPU) = wall > 0 ? energy / wall / (double)c->PI[PI_TP] : 0.0;
    GV(s, V_PHASE) = PH_FORWARD;
    i64 eid = push(c, now + wall, NORMAL, K_SERVER, s);
    if (eid < 0) return C_FALLBACK;
    GV(s, V_EID) = eid;
    return C_DONE;
}

/* Server.run from its plan_step on: plan, then wait, run a forward or a decode run */
static int go(Core *c, i64 s, double now) {
    int kind = plan_step(c, s, now);
    if (kind == 0) {
        if (GV(s, V_CLOSED) && GV(s, V_QLEN) == 0 && GV(s, V_RLEN) == 0) {
            GV(s, V_PHASE) = PH_DONE;
        } else {
            GV(s, V_PHASE) = PH_WAIT;
            GV(s, V_WAKE_TRIG) = 0;
        }
        return C_DONE;
    }
    GVF(s, VF_START) = now;
    if (kind == 1) {
        for (i64 j = 0; j < GV(s, V_NADM); j++) {
            i64 r = PA(s, j, 0);
            if (SLF(r, SF_TSTART) != SLF(r, SF_TSTART)) SLF(r, SF_TSTART) = now;
        }
        return start_forward(c, s, now);
    }
    i64 n = GV(s, V_NDEC), ctx = 0;
    for (i64 j = 0; j < n; j++) {
        i64 r = PD(s, j);
        ctx += SLI(r, S_PROMPT) + SLI(r, S_GEN);
    }
    i64 k = GV(s, V_SEG_K);
    if (!c->PI[PI_FF]) k = 1;
    seg_build(c, s, n, ctx);
    while (k > 2 && !seg_affine_over(c, s, k)) {
        k = k / 2;
        if (k < 2) k = 2;
    }
    GV(s, V_SEG_K) = k;
    GV(s, V_SEG_DONE) = k;
    i64 eid = push(c, now + seg_time(c, s, k), NORMAL, K_SERVER, s);
    if (eid < 0) return C_FALLBACK;
    GV(s, V_EID) = eid;
    GV(s, V_IN_SEG) = 1;
    GV(s, V_PHASE) = PH_DECODE;
    return C_DONE;
}

/* server s's process resumed at `now`: book and commit what ran, then go on */
static int resume_server(Core *c, i64 s, double now) {
    i64 ph = GV(s, V_PHASE);
    if (ph == PH_FORWARD) {
        book_forward(c, s, now);
        commit_forward(c, s, now);
    } else if (ph == PH_DECODE) {
        GV(s, V_IN_SEG) = 0;
        i64 done = GV(s, V_SEG_DONE);
        if (!book_decode(c, s, done, now)) return C_FALLBACK;
        commit_decode(c, s, done, now);
    } else if (ph == PH_WAIT) {
        GV(s, V_WAKE_TRIG) = 0;
    }
    return go(c, s, now);
}

/* Server._cut: end the decode run at the end of its step in progress */
static int cut(Core *c, i64 s, double now) {
    GV(s, V_IN_SEG) = 0;
    double start = GVF(s, VF_START);
    i64 done = seg_steps_to_reach(c, s, now - start, GV(s, V_SEG_K));
    double end = start + seg_time(c, s, done);
    GV(s, V_SEG_DONE) = done;
    double delay = now < end ? end - now : 0.0;
    i64 eid = push(c, now + delay, NORMAL, K_SERVER, s);
    GV(s, V_EID) = eid;
    return eid >= 0;
}

/* Server.submit of request i to server s (admit, enqueue, wake or cut); 0: the event queue
 * is full */
static int submit(Core *c, i64 s, i64 i, double now) {
    int was_empty = GV(s, V_QLEN) == 0;
    i64 p = c->prm[i], o = c->outp[i], status = -1;
    if (GV(s, V_IN_FLIGHT) >= c->PI[PI_MAXCONC])
        status = c->PI[PI_ST_QFULL];
    else if (p > c->PI[PI_MAXINPUT] || p + o > c->PI[PI_MAXTOTAL])
        status = c->PI[PI_ST_TOOLONG];
    if (status >= 0) {
        int8_t st = (int8_t)status;
        put_i32(c, i, 0, s);
        memcpy(c->rows + i * c->itemsize + c->off[1], &st, 1);
        put_f64(c, i, 4, now);
        return 1;
    }
    GV(s, V_IN_FLIGHT) += 1;
    i64 slot = c->FREE[--c->G[G_SLOT_TOP]];
    SLI(slot, S_RID) = i;
    SLI(slot, S_PROMPT) = p;
    SLI(slot, S_OUTPUT) = o;
    SLI(slot, S_GEN) = SLI(slot, S_PREF) = SLI(slot, S_NEXT) = 0;
    SLI(slot, S_CPROMPT) = SLI(slot, S_BLOCKS) = 0;
    SLI(slot, S_REPLICA) = s;
    SLF(slot, SF_TSTART) = SLF(slot, SF_TFIRST) = NAN;
    SLF(slot, SF_EPRE) = SLF(slot, SF_EDEC) = 0.0;
    QB(s, pymod(GV(s, V_QHEAD) + GV(s, V_QLEN), c->QC)) = slot;
    GV(s, V_QLEN) += 1;
    note_queue(c, s, now);
    if (GV(s, V_PHASE) == PH_WAIT) {
        if (!GV(s, V_WAKE_TRIG)) {
            GV(s, V_WAKE_TRIG) = 1;
            i64 eid = push(c, now, NORMAL, K_SERVER, s);
            GV(s, V_EID) = eid;
            return eid >= 0;
        }
    } else if (GV(s, V_IN_SEG) && (was_empty || !c->PI[PI_CHUNKED])) {
        return cut(c, s, now);
    }
    return 1;
}

/* Balancer.pick (the only server when there is one) */
static i64 pick(Core *c) {
    i64 R = c->R;
    if (R == 1) return 0;
    if (c->PI[PI_LEAST]) {
        i64 best = 0, low = GV(0, V_QLEN) + GV(0, V_RLEN);
        for (i64 s = 1; s < R; s++) {
            i64 load = GV(s, V_QLEN) + GV(s, V_RLEN);
            if (load < low) {
                low = load;
                best = s;
            }
        }
        return best;
    }
    i64 i = c->G[G_RR];
    c->G[G_RR] = (i + 1) % R;
    return i;
}

/* whether the event queue and every server's record buffers have room for what one more
 * event (or one more submitted request) adds: at most a cut or a wake per server and a
 * timeout to the queue, an interval, a gap and a queue note per server to the records */
static int room(Core *c) {
    if (c->G[G_HN] + 2 * c->R + 2 > c->H) return 0;
    for (i64 s = 0; s < c->R; s++)
        if (GV(s, V_NLED) + 2 > c->CH || GV(s, V_NGAP) + 2 > c->CH || GV(s, V_NQN) + 2 > c->CH)
            return 0;
    return 1;
}

/* simulate's arrivals process: submit every request due, then sleep until the next (a timeout
 * of arrival - now); close the servers after the last */
static int resume_arrivals(Core *c, double now) {
    i64 *G = c->G;
    if (G[G_ARR_STATE] == ARR_WAIT)
        G[G_ARR_STATE] = ARR_DUE;
    else if (G[G_ARR_STATE] == ARR_INIT)
        G[G_ARR_STATE] = ARR_SCAN;
    for (;;) {
        if (G[G_ARR_STATE] == ARR_DUE) {
            if (!room(c)) return C_MORE_ROOM;
            i64 i = G[G_ARR_NEXT];
            if (!submit(c, pick(c), i, now)) return C_FALLBACK;
            G[G_ARR_NEXT] = i + 1;
            G[G_SUBMITTED] += 1;
            G[G_ARR_STATE] = ARR_SCAN;
        }
        i64 i = G[G_ARR_NEXT];
        if (i >= c->n) break;
        double a = c->arr[i];
        if (a > now) {
            if (push(c, now + (a - now), NORMAL, K_ARRIVAL, 0) < 0) return C_FALLBACK;
            G[G_ARR_STATE] = ARR_WAIT;
            return C_DONE;
        }
        G[G_ARR_STATE] = ARR_DUE;
    }
    for (i64 s = 0; s < c->R; s++) { /* Server.close */
        GV(s, V_CLOSED) = 1;
        if (GV(s, V_PHASE) == PH_WAIT && !GV(s, V_WAKE_TRIG)) {
            GV(s, V_WAKE_TRIG) = 1;
            i64 eid = push(c, now, NORMAL, K_SERVER, s);
            if (eid < 0) return C_FALLBACK;
            GV(s, V_EID) = eid;
        }
    }
    G[G_ARR_STATE] = ARR_DONE;
    return C_DONE;
}

/* the processes' Initialize events: the servers', then the arrivals' */
int tgi_start(Core *c) {
    for (i64 s = 0; s < c->R; s++) {
        i64 eid = push(c, 0.0, URGENT, K_SERVER, s);
        if (eid < 0) return C_FALLBACK;
        GV(s, V_EID) = eid;
    }
    if (push(c, 0.0, URGENT, K_ARRIVAL, 0) < 0) return C_FALLBACK;
    c->G[G_NEED_SRV] = -1;
    return C_DONE;
}

/* process events until none is left (C_DONE) or the caller has work to do (see the top) */
int tgi_run(Core *c) {
    i64 *G = c->G;
    int code;
    if (G[G_NEED_SRV] >= 0) { /* a forward waiting for its price (C_NEED_ROW) */
        i64 s = G[G_NEED_SRV];
        G[G_NEED_SRV] = -1;
        code = start_forward(c, s, c->GF[0]);
        if (code != C_DONE) return code;
    }
    if (G[G_ARR_STATE] == ARR_DUE || G[G_ARR_STATE] == ARR_SCAN) { /* an arrival in progress */
        code = resume_arrivals(c, c->GF[0]);
        if (code != C_DONE) return code;
    }
    while (G[G_HN] > 0) {
        if (!room(c)) return C_MORE_ROOM;
        if (G[G_SUBMITTED] >= c->progress_at) return C_PROGRESS;
        double t;
        i64 eid, kind, target;
        pop(c, &t, &eid, &kind, &target);
        c->GF[0] = t;
        if (kind == K_SERVER) {
            if (eid != GV(target, V_EID)) continue; /* a cut run's timeout: it moves the clock */
            code = resume_server(c, target, t);
        } else {
            code = resume_arrivals(c, t);
        }
        if (code != C_DONE) return code;
    }
    return C_DONE;
}

/* RequestLog.close_all: the requests still in the system, with `status` (unfinished) */
void tgi_finish_open(Core *c, i64 status) {
    for (i64 slot = 0; slot < c->NS; slot++)
        if (SLI(slot, S_RID) >= 0) write_row(c, slot, status, NAN);
}

/* ---- probes: the runner checks the loop's pricing against the Python pricers before a run;
 * they use server 0's plan and segment fields, which its first plan overwrites ---------- */
/* StepPricer.price of n_pre chunks (pchk[0][j][1], [2]: tokens, past) and n_decode decodes
 * of KV sum ctx_sum: out[0] wall, out[1] energy; the price_forward code */
int tgi_probe_forward(Core *c, i64 n_pre, i64 n_decode, i64 ctx_sum, double *out) {
    GV(0, V_NCHK) = n_pre;
    return price_forward(c, 0, n_decode, ctx_sum, out, out + 1);
}

/* CostModel.decode_segment(n, ctx0): out = time(k), energy(k), last_step_power_per_gpu(k),
 * steps_to_reach(elapsed, k), is_affine_over(k), and 1 where the energy's closed form is
 * covered */
void tgi_probe_segment(Core *c, i64 n, i64 ctx0, i64 k, double elapsed, double *out) {
    int ok = 1;
    seg_build(c, 0, n, ctx0);
    out[0] = seg_time(c, 0, k);
    out[1] = seg_energy(c, 0, k, &ok);
    out[2] = seg_last_power(c, 0, k);
    out[3] = (double)seg_steps_to_reach(c, 0, elapsed, k);
    out[4] = (double)seg_affine_over(c, 0, k);
    out[5] = (double)ok;
}
