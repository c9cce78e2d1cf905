"""Decode-only steps priced from constants memoised per batch size (a thin layer over
CostModel, which stays the reference).

A decode-only step of n sequences whose KV lengths sum to C costs, on the GPU,
``layer_const(n) + L * attn_decode(n, C)``: everything but attention depends on n alone, and
the attention kernel's FLOPs and bytes are affine in C. `DecodePricer.gpu_busy(n, C)` keeps
``layer_const(n)``, the host time and the byte term of n per n, and prices the attention group
with the same float operations in the same order as CostModel.step_cost (kernels.py's
attn_decode_kernel, CostModel.group_cost), so its GPU time and busy energy are bit-identical
to ``step_cost(StepWork(n_decode=n, decode_ctx_sum=C))`` (tests/cost/test_decodecost.py)
without building the step's dataclasses. Engines with packed attention (transformers CB)
price attention through CostModel._attention itself.
"""

from __future__ import annotations

from typing import Any


class DecodePricer:
    """GPU time, busy energy (all the replica's GPUs) and host time of decode-only steps of
    one CostModel, memoised per batch size n. `model` is the CostModel and `step_work` its
    StepWork class (passed in: this module imports nothing of costmodel.py, which uses it)."""

    def __init__(self, model: Any, step_work: type) -> None:
        self.model = model
        self.step_work = step_work
        c, tp = model.card, model.tp
        self.layers = c.num_hidden_layers
        self.nh = c.num_attention_heads // tp
        self.nkv = model.kv_read_heads  # the model card's KV heads, or more under a mask
        self.d = c.d_head
        self.packed = model.shape.packed_attention
        # attn_decode_kernel's FLOPs = (4.0*nh*d) * C; bytes = (2.0*nkv*d) * C * kv_bytes + const
        self._flops_per_ctx = 4.0 * self.nh * self.d
        self._bytes_per_ctx = 2.0 * self.nkv * self.d
        self._fit = None  # looked up on first use, as group_cost does
        self._per_n: dict[int, tuple[float, float, float, int]] = {}
        self._terms: tuple | None = None  # _flat(), on first use

    def _constants(self, n: int) -> tuple[float, float, float, int]:
        """(GPU time, busy energy of the token-wise kernels, host time, attention bytes that
        do not grow with the context) of a decode step of n sequences."""
        got = self._per_n.get(n)
        if got is None:
            m = self.model
            t_const, e_const = m._layer_const(m.step_rows(n), n)
            act = m.dt.act_bytes
            got = (t_const, e_const, m.host_s(n), 2 * n * self.nh * self.d * act)
            self._per_n[n] = got
        return got

    def host_s(self, n: int) -> float:
        """Host time of a decode-only step of n sequences (CostModel.host_s)."""
        return self._constants(n)[2]

    def gpu_busy(self, n: int, ctx_sum: int) -> tuple[float, float]:
        """(gpu_s, busy_energy_j) of step_cost(StepWork(n_decode=n, decode_ctx_sum=ctx_sum)),
        n >= 1, bit for bit."""
        got = self._per_n.get(n)
        return self._gpu_busy(n, ctx_sum, got if got is not None else self._constants(n))

    def first_two(self, n: int, ctx_sum: int) -> tuple[float, float, float, float, float]:
        """gpu_busy of the steps at ctx_sum and ctx_sum + n (a decode run's first two), and
        the host time: (gpu0, busy0, gpu1, busy1, host_s)."""
        got = self._per_n.get(n)
        if got is None:
            got = self._constants(n)
        if self.packed:
            gpu0, busy0 = self._gpu_busy(n, ctx_sum, got)
            gpu1, busy1 = self._gpu_busy(n, ctx_sum + n, got)
            return gpu0, busy0, gpu1, busy1, got[2]
        # _gpu_busy twice, inline (the same float operations: one call per decode run)
        m = self.model
        t_const, e_const, host, bytes_n = got
        fc, bc, kvb, peak, bw, t0, pb, wc, wm, plimit, layers, tp, step_limit = (
            self._terms or self._flat()
        )
        tc = fc * ctx_sum / peak
        tm = (bc * ctx_sum * kvb + bytes_n) / bw
        t = (tc if tc >= tm else tm) + t0
        if t <= 0:
            t = e = 0.0
        else:
            e = pb * t + wc * tc + wm * tm
            lim = plimit * t
            if lim < e and not step_limit:
                e = lim
        c1 = ctx_sum + n
        tc = fc * c1 / peak
        tm = (bc * c1 * kvb + bytes_n) / bw
        t1 = (tc if tc >= tm else tm) + t0
        if t1 <= 0:
            t1 = e1 = 0.0
        else:
            e1 = pb * t1 + wc * tc + wm * tm
            lim = plimit * t1
            if lim < e1 and not step_limit:
                e1 = lim
        limited = m.power_limited
        e_step, e_step1 = e_const + layers * e, e_const + layers * e1
        return (
            limited(t_const + layers * t, e_step),
            tp * e_step,
            limited(t_const + layers * t1, e_step1),
            tp * e_step1,
            host,
        )

    def _flat(self) -> tuple:
        """The constants of the attention group's pricing, one tuple (engines without packed
        attention): per-context FLOPs and bytes, kv bytes, the fit's six terms, the power
        limit, layers and tp."""
        m = self.model
        fit = self._fit
        if fit is None:
            fit = self._fit = m._fit("attn_decode", m.dt.act_dtype)
        self._terms = (
            self._flops_per_ctx,
            self._bytes_per_ctx,
            m.dt.kv_bytes,
            fit.peak_flops,
            fit.bandwidth,
            1 * fit.t0_s,
            fit.p_base_w,
            fit.w_compute,
            fit.w_memory,
            m._plimit,
            self.layers,
            m.tp,
            m.step_limit,
        )
        return self._terms

    def _gpu_busy(
        self, n: int, ctx_sum: int, constants: tuple[float, float, float, int]
    ) -> tuple[float, float]:
        m = self.model
        t_const, e_const, _, bytes_n = constants
        if self.packed:
            t_attn, e_attn = m._attention(self.step_work(n_decode=n, decode_ctx_sum=ctx_sum))
            return m.power_limited(t_const + t_attn, e_const + e_attn), m.tp * (e_const + e_attn)
        fc, bc, kvb, peak, bw, t0, pb, wc, wm, plimit, layers, tp, step_limit = (
            self._terms or self._flat()
        )
        tc = fc * ctx_sum / peak
        tm = (bc * ctx_sum * kvb + bytes_n) / bw
        t = (tc if tc >= tm else tm) + t0
        if t <= 0:
            t = e = 0.0
        else:
            e = pb * t + wc * tc + wm * tm
            lim = plimit * t
            if lim < e and not step_limit:
                e = lim
        e_step = e_const + layers * e
        return m.power_limited(t_const + layers * t, e_step), tp * e_step
