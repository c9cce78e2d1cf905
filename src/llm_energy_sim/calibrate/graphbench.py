"""The CUDA-graph regime (`sim calibrate --stages graph`): kernels timed inside graph replays.

Production engines (vLLM, TGI, transformers CB with graphs) replay CUDA graphs, so a kernel
costs its GPU time and no host launch. Each point captures k repeats of its kernel in one
torch.cuda.CUDAGraph, replays it several times back to back and times every replay with CUDA
events: time per kernel = replay time / k. That removes the launch overhead and measures the
graph regime's floor t0. The repeats cycle through enough copies of the inputs (ROTATE_BYTES
in all) that a repeat never finds its weights or KV in L2, as a layer's next kernel would not.

Kinds measured, in this order (most needed first, so a budget cut keeps the caps, the power
and the bf16 linears): the physics caps (device-to-device copy bandwidth, 8192^3 GEMM rate per
dtype); the host cost of graph.replay() for graphs of 1..1000 tiny kernels, GPU idle or busy;
sustained power windows per class (about 25 s in all); bf16 linears over 1..8192 tokens on
Llama-8B/70B projections; fp8 linears (torch._scaled_mm, e4m3 weights, per-tensor scale) with the dynamic activation quantisation
before them (per tensor, vLLM's default; per token), together, the quantisation alone and the
GEMM alone; elementwise kernels (add, SiLU x up, RMSNorm); flash attention (varlen prefill
through aten._flash_attention_forward, torch SDPA's flash backend beside it, decode of one
query over 128-16k KV at batch 1-256); transformers CB's paged|sdpa attention (cache gather,
repeat_kv, masked SDPA) at the padded sizes its graphs run; fp16 linears.

One row per point in graph.csv (COLUMNS), appended as measured; a rerun skips keys already
there; a point that fails is recorded with its error and the stage goes on (unless the CUDA
context itself is broken: then the point is recorded and the stage stops, and a rerun in a
new process resumes after it; tools/device/graph_calibrate.sh reruns while budget is left).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from llm_energy_sim.calibrate.rawtable import (
    GPU_STATE_FIELDS,
    STATE_FIELDS,
    append_row,
    done_keys,
)
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.cost.kernels import (
    attn_decode_kernel,
    attn_packed_graph_kernels,
    attn_packed_kernel,
    attn_prefill_kernel,
    fp8_quant_kernel,
    linear_kernel,
    sampler_kernel,
)
from llm_energy_sim.meter.monitor import EnergyMonitor

GRAPH_CSV = "graph.csv"
GRAPH_ENV = "graph_env.json"

# timing
TARGET_REPLAY_S = 2e-3  # one replay's length; k = this / the kernel's eager time
K_MAX = 256  # repeats captured in one graph (tiny kernels)
REPLAYS = 7  # timed replays per point (after 2 untimed)
ROTATE_BYTES = 256 << 20  # input copies cycled by the repeats: >> L2 (50-60 MB on Hopper)
POWER_WINDOW_S = 1.0  # metered back-to-back replays (the counter updates every ~100 ms)
POWER_WARM_S = 0.2

# shapes: (n_in, n_out) of Llama-3.1-8B fused qkv, o, fused gate_up, down; Llama-3.1-70B
# fused qkv and down
LINEAR_SHAPES = ((4096, 6144), (4096, 4096), (4096, 28672), (14336, 4096), (8192, 10240))
LINEAR_SHAPES += ((28672, 8192),)
LINEAR_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
FEW_TOKENS = (1, 16, 128, 1024, 8192)  # the secondary fp8 variants
QUICK_TOKENS = (1, 128, 4096)
# elementwise: (tokens, width) -> add and RMSNorm over the hidden size, SiLU x up over the MLP
ELEM_TOKENS = (1, 8, 64, 512, 4096, 16384)
ELEM_HIDDEN, ELEM_MLP = 4096, 14336
COPY_ELEMS = (1 << 27, 1 << 29, 1 << 31)  # bf16: 256 MiB, 1 GiB, 4 GiB per buffer
PEAK_N = 8192
# prefill / chunked prefill: (batch, q_len, kv_len, heads, kv_heads); d = 128
VARLEN = (
    (1, 16, 16, 32, 8),
    (1, 128, 128, 32, 8),
    (1, 512, 512, 32, 8),
    (1, 2048, 2048, 32, 8),
    (1, 8192, 8192, 32, 8),
    (4, 1024, 1024, 32, 8),
    (16, 256, 256, 32, 8),
    (1, 512, 4096, 32, 8),
    (1, 2048, 16384, 32, 8),
    (8, 128, 2048, 32, 8),
    (1, 4096, 4096, 64, 8),
    (1, 2048, 2048, 32, 32),
)
DECODE_BATCH = (1, 4, 16, 64, 256)
DECODE_KV = (128, 512, 2048, 8192, 16384)
DECODE_GQA = ((64, 8, 32, 2048), (16, 2, 64, 4096))  # (heads, kv_heads, batch, kv_len)
# transformers CB `paged|sdpa` under CUDA graphs: (q_total, kv_total, heads, kv_heads), d = 128.
# The engine pads the queries to a multiple of 64 and the KV it reads to a multiple of 16384
# (transformers 5.17 continuous_batching/initialization.py FALLBACK_DEFAULTS), so its steps
# run at kv = 16384*j + q: Llama-3.1-8B heads at the decode and chunked-prefill sizes, and
# the Qwen2.5-7B / Qwen2.5-1.5B GQA ratios at two of them.
PACKED = tuple((q, 16384 * j + q, 32, 8) for q in (64, 128) for j in (1, 2, 3, 4)) + (
    (64, 1024, 32, 8),
    (64, 4096, 32, 8),
    (512, 16384 + 512, 32, 8),
    (2048, 16384 + 2048, 32, 8),
    (4096, 16384 + 4096, 32, 8),
    (8192, 16384 + 8192, 32, 8),
    (8192, 32768 + 8192, 32, 8),
    (4096, 49152 + 4096, 32, 8),
    (64, 16384 + 64, 28, 4),
    (128, 49152 + 128, 28, 4),
    (64, 16384 + 64, 12, 2),
    (128, 49152 + 128, 12, 2),
)
# sampling (vLLM's sampler, cost/kernels.sampler_kernel): rows x vocabulary of Mistral-7B,
# Llama-3.1-8B and Qwen2.5; temperature 0.8 and top-p 0.95 (the ML.ENERGY benchmark's request
# defaults, ml-energy/benchmark c1d6557 mlenergy/benchmark/llm/benchmark.py)
SAMPLER_ROWS = (1, 4, 16, 64, 128, 256, 512, 1024)
SAMPLER_VOCABS = (32768, 128256, 151936)
SAMPLER_TEMPERATURE, SAMPLER_TOP_P = 0.8, 0.95
HOST_NODES = (1, 10, 100, 1000)
HOST_REPS = 40
SLEEP_HZ = 2.0e9  # torch.cuda._sleep counts SM cycles (H100/H200 boost about 1.98 GHz)

# the profile class each kind is fitted into (calibrate/graphfit.py)
KCLASS = {
    "peak": "peak",
    "copy": "copy_graph",
    "linear": "linear_graph",
    "fp8_quant": "fp8_quant_graph",
    "elementwise": "elementwise_graph",
    "rms_norm": "rmsnorm_graph",
    "attn_varlen": "attn_varlen_graph",
    "attn_decode": "attn_decode_graph",
    "attn_sdpa": "attn_sdpa_graph",
    "attn_packed": "attn_packed_graph",
    "attn_masked_sdpa": "attn_masked_sdpa_graph",
    "attn_kv_copy": "attn_kv_copy_graph",
    "host_replay": "host_graph_replay",
    "sampler": "sampler_graph",
}
# fp8 ops -> the profile key their fit is stored under
FP8_KEYS = {
    "quant+mm": "fp8",  # dynamic per-tensor activation scale, then the GEMM (vLLM's default)
    "quant_token+mm": "fp8_token",  # dynamic per-token scales, rowwise GEMM
    "mm": "fp8_static",  # activations already e4m3 (static scale): the GEMM alone
    "quant": "fp8",
    "quant_token": "fp8_token",
}
# kernels one call launches, where the op is several torch kernels
OP_KERNELS = {"add": 1, "silu_mul": 2}

COLUMNS = (
    "key",
    "kind",
    "op",
    "kclass",
    "fit_key",
    "dtype",
    "m",
    "m_run",
    "n_in",
    "n_out",
    "batch",
    "q_len",
    "kv_len",
    "heads",
    "kv_heads",
    "head_dim",
    "elems",
    "nodes",
    "gpu_state",
    "metered",
    "backend",
    "flops",
    "bytes",
    "count",
    "repeats",
    "sets",
    "replays",
    "seconds",
    "seconds_min",
    "spread",
    "replay_s",
    "host_s",
    "host_cpu_s",
    "window_s",
    "energy_j",
    "power_w",
    *STATE_FIELDS,
)
MEASURED = (
    "m_run",
    "backend",
    "repeats",
    "sets",
    "replays",
    "seconds",
    "seconds_min",
    "spread",
    "replay_s",
    "host_s",
    "host_cpu_s",
    "window_s",
    "energy_j",
    "power_w",
)


@dataclass(frozen=True)
class GPoint:
    """One measurement of the graph stage (see the module docstring for the kinds)."""

    kind: str
    op: str
    dtype: str
    m: int = 0
    n_in: int = 0
    n_out: int = 0
    batch: int = 0
    q_len: int = 0
    kv_len: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    elems: int = 0
    nodes: int = 0
    gpu_state: str = ""
    metered: bool = False  # a sustained power window instead of a timing point

    @property
    def key(self) -> str:
        return "|".join(str(int(v) if isinstance(v, bool) else v) for v in asdict(self).values())

    @property
    def kclass(self) -> str:
        return KCLASS[self.kind]

    @property
    def fit_key(self) -> str:
        """The profile's dtype key of this point's fit."""
        if self.dtype == "fp8":
            return FP8_KEYS.get(self.op, "fp8")
        if self.kind == "sampler":  # keyed by the sampling method (cost/kernels.sampler_kernel)
            return self.op
        return self.dtype

    def _packed_group(self, dt):
        copies, sdpa = attn_packed_graph_kernels(
            self.q_len, self.kv_len, self.heads, self.kv_heads, self.head_dim, dt
        )
        return sdpa if self.kind == "attn_masked_sdpa" else copies

    def active(self) -> float:
        """The share of the SMs the point's kernel holds (cost/kernels.KernelGroup.active)."""
        if self.kind == "attn_masked_sdpa":
            return self._packed_group(dtype_info(self.dtype)).active
        return 1.0

    def work(self) -> tuple[float, float, int]:
        """(FLOPs, bytes read + written, kernel launches) of one call, from cost/kernels.py
        where the simulator has the formula: what the fit divides by the measured time."""
        dt = dtype_info(self.dtype)
        a = dt.act_bytes
        if self.kind in ("peak", "linear"):
            g = linear_kernel(self.m, self.n_in, self.n_out, dt)
            return g.flops, g.bytes, 1
        if self.kind == "fp8_quant":
            g = fp8_quant_kernel(self.m, self.n_in, dt)
            return 0.0, g.bytes, 1
        if self.kind == "copy":
            return 0.0, 2.0 * self.elems * a, 1
        if self.kind == "elementwise":
            n = self.elems
            nbytes = {"add": 3 * n * a, "silu_mul": 5 * n * a}[self.op]  # silu r+w, mul 2r+w
            return 0.0, float(nbytes), OP_KERNELS[self.op]
        if self.kind == "rms_norm":
            return 0.0, float(2 * self.m * self.n_in * a + self.n_in * a), 1
        if self.kind == "attn_varlen" or (self.kind == "attn_sdpa" and self.q_len > 1):
            g = attn_prefill_kernel(
                self.q_len, self.kv_len - self.q_len, self.heads, self.kv_heads, self.head_dim, dt
            )
            return g.flops * self.batch, g.bytes * self.batch, 1
        if self.kind in ("attn_masked_sdpa", "attn_kv_copy"):
            g = self._packed_group(dt)
            return g.flops, g.bytes, g.count
        if self.kind == "attn_packed":
            g = attn_packed_kernel(
                self.q_len, self.kv_len, self.heads, self.kv_heads, self.head_dim, dt
            )
            return g.flops, g.bytes, 1
        if self.kind in ("attn_decode", "attn_sdpa"):
            g = attn_decode_kernel(
                self.batch * self.kv_len, self.batch, self.heads, self.kv_heads, self.head_dim, dt
            )
            return g.flops, g.bytes, 1
        if self.kind == "host_replay":
            return 0.0, 0.0, self.nodes
        if self.kind == "sampler":
            g = sampler_kernel(self.op, self.m, self.n_in, a)
            return 0.0, g.bytes, g.count
        raise ValueError(self.kind)


