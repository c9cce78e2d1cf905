"""FLOPs and bytes of the kernels in one forward step, per kernel class.

Shared by the simulator (to cost a step) and by `calibrate/` (to fit the measured
microbenchmarks with exactly the same formulas), so fit and use cannot drift apart.

Kernel classes:
  linear       GEMM/GEMV of m tokens through a weight (in x out); dtype = weight dtype, except
               a bitsandbytes NF4 decoder projection of one token row, which runs bnb's own
               GEMV-style kernel instead of dequantise-then-GEMM and has its own fit, dtype
               "int4_gemv" (NF4_GEMV; Profile.kernel falls back to "int4" where it is absent)
  attn_prefill causal attention of c new tokens over p cached + c new tokens
  attn_decode  attention of one new token over a KV cache of s tokens
  attn_packed  transformers continuous batching's `paged|sdpa` attention: every sequence's
               KV gathered from the paged cache, GQA heads repeated, then ONE dense SDPA of
               all the step's query tokens against all gathered keys under an additive
               block-diagonal mask (transformers 5.17 integrations/sdpa_paged.py), so its
               cost grows with (step tokens) x (all KV read), not per sequence
  elementwise  norms, rotary, activation, residuals, embedding, greedy sampling (memory bound)
  sampler      random sampling over the logits (vLLM V1's sampler: temperature, then top-p
               by a sort of the whole vocabulary where a request asks for it), keyed by the
               sampling method, not a dtype (SAMPLING_METHODS)
  allreduce    tensor-parallel all-reduce (costed by the interconnect model, not here)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llm_energy_sim.config.dtypes import (
    FP32_GEMV,
    FP32_SMALL,
    HEAD_SHAPE_SEP,
    NF4_GEMV,
    DtypeInfo,
)
from llm_energy_sim.config.modelcard import ModelCard

KERNEL_CLASSES = ("linear", "attn_prefill", "attn_decode", "attn_packed", "elementwise")

# bitsandbytes NF4 linears run in two regimes (int4 rows of measurements/calibration/h100-v2
# and h200 microbench.csv):
# one token row takes bnb's own small-M kernel, 34-45 us flat over the five measured shapes
# (2-30 MB of weights); 16 and more rows mostly dequantise then GEMM (up to 129 us at 16 rows).
# The one-row fit is kept under this dtype key of the "linear" class. Only m == 1 was measured
# on that side, so only m <= NF4_GEMV_MAX_ROWS uses it (docs/calibration.md).
# (NF4_GEMV itself, the profile key, is defined in config/dtypes.py)
NF4_GEMV_MAX_ROWS = 1
# float32 linears (no tensor cores) run three kinds of kernel (float32 rows of measurements/
# calibration/h200 and h100-v2 microbench.csv, and of h200-fp32rows at 1-64 rows; five shapes
# each): one token row is a GEMV that streams the weights at the HBM rate (H200 3.7-4.4 TB/s
# over the shapes, H100 3.3); 2-8 rows a small-tile SIMT GEMM whose time grows with the rows
# (H200: 2.0-2.8 TB/s at 2 and 4 rows, 1.4-2.1 at 3, 6 and 8); 12 and more rows the tiled
# SIMT GEMM that reads the weights at about 1.6-1.8 TB/s until its 46 TFLOP/s roof binds. One
# roofline over all was 37% fast at 16 rows and 40% slow at one; the 12+ fit prices 2-8 rows
# 25-78% slow. Rows 9-11 were not measured: they take the 12+ fit.
FP32_GEMV_MAX_ROWS = 1
FP32_SMALL_MAX_ROWS = 8


def linear_fit_dtype(m: int, dtype: str) -> str:
    """The key of the linear fit an m-row linear of this weight dtype is costed with: the
    one-row GEMV regimes of NF4 and float32 (NF4_GEMV, FP32_GEMV), float32's small-row GEMM
    (FP32_SMALL), else the dtype's own."""
    if dtype == "int4" and 0 < m <= NF4_GEMV_MAX_ROWS:
        return NF4_GEMV
    if dtype == "float32" and 0 < m <= FP32_GEMV_MAX_ROWS:
        return FP32_GEMV
    if dtype == "float32" and 0 < m <= FP32_SMALL_MAX_ROWS:
        return FP32_SMALL
    return dtype


