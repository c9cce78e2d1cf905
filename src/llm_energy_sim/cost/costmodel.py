"""Roofline cost model of one forward step: GPU time, host time, wall time and energy.

Each kernel group costs t = max(F/C, B/M) + count*t0 on the GPU and draws
P = p_base + w_c*u_c + w_m*u_m (clipped at the power limit). The step's wall time is
max(GPU time, host time): when the host (Python, kernel launches) is slower, the GPU waits
at the profile's host-wait power. Under tensor parallelism every kernel is sharded over the
tp GPUs of the replica, two all-reduces per layer are added, and all tp GPUs draw power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from llm_energy_sim.config.dtypes import DtypeInfo, dtype_info
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.config.profile import HostOverhead, Profile
from llm_energy_sim.cost.decodecost import DecodePricer
from llm_energy_sim.cost.kernels import (
    EngineShape,
    KernelGroup,
    attn_decode_kernel,
    attn_packed_graph_kernels,
    attn_packed_kernel,
    attn_prefill_kernel,
    batched,
    eager_elementwise_kernel,
    elementwise_kernel,
    layer_elementwise_bytes,
    layer_linears,
    lm_head_kernel,
    masked_kv_heads,
    sampler_kernel,
)
from llm_energy_sim.cost.nf4dispatch import dequantising_per_layer
from llm_energy_sim.cost.stepprice import StepPricer

# the graph-regime classes transformers CB's packed attention is priced with when measured
PACKED_GRAPH_CLASSES = {"attn_kv_copy_graph", "attn_masked_sdpa_graph"}
# graph-regime class of a kernel class whose graph measurement has another name: a prefill's
# attention in a flash-attention engine (vLLM's FLASH_ATTN backend) is the varlen kernel,
# measured as attn_varlen_graph (calibrate/graphbench.py, the same attn_prefill_kernel
# formula); any other class is measured as "<class>_graph"
GRAPH_CLASS = {"attn_prefill": "attn_varlen_graph", "sampler_graph": "sampler_graph"}
# the sampler's measured class: its GPU time, the same under graphs or eager launches (vLLM
# launches it eagerly; at the batches where it costs, the GPU, not the launches, binds:
# measurements/calibration/h200-sampler eager.csv against graph.csv)
SAMPLER_CLASS = "sampler_graph"

# keyed by a server kind's cost_engine (its registry entry in config/servers.py)
ENGINE_SHAPES: dict[str, EngineShape] = {
    # HF transformers modeling code: separate q/k/v and gate/up projections, eager small ops
    "hf_eager": EngineShape(
        fused_qkv=False,
        fused_gate_up=False,
        elementwise_launches_per_layer=14,
        eager_small_ops=True,
    ),
    # transformers continuous batching: the same eager layers, attention through paged|sdpa;
    # its loop reads every step's outputs back before it schedules the next (continuous_api.py
    # ContinuousBatchProcessor: prepare_next_batch, then the forward, then update_batch), so
    # the scheduler's per-step and per-request work is serial with the GPU (host_serial;
    # measured: a decode step at batch 256 ran 26-37 ms longer than its kernels with CUDA
    # graphs on, measurements/calibration/h200-cbprofile)
    "transformers_cb": EngineShape(
        fused_qkv=False,
        fused_gate_up=False,
        elementwise_launches_per_layer=14,
        packed_attention=True,
        eager_small_ops=True,
        host_serial=True,
    ),
    # the same engine with server.cuda_graphs: its steps replayed as CUDA graphs, whose static
    # shapes pad the queries to a multiple of 64 tokens and the KV read from the cache to a
    # multiple of 16384 (transformers 5.17 continuous_batching/initialization.py
    # FALLBACK_DEFAULTS q_padding_interval_size, kv_padding_interval_size; model_runner.py
    # maybe_pad_inputs; attention then reads padded KV + padded queries, input_outputs.py)
    "transformers_cb_graphs": EngineShape(
        fused_qkv=False,
        fused_gate_up=False,
        elementwise_launches_per_layer=14,
        packed_attention=True,
        eager_small_ops=True,
        cuda_graphs=True,
        pad_q=64,
        pad_kv=16384,
        host_serial=True,
    ),
    # TGI flash models: fused qkv and gate_up, fused norm+residual and rotary kernels, decode
    # steps replayed as CUDA graphs (server/text_generation_server/models/flash_causal_lm.py
    # cuda_graph_warmup; prefills run eagerly, their kernels large enough that the graph
    # floor does not bind): the graph-regime classes and the step-level power limit
    "tgi": EngineShape(
        fused_qkv=True, fused_gate_up=True, elementwise_launches_per_layer=5, cuda_graphs=True
    ),
    # vLLM V1 (0.11): fused qkv and gate_up (QKVParallelLinear, MergedColumnParallelLinear),
    # fused add+RMSNorm, rotary and SiLU-and-mul kernels, flash-attention varlen, CUDA graphs
    "vllm": EngineShape(
        fused_qkv=True, fused_gate_up=True, elementwise_launches_per_layer=5, cuda_graphs=True
    ),
}


@dataclass(frozen=True)
class StepWork:
    """What one forward step computes.

    prefill: (new_tokens, past_tokens) per sequence being prefilled in this step.
    n_decode / decode_ctx_sum: sequences decoding one token, and the sum of their KV lengths
    (each including the token being decoded).
    """

    prefill: tuple[tuple[int, int], ...] = ()
    n_decode: int = 0
    decode_ctx_sum: int = 0
    # the token rows a CUDA-graph step runs at: its batch padded up to the next captured graph
    # size (vLLM's cudagraph_capture_sizes); 0 = not padded. Linears and elementwise ops are
    # priced at max(tokens, graph_tokens); attention only at the real sequences.
    graph_tokens: int = 0
    # the longest decoding sequence's KV length (0: not given); a graph key of transformers
    # CB (CostModel.attn_shape)
    decode_ctx_max: int = 0

    @property
    def tokens(self) -> int:
        return sum(new for new, _ in self.prefill) + self.n_decode

    @property
    def n_seqs(self) -> int:
        return len(self.prefill) + self.n_decode

    @property
    def kv_read(self) -> int:
        """KV tokens the step reads: every sequence's past and new tokens."""
        return sum(new + past for new, past in self.prefill) + self.decode_ctx_sum