def _attn(kind: str, op: str, dt: str, b, q, kv, h, kvh, metered: bool = False) -> GPoint:
    return GPoint(
        kind,
        op,
        dt,
        batch=b,
        q_len=q,
        kv_len=kv,
        heads=h,
        kv_heads=kvh,
        head_dim=128,
        metered=metered,
    )


def _linears(dt: str, op: str, tokens: Iterable[int], shapes=LINEAR_SHAPES) -> list[GPoint]:
    return [GPoint("linear", op, dt, m=m, n_in=i, n_out=o) for (i, o) in shapes for m in tokens]


def power_points(dtypes: tuple[str, ...]) -> list[GPoint]:
    """The sustained windows: per class a large shape near its roof and a small one near
    its floor (linears also a memory-bound GEMV), so base and dynamic power separate."""
    pts: list[GPoint] = []
    for dt in [d for d in ("bfloat16", "float16") if d in dtypes]:
        pts += [
            GPoint("linear", "mm", dt, m=8192, n_in=4096, n_out=28672, metered=True),
            GPoint("linear", "mm", dt, m=1, n_in=8192, n_out=10240, metered=True),
            GPoint("linear", "mm", dt, m=16, n_in=4096, n_out=4096, metered=True),
        ]
    if "fp8" in dtypes:
        pts += [
            GPoint("linear", "quant+mm", "fp8", m=8192, n_in=4096, n_out=28672, metered=True),
            GPoint("linear", "quant+mm", "fp8", m=1, n_in=8192, n_out=10240, metered=True),
            GPoint("linear", "quant+mm", "fp8", m=16, n_in=4096, n_out=4096, metered=True),
            GPoint("fp8_quant", "quant", "fp8", m=16384, n_in=8192, metered=True),
        ]
    for dt in [d for d in ("bfloat16",) if d in dtypes]:
        n = ELEM_HIDDEN
        pts += [
            GPoint("copy", "copy", dt, elems=COPY_ELEMS[1], metered=True),
            GPoint("elementwise", "add", dt, m=16384, elems=16384 * n, metered=True),
            GPoint("elementwise", "add", dt, m=8, elems=8 * n, metered=True),
            GPoint("rms_norm", "rms_norm", dt, m=16384, n_in=n, metered=True),
            _attn("attn_varlen", "flash_varlen", dt, 1, 8192, 8192, 32, 8, True),
            _attn("attn_varlen", "flash_varlen", dt, 1, 128, 128, 32, 8, True),
            _attn("attn_decode", "flash_varlen", dt, 256, 1, 8192, 32, 8, True),
            _attn("attn_decode", "flash_varlen", dt, 1, 1, 128, 32, 8, True),
            _attn("attn_packed", "paged_sdpa", dt, 1, 128, 65536 + 128, 32, 8, True),
            _attn("attn_packed", "paged_sdpa", dt, 1, 64, 1024, 32, 8, True),
            _attn("attn_masked_sdpa", "masked_sdpa", dt, 1, 128, 65536 + 128, 32, 8, True),
            _attn("attn_masked_sdpa", "masked_sdpa", dt, 1, 8192, 16384 + 8192, 32, 8, True),
            _attn("attn_kv_copy", "kv_copy", dt, 1, 128, 65536 + 128, 32, 8, True),
            _attn("attn_kv_copy", "kv_copy", dt, 1, 64, 16384 + 64, 12, 2, True),
        ]
    return pts