@dataclass(frozen=True)
class KernelGroup:
    """`count` identical kernel launches of one class; flops/bytes are totals over the group.
    `active`: the fraction of the GPU's SMs its thread blocks hold while it runs (1: all, the
    roofline's assumption); a kernel that leaves SMs idle in its rounds (the masked SDPA,
    sdpa_waves) takes flops / (rate x active) and draws the dynamic power of the FLOPs done.
    `zeros`: the share of its operands that are zeros (transformers CB's padded KV read points
    at a zeroed trash row), which lowers its dynamic power by its class's zero_share."""

    kclass: str
    dtype: str
    flops: float
    bytes: float
    count: int
    active: float = 1.0
    zeros: float = 0.0


def batched(groups) -> KernelGroup:
    """One launch doing the work of several same-class groups (a batched or packed call):
    FLOPs and bytes add up, the fixed per-launch cost is paid once."""
    groups = list(groups)
    if not groups:
        raise ValueError("batched() of no kernel groups")
    first = groups[0]
    if any(g.kclass != first.kclass or g.dtype != first.dtype for g in groups):
        raise ValueError("batched() needs groups of one kernel class and dtype")
    return KernelGroup(
        first.kclass, first.dtype, sum(g.flops for g in groups), sum(g.bytes for g in groups), 1
    )


def linear_kernel(m: int, n_in: int, n_out: int, dt: DtypeInfo, count: int = 1) -> KernelGroup:
    """m tokens through an (n_in x n_out) weight: weights read once, activations in and out."""
    flops = 2.0 * m * n_in * n_out
    bytes_ = n_in * n_out * dt.weight_bytes + m * (n_in + n_out) * dt.act_bytes
    return KernelGroup("linear", dt.name, count * flops, count * bytes_, count)


def attn_prefill_kernel(
    new: int, past: int, n_heads: int, n_kv: int, d: int, dt: DtypeInfo
) -> KernelGroup:
    """Causal attention (flash style): QK^T and PV over the visible context, Q/K/V/O traffic."""
    visible = past * new + new * (new + 1) / 2.0  # sum over new tokens of context length
    flops = 4.0 * n_heads * d * visible
    bytes_ = (2 * new * n_heads * d) * dt.act_bytes + 2 * (past + new) * n_kv * d * dt.kv_bytes
    return KernelGroup("attn_prefill", dt.act_dtype, flops, bytes_, 1)


def masked_kv_heads(n_heads: int, n_kv: int, act_dtype: str) -> int:
    """The K/V heads whose rows an attention under a padding mask moves, for its bytes
    (cost/costmodel.kv_read_heads says why): 16 bit with GQA, the repeat_kv copy (read n_kv,
    write n_heads) and the attention reading n_heads; float32, or no GQA, n_kv as unmasked."""
    if n_heads == n_kv or act_dtype == "float32":
        return n_kv
    return 2 * n_heads + n_kv


def attn_decode_kernel(
    ctx_sum: float, n_seqs: int, n_heads: int, n_kv: int, d: int, dt: DtypeInfo
) -> KernelGroup:
    """Decode attention of n_seqs sequences whose KV lengths sum to ctx_sum (one launch)."""
    flops = 4.0 * n_heads * d * ctx_sum
    bytes_ = 2.0 * n_kv * d * ctx_sum * dt.kv_bytes + 2 * n_seqs * n_heads * d * dt.act_bytes
    return KernelGroup("attn_decode", dt.act_dtype, flops, bytes_, 1)