@dataclass(frozen=True)
class StepCost:
    wall_s: float
    gpu_s: float
    host_s: float
    energy_j: float  # all GPUs of the replica, busy kernels + host wait
    busy_energy_j: float
    n_gpus: int

    @property
    def power_per_gpu_w(self) -> float:
        return self.energy_j / self.wall_s / self.n_gpus if self.wall_s > 0 else 0.0


@dataclass
class _GroupCost:
    time_s: float
    energy_j: float


@dataclass
class CostModel:
    """Costs steps of one model card in one dtype on one replica (tp GPUs) of a profile."""

    card: ModelCard
    dtype: str
    profile: Profile
    engine: str = "hf_eager"
    tp: int = 1
    host_time_factor: float = 1.0  # this machine's host time / the calibration host's
    # attention under a padding mask (HF generate on left-padded static batches:
    # ServerKind.masked_attention_of): see kv_read_heads
    masked_attention: bool = False
    # the machine's CUDA JIT cache lacks the masked-attention kernels (hardware.kernel_cache
    # cold): see compile_key
    jit_cold: bool = False
    # how output tokens are drawn (workload.sampling): greedy, random or top_p
    sampling: str = "greedy"
    shape: EngineShape = field(init=False)
    dt: DtypeInfo = field(init=False)
    host: HostOverhead = field(init=False)

    def __post_init__(self) -> None:
        self.dt = dtype_info(self.dtype)
        self.shape = ENGINE_SHAPES[self.engine]
        self.host = _scaled_host(
            host_overhead(self.profile, self.engine, self.dtype, self.tp), self.host_time_factor
        )
        self.wait_w = self.host.wait_w or self.profile.idle.host_wait_w
        self.kv_read_heads = kv_read_heads(
            self.card, self.tp, self.masked_attention, self.dt.act_dtype
        )
        self._class_alias = (
            {"attn_prefill": "attn_prefill_masked", "attn_decode": "attn_decode_masked"}
            if self.masked_attention and not self.shape.packed_attention
            else {}
        )
        # masked 16-bit attention runs cuDNN kernels compiled per key-length alignment class
        # (float32's efficient/math kernels ship precompiled)
        compiles = self.jit_cold and self.masked_attention and self.dt.act_dtype != "float32"
        self.jit_s = (
            {
                "decode": self.host.jit_masked_decode_s.get(self.dt.act_dtype, 0.0),
                "prefill": self.host.jit_masked_prefill_s.get(self.dt.act_dtype, 0.0),
            }
            if compiles and not self.shape.packed_attention
            else {}
        )
        if not any(self.jit_s.values()):
            self.jit_s = {}
        # the miss is cuDNN's plan for an attention call, which runs in the activation dtype
        # (bitsandbytes LLM.int8: fp16, NF4: bf16): keyed by that dtype
        att = self.dt.act_dtype
        self.miss_s = self._scaled_miss_s(self.host, att)
        self.miss_s += self.host.attn_shape_miss_fixed_s.get(att, 0.0)  # not host-scaled
        self.recapture_s = self._recapture_s(att)
        self.miss_w = self.host.attn_shape_miss_w or self.wait_w
        self.cold_s = self.host.cold_start_s
        self.standby_k = self.profile.idle.step_standby_fraction
        self._plimit = self.profile.gpu.power_limit_w
        # where the power limit binds: on the step's mean power (CUDA-graph engines, whose
        # kernels are timed at full clock in short replays) or on each kernel's (eager
        # engines, whose kernels are timed in sustained windows, throttling included): see
        # power_limited
        self.step_limit = self.shape.cuda_graphs
        self._fits = {}
        self.eager_fallbacks: set[str] = set()  # graph-mode classes priced with eager fits
        # _layer_const's two parts, memoised: per token rows, per sampled positions
        self._rows_const: dict[int, tuple[float, float]] = {}
        self._logits_const: dict[int, tuple[float, float, float, float]] = {}
        self.decode_pricer = DecodePricer(self, StepWork)  # decode steps, memoised per size
        # kernels that sync with the host per call (HostOverhead.decode_sync): a decode step's
        # host and kernels add up; priced by step_cost (StepPricer assumes overlap)
        self.decode_sync = self.host.decode_sync
        # serial host seconds per KV token a step reads (HostOverhead.per_kv_token_s): charged
        # where the engine's per-step work is serial with its kernels (host_serial,
        # decode_sync), none where it overlaps them (DecodeSegment's constant host time)
        serial = self.shape.host_serial or self.decode_sync
        self.serial_kv_rate = self.host.per_kv_token_s if serial else 0.0
        # NF4 projections that dequantise pay host time in decode steps (_nf4_dequant_host_s)
        self.nf4_dequant = bool(self.host.nf4_dequant_call_s) and self.dt.name == "int4"
        self._nf4_host: dict[int, float] = {}  # _nf4_dequant_host_s, memoised per rows
        self.step_pricer = (
            None if self.shape.packed_attention or self.decode_sync else StepPricer(self)
        )

    # ---- kernel costing -------------------------------------------------------------
    def _fit(self, kclass: str, dtype: str):
        """The fit a kernel is priced with: under CUDA graphs the class measured inside graph
        replays ('<class>_graph', calibrate/graphbench.py) where the profile has it, else the
        eager class (the classes priced so are collected in `eager_fallbacks`). Under a
        padding mask the attention classes are the masked ones ('<class>_masked', measured as
        transformers runs them: calibrate/microbench.py _masked_attention), which a profile
        without them prices with the unmasked fit (config/profile.py CLASS_FALLBACK)."""
        kclass = self._class_alias.get(kclass, kclass)
        key = (kclass, dtype)
        if key not in self._fits:
            fit = None
            if self.shape.cuda_graphs:
                graph_class = GRAPH_CLASS.get(kclass, f"{kclass}_graph")
                graph = self.profile.kernels.get(graph_class)
                # a linear's weight format is its own kernel (bitsandbytes int8 / NF4 were
                # never timed in graphs): only its own dtype's graph fit, else the eager one
                if graph and (kclass != "linear" or dtype in graph):
                    fit = self.profile.kernel(graph_class, dtype)
                else:
                    self.eager_fallbacks.add(kclass)
            self._fits[key] = fit or self.profile.kernel(kclass, dtype)
        return self._fits[key]

    def group_cost(self, g: KernelGroup) -> _GroupCost:
        fit = self._fit(g.kclass, g.dtype)
        tc = g.flops / fit.peak_flops
        tm = g.bytes / fit.bandwidth
        t = max(tc / g.active, tm) + g.count * fit.t0_s
        if t <= 0:
            return _GroupCost(0.0, 0.0)
        if g.zeros and fit.zero_share:
            dyn = (fit.w_compute * tc + fit.w_memory * tm) * (1.0 - fit.zero_share * g.zeros)
            e = fit.p_base_w * t + dyn
        else:
            e = fit.p_base_w * t + fit.w_compute * tc + fit.w_memory * tm
        return _GroupCost(t, e if self.step_limit else min(e, self._plimit * t))

    def _allreduce_cost(self, tokens: int) -> _GroupCost:
        if self.tp <= 1 or tokens == 0:
            return _GroupCost(0.0, 0.0)
        ic = self.profile.allreduce(self.tp)
        nbytes = tokens * self.card.hidden_size * self.dt.act_bytes
        t = ic.alpha_s + 2.0 * (self.tp - 1) / self.tp * nbytes / ic.bus_bandwidth
        return _GroupCost(t, ic.power_w * t)

    def _layer_const(self, tokens: int, n_logits: int) -> tuple[float, float]:
        """GPU time and per-GPU energy of everything whose cost depends only on the token
        count (and the positions sampled): the layers' and the embedding's part, memoised per
        token count, then the LM head's and the sampling's, memoised per n_logits, added in
        the order a step's groups are (the same floats as summing them in one pass)."""
        rows = self._rows_const.get(tokens)
        if rows is None:
            rows = self._rows_const[tokens] = self._rows_part(tokens)
        head = self._logits_const.get(n_logits)
        if head is None:
            head = self._logits_const[n_logits] = self._logits_part(n_logits)
        t, e = rows
        return t + head[0] + head[2], e + head[1] + head[3]

    def _rows_part(self, tokens: int) -> tuple[float, float]:
        """Time and energy of every layer, then of the embedding gather and final norm."""
        c, L, dt = self.card, self.card.num_hidden_layers, self.dt
        groups = list(layer_linears(c, tokens, dt, self.tp, self.shape))
        if self.shape.eager_small_ops and "elementwise_eager" in self.profile.kernels:
            # measured chain of the HF eager layer's small ops; a profile fitted before that
            # microbenchmark existed keeps the generic elementwise estimate below
            tp = self.tp
            groups.append(
                eager_elementwise_kernel(
                    tokens,
                    c.hidden_size,
                    c.q_dim // tp,
                    c.kv_dim // tp,
                    c.intermediate_size // tp,
                    dt,
                )
            )
        else:
            groups.append(
                elementwise_kernel(
                    layer_elementwise_bytes(c, tokens, dt, self.tp),
                    dt,
                    self.shape.elementwise_launches_per_layer,
                )
            )
        t = e = 0.0
        for g in groups:
            gc = self.group_cost(g)
            t += gc.time_s
            e += gc.energy_j
        ar = self._allreduce_cost(tokens)
        t, e = L * (t + 2 * ar.time_s), L * (e + 2 * ar.energy_j)
        # once per step: embedding gather, final norm (then the LM head and sampling)
        gc = self.group_cost(elementwise_kernel(2.0 * tokens * c.hidden_size * dt.act_bytes, dt, 2))
        return t + gc.time_s, e + gc.energy_j

    def _logits_part(self, n_logits: int) -> tuple[float, float, float, float]:
        """(time, energy) of the LM head on the sampled positions, then of sampling."""
        c, dt = self.card, self.dt
        head = self.group_cost(
            lm_head_kernel(n_logits, c.hidden_size, math.ceil(c.vocab_size / self.tp), dt)
        )
        return (head.time_s, head.energy_j, *self._sampling_cost(n_logits))

    def _sampling_cost(self, n_logits: int) -> tuple[float, float]:
        """(time, energy) of drawing one token per sampled position: greedy as an argmax pass
        over float32 logits (elementwise); random and top-p by the sampler chain
        (cost/kernels.sampler_kernel), priced with its measured class 'sampler_graph' (its GPU
        time, timed inside graph replays), or where a profile lacks it with the elementwise
        fit over the same bytes (the sort then priced at a streaming rate: too fast)."""
        c, dt = self.card, self.dt
        if self.sampling == "greedy":
            g = self.group_cost(elementwise_kernel(3.0 * n_logits * c.vocab_size * 4, dt, 4))
            return g.time_s, g.energy_j
        k = sampler_kernel(self.sampling, n_logits, c.vocab_size, dt.act_bytes)
        if self.sampling in self.profile.kernels.get(SAMPLER_CLASS, {}):
            k = replace(k, kclass=SAMPLER_CLASS)
        else:
            self.eager_fallbacks.add("sampler")
            k = elementwise_kernel(k.bytes, dt, k.count)
        g = self.group_cost(k)
        return g.time_s, g.energy_j

    def _attention(self, work: StepWork) -> tuple[float, float]:
        c, L, dt, tp = self.card, self.card.num_hidden_layers, self.dt, self.tp
        nh, nkv, d = c.num_attention_heads // tp, max(c.num_key_value_heads // tp, 1), c.d_head
        if self.shape.packed_attention:
            return self._packed_attention(work, L, nh, nkv, d)
        nkv = self.kv_read_heads
        t = e = 0.0
        if work.prefill:
            # one attention call per layer covers every sequence prefilled in the step (HF
            # generate: one padded batch; flash varlen: one packed call): its FLOPs and bytes
            # add up, its fixed cost t0 is paid once, not once per sequence
            gc = self.group_cost(
                batched(
                    attn_prefill_kernel(new, past, nh, nkv, d, dt) for new, past in work.prefill
                )
            )
            t += gc.time_s
            e += gc.energy_j
        if work.n_decode:
            gc = self.group_cost(
                attn_decode_kernel(work.decode_ctx_sum, work.n_decode, nh, nkv, d, dt)
            )
            t += gc.time_s
            e += gc.energy_j
        return L * t, L * e

    @staticmethod
    def _packed_read(work: StepWork) -> tuple[int, int]:
        """(queries, past keys) of transformers CB's one packed attention call, unpadded: the
        step's tokens over every sequence's past."""
        return work.tokens, sum(p for _, p in work.prefill) + work.decode_ctx_sum - work.n_decode

    def _packed_shape(self, work: StepWork) -> tuple[int, int]:
        """(queries, keys) of that call: its read (_packed_read) plus the new tokens, padded
        as the engine's graphs are."""
        q_run, past_run = self.shape.padded(*self._packed_read(work))
        return q_run, past_run + q_run

    def _packed_attention(
        self, work: StepWork, layers: int, nh: int, nkv: int, d: int
    ) -> tuple[float, float]:
        """transformers CB: per layer one masked SDPA of all step tokens over all KV read
        (every sequence's past + new tokens); per step the mask slice is refilled."""
        q, kv = self._packed_shape(work)
        if self.shape.cuda_graphs and self.profile.kernels.keys() >= PACKED_GRAPH_CLASSES:
            # the read's real rows: every sequence's past and the step's tokens; the padding
            # is the engine's zeroed trash row
            real = sum(self._packed_read(work))
            groups = attn_packed_graph_kernels(q, kv, nh, nkv, d, self.dt, real)
            parts = [self.group_cost(g) for g in groups]
            layer = _GroupCost(sum(p.time_s for p in parts), sum(p.energy_j for p in parts))
        else:
            layer = self.group_cost(attn_packed_kernel(q, kv, nh, nkv, d, self.dt))
        mask = self.group_cost(elementwise_kernel(float(q) * kv * self.dt.act_bytes, self.dt, 1))
        return layers * layer.time_s + mask.time_s, layers * layer.energy_j + mask.energy_j

    def power_limited(self, gpu_s: float, busy_j: float) -> float:
        """The GPU time of a step whose kernels take gpu_s at the clocks they were timed at
        and draw busy_j per GPU. Under CUDA graphs (step_limit) the power limit acts on the
        step's mean power: where busy_j / gpu_s exceeds it the clocks drop until the step
        draws the limit, and the same energy takes busy_j / limit. Measured on the H200
        (measurements/calibration/h200-powercap): a 50%-duty GEMM/idle cycle of period 2-20
        ms averaged 548 W where its GEMM alone, sustained, is held at 697 W and the idle
        spin draws 131 W (the limiter averages over tens of milliseconds, longer than a
        step); whole Llama-3.1-8B decode steps at batch 256 and 512 drew 694-711 W and ran
        within 2.4% of this time (the kernels' graph-replay times alone: 11-21% short).
        Eager engines clip each kernel (group_cost) and return gpu_s."""
        if self.step_limit and busy_j > self._plimit * gpu_s:
            return busy_j / self._plimit
        return gpu_s

    def host_split(
        self, n_seqs: int, decode_only: bool = True, kv_tokens: int = 0
    ) -> tuple[float, float]:
        """A step's host time of n_seqs sequences reading kv_tokens KV tokens as (the part
        that may overlap its kernels, the part its kernels wait for): all overlapped by
        default; under a synchronous loop (EngineShape.host_serial) only the per-layer kernel
        launches overlap and the per-step, per-sequence and per-KV-token work runs between
        forwards; in a decode-only step whose kernels sync per call (decode_sync) none of it
        overlaps."""
        h = self.host
        launches = h.per_layer_s * self.card.num_hidden_layers
        if decode_only and self.nf4_dequant:
            launches += self._nf4_dequant_host_s(n_seqs)
        kv = self.serial_kv_rate * kv_tokens  # 0.0 where none: adding it changes no bit
        if self.decode_sync and decode_only:
            return 0.0, h.per_step_s + launches + h.per_sequence_s * n_seqs + kv
        if self.shape.host_serial:
            return launches, h.per_step_s + h.per_sequence_s * n_seqs + kv
        return h.per_step_s + launches + h.per_sequence_s * n_seqs, 0.0

    def _nf4_dequant_host_s(self, rows: int) -> float:
        """Host time a decode step of `rows` token rows adds for the NF4 projections that
        dequantise their weight at that row count (cost/nf4dispatch.py), every layer. In
        prefills the 'int4' linear fit, timed back to back at 16+ rows, already holds it."""
        t = self._nf4_host.get(rows)
        if t is None:
            n = dequantising_per_layer(self.card, rows, self.tp)
            t = self._nf4_host[rows] = (
                n * self.card.num_hidden_layers * self.host.nf4_dequant_call_s
            )
        return t

    def host_s(self, n_seqs: int, decode_only: bool = True) -> float:
        """The host time that may overlap the step's kernels (host_split)."""
        return self.host_split(n_seqs, decode_only)[0]

    def serial_host_s(self, n_seqs: int, decode_only: bool = True, kv_tokens: int = 0) -> float:
        """The host time the step's kernels wait for (host_split)."""
        return self.host_split(n_seqs, decode_only, kv_tokens)[1]

    def wait_power_w(self, gpu_s: float, busy_j: float) -> float:
        """Per-GPU power while the GPU waits for the host inside a step whose kernels take
        gpu_s and draw busy_j (all GPUs): host_wait + k*(P_busy - host_wait)."""
        if self.standby_k == 0.0 or gpu_s <= 0:
            return self.wait_w
        p_busy = busy_j / (self.tp * gpu_s)
        return self.wait_w + self.standby_k * (p_busy - self.wait_w)

    def attn_shape(self, work: StepWork) -> tuple[int, ...]:
        """The attention call's input shape in this step, the key of the engine's plan cache:
        one packed call over all tokens and all KV read (transformers CB), else a padded
        batch (HF generate: batch, query length, key length)."""
        if self.shape.packed_attention:
            return self._packed_shape(work) + self._longest_key_bucket(work)
        if work.prefill:
            q = max(new for new, _ in work.prefill)
            return (len(work.prefill), q, max(new + past for new, past in work.prefill))
        return (work.n_decode, 1, -(-work.decode_ctx_sum // work.n_decode))

    def _recapture_s(self, att: str) -> float:
        """What a new graph key costs where its tensor shapes were captured before (only the
        longest-sequence bucket is new, _longest_key_bucket): the capture without the cuDNN
        attention plan of a new SDPA shape. The calibrated capture (calibrate/graphcapture.py)
        met a new KV size every time, so it holds both; the plan alone is the eager engine's
        measured shape miss (the same cuDNN SDPA, host entry `transformers_cb`, calibrate/
        shapemiss.py), scaled as this engine's host time is. Engines without that key: miss_s."""
        if not (self.shape.cuda_graphs and self.shape.pad_kv):
            return self.miss_s
        eager = self.engine.removesuffix("_graphs")
        if eager == self.engine or eager not in self.profile.host:
            return self.miss_s
        h = _scaled_host(
            host_overhead(self.profile, eager, self.dtype, self.tp), self.host_time_factor
        )
        return max(self.miss_s - self._scaled_miss_s(h, att), 0.0)

    def _scaled_miss_s(self, h: HostOverhead, att: str) -> float:
        """A host entry's shape miss that follows the host speed: per call plus per layer."""
        return h.attn_shape_miss_s.get(att, 0.0) + self.card.num_hidden_layers * (
            h.attn_shape_miss_per_layer_s.get(att, 0.0)
        )

    def shape_miss_s(self, shape: tuple[int, ...], tensors_seen: bool) -> float:
        """Serial host seconds of a step at a shape new to the engine: a recapture where its
        tensor shapes (shape[:2]) were met before under another longest-sequence bucket,
        else the full miss (a graph capture with its attention plan, or the plan alone)."""
        return self.recapture_s if tensors_seen and len(shape) == 3 else self.miss_s

    def _longest_key_bucket(self, work: StepWork) -> tuple[int, ...]:
        """transformers CB with CUDA graphs keys its varlen graphs also by the longest
        sequence's key length padded to a power of two, at least 1024 (transformers 5.17
        continuous_batching/input_outputs.py `_get_graph_key`: (num_q_tokens, max_kv_read,
        *max_seqlen_k), max_seqlen_k through `pad_to_pow2(.., num_pages, 1024)` in
        get_model_kwargs), so a step whose longest sequence crosses a power of two meets a
        new graph even at a captured (q, KV) size. () for other engines. The cap at the
        cache's size is left out (it merges only keys longer than half the cache)."""
        if not (self.shape.cuda_graphs and self.shape.pad_kv):
            return ()
        longest = max(work.decode_ctx_max, max((n + p for n, p in work.prefill), default=0))
        return (max(MIN_GRAPH_SEQLEN_K, 1 << max(longest - 1, 0).bit_length()),)

    def decode_shapes(
        self, n_decode: int, ctx_sum0: int, k: int, ctx_max0: int = 0
    ) -> list[tuple[int, ...]]:
        """attn_shape of the k steps of a decode segment (context grows by n per step, the
        longest sequence's by one)."""
        if self.shape.packed_attention:
            return [
                self.attn_shape(
                    StepWork(
                        n_decode=n_decode,
                        decode_ctx_sum=ctx_sum0 + n_decode * j,
                        decode_ctx_max=ctx_max0 + j if ctx_max0 else 0,
                    )
                )
                for j in range(k)
            ]
        per_seq = -(-ctx_sum0 // n_decode)
        return [(n_decode, 1, per_seq + j) for j in range(k)]

    def compile_key(self, work: StepWork) -> tuple[str, int] | None:
        """The masked-attention kernel variant a step needs compiled on a cold machine
        (jit_s non-empty): (phase, alignment class of its key length), else None. The class is
        the largest power of two dividing the key length, 16 and above one class: in a fresh
        JIT cache the first padded batch of longest prompt 881 compiled exactly at key lengths
        882, 883, 884, 888 and 896 (classes 2, 1, 4, 8, 16+), a later batch at other lengths
        of those classes compiled none (measurements/calibration/h200-staticprobe,
        h200-jitprobe)."""
        if not self.jit_s:
            return None
        if work.prefill:
            return "prefill", align_class(max(new + past for new, past in work.prefill))
        return "decode", align_class(-(-work.decode_ctx_sum // work.n_decode))

    def decode_compile_keys(self, n_decode: int, ctx_sum0: int, k: int) -> list[tuple[str, int]]:
        """compile_key of the k steps of a decode segment ([] when nothing compiles)."""
        if not self.jit_s:
            return []
        per_seq = -(-ctx_sum0 // n_decode)
        return [("decode", align_class(per_seq + j)) for j in range(k)]

    def step_rows(self, tokens: int, graph_tokens: int = 0) -> int:
        """The token rows a step's token-wise kernels run at: a CUDA-graph step's are padded
        to its captured size (graph_tokens, the scheduler's) or to the engine's static
        query padding (EngineShape.pad_q), whichever is larger."""
        return max(graph_tokens, self.shape.padded(tokens, 0)[0])

    def step_cost(
        self,
        work: StepWork,
        shape_miss: bool | float = False,
        cold: bool = False,
        compile_s: float = 0.0,
    ) -> StepCost:
        """Cost of one forward step (all GPUs of the replica). shape_miss: True where the step
        meets a shape new to the engine (its full miss_s), or the seconds it pays for one
        (shape_miss_s).

        Decode-only steps: wall = max(gpu, host). Steps with prefill work overlap host and GPU
        less where the engine synchronises them (host.prefill_serial_fraction), and a step
        that starts sequences also pays the engine's per-call set-up (host.setup_s), during
        which the GPU waits."""
        tokens = work.tokens
        if tokens == 0:
            return StepCost(0.0, 0.0, 0.0, 0.0, 0.0, self.tp)
        n_logits = len(work.prefill) + work.n_decode
        t_const, e_const = self._layer_const(self.step_rows(tokens, work.graph_tokens), n_logits)
        t_attn, e_attn = self._attention(work)
        gpu = self.power_limited(t_const + t_attn, e_const + e_attn)
        busy = e_const + e_attn
        host, between = self.host_split(work.n_seqs, not work.prefill, work.kv_read)
        wall = max(gpu, host)
        if work.prefill:
            h = self.host
            wall += h.prefill_serial_fraction * min(gpu, host)
            if h.setup_s and any(past == 0 for _, past in work.prefill):
                wall += h.setup_s
                host += h.setup_s
        wait_e = self.wait_power_w(gpu, self.tp * busy) * (wall - gpu)
        # host work the kernels wait for (between forwards, or synced per call): the GPU
        # drained, at the host-wait power
        if between:
            wall += between
            host += between
            wait_e += self.wait_w * between
        # host-only work serial with the step, the GPU drained and waiting: the attention plan
        # built before the step's attention runs (a new shape), a kernel compiled for it on a
        # cold machine (compile_s), and a fresh process's one-time set-up before its first
        # kernels
        miss = self.miss_s if shape_miss is True else float(shape_miss or 0.0)
        serial = miss + (self.cold_s if cold else 0.0)
        serial += compile_s
        wall += serial
        host += serial
        wait_e += self.miss_w * serial
        return StepCost(wall, gpu, host, self.tp * (busy + wait_e), self.tp * busy, self.tp)

    # ---- decode segments in closed form ---------------------------------------------
    def decode_segment(self, n_decode: int, ctx_sum0: int) -> DecodeSegment:
        """Closed form for consecutive decode-only steps of a fixed batch of n_decode sequences.

        Step j attends over ctx_sum0 + n*j tokens. GPU time and busy energy are affine in j
        (the attention kernel's bound and the power clip are checked at both ends of any
        range used, see DecodeSegment); host time is constant, the serial host work affine
        (its per-KV-token part, HostOverhead.per_kv_token_s).
        """
        # = step_cost's gpu_s and busy_energy_j, bit for bit
        gpu0, busy0, gpu1, busy1, host = self.decode_pricer.first_two(n_decode, ctx_sum0)
        return DecodeSegment(
            self,
            n_decode,
            ctx_sum0,
            gpu0,
            gpu1 - gpu0,
            busy0,
            busy1 - busy0,
            host,
            self.wait_w * self.tp,
            self.standby_k,
            self.serial_host_s(n_decode, True, ctx_sum0),
            self.serial_kv_rate * n_decode,
        )


MIN_GRAPH_SEQLEN_K = 1024  # pad_to_pow2's min_value for max_seqlen_k (see _longest_key_bucket)
ALIGN_CLASSES = 16  # key lengths divisible by 16 or more share one compiled variant


def align_class(length: int) -> int:
    """The largest power of two dividing `length`, capped at ALIGN_CLASSES (compile_key)."""
    return min(length & -length, ALIGN_CLASSES)


def kv_read_heads(card: ModelCard, tp: int, masked: bool, act_dtype: str) -> int:
    """The K/V heads per GPU whose cache rows an attention call's bytes count (kernels.py
    attn_prefill_kernel, attn_decode_kernel: n_kv).

    Unmasked, in 16 bit: the model's KV heads, read once (torch SDPA's cuDNN and flash
    kernels take grouped K/V natively; cuDNN's SDPA runs fp16/bf16/fp8 only: the cuDNN
    frontend's attention support matrix). Under a padding mask transformers' SDPA path turns
    native GQA off (transformers integrations/sdpa_attention.py, use_gqa_in_sdpa: only when
    attention_mask is None) and repeat_kv copies K and V out to every query head first: the
    copy reads nkv heads and writes nh, the attention then reads nh, so 2 * nh + nkv heads'
    rows move, priced at the attention class's bandwidth (inside its roofline: in a
    compute-bound prefill the copy hides under the FLOPs, ~0.5% of an 8 x 900-token
    Llama-3.1-8B prefill). float32 attention runs torch's
    efficient or math kernel, whose GQA repeats K/V in either case (torch's SDPA reference:
    enable_gqa is a repeat_interleave), so the fitted float32 class already holds the copy
    and a mask adds none (its masked kernel is still a class of its own: 1.14x the unmasked
    fit's time at the median, measurements/calibration/h200-masked). Measured:
    measurements/calibration/h200-paddedpower, a padded batch
    of 16 Qwen2.5-14B bf16 rows drew 523 W and 31 J per step against 395 W and 18 J
    unpadded."""
    nh, nkv = card.num_attention_heads // tp, max(card.num_key_value_heads // tp, 1)
    return masked_kv_heads(nh, nkv, act_dtype) if masked else nkv


def host_overhead(profile: Profile, engine: str, dtype: str, tp: int = 1) -> HostOverhead:
    """The engine's host entry for this dtype (Profile.host_overhead); where the engine has
    none of its own for a dtype whose extra host work was measured only under HF generate
    (bitsandbytes: 'hf_eager:int8' / 'hf_eager:int4'), its entry plus what that dtype adds to
    HF generate per step, layer and sequence: the same quantised linear modules run in both
    engines, so their per-call host work is the same, and where those modules sync with the
    host per call (decode_sync), their prefill serial fraction too. A CUDA-graph engine's
    replay does not repeat host work per layer: it gets the per-step and per-sequence
    increments only."""
    base = profile.host_overhead(engine, dtype, tp)
    own = f"{engine}:{dtype}" in profile.host or tp > 1 or engine == "hf_eager"
    if own or f"hf_eager:{dtype}" not in profile.host or "hf_eager" not in profile.host:
        return base
    q, ref = profile.host[f"hf_eager:{dtype}"], profile.host["hf_eager"]
    graphs = ENGINE_SHAPES[engine].cuda_graphs

    def plus(field: str) -> float:
        return getattr(base, field) + max(0.0, getattr(q, field) - getattr(ref, field))

    # linears that sync with the host on every call (LLM.int8's outlier check) let no engine
    # overlap a prefill's host work with its kernels either: the dtype's serial fraction
    serial = (
        max(base.prefill_serial_fraction, q.prefill_serial_fraction)
        if q.decode_sync
        else base.prefill_serial_fraction
    )
    return base.model_copy(
        update={
            "decode_sync": base.decode_sync or q.decode_sync,
            "prefill_serial_fraction": serial,
            "per_step_s": plus("per_step_s"),
            "per_layer_s": base.per_layer_s if graphs else plus("per_layer_s"),
            "per_sequence_s": plus("per_sequence_s"),
            # per-call host work of the dtype's modules, repeated per layer: none in a replay
            "nf4_dequant_call_s": 0.0 if graphs else q.nf4_dequant_call_s,
            "source": f"{base.source}; plus the {dtype} increments of hf_eager:{dtype} over "
            "hf_eager (derived: cost.costmodel.host_overhead)",
        }
    )


def _scaled_host(h: HostOverhead, f: float) -> HostOverhead:
    """Every per-step host-side time of an engine entry times f (a faster or slower serving
    CPU than the one calibrated); its powers and the serial fraction are unchanged, and so is
    the one-time cold start, which did not follow the host's speed: a fresh engine's first
    tokens came 0.76 s after the start on the H200 with the slowest host (f = 1.58), 1.03 s
    on one with f = 0.99 (measurements/live/h200-b/burst, h200-c/burst; docs/host-speed.md)."""
    if f == 1.0:
        return h
    return h.model_copy(
        update={
            "per_step_s": h.per_step_s * f,
            "per_layer_s": h.per_layer_s * f,
            "per_sequence_s": h.per_sequence_s * f,
            "per_kv_token_s": h.per_kv_token_s * f,
            "setup_s": h.setup_s * f,
            "attn_shape_miss_s": {k: v * f for k, v in h.attn_shape_miss_s.items()},
            "attn_shape_miss_per_layer_s": {
                k: v * f for k, v in h.attn_shape_miss_per_layer_s.items()
            },
            # compiling is host work too (measured live: the compile steps of the matrix's
            # first static case, host factor 1.70, took 0.63-0.77 s against 0.39-0.47 s at
            # 0.87 in measurements/calibration/h200-jitprobe)
            "jit_masked_decode_s": {k: v * f for k, v in h.jit_masked_decode_s.items()},
            "jit_masked_prefill_s": {k: v * f for k, v in h.jit_masked_prefill_s.items()},
            "nf4_dequant_call_s": h.nf4_dequant_call_s * f,
        }
    )


def first_reaching(time_of, elapsed: float, k_max: int) -> int:
    """Smallest k <= k_max with time_of(k) >= elapsed, for a non-decreasing time_of."""
    lo, hi = 0, k_max
    while lo < hi:
        mid = (lo + hi) // 2
        if time_of(mid) >= elapsed:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _sum_affine(a: float, b: float, j0: int, j1: int) -> float:
    """sum_{j=j0}^{j1-1} (a + b*j)."""
    n = j1 - j0
    if n <= 0:
        return 0.0
    return n * a + b * (j0 + j1 - 1) * n / 2.0


def _sum_ratio(b0: float, db: float, g0: float, dg: float, n: int) -> float:
    """sum_{j=0}^{n-1} (b0 + db*j) / (g0 + dg*j), g0 > 0, in O(1).

    (b0 + db*j)/(g0 + dg*j) = db/dg + (b0 - db*g0/dg)/(g0 + dg*j); the sum of 1/(g0 + dg*j) is
    a difference of digammas, or (for a tiny slope, where that difference cancels) a Taylor
    series in x = dg/g0 with x*n < 1e-3, exact to about 1e-15."""
    if n <= 0:
        return 0.0
    x = dg / g0
    m = n - 1
    if abs(x) * m < 1e-3:
        # sum_j (b0 + db j) * (1/g0) * sum_p (-x j)^p, p <= 4; S[p] = sum_{j<n} j^p
        S = (
            float(n),
            m * n / 2.0,
            m * n * (2 * m + 1) / 6.0,
            (m * n / 2.0) ** 2,
            m * n * (2 * m + 1) * (3 * m * m + 3 * m - 1) / 30.0,
        )
        inv = sum((-x) ** p * S[p] for p in range(5))
        inv_j = sum((-x) ** p * S[p + 1] for p in range(4))
        return (b0 * inv + db * inv_j) / g0
    if dg < 0:  # never met (attention time grows with context): sum directly
        j = np.arange(n, dtype=float)
        return float(np.sum((b0 + db * j) / (g0 + dg * j)))
    from scipy.special import digamma  # here: importing scipy costs 0.2 s of start-up

    a = g0 / dg
    harm = (float(digamma(a + n)) - float(digamma(a))) / dg
    return db / dg * n + (b0 - db * a) * harm


def _steps_reaching(first: float, slope: float, total: float) -> int:
    """About the n where n*first + slope*n*(n-1)/2 reaches total (steps whose times
    start at `first` and grow by `slope`): DecodeSegment._guess's quadratic."""
    if total <= 0:
        return 0
    if first <= 0 and slope <= 0:
        return 0
    b = first - slope / 2.0
    disc = b * b + 2.0 * slope * total
    if disc <= 0 or b + math.sqrt(disc) <= 0:
        return 1
    return math.ceil(2.0 * total / (b + math.sqrt(disc)))


class DecodeSegment:
    """Cumulative wall time and energy of the first k steps of a decode-only batch, O(1) each.

    wall(j) = max(gpu0 + dgpu*j, host) + between(j); energy(j) = busy0 + dbusy*j +
    p_wait(j)*(max(gpu(j), host)-gpu(j)) + wait_w*between(j) with p_wait(j) = (1-k)*wait_w +
    k*busy(j)/gpu(j) (CostModel.wait_power_w, all GPUs); the sum of busy(j)/gpu(j) has a
    closed form too (_sum_ratio). between(j) = between + dbetween*j is the host work between
    forwards of a synchronous loop (CostModel.serial_host_s; dbetween its per-KV-token part's
    growth as the batch's KV grows by n a step). (A plain class with slots: one is built per
    decode run.)
    """

    __slots__ = ("model", "n", "ctx0", "gpu0", "dgpu", "busy0", "dbusy", "host", "wait_w")
    __slots__ += ("standby_k", "_s_all", "between", "dbetween")

    def __init__(
        self,
        model: CostModel,
        n: int,
        ctx0: int,
        gpu0: float,
        dgpu: float,
        busy0: float,
        dbusy: float,
        host: float,
        wait_w: float,
        standby_k: float = 0.0,
        between: float = 0.0,
        dbetween: float = 0.0,
    ) -> None:
        self.model, self.n, self.ctx0 = model, n, ctx0
        self.gpu0, self.dgpu, self.busy0, self.dbusy = gpu0, dgpu, busy0, dbusy
        self.host, self.wait_w, self.standby_k = host, wait_w, standby_k
        self.between, self.dbetween = between, dbetween
        # host-bound leading steps of an unbounded run (None: every step)
        if gpu0 >= host:
            self._s_all: int | None = 0
        elif dgpu <= 0:
            self._s_all = None
        else:
            self._s_all = max(0, math.ceil((host - gpu0) / dgpu))

    def _split(self, k: int) -> int:
        """Number of leading steps (of k) that are host-bound (gpu(j) < host)."""
        s = self._s_all
        return k if s is None or s > k else s

    def time(self, k: int) -> float:
        s = self._s_all  # _split and _sum_affine inline (this runs several times a run)
        if s is None or s > k:
            t = k * self.host  # + _sum_affine over no steps: 0.0
        else:
            n = k - s
            if n <= 0:
                t = s * self.host + 0.0
            else:
                t = s * self.host + (n * self.gpu0 + self.dgpu * (s + k - 1) * n / 2.0)
        return t + self._between_sum(k) if self.between or self.dbetween else t

    def _between_sum(self, k: int) -> float:
        """Serial host time of the first k steps: sum of between + dbetween*j, j < k."""
        if not self.dbetween:
            return k * self.between
        return k * self.between + self.dbetween * (k - 1) * k / 2.0

    def energy(self, k: int) -> float:
        s = self._split(k)
        # _sum_affine(busy0, dbusy, 0, k) and (gpu0, dgpu, 0, s) inline
        busy = k * self.busy0 + self.dbusy * (k - 1) * k / 2.0 if k > 0 else 0.0
        gpu = s * self.gpu0 + self.dgpu * (s - 1) * s / 2.0 if s > 0 else 0.0
        idle_s = s * self.host - gpu
        between = self.wait_w * self._between_sum(k) if self.between or self.dbetween else 0.0
        if self.standby_k == 0.0:
            return busy + self.wait_w * idle_s + between
        ks = self.standby_k
        # sum over host-bound steps of busy(j)/gpu(j) * (host - gpu(j))
        standby = self.host * _sum_ratio(
            self.busy0, self.dbusy, self.gpu0, self.dgpu, s
        ) - _sum_affine(self.busy0, self.dbusy, 0, s)
        return busy + (1.0 - ks) * self.wait_w * idle_s + ks * standby + between

    def is_affine_over(self, k: int) -> bool:
        """True if the closed form is exact for k steps: compare with a direct costing of the
        last step (the attention bound or the power clip could switch inside the range)."""
        if k <= 2:
            return True
        gpu, busy = self.model.decode_pricer.gpu_busy(self.n, self.ctx0 + self.n * (k - 1))
        gpu_pred = self.gpu0 + self.dgpu * (k - 1)
        busy_pred = self.busy0 + self.dbusy * (k - 1)
        return math.isclose(gpu, gpu_pred, rel_tol=1e-9) and math.isclose(
            busy, busy_pred, rel_tol=1e-9
        )

    def steps_to_reach(self, elapsed: float, k_max: int) -> int:
        """Smallest k <= k_max with time(k) >= elapsed (the step in progress at `elapsed`):
        first_reaching's answer, from the inverted closed form and a check of its neighbours
        (time is non-decreasing in k) instead of a bisection."""
        if elapsed <= 0.0 or k_max <= 0:
            return 0
        k = min(max(self._guess(elapsed), 1), k_max)
        time = self.time
        while k > 0 and time(k - 1) >= elapsed:
            k -= 1
        while k < k_max and time(k) < elapsed:
            k += 1
        return k

    def _guess(self, elapsed: float) -> int:
        """About the k where time(k) reaches elapsed (the quadratic of the GPU-bound part)."""
        s = self._s_all
        db = self.dbetween
        host = self.host + self.between  # a host-bound step's whole time (at j = 0)
        bound = None if s is None else self.time(s)  # the host-bound steps' time
        if bound is None or elapsed <= bound:
            return _steps_reaching(host, db, elapsed)
        rest = elapsed - bound  # n steps from step s: n*g + slope*n*(n-1)/2 >= rest
        g = self.gpu0 + self.dgpu * s + self.between + db * s
        return s + _steps_reaching(g, self.dgpu + db, rest)

    def last_step_power_per_gpu(self, k: int) -> float:
        """Power of step k-1 per GPU, used as the level the GPU leaves standby from."""
        j = k - 1
        gpu = self.gpu0 + self.dgpu * j
        wall = max(gpu, self.host)
        busy = self.busy0 + self.dbusy * j
        p_wait = self.wait_w
        if self.standby_k and gpu > 0:
            p_wait = (1.0 - self.standby_k) * self.wait_w + self.standby_k * busy / gpu
        e = busy + p_wait * (wall - gpu)
        tp = self.model.tp
        return e / wall / tp if wall > 0 else 0.0