def sampler_points(quick: bool = False) -> list[GPoint]:
    """The sampler's points: the copy-bandwidth cap its fit is bounded by, sustained windows
    (each method at many rows and at few), then top-p over every SAMPLER_ROWS x
    SAMPLER_VOCABS and random and greedy over the rows at Llama-3's vocabulary."""
    rows = SAMPLER_ROWS[::3] if quick else SAMPLER_ROWS
    v = SAMPLER_VOCABS[1]
    pts = [GPoint("copy", "copy", "bfloat16", elems=COPY_ELEMS[1])]
    pts += [
        GPoint("sampler", "top_p", "bfloat16", m=512, n_in=v, metered=True),
        GPoint("sampler", "top_p", "bfloat16", m=4, n_in=v, metered=True),
        GPoint("sampler", "random", "bfloat16", m=512, n_in=v, metered=True),
    ]
    # (added in a second call: the other copy sizes, windows that identify random's and
    # greedy's base power, a third top-p window)
    pts += [GPoint("copy", "copy", "bfloat16", elems=n) for n in (COPY_ELEMS[0], COPY_ELEMS[2])]
    pts += [
        GPoint("sampler", "random", "bfloat16", m=4, n_in=v, metered=True),
        GPoint("sampler", "greedy", "bfloat16", m=1024, n_in=v, metered=True),
        GPoint("sampler", "greedy", "bfloat16", m=4, n_in=v, metered=True),
        GPoint("sampler", "top_p", "bfloat16", m=64, n_in=v, metered=True),
    ]
    pts += [
        GPoint("sampler", "top_p", "bfloat16", m=m, n_in=n) for n in SAMPLER_VOCABS for m in rows
    ]
    pts += [
        GPoint("sampler", op, "bfloat16", m=m, n_in=v) for op in ("random", "greedy") for m in rows
    ]
    return pts


