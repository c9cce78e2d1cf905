"""Which bitsandbytes NF4 linears dequantise their weight instead of running the fused kernel.

bitsandbytes 0.50.2 (`backends/cuda/ops.py`, `_gemm_4bit_use_custom_cuda`, the rule its
`gemm_4bit` op follows for 16-bit activations) runs an NF4 linear of M token rows either in
its fused 4-bit kernel (SIMT at a few rows, MMA beyond) or, where its per-architecture
heuristic says the fused kernel loses, by dequantising the whole weight to 16 bit and calling
F.linear: five kernels whose launches make a call host-bound at small M (measurements/
calibration/h200-nf4rows and h200-nf4rows-b: 96-119 us of wall a call against 38-46 us fused,
on the same shapes and host). This module restates the Hopper (sm90: H100, H200, 132 SMs, the
NVIDIA H100 and H200 datasheets) branch of that rule; both probes agree with it on all nine
shapes and 1-16 rows measured. Other architectures are not modelled (the shipped profiles are
Hopper's).
"""

from __future__ import annotations

from llm_energy_sim.config.modelcard import ModelCard

HOPPER_SMS = 132
FUSED_MAX_ROWS_ALWAYS = 4  # _GEMM_4BIT_CUSTOM_FLOOR_M: at most this many rows, always fused
SMALL_WEIGHT = 4 * 1024 * 1024  # weights of fewer elements have their own tiers
FUSED_MAX_ROWS = 512  # beyond, always dequantise (non-small weights)


def nf4_dequantises(m: int, n_in: int, n_out: int, sms: int = HOPPER_SMS) -> bool:
    """True where bitsandbytes 0.50.2 dequantises an NF4 weight of n_in -> n_out (K -> N) for
    m rows on sm90 instead of running its fused kernel."""
    if m <= FUSED_MAX_ROWS_ALWAYS:
        return False
    k, n = n_in, n_out
    n_blocks = -(-n // 64)
    if n * k < SMALL_WEIGHT:
        if k * 2 < n:  # very short K: fused to 512 rows at under a third of a wave, else 320
            return m > (512 if n_blocks * 3 < sms else 320)
        if n_blocks * 4 <= sms:  # under a quarter wave (HBM tiers)
            return m > 32
        if n_blocks * 2 <= sms:
            return m > 16
        return True
    if m > FUSED_MAX_ROWS:
        return True
    if m < 8:
        if m >= 6 and n_blocks >= 36:
            lt_75 = n_blocks * 4 < sms * 3
            lt_60 = n_blocks * 5 < sms * 3
            if k > n and lt_75:
                return True
            if k == n and lt_75 and not lt_60:
                return True
        return False
    if n_blocks >= sms * 3:
        return m > 64
    if n_blocks >= sms * 2:
        return m > 48
    if n_blocks >= sms:
        return m > 32
    if n_blocks >= sms // 2:
        if k >= n and n_blocks * 4 < sms * 3:
            return True
        return m > 16
    return True


def layer_projections(card: ModelCard, tp: int = 1) -> list[tuple[int, int]]:
    """(n_in, n_out) of one decoder layer's seven projections on one GPU (Megatron sharding:
    q, k, v, gate, up split their outputs, o and down their inputs), as HF modules run them."""
    h, i = card.hidden_size, card.intermediate_size // tp
    q, kv = card.q_dim // tp, card.kv_dim // tp
    return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]


def dequantising_per_layer(card: ModelCard, m: int, tp: int = 1) -> int:
    """How many of a layer's NF4 projections dequantise at m token rows (nf4_dequantises)."""
    return sum(nf4_dequantises(m, n_in, n_out) for n_in, n_out in layer_projections(card, tp))
