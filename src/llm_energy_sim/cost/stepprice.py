"""Any forward step of an engine without packed attention, priced without building its
StepWork, kernel groups or StepCost (a thin layer over CostModel, which stays the reference).

`StepPricer.price(prefill, n_decode, ctx_sum, graph_tokens)` returns the wall time and the
energy (all the replica's GPUs) of ``CostModel.step_cost(StepWork(prefill, n_decode, ctx_sum,
graph_tokens))`` bit for bit: the token-wise kernels come from the model's memoised
``_layer_const``, the attention groups are priced with the same float operations in the same
order as kernels.py (attn_prefill_kernel, batched, attn_decode_kernel) and
CostModel.group_cost, then the host, wait and serial terms as step_cost adds them
(tests/cost/test_stepprice.py). Kernel FLOPs and bytes are whole numbers below 2**53, so
their integer factors may be grouped differently without changing a bit.
"""

from __future__ import annotations

from typing import Any


class StepPricer:
    """Wall time and energy of the steps of one CostModel (engines with packed attention, and
    steps whose plan-cache shape matters, keep going through CostModel.step_cost)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        c, tp = model.card, model.tp
        self.tp = tp
        self.layers = c.num_hidden_layers
        nh, nkv, d = c.num_attention_heads // tp, model.kv_read_heads, c.d_head
        self.packed = model.shape.packed_attention
        self._flops_c = 4.0 * nh * d  # attention FLOPs per visible (query, key) pair
        self._q_bytes = 2 * nh * d * model.dt.act_bytes  # Q and O per new token
        self._kv_bytes = 2 * nkv * d * model.dt.kv_bytes  # K and V per token of context
        self._dec_kv = 2.0 * nkv * d  # attn_decode_kernel's bytes per context token / kv_bytes
        self._dec_q = 2 * nh * d * model.dt.act_bytes  # its bytes per sequence
        self._kvb = model.dt.kv_bytes
        h = model.host
        self._per_step, self._launches = h.per_step_s, h.per_layer_s * self.layers
        self._host_fixed = self._per_step + self._launches
        self._per_seq = h.per_sequence_s
        self._serial_frac = h.prefill_serial_fraction
        self._setup = h.setup_s
        self._pre = None  # (peak, bandwidth, t0, p_base, w_c, w_m) of attn_prefill, on first use
        self._dec = None  # the same of attn_decode

    def _fit(self, kclass: str) -> tuple[float, float, float, float, float, float]:
        f = self.model._fit(kclass, self.model.dt.act_dtype)
        return (f.peak_flops, f.bandwidth, f.t0_s, f.p_base_w, f.w_compute, f.w_memory)

    def price(
        self,
        prefill: list[tuple[int, int]] | tuple[tuple[int, int], ...],
        n_decode: int,
        ctx_sum: int,
        graph_tokens: int = 0,
        shape_miss: bool = False,
        cold: bool = False,
    ) -> tuple[float, float]:
        """(wall_s, energy_j) of step_cost(StepWork(prefill, n_decode, ctx_sum, graph_tokens),
        shape_miss, cold), engines without packed attention."""
        m = self.model
        new_sum = 0
        fl = by = 0  # batched(): sum() of the prefill groups' FLOPs and bytes, from int 0
        any_fresh = False
        flops_c, q_bytes, kv_bytes = self._flops_c, self._q_bytes, self._kv_bytes
        for new, past in prefill:
            new_sum += new
            fl += flops_c * (past * new + new * (new + 1) / 2.0)
            by += q_bytes * new + kv_bytes * (past + new)
            if past == 0:
                any_fresh = True
        tokens = new_sum + n_decode
        if tokens == 0:
            return 0.0, 0.0
        n_seqs = len(prefill) + n_decode
        t_const, e_const = m._layer_const(m.step_rows(tokens, graph_tokens), n_seqs)
        plimit, step_limit = m._plimit, m.step_limit
        t = e = 0.0
        if prefill:
            fit = self._pre
            if fit is None:
                fit = self._pre = self._fit("attn_prefill")
            peak, bw, t0, pb, wc, wm = fit
            tc = fl / peak
            tm = by / bw
            g = (tc if tc > tm else tm) + t0
            if g > 0:
                ge = pb * g + wc * tc + wm * tm
                t += g
                e += ge if ge < plimit * g or step_limit else plimit * g
        if n_decode:
            fit = self._dec
            if fit is None:
                fit = self._dec = self._fit("attn_decode")
            peak, bw, t0, pb, wc, wm = fit
            tc = flops_c * ctx_sum / peak
            tm = (self._dec_kv * ctx_sum * self._kvb + self._dec_q * n_decode) / bw
            g = (tc if tc > tm else tm) + t0
            if g > 0:
                ge = pb * g + wc * tc + wm * tm
                t += g
                e += ge if ge < plimit * g or step_limit else plimit * g
        L = self.layers
        busy = e_const + L * e
        gpu = m.power_limited(t_const + L * t, busy)
        if m.nf4_dequant and not prefill:  # as CostModel.host_split adds it, float for float
            host = self._per_step + (self._launches + m._nf4_dequant_host_s(n_seqs))
            host += self._per_seq * n_seqs
        else:
            host = self._host_fixed + self._per_seq * n_seqs
        wall = gpu if gpu > host else host
        if prefill:
            wall += self._serial_frac * (gpu if gpu < host else host)
            if self._setup and any_fresh:
                wall += self._setup
        wait_e = m.wait_power_w(gpu, self.tp * busy) * (wall - gpu)
        if shape_miss or cold:
            serial = (m.miss_s if shape_miss else 0.0) + (m.cold_s if cold else 0.0)
            wall += serial
            wait_e += m.miss_w * serial
        return wall, self.tp * (busy + wait_e)