def build_plan(dtypes: tuple[str, ...], quick: bool = False) -> list[GPoint]:
    """Every point of the stage for the chosen dtypes (bfloat16, float16, fp8 are measured;
    others are ignored), most needed first."""
    tokens = QUICK_TOKENS if quick else LINEAR_TOKENS
    few = QUICK_TOKENS if quick else FEW_TOKENS
    shapes = LINEAR_SHAPES[:2] if quick else LINEAR_SHAPES
    act = [d for d in ("bfloat16", "float16") if d in dtypes]
    pts: list[GPoint] = []
    # 1. the caps
    for dt in [*act, *(["fp8"] if "fp8" in dtypes else [])]:
        op = "scaled_mm" if dt == "fp8" else "mm"
        pts.append(GPoint("peak", op, dt, m=PEAK_N, n_in=PEAK_N, n_out=PEAK_N))
    if act:
        copies = COPY_ELEMS[:2] if quick else COPY_ELEMS
        pts += [GPoint("copy", "copy", act[0], elems=n) for n in copies]
        # 2. host cost of a replay
        for state in ("idle", "busy"):
            pts += [
                GPoint("host_replay", "add_", act[0], nodes=n, gpu_state=state) for n in HOST_NODES
            ]
    # 3. power (the fit's only source of it: before the long timing part)
    pts += power_points(dtypes)
    # 4. linears
    if "bfloat16" in dtypes:
        pts += _linears("bfloat16", "mm", tokens, shapes)
    if "fp8" in dtypes:
        pts += _linears("fp8", "quant+mm", tokens, shapes)
        n_ins = sorted({i for i, _ in shapes})
        pts += [GPoint("fp8_quant", "quant", "fp8", m=m, n_in=i) for i in n_ins for m in tokens]
        pts += _linears("fp8", "mm", few, shapes)
        pts += _linears("fp8", "quant_token+mm", few, shapes)
        pts += [GPoint("fp8_quant", "quant_token", "fp8", m=m, n_in=i) for i in n_ins for m in few]
    # 5. elementwise
    elem_tokens = ELEM_TOKENS[::2] if quick else ELEM_TOKENS
    for dt in act:
        for m in elem_tokens:
            pts.append(GPoint("elementwise", "add", dt, m=m, elems=m * ELEM_HIDDEN))
            pts.append(GPoint("elementwise", "silu_mul", dt, m=m, elems=m * ELEM_MLP))
            pts.append(GPoint("rms_norm", "rms_norm", dt, m=m, n_in=ELEM_HIDDEN))
    # 6. attention
    varlen = VARLEN[1::3] if quick else VARLEN
    batches, kvs = ((1, 64), (512, 8192)) if quick else (DECODE_BATCH, DECODE_KV)
    for dt in act:
        for b, q, kv, h, kvh in varlen:
            pts.append(_attn("attn_varlen", "flash_varlen", dt, b, q, kv, h, kvh))
        for b in batches:
            for kv in kvs:
                pts.append(_attn("attn_decode", "flash_varlen", dt, b, 1, kv, 32, 8))
        if not quick:
            for h, kvh, b, kv in DECODE_GQA:
                pts.append(_attn("attn_decode", "flash_varlen", dt, b, 1, kv, h, kvh))
        # torch SDPA's flash backend on the same shapes (dense batches), for comparison
        for b, q, kv, h, kvh in varlen:
            if q == kv:
                pts.append(_attn("attn_sdpa", "sdpa_flash", dt, b, q, kv, h, kvh))
        for b in batches[::2]:
            for kv in kvs[::2]:
                pts.append(_attn("attn_sdpa", "sdpa_flash", dt, b, 1, kv, 32, 8))
        if dt != "bfloat16":  # CB's validation dtype; other dtypes take its fit (Profile.kernel)
            continue
        # transformers CB's paged|sdpa path (gather, repeat_kv, masked SDPA)
        for q, kv, h, kvh in PACKED[::4] if quick else PACKED:
            pts.append(_attn("attn_packed", "paged_sdpa", dt, 1, q, kv, h, kvh))
        # its masked SDPA alone (K and V already expanded): the graph-regime cost model
        # prices the copies with the elementwise class and this kernel with its own
        for q, kv, h, kvh in PACKED[::4] if quick else PACKED:
            pts.append(_attn("attn_masked_sdpa", "masked_sdpa", dt, 1, q, kv, h, kvh))
        # and its K/V gather and repeat_kv copies alone (the full layer is the check)
        for q, kv, h, kvh in PACKED[::4] if quick else PACKED:
            pts.append(_attn("attn_kv_copy", "kv_copy", dt, 1, q, kv, h, kvh))
    # 7. the rest
    if "float16" in dtypes:
        pts += _linears("float16", "mm", tokens, shapes)
    # 8. sampling (not a dtype's: measured with the bf16 logits of the activation dtype)
    if "bfloat16" in dtypes:
        pts += [p for p in sampler_points(quick) if p.kind == "sampler"]
    return pts