def attn_packed_kernel(
    q_total: int, kv_total: int, n_heads: int, n_kv: int, d: int, dt: DtypeInfo
) -> KernelGroup:
    """One layer of transformers CB `paged|sdpa`: index_select of K and V (read + write
    kv_total x n_kv x d each), repeat_kv to n_heads (read n_kv, write n_heads; without GQA
    the transposed view is made contiguous, the same traffic), then a dense
    masked SDPA of q_total queries over kv_total keys: QK^T and PV over the full rectangle
    (the mask zeroes, it does not skip), reading K, V, the model-dtype mask, Q, writing O.
    Keyed by head shape (head_shape_key): per byte the call runs at a rate of its head layout
    (measurements/calibration/h200 and h200-packedheads: Qwen2.5-0.5B's 14/2 x 64 heads 1.2-1.6x
    slower in bf16, up to 3x in float32, than the 32/8 fit)."""
    ab = dt.act_bytes
    sdpa = (
        2 * kv_total * n_heads * d * ab + q_total * kv_total * ab + 2 * q_total * n_heads * d * ab
    )
    flops = 4.0 * n_heads * d * float(q_total) * float(kv_total)
    copies = _packed_copy_bytes(kv_total, n_heads, n_kv, d, dt)
    key = head_shape_key(dt.act_dtype, n_heads, n_kv)
    return KernelGroup("attn_packed", key, flops, float(copies + sdpa), 1)


def _packed_copy_bytes(kv_total: int, n_heads: int, n_kv: int, d: int, dt: DtypeInfo) -> int:
    """Bytes the `paged|sdpa` layer's copies move: index_select of K and V out of the cache
    (read + write kv_total x n_kv x d each), then repeat_kv to n_heads (read n_kv, write
    n_heads; without GQA the transposed view is made contiguous, the same traffic)."""
    gather = 2 * 2 * kv_total * n_kv * d * dt.kv_bytes
    repeat = 2 * kv_total * (n_kv + n_heads) * d * dt.act_bytes
    return gather + repeat


def head_shape_key(dtype: str, n_heads: int, n_kv: int) -> str:
    """The fit key of a class whose rate depends on the attention's head layout (its copies'
    access pattern, not only the bytes: `attn_kv_copy` measured at 12/2, 28/4 and 32/8 heads
    runs 0.96-1.16x one pooled fit, measurements/calibration/h200-overlap), e.g.
    "bfloat16@28/4"; config/profile.Profile.kernel falls back to the dtype's pooled fit where
    that head shape was not measured."""
    return f"{dtype}{HEAD_SHAPE_SEP}{n_heads}/{n_kv}"


#: streaming multiprocessors of the Hopper GPUs the shipped profiles describe (H100 SXM and
#: H200: 132, the NVIDIA H100 and H200 datasheets; torch.cuda.get_device_properties on the
#: H200 lease, measurements/calibration/h200-paddedq/graph_env.json)
HOPPER_SMS = 132
#: queries one thread block of cuDNN's fused SDPA forward takes (the sm90 flash fprop kernel
#: torch 2.11 picks for a masked bf16 SDPA): its grid is heads x ceil(q / 128) blocks, at most
#: one per SM (measured: grid 128 for 32 heads at 448-512 queries, 112 for 28 heads, 132 from
#: 576 on; measurements/calibration/h200-paddedq/kernels.csv)
SDPA_TILE_Q = 128


