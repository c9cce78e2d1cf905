"""The calibration grid: which kernel shapes are measured, and their FLOPs/bytes.

FLOPs and bytes come from cost/kernels.py, the formulas the simulator costs steps with, so the
fit and its use cannot drift apart. Shapes are those of the models/ cards (Llama-3.1-8B's
projections, Qwen2.5-0.5B's small ones, a 70B projection sharded over 4 GPUs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.cost.kernels import (
    KernelGroup,
    attn_decode_kernel,
    attn_packed_kernel,
    attn_prefill_kernel,
    eager_elementwise_kernel,
    elementwise_kernel,
    linear_kernel,
    masked_kv_heads,
)

LINEAR_DTYPES = ("float32", "bfloat16", "float16", "int8", "int4", "fp8")
ACT_DTYPES = ("float32", "bfloat16", "float16")
LINEAR_SHAPES = ((4096, 14336), (14336, 4096), (4096, 4096), (896, 4864), (8192, 7168))
LINEAR_TOKENS = (1, 16, 128, 1024, 4096)
QUICK_TOKENS = (1, 128, 2048)
# more attention shapes, between the base grid's
EXTRA_PREFILL = ((1, 256), (1, 1024), (1, 4096), (2, 512), (8, 256), (2, 2048))
EXTRA_DECODE = ((2, 1024), (4, 512), (16, 1024), (32, 512), (32, 4096), (16, 8192))
# transformers CB's packed masked attention (transformers 5.17 sdpa_paged): (step tokens,
# KV read) from decode-only steps (few queries over long gathered KV) to full 8192-token
# prefill chunks over a warm cache; the last three with Qwen2.5-0.5B's heads (14/2 x 64)
PACKED = ((1, 512), (8, 4096), (32, 32768), (64, 38400), (128, 131072), (512, 512))
PACKED += ((2048, 2048), (8192, 8192), (8192, 40960), (2048, 67584), (300, 120000))
PACKED_SMALL_HEADS = ((16, 16384), (1024, 1024), (4096, 36864))
# the same at the head layouts of the Qwen2.5 cards (query heads, KV heads, head dim: 1.5B,
# 7B, 14B), whose packed attention is not the 32/8 rate (measurements/calibration/
# h200-packedheads): decode-like steps (few queries over long gathered KV) and prefills
PACKED_HEAD_SHAPES = ((12, 2, 128), (28, 4, 128), (40, 8, 128))
PACKED_HEAD_POINTS = ((1, 512), (8, 4096), (16, 16384), (32, 32768), (64, 38400))
PACKED_HEAD_POINTS += ((128, 131072), (300, 120000), (512, 512), (2048, 2048), (4096, 36864))
PACKED_HEAD_POINTS += ((8192, 8192),)
# HF eager layers' unfused small ops (kernels.eager_elementwise_bytes): (hidden, intermediate,
# query heads, KV heads, head dim) of Qwen2.5-7B and Llama-3.1-8B, token counts as a step has
EAGER_SHAPES = ((3584, 18944, 28, 4, 128), (4096, 14336, 32, 8, 128))
EAGER_TOKENS = (1, 16, 256, 1024, 4096, 8192)
# tensor-parallel shards of Llama-3.1-70B (hidden 8192, intermediate 28672, 64/8 heads)
# at TP 2 and 4: q, k/v, o, gate/up and down projections, and the per-GPU attention heads
TP_LINEAR_SHAPES = tuple(
    s
    for tp in (2, 4)
    for s in ((8192, 8192 // tp), (8192, 1024 // tp), (8192 // tp, 8192), (28672 // tp, 8192))
) + ((8192, 14336),)
TP_TOKENS = (1, 128, 2048)
TP_DTYPES = ("bfloat16", "fp8")
TP_HEADS = ((32, 4), (16, 2))
# attention under a padding mask as HF generate runs a left-padded static batch (transformers
# 5.17 sdpa_attention_forward with a mask: repeat_kv, then SDPA with a boolean mask):
# (query heads, KV heads) of Llama-3.1-8B / Mistral-7B, Qwen2.5-14B and Qwen2.5-7B; decode
# batches x KV lengths, prefill batches x prompt lengths (a batch of one is never padded)
MASKED_HEADS = ((32, 8), (40, 8), (28, 4))
MASKED_DECODE = tuple((b, kv) for b in (2, 4, 8, 16, 32) for kv in (256, 1024, 4096))
MASKED_PREFILL = tuple((b, s) for b in (2, 4, 8, 16) for s in (256, 1024))
MASKED_DTYPES = ("bfloat16", "float16", "float32")
MASKED_CLASSES = ("attn_prefill_masked", "attn_decode_masked")


@dataclass(frozen=True)
class Point:
    kclass: str
    dtype: str
    m: int = 0
    n_in: int = 0
    n_out: int = 0
    batch: int = 0
    seq: int = 0
    kv_len: int = 0
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    elems: int = 0

    @property
    def key(self) -> str:
        return "|".join(f"{v}" for v in asdict(self).values())

    def kernel(self) -> KernelGroup:
        dt = dtype_info(self.dtype)
        if self.kclass == "linear":
            return linear_kernel(self.m, self.n_in, self.n_out, dt)
        if self.kclass == "attn_prefill":
            g = attn_prefill_kernel(self.seq, 0, self.heads, self.kv_heads, self.head_dim, dt)
            return KernelGroup(g.kclass, self.dtype, g.flops * self.batch, g.bytes * self.batch, 1)
        if self.kclass == "attn_decode":
            g = attn_decode_kernel(
                self.batch * self.kv_len, self.batch, self.heads, self.kv_heads, self.head_dim, dt
            )
            return KernelGroup(g.kclass, self.dtype, g.flops, g.bytes, 1)
        if self.kclass in MASKED_CLASSES:
            # the unmasked kernel's FLOPs; its bytes with K/V copied out to every query head
            # in 16 bit (kernels.masked_kv_heads, as the cost model counts them)
            act = dtype_info(self.dtype).act_dtype
            wide = replace(self, kclass=self.kclass.removesuffix("_masked"))
            wide = replace(wide, kv_heads=masked_kv_heads(self.heads, self.kv_heads, act))
            g = wide.kernel()
            return KernelGroup(self.kclass, self.dtype, g.flops, g.bytes, 1)
        if self.kclass == "attn_packed":
            g = attn_packed_kernel(
                self.m, self.kv_len, self.heads, self.kv_heads, self.head_dim, dt
            )
            return KernelGroup(g.kclass, self.dtype, g.flops, g.bytes, 1)
        if self.kclass == "elementwise_eager":
            d = self.head_dim
            return eager_elementwise_kernel(
                self.m, self.n_in, self.heads * d, self.kv_heads * d, self.n_out, dt
            )
        if self.kclass == "elementwise":
            g = elementwise_kernel(3.0 * self.elems * dt.act_bytes, dt, 1)
            return KernelGroup(g.kclass, self.dtype, 0.0, g.bytes, 1)
        raise ValueError(self.kclass)


def build_grid(dtypes: tuple[str, ...] = LINEAR_DTYPES, quick: bool = False) -> list[Point]:
    """Log-spaced token counts over real projection shapes; attention over sequence lengths up
    to 8192 and decode batches 1-64 with KV lengths up to 8192; elementwise 64 KiB-256 MiB."""
    tokens = QUICK_TOKENS if quick else LINEAR_TOKENS
    shapes = LINEAR_SHAPES[:2] if quick else LINEAR_SHAPES
    pts: list[Point] = []
    for dt in dtypes:
        pts += [Point("linear", dt, m=m, n_in=i, n_out=o) for (i, o) in shapes for m in tokens]
    for dt in [d for d in ACT_DTYPES if d in dtypes]:
        seqs = (512, 4096) if quick else (128, 512, 2048, 8192)
        pts += [Point("attn_prefill", dt, batch=1, seq=s) for s in seqs]
        if not quick:  # batched prefill, and more points to hold out of the fit
            pts += [Point("attn_prefill", dt, batch=4, seq=1024)]
            pts += [Point("attn_prefill", dt, batch=b, seq=s) for b, s in EXTRA_PREFILL]
        batches, lens = ((1, 32), (512, 4096)) if quick else ((1, 8, 64), (256, 2048, 8192))
        pts += [Point("attn_decode", dt, batch=b, kv_len=L) for b in batches for L in lens]
        if not quick:
            pts += [Point("attn_decode", dt, batch=b, kv_len=L) for b, L in EXTRA_DECODE]
        sizes = (1 << 16, 1 << 24) if quick else (1 << 14, 1 << 18, 1 << 22, 1 << 26)
        pts += [Point("elementwise", dt, elems=n) for n in sizes]
        pts += eager_points(dt, quick)
        packed = PACKED[::3] if quick else PACKED
        pts += [Point("attn_packed", dt, m=q, kv_len=kv) for q, kv in packed]
        if not quick:
            pts += [
                Point("attn_packed", dt, m=q, kv_len=kv, heads=14, kv_heads=2, head_dim=64)
                for q, kv in PACKED_SMALL_HEADS
            ]
    if not quick:
        pts += tp_shard_points(dtypes)
        pts += masked_points(dtypes)
        pts += packed_head_points(dtypes)
    return pts


def packed_head_points(dtypes: tuple[str, ...] = ACT_DTYPES) -> list[Point]:
    """transformers CB's packed attention (attn_packed) at PACKED_HEAD_SHAPES x
    PACKED_HEAD_POINTS, in the activation dtypes asked for."""
    return [
        Point("attn_packed", dt, m=q, kv_len=kv, heads=h, kv_heads=kvh, head_dim=d)
        for dt in [d for d in ACT_DTYPES if d in dtypes]
        for h, kvh, d in PACKED_HEAD_SHAPES
        for q, kv in PACKED_HEAD_POINTS
    ]


def masked_points(dtypes: tuple[str, ...] = MASKED_DTYPES) -> list[Point]:
    """Attention under a left-padding mask (MASKED_HEADS x MASKED_DECODE / MASKED_PREFILL),
    in the dtypes of MASKED_DTYPES asked for."""
    pts: list[Point] = []
    for dt in [d for d in MASKED_DTYPES if d in dtypes]:
        for h, kvh in MASKED_HEADS:
            pts += [
                Point("attn_decode_masked", dt, batch=b, kv_len=kv, heads=h, kv_heads=kvh)
                for b, kv in MASKED_DECODE
            ]
            pts += [
                Point("attn_prefill_masked", dt, batch=b, seq=q, heads=h, kv_heads=kvh)
                for b, q in MASKED_PREFILL
            ]
    return pts


def eager_points(dt: str, quick: bool = False) -> list[Point]:
    """The small ops of an HF eager layer (calibrate/microbench.py _eager_chain) over token
    counts from a decode step to an 8192-token prefill."""
    shapes, tokens = (
        (EAGER_SHAPES[:1], EAGER_TOKENS[::2]) if quick else (EAGER_SHAPES, EAGER_TOKENS)
    )
    return [
        Point("elementwise_eager", dt, m=m, n_in=h, n_out=i, heads=nh, kv_heads=nkv, head_dim=d)
        for h, i, nh, nkv, d in shapes
        for m in tokens
    ]


def tp_shard_points(dtypes: tuple[str, ...]) -> list[Point]:
    """The per-GPU kernels of a tensor-parallel 70B layer: sharded projections and
    attention with 64/tp query and 8/tp KV heads."""
    pts = [
        Point("linear", dt, m=m, n_in=i, n_out=o)
        for dt in TP_DTYPES
        if dt in dtypes
        for (i, o) in TP_LINEAR_SHAPES
        for m in TP_TOKENS
    ]
    if "bfloat16" in dtypes:
        for h, kvh in TP_HEADS:
            pts += [
                Point("attn_prefill", "bfloat16", batch=1, seq=s, heads=h, kv_heads=kvh)
                for s in (512, 4096)
            ]
            pts += [
                Point("attn_decode", "bfloat16", batch=b, kv_len=1024, heads=h, kv_heads=kvh)
                for b in (1, 32)
            ]
    return pts