# ---------------------------------------------------------------- the GPU side (torch, lazily)


def _dt(name: str):
    import torch

    return torch.float8_e4m3fn if name == "fp8" else getattr(torch, name)


def _rand(shape, dtype: str, device: str | None = None):
    import torch

    return torch.randn(
        *shape, device=device or DEVICE, dtype=torch.bfloat16 if dtype == "fp8" else _dt(dtype)
    )


FP8_MAX = 448.0
DEVICE = "cuda"  # the kernels' device (tests build them on CPU)


def _quant_tensor(x):
    """Dynamic per-tensor e4m3 quantisation: amax (one reduction), scale, scaled cast."""
    import torch

    amax = torch.linalg.vector_norm(x, ord=float("inf"))
    scale = (amax.float() / FP8_MAX).clamp(min=1e-12)
    return (x / scale).to(torch.float8_e4m3fn), scale


def _quant_token(x):
    """Dynamic per-token (row) e4m3 quantisation: row amax, scales, scaled cast."""
    import torch

    amax = torch.linalg.vector_norm(x, ord=float("inf"), dim=-1, keepdim=True)
    scale = (amax.float() / FP8_MAX).clamp(min=1e-12)
    return (x / scale.to(x.dtype)).to(torch.float8_e4m3fn), scale