def sdpa_waves(q_total: int, n_heads: int, sms: int = HOPPER_SMS) -> int:
    """Rounds of thread blocks the masked SDPA runs: heads x query tiles over the SMs."""
    return max(1, -(-n_heads * -(-q_total // SDPA_TILE_Q) // sms))


def attn_packed_graph_kernels(
    q_total: int,
    kv_total: int,
    n_heads: int,
    n_kv: int,
    d: int,
    dt: DtypeInfo,
    real_kv: int | None = None,
) -> tuple[KernelGroup, KernelGroup]:
    """The same `paged|sdpa` layer as attn_packed_kernel, as its kernels run inside a CUDA
    graph, in two groups: the copies (index_select of K and V, then repeat_kv's expanded
    copy of the transposed rows to n_heads: four gather/strided copy kernels, their own class
    'attn_kv_copy', measured alone: calibrate/graphbench.py 'attn_kv_copy'; keyed by head
    shape, head_shape_key), and the masked SDPA. That SDPA is cuDNN's fused flash kernel: one
    thread block per (head, tile of SDPA_TILE_Q queries), each walking every key, at most one
    block per SM, so it runs in rounds (sdpa_waves) of a full tile's walk whatever the queries
    in it: `flops` is the blocks' work, heads x query tiles x one full tile's QK^T and PV over
    the keys, `active` the share of the SMs they hold over the rounds, so the time is the
    rounds' (waves x one tile's walk at the class's fitted rate, that of all SMs) and the
    power that of the busy SMs; `bytes` its HBM traffic (K, V, the mask, Q in, O out). Measured
    (measurements/calibration/h200-paddedq, 12 to 40 heads, 64 to 2048 queries, 16k to 51k
    keys): 23.4-25.5 ns per key a round; at 32 heads 512 queries take 0.43 ms over 16896 keys,
    576 queries 0.85 ms. real_kv: the rows of the read that are real tokens (default all); the
    rest is the engine's zeroed trash row (`zeros` of both groups)."""
    ab = dt.act_bytes
    zeros = 0.0 if real_kv is None else max(0.0, 1.0 - real_kv / kv_total)
    copies = _packed_copy_bytes(kv_total, n_heads, n_kv, d, dt)
    tiles = n_heads * -(-q_total // SDPA_TILE_Q)
    flops = 4.0 * d * float(kv_total) * SDPA_TILE_Q * tiles
    active = tiles / (sdpa_waves(q_total, n_heads) * HOPPER_SMS)
    sdpa = (
        2 * kv_total * n_heads * d * ab + q_total * kv_total * ab + 2 * q_total * n_heads * d * ab
    )
    return (
        KernelGroup(
            "attn_kv_copy",
            head_shape_key(dt.act_dtype, n_heads, n_kv),
            0.0,
            float(copies),
            4,
            zeros=zeros,
        ),
        KernelGroup("attn_masked_sdpa", dt.act_dtype, flops, float(sdpa), 1, active, zeros),
    )


def elementwise_kernel(nbytes: float, dt: DtypeInfo, count: int) -> KernelGroup:
    return KernelGroup("elementwise", dt.act_dtype, 0.0, nbytes, count)


def eager_elementwise_bytes(m: int, h: int, q: int, kv: int, i: int, act_bytes: int) -> float:
    """Bytes the unfused small ops of one HF eager Llama/Qwen layer move for m tokens (each op
    reads its inputs and writes its output; transformers 5.17 modeling code):
    two RMSNorms computed in float32 (upcast, pow, mean, times rsqrt, downcast, times weight;
    no casts in float32), rotary on q and k (neg and cat of rotate_half, two products, a sum),
    q made contiguous for SDPA and the output transposed back, SiLU(gate) * up, two residual
    adds, K and V written into the cache. Measured by the 'elementwise_eager' microbenchmark
    (calibrate/microbench.py), which runs these ops."""
    a = act_bytes
    casts = 0 if a == 4 else (a + 4) + (4 + a)
    norm = h * (casts + 8 + 4 + 8 + 2 * a)
    per_token = (
        2 * norm
        + 10 * a * (q + kv)  # rotary: neg (half), cat, x*cos, rot*sin, add
        + 4 * a * q  # q.contiguous(), attention output transpose(1, 2).contiguous()
        + 5 * a * i  # silu(gate), * up
        + 6 * a * h  # two residual adds
        + 4 * a * kv  # K and V into the cache
    )
    return float(m) * per_token


def eager_elementwise_kernel(m: int, h: int, q: int, kv: int, i: int, dt: DtypeInfo) -> KernelGroup:
    """One layer's unfused small ops as one group: its fit's t0 is the whole chain's launch
    cost (about 34 kernels), so count is 1."""
    nbytes = eager_elementwise_bytes(m, h, q, kv, i, dt.act_bytes)
    return KernelGroup("elementwise_eager", dt.act_dtype, 0.0, nbytes, 1)


@dataclass(frozen=True)
class EngineShape:
    """How an engine lays a layer out in kernels (fused projections, launches per layer)."""

    fused_qkv: bool = False
    fused_gate_up: bool = False
    elementwise_launches_per_layer: int = 14  # HF eager Llama layer: norms, rotary, act, adds
    packed_attention: bool = False  # one masked SDPA over the whole batch (attn_packed)
    # HF eager layer: unfused float32 norms, rotary, SiLU * up (priced as elementwise_eager)
    eager_small_ops: bool = False
    # execution mode: False = eager launches (one host launch per kernel), True = CUDA graph
    # replays (kernels priced with the graph-regime classes, "<class>_graph", where measured)
    cuda_graphs: bool = False
    # static graph shapes of a packed-attention engine: the step's query tokens padded up to a
    # multiple of pad_q, the KV it reads from the cache up to a multiple of pad_kv (at least
    # one); 0 = unpadded
    pad_q: int = 0
    pad_kv: int = 0
    # a synchronous engine loop: each step's outputs are read back before the next step is
    # scheduled, so the host's per-step and per-sequence work (schedule, build the step's
    # tensors, update the requests) runs between forwards with the GPU drained, and only its
    # kernel launches (per layer) overlap the GPU: wall = max(GPU, launches) + that work
    # (CostModel.step_cost). False: every host term may overlap the GPU (max(GPU, host)).
    host_serial: bool = False

    def padded(self, q: int, kv_read: int) -> tuple[int, int]:
        """(query tokens, KV tokens read from the cache) as the step's graph runs them."""
        if self.pad_q:
            q = -(-q // self.pad_q) * self.pad_q
        if self.pad_kv:
            kv_read = max(1, -(-kv_read // self.pad_kv)) * self.pad_kv
        return q, kv_read


def layer_linears(card: ModelCard, m: int, dt: DtypeInfo, tp: int, shape: EngineShape):
    """The projections of one layer for m tokens, sharded over tp GPUs (Megatron style).
    NF4 and float32 projections of one token row are keyed to their GEMV fits (NF4_GEMV,
    FP32_GEMV); an NF4 model's LM head is not (bitsandbytes quantisation as measured,
    calibrate/hostbench.py, leaves it in 16 bit), a float32 model's is (lm_head_kernel)."""
    h, i = card.hidden_size, card.intermediate_size
    q, kv = card.q_dim // tp, card.kv_dim // tp
    groups = []
    if shape.fused_qkv:
        groups.append(linear_kernel(m, h, q + 2 * kv, dt))
    else:
        groups.append(linear_kernel(m, h, q, dt))
        groups.append(linear_kernel(m, h, kv, dt, count=2))
    groups.append(linear_kernel(m, card.q_dim // tp, h, dt))
    if shape.fused_gate_up:
        groups.append(linear_kernel(m, h, 2 * i // tp, dt))
    else:
        groups.append(linear_kernel(m, h, i // tp, dt, count=2))
    groups.append(linear_kernel(m, i // tp, h, dt))
    kd = linear_fit_dtype(m, dt.name)
    if kd != dt.name:
        groups = [replace(g, dtype=kd) for g in groups]
    return groups


def lm_head_kernel(n_logits: int, hidden: int, vocab: int, dt: DtypeInfo) -> KernelGroup:
    """The LM head over the sampled positions, keyed to float32's GEMV fit at one row (an NF4
    model's head stays on its weight dtype's fit: see layer_linears)."""
    g = linear_kernel(n_logits, hidden, vocab, dt)
    kd = linear_fit_dtype(n_logits, dt.name)
    return replace(g, dtype=kd) if kd in (FP32_GEMV, FP32_SMALL) else g


def layer_elementwise_bytes(card: ModelCard, m: int, dt: DtypeInfo, tp: int) -> float:
    """Bytes moved by one layer's small kernels for m tokens (each reads and writes its tensor)."""
    h, i = card.hidden_size, card.intermediate_size // tp
    q, kv = card.q_dim // tp, card.kv_dim // tp
    per_token = (
        2 * 2 * h  # two RMSNorms, read + write
        + 2 * (q + kv)  # rotary on q and k
        + 3 * i  # SiLU(gate) * up
        + 2 * 3 * h  # two residual adds (read a, read b, write)
        + 2 * kv  # writing K and V into the cache
    )
    return float(m) * per_token * dt.act_bytes


# vLLM 0.11's V1 sampler (vllm/v1/sample/sampler.py and ops/topk_topp_sampler.py; FlashInfer's
# sampler only with VLLM_USE_FLASHINFER_SAMPLER=1): logits cast to float32, divided by each
# row's temperature, then for top-p a sort of every row (values and int64 indices), softmax,
# cumulative sum, a mask of the tail and its fill, a scatter back to vocabulary order; then
# softmax, exponential noise, a divide and an argmax (the Gumbel-style draw without a host
# sync). Greedy (temperature 0) is the cast and the argmax. Per element of the (rows x vocab)
# logits, the bytes each of those torch ops reads and writes once (float32 4, the index 8, a
# mask 1, the logits' own dtype a), and the ops launched:
#   top_p  cast 4+a, divide 8, sort 4+4+8, softmax 8, cumsum 8, compare 5, fill 9,
#          scatter (a copy 8 and 8+4+4), softmax 8, noise 4, divide 12, argmax 4
#   random cast, divide, softmax, noise, divide, argmax
#   greedy cast, argmax
SAMPLER_BYTES = {"top_p": 106.0, "random": 36.0, "greedy": 4.0}  # float32 parts, per element
SAMPLER_OPS = {"top_p": 12, "random": 6, "greedy": 2}
SAMPLING_METHODS = tuple(SAMPLER_BYTES)


def sampler_kernel(method: str, rows: int, vocab: int, act_bytes: int) -> KernelGroup:
    """Sampling one token for each of `rows` rows of logits over `vocab` entries by `method`
    (SAMPLING_METHODS), as vLLM 0.11's sampler does it: bytes the chain of torch ops moves
    (SAMPLER_BYTES plus the cast's read of the logits' own dtype), one launch per op. Memory
    bound (the sort's several radix passes show as an effective bandwidth below the copy
    rate); measured inside CUDA graphs as class 'sampler_graph'."""
    if method not in SAMPLER_BYTES:
        raise ValueError(f"sampling method {method!r}: one of {', '.join(SAMPLING_METHODS)}")
    per = SAMPLER_BYTES[method] + 4.0 + act_bytes
    return KernelGroup("sampler", method, 0.0, float(rows) * vocab * per, SAMPLER_OPS[method])


def fp8_quant_kernel(m: int, n: int, dt: DtypeInfo, count: int = 1) -> KernelGroup:
    """Dynamic fp8 quantisation of an (m x n) activation before an fp8 GEMM (vLLM's
    scaled_fp8_quant, per tensor or per token): an amax pass reads the activation, a scaled
    cast reads it again and writes one byte per element, plus a float32 scale per row (at
    most). Memory bound; measured inside CUDA graphs as class 'fp8_quant_graph'."""
    bytes_ = m * n * (2 * dt.act_bytes + 1) + 4 * m
    return KernelGroup("fp8_quant", dt.name, 0.0, float(count * bytes_), count)