def _make_linear(p: GPoint) -> tuple[Callable[[], Callable[[], None]], int]:
    """(a maker of one input set's kernel, the rows run)."""
    import torch

    f = torch.nn.functional
    if p.dtype != "fp8":

        def make():
            x, w = _rand((p.m, p.n_in), p.dtype), _rand((p.n_out, p.n_in), p.dtype)
            return lambda: f.linear(x, w)

        return make, p.m
    m = max(16, -(-p.m // 16) * 16)  # _scaled_mm needs rows in multiples of 16 (vLLM pads too)
    n_out = p.n_out

    def make():
        x = _rand((m, p.n_in), "bfloat16")
        w = _rand((n_out, p.n_in), "bfloat16").to(torch.float8_e4m3fn).t()  # column-major
        ws = torch.ones((), device=DEVICE)
        if p.op in ("mm", "scaled_mm"):
            xq = x.to(torch.float8_e4m3fn)
            return lambda: torch._scaled_mm(xq, w, scale_a=ws, scale_b=ws, out_dtype=torch.bfloat16)
        if p.op == "quant+mm":

            def run():
                xq, s = _quant_tensor(x)
                torch._scaled_mm(xq, w, scale_a=s, scale_b=ws, out_dtype=torch.bfloat16)

            return run
        if p.op == "quant_token+mm":
            ws_row = torch.ones((1, n_out), device=DEVICE)

            def run():
                xq, s = _quant_token(x)
                torch._scaled_mm(xq, w, scale_a=s, scale_b=ws_row, out_dtype=torch.bfloat16)

            return run
        raise ValueError(p.op)

    return make, m


def _make_quant(p: GPoint):
    q = _quant_token if p.op == "quant_token" else _quant_tensor

    def make():
        x = _rand((p.m, p.n_in), "bfloat16")
        return lambda: q(x)

    return make, p.m


def _make_elementwise(p: GPoint):
    import torch

    f = torch.nn.functional

    def make():
        if p.op == "add":
            a, b = _rand((p.elems,), p.dtype), _rand((p.elems,), p.dtype)
            out = torch.empty_like(a)
            return lambda: torch.add(a, b, out=out)
        if p.op == "silu_mul":
            width = p.elems // max(p.m, 1)
            g, u = _rand((p.m, width), p.dtype), _rand((p.m, width), p.dtype)
            return lambda: f.silu(g) * u
        if p.op == "copy":
            src = _rand((p.elems,), p.dtype)
            dst = torch.empty_like(src)
            return lambda: dst.copy_(src)
        if p.op == "rms_norm":
            x, w = _rand((p.m, p.n_in), p.dtype), _rand((p.n_in,), p.dtype)
            return lambda: f.rms_norm(x, (p.n_in,), w, 1e-6)
        raise ValueError(p.op)

    return make, p.m


def _make_attention(p: GPoint):
    """Flash attention: aten._flash_attention_forward on packed (varlen) sequences, causal
    bottom-right for prefill chunks over a longer cache; or torch SDPA under the flash
    backend only, dense (batch, heads, len, d), GQA native."""
    import torch

    b, q_len, kv, h, kvh, d = p.batch, p.q_len, p.kv_len, p.heads, p.kv_heads, p.head_dim
    if p.op in ("paged_sdpa", "masked_sdpa", "kv_copy"):
        return _make_packed(p)
    if p.op == "sdpa_flash":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        f = torch.nn.functional.scaled_dot_product_attention

        def make():
            q = _rand((b, h, q_len, d), p.dtype)
            k, v = _rand((b, kvh, kv, d), p.dtype), _rand((b, kvh, kv, d), p.dtype)

            def run():
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                    f(q, k, v, is_causal=q_len > 1, enable_gqa=kvh != h)

            return run

        return make, b * q_len
    flash = torch.ops.aten._flash_attention_forward

    def make():
        q = _rand((b * q_len, h, d), p.dtype)
        k, v = _rand((b * kv, kvh, d), p.dtype), _rand((b * kv, kvh, d), p.dtype)
        cu_q = torch.arange(0, b + 1, device=DEVICE, dtype=torch.int32) * q_len
        cu_k = torch.arange(0, b + 1, device=DEVICE, dtype=torch.int32) * kv
        causal = q_len > 1
        return lambda: flash(q, k, v, cu_q, cu_k, q_len, kv, 0.0, causal, False, scale=d**-0.5)

    return make, b * q_len


def _make_packed(p: GPoint):
    """transformers 5.17 `paged|sdpa` (integrations/sdpa_paged.py) for one layer: K and V
    gathered from the paged cache by a read index, transposed, repeated to the query heads
    (repeat_kv), made contiguous, then torch SDPA over one packed sequence of q_len queries
    and kv_len keys with the engine's additive 4-D mask (dense: it masks, it does not skip)."""
    import torch

    q_len, kv, h, kvh, d = p.q_len, p.kv_len, p.heads, p.kv_heads, p.head_dim
    rep = h // kvh
    f = torch.nn.functional.scaled_dot_product_attention

    def make():
        cache_k, cache_v = _rand((kv, kvh, d), p.dtype), _rand((kv, kvh, d), p.dtype)
        index = torch.randperm(kv, device=DEVICE)
        q = _rand((1, h, q_len, d), p.dtype)
        mask = torch.zeros((1, 1, q_len, kv), device=DEVICE, dtype=_dt(p.dtype))

        def expand(x):
            x = x.index_select(0, index).transpose(0, 1).unsqueeze(0)
            x = x[:, :, None].expand(1, kvh, rep, kv, d).reshape(1, h, kv, d)
            return x.contiguous()

        if p.op == "kv_copy":
            return lambda: (expand(cache_k), expand(cache_v))
        if p.op == "masked_sdpa":
            k, v = expand(cache_k), expand(cache_v)
            return lambda: f(q, k, v, attn_mask=mask, is_causal=False)
        return lambda: f(q, expand(cache_k), expand(cache_v), attn_mask=mask, is_causal=False)

    return make, q_len


def _make_sampler(p: GPoint):
    """vLLM 0.11's sampler over (rows x vocab) bf16 logits (cost/kernels.sampler_kernel has the
    chain and its source): the temperature divide out of place (vLLM divides in place; the
    same bytes, and a replayed graph must not compound it)."""
    import torch

    rows, vocab = p.m, p.n_in

    def make():
        logits = _rand((rows, vocab), p.dtype) * 4.0
        temp = torch.full((rows, 1), SAMPLER_TEMPERATURE, device=DEVICE)
        top_p = torch.full((rows,), SAMPLER_TOP_P, device=DEVICE)

        def draw(x):
            q = torch.empty_like(x).exponential_()
            return x.div_(q).argmax(dim=-1)

        def run():
            x = logits.float()
            if p.op == "greedy":
                return x.argmax(dim=-1)
            x = x / temp
            if p.op == "top_p":
                srt, idx = x.sort(dim=-1, descending=False)
                cum = torch.cumsum(srt.softmax(dim=-1), dim=-1)
                tail = cum <= 1 - top_p.unsqueeze(1)
                tail[:, -1] = False
                srt.masked_fill_(tail, -float("inf"))
                x = srt.scatter(dim=-1, index=idx, src=srt)
            return draw(x.softmax(dim=-1))

        return run

    return make, rows


BACKEND = {
    "paged_sdpa": "transformers paged|sdpa: index_select, repeat_kv, torch SDPA with a mask",
    "masked_sdpa": "torch SDPA with an additive mask over expanded K and V (paged|sdpa's SDPA alone)",
    "kv_copy": "paged|sdpa's K/V index_select and repeat_kv copies alone",
    "flash_varlen": "aten._flash_attention_forward (FA2 varlen)",
    "sdpa_flash": "torch SDPA, SDPBackend.FLASH_ATTENTION only",
    "top_p": "vLLM 0.11 sampler chain in torch: float32, temperature, sort, top-p mask, scatter, softmax, exponential draw",
    "random": "vLLM 0.11 sampler chain in torch: float32, temperature, softmax, exponential draw",
    "greedy": "float32 cast, argmax",
}


def make_point(p: GPoint) -> tuple[Callable[[], Callable[[], None]], int]:
    """(maker of one input set's zero-argument kernel call, rows actually run)."""
    if p.kind in ("peak", "linear"):
        return _make_linear(p)
    if p.kind == "fp8_quant":
        return _make_quant(p)
    if p.kind in ("elementwise", "copy", "rms_norm"):
        return _make_elementwise(p)
    if p.kind == "sampler":
        return _make_sampler(p)
    if p.kind in (
        "attn_varlen",
        "attn_decode",
        "attn_sdpa",
        "attn_packed",
        "attn_masked_sdpa",
        "attn_kv_copy",
    ):
        return _make_attention(p)
    raise ValueError(p.kind)


def _events_ms(g, n: int) -> list[float]:
    """n back-to-back replays of g, each timed by CUDA events around it (seconds)."""
    import torch

    ev = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
    ev[0].record()
    for i in range(n):
        g.replay()
        ev[i + 1].record()
    torch.cuda.synchronize()
    return [ev[i].elapsed_time(ev[i + 1]) / 1e3 for i in range(n)]


_STREAM = None


def capture(fns: list[Callable[[], None]], k: int):
    """A CUDA graph of k calls, cycling through fns (warmed up on the capture stream first)."""
    import torch

    global _STREAM
    if _STREAM is None:  # one capture stream for the stage (cuBLAS keeps a workspace per stream)
        _STREAM = torch.cuda.Stream()
    stream = _STREAM
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for fn in fns[:2]:
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        for i in range(k):
            fns[i % len(fns)]()
    torch.cuda.synchronize()
    return g


def eager_seconds(fn: Callable[[], None], warm: int = 2, calls: int = 3) -> float:
    """Seconds per call of fn launched eagerly (CUDA events over `calls` calls, after `warm`
    untimed ones for library handles, workspaces and lazy kernels): what sizes a graph."""
    import torch

    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(calls):
        fn()
    e1.record()
    torch.cuda.synchronize()
    return max(e0.elapsed_time(e1) / (calls * 1e3), 1e-7)


def measure_kernel(p: GPoint, monitor: EnergyMonitor) -> dict:
    """Time one point inside graph replays (and, for a metered point, meter a sustained
    window of replays). Returns the MEASURED columns."""
    import torch

    make, m_run = make_point(p)
    first = make()
    eager = eager_seconds(first)
    k = max(1, min(K_MAX, int(TARGET_REPLAY_S / eager)))
    _, nbytes, _ = p.work()
    n_sets = max(1, min(k, math.ceil(ROTATE_BYTES / max(nbytes, 1.0))))
    fns = [first] + [make() for _ in range(n_sets - 1)]
    g = capture(fns, k)
    _events_ms(g, 2)
    times = _events_ms(g, REPLAYS)
    med = statistics.median(times)
    out = {
        "m_run": m_run,
        "backend": BACKEND.get(p.op, "torch"),
        "repeats": k,
        "sets": n_sets,
        "replays": REPLAYS,
        "seconds": med / k,
        "seconds_min": min(times) / k,
        "spread": (max(times) - min(times)) / med,
        "replay_s": med,
    }
    if p.metered:
        warm = max(1, int(POWER_WARM_S / med))
        for _ in range(warm):
            g.replay()
        torch.cuda.synchronize()
        n = max(3, math.ceil(POWER_WINDOW_S / med))
        with monitor.window(p.key) as w:
            for _ in range(n):
                g.replay()
            torch.cuda.synchronize()
        meas = w.measurement
        out.update(
            seconds=meas.time_s / (n * k),
            window_s=meas.time_s,
            replays=n,
            energy_j="" if meas.total_j is None else meas.total_j / (n * k),
            power_w="" if meas.mean_power_w is None else meas.mean_power_w,
        )
    del g, fns, first
    return out


def measure_host_replay(p: GPoint, monitor: EnergyMonitor) -> dict:
    """Host cost of graph.replay() for a graph of p.nodes tiny kernels (in-place adds on 256
    floats). gpu_state 'idle': the device drained before each replay, so the call returns
    once the launch is submitted to an empty queue (a serving step whose GPU waits for it);
    'busy': a long sleep kernel queued first, so HOST_REPS replays queue behind it (a step
    launched while the previous one still runs). host_s: median wall time of the call,
    host_cpu_s: the thread's CPU time in it; seconds: GPU time per node of the replay."""
    import torch

    x = torch.zeros(256, device=DEVICE)
    g = capture([lambda: x.add_(1.0)], p.nodes)
    gpu = statistics.median(_events_ms(g, 5))
    wall, cpu = [], []
    if p.gpu_state == "busy":
        torch.cuda._sleep(int(SLEEP_HZ * (HOST_REPS * gpu + 0.05)))
    for _ in range(HOST_REPS):
        if p.gpu_state == "idle":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.thread_time()
        g.replay()
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    torch.cuda.synchronize()
    del g
    return {
        "backend": "torch.cuda.CUDAGraph.replay",
        "repeats": p.nodes,
        "sets": 1,
        "replays": HOST_REPS,
        "seconds": gpu / p.nodes,
        "replay_s": gpu,
        "host_s": statistics.median(wall),
        "host_cpu_s": statistics.median(cpu),
        "seconds_min": min(wall),
        "spread": (max(wall) - min(wall)) / statistics.median(wall),
    }


def measure_gpu(p: GPoint, monitor: EnergyMonitor) -> dict:
    if p.kind == "host_replay":
        return measure_host_replay(p, monitor)
    return measure_kernel(p, monitor)


def cuda_healthy() -> bool:
    """Whether the CUDA context still runs kernels (a sticky error breaks every later point)."""
    try:
        import torch

        torch.cuda.synchronize()
        return float(torch.ones(4, device=DEVICE).sum().item()) == 4.0
    except Exception:
        return False


def _cleanup() -> None:
    try:
        import torch

        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    except Exception:
        pass


def row_of(p: GPoint, measured: dict, state: dict, error: str = "") -> dict:
    flops, nbytes, count = p.work()
    row = {c: "" for c in COLUMNS}
    row.update({k: v for k, v in asdict(p).items()})
    row.update(
        key=p.key,
        kclass=p.kclass,
        fit_key=p.fit_key,
        metered=int(p.metered),
        flops=flops,
        bytes=nbytes,
        count=count,
    )
    row.update({k: measured[k] for k in MEASURED if k in measured})
    row.update({k: state.get(k, "") for k in GPU_STATE_FIELDS})
    row["utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    row["error"] = error[:300]
    return row


class CudaBroken(RuntimeError):
    """The CUDA context stopped working: the stage stops (the point is not recorded)."""


def run_plan(
    points: list[GPoint],
    out_csv: Path,
    monitor: EnergyMonitor,
    budget_s: float | None = None,
    measure: Callable[[GPoint, EnergyMonitor], dict] = measure_gpu,
    healthy: Callable[[], bool] = cuda_healthy,
    cleanup: Callable[[], None] = _cleanup,
    echo: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Measure every point whose key is not in out_csv yet, appending its row at once; stop
    (resumably) when budget_s is spent. A failing point is recorded with its error; one that
    leaves the CUDA context broken (a sticky error: every later kernel would fail) is recorded
    too, then CudaBroken is raised: a rerun, a new process, resumes after it. Returns counts measured / failed /
    skipped (already there) / left (budget)."""
    done = done_keys(out_csv)
    todo = [p for p in points if p.key not in done]
    counts = {"measured": 0, "failed": 0, "skipped": len(points) - len(todo), "left": 0}
    start = clock()
    last_kind = None
    for i, p in enumerate(todo):
        if budget_s is not None and clock() - start > budget_s:
            counts["left"] = len(todo) - i
            echo(f"graph: budget spent, {counts['left']} points left (rerun to resume)")
            break
        if p.kind != last_kind:
            echo(f"graph: {p.kind} ...")
            last_kind = p.kind
        try:
            measured, err = measure(p, monitor), ""
        except Exception as exc:  # a shape or backend a library refuses: record it, go on
            monitor.discard_window(p.key)
            measured, err = {}, f"{type(exc).__name__}: {exc}".replace("\n", " ")
            echo(f"graph: {p.key} failed: {err[:160]}")
            if not healthy():  # recorded (a new process resumes after it), then stop
                append_row(out_csv, row_of(p, measured, {}, "CUDA context broken: " + err))
                raise CudaBroken(f"{p.key}: {err[:300]}") from exc
        append_row(out_csv, row_of(p, measured, monitor.state(), err))
        counts["failed" if err else "measured"] += 1
        cleanup()
    return counts


def environment() -> dict:
    """The device and library facts the graph regime depends on."""
    import torch

    props = torch.cuda.get_device_properties(0)
    out = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device": props.name,
        "capability": list(torch.cuda.get_device_capability(0)),
        "sm_count": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "l2_cache_bytes": getattr(props, "L2_cache_size", None),
        "flash_sdp_enabled": torch.backends.cuda.flash_sdp_enabled(),
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for mod in ("transformers", "vllm", "flash_attn"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def measure_graph(
    out_dir: Path,
    monitor: EnergyMonitor,
    dtypes: tuple[str, ...],
    quick: bool = False,
    budget_s: float | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, int]:
    """The stage: environment (graph_env.json, once) and every point into graph.csv."""
    env = out_dir / GRAPH_ENV
    if not env.exists():
        env.write_text(json.dumps(environment(), indent=2) + "\n")
    plan = build_plan(dtypes, quick)
    counts = run_plan(plan, out_dir / GRAPH_CSV, monitor, budget_s, echo=echo)
    echo(
        f"graph: {counts['measured']} measured, {counts['failed']} failed, "
        f"{counts['skipped']} already there, {counts['left']} left"
    )
    return counts
