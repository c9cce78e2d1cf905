"""vLLM 0.11.1's resolved limits on one replica: token budget, running-request cap, KV blocks
and CUDA-graph capture sizes.

Facts from vllm-project/vllm v0.11.1 (read, not copied):

- `vllm serve` defaults (engine/arg_utils.py `get_batch_defaults`, `_set_default_args`): on a
  GPU with at least 70 GiB that is not an A100, max_num_batched_tokens 8192 and max_num_seqs
  1024 (OPENAI_API_SERVER usage context); on other GPUs 2048 and 256. An unset
  max_num_batched_tokens is then at most max_num_seqs x max_model_len (and, without chunked
  prefill, at least max_model_len); an unset max_num_seqs at most max_num_batched_tokens.
- max_model_len defaults to the model's context length (config/model.py).
- KV memory (v1/worker/gpu_worker.py `determine_available_memory`): requested memory = total
  GPU memory x gpu_memory_utilization; minus the memory that is not KV cache after a profile
  run: the weights, the torch peak of a dummy forward of max_num_batched_tokens tokens plus
  the sampler's dummy run over max_num_seqs rows (gpu_model_runner.py `profile_run`), and the
  non-torch memory (CUDA context, cuBLAS/NCCL buffers). Blocks = that // (block_size x KV
  bytes per token of one GPU) (v1/core/kv_cache_utils.py `get_num_blocks`: available //
  page_size // num_layers), or num_gpu_blocks_override. One block is vLLM's null block
  (v1/core/block_pool.py), never allocated.
- Start-up refuses a KV cache that cannot hold one request of max_model_len tokens
  (kv_cache_utils.py `check_enough_kv_cache_memory`).
- CUDA graphs (config/vllm.py `_set_cudagraph_sizes`; cudagraph_mode FULL_AND_PIECEWISE, the
  V1 default): max capture size = min(2 x max_num_seqs, 512), then at most
  max_num_batched_tokens; sizes 1, 2, 4, multiples of 8 below 256, multiples of 16 from 256
  up to it; given sizes are kept up to max_num_batched_tokens, sorted and de-duplicated. A
  step of n tokens with n <= the largest size runs at the smallest captured size >= n
  (`pad_for_cudagraph`, gpu_model_runner.py `_get_num_input_tokens`); larger steps run eager.

The approximation (stated): the profile run's torch peak is estimated, not measured: the
larger of one decoder layer's live activations at max_num_batched_tokens tokens (residual and
normed hidden, fused qkv, the fused gate_up output and its SiLU-and-mul product) and the
sampler's float32 logits with two working copies over max_num_seqs rows; non-torch memory is
a flat 0.5 GiB per GPU. CUDA-graph pools are captured after the KV cache is sized and are not
subtracted (as in 0.11.1, which does not estimate them during profiling).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.servers.memory import GIB, kv_bytes_per_token_per_gpu, weight_bytes_per_gpu

BIG_GPU_BYTES = 70 * GIB  # get_batch_defaults: "device_memory >= 70 * GiB_bytes"
BIG_GPU_DEFAULTS = (8192, 1024)  # (max_num_batched_tokens, max_num_seqs), OPENAI_API_SERVER
OTHER_GPU_DEFAULTS = (2048, 256)
MAX_CAPTURE_SIZE = 512  # min(max_num_seqs * 2, 512)
NON_TORCH_BYTES = 0.5 * GIB  # an estimate of the profile's non_torch_increase
SAMPLER_COPIES = 3  # logits, probabilities, one working copy (float32), an estimate


@dataclass(frozen=True)
class VllmLimits:
    max_num_batched_tokens: int
    max_num_seqs: int
    max_model_len: int
    num_gpu_blocks: int  # the pool, the null block excluded
    block_size: int
    cudagraph_capture_sizes: tuple[int, ...]  # ascending; () = eager
    kv_cache_bytes: float  # per GPU, before it is cut into blocks

    @property
    def max_capture_size(self) -> int:
        return self.cudagraph_capture_sizes[-1] if self.cudagraph_capture_sizes else 0

    def graph_tokens(self, tokens: int) -> int:
        """The captured size a step of `tokens` tokens runs at; 0 when it runs eager."""
        sizes = self.cudagraph_capture_sizes
        if not sizes or tokens > sizes[-1] or tokens <= 0:
            return 0
        return sizes[bisect.bisect_left(sizes, tokens)]


def batch_defaults(gpu_name: str, memory_bytes: float) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) `vllm serve` picks on this GPU."""
    if memory_bytes >= BIG_GPU_BYTES and "a100" not in gpu_name.lower():
        return BIG_GPU_DEFAULTS
    return OTHER_GPU_DEFAULTS


def capture_sizes(
    given: list[int] | None, max_num_seqs: int, max_num_batched_tokens: int
) -> tuple[int, ...]:
    """The CUDA-graph batch sizes vLLM captures (config/vllm.py _set_cudagraph_sizes)."""
    if given is not None:
        return tuple(sorted({s for s in given if s <= max_num_batched_tokens}))
    top = min(min(2 * max_num_seqs, MAX_CAPTURE_SIZE), max_num_batched_tokens)
    sizes = [s for s in (1, 2, 4) if s <= top]
    if top >= 8:
        sizes += list(range(8, min(top + 1, 256), 8))
    if top >= 256:
        sizes += list(range(256, top + 1, 16))
    return tuple(sizes)


def profile_peak_bytes(card: ModelCard, dtype: str, tp: int, tokens: int, seqs: int) -> float:
    """Estimated torch peak of the profile run (see the module docstring)."""
    a = dtype_info(dtype).act_bytes
    h, i = card.hidden_size, card.intermediate_size
    layer = tokens * a * (2 * h + (card.q_dim + 2 * card.kv_dim) / tp + 3 * i / tp)
    sampler = seqs * card.vocab_size * 4 * SAMPLER_COPIES
    return float(max(layer, sampler))


def vllm_limits(
    card: ModelCard,
    dtype: str,
    tp: int,
    gpu_name: str,
    memory_bytes: float,
    settings,
) -> VllmLimits:
    """What vLLM resolves for one replica of tp GPUs, or the scenario's explicit values."""
    s = settings
    max_model_len = s.max_model_len or card.max_position_embeddings
    d_tokens, d_seqs = batch_defaults(gpu_name, memory_bytes)
    seqs = s.max_num_seqs if s.max_num_seqs is not None else d_seqs
    tokens = s.max_num_batched_tokens
    if tokens is None:
        tokens = d_tokens
        if not s.enable_chunked_prefill:
            tokens = max(max_model_len, tokens)
        tokens = min(seqs * max_model_len, tokens)
    if s.max_num_seqs is None:
        seqs = min(seqs, tokens)
    if tokens < seqs:  # SchedulerConfig.verify_max_model_len
        raise UserError(
            f"vllm: max_num_batched_tokens ({tokens}) must be at least max_num_seqs ({seqs})"
        )
    if not s.enable_chunked_prefill and tokens < max_model_len:
        raise UserError(
            f"vllm: max_num_batched_tokens ({tokens}) is smaller than max_model_len "
            f"({max_model_len}) without chunked prefill; raise it or lower max_model_len"
        )
    weights = weight_bytes_per_gpu(card, dtype, tp)
    kv_per_token = kv_bytes_per_token_per_gpu(card, dtype, tp)
    requested = memory_bytes * s.gpu_memory_utilization
    kv_bytes = requested - weights - profile_peak_bytes(card, dtype, tp, tokens, seqs)
    kv_bytes -= NON_TORCH_BYTES
    if kv_bytes <= 0:
        raise UserError(
            f"vllm: {card.name} in {dtype} leaves no memory for a KV cache on {tp} GPU(s) "
            f"of {memory_bytes / GIB:.1f} GiB at gpu_memory_utilization "
            f"{s.gpu_memory_utilization}: weights {weights / GIB:.1f} GiB per GPU; raise "
            "hardware.gpus_per_replica or gpu_memory_utilization, or use a smaller dtype"
        )
    profiled = int(kv_bytes // (s.block_size * kv_per_token))
    need = -(-max_model_len // s.block_size)
    if need > profiled:  # checked on the profiled memory, before any override
        raise UserError(
            f"vllm: a request of max_model_len {max_model_len} tokens needs {need} KV blocks "
            f"of {s.block_size} tokens but the cache holds {profiled}; lower server.max_model_len, "
            "raise gpu_memory_utilization or hardware.gpus_per_replica"
        )
    total = s.num_gpu_blocks_override if s.num_gpu_blocks_override is not None else profiled
    blocks = max(total - 1, 0)  # the null block
    return VllmLimits(
        max_num_batched_tokens=int(tokens),
        max_num_seqs=int(seqs),
        max_model_len=int(max_model_len),
        num_gpu_blocks=int(blocks),
        block_size=s.block_size,
        cudagraph_capture_sizes=capture_sizes(s.cudagraph_capture_sizes, seqs, tokens),
        kv_cache_bytes=float(kv_bytes),
    )
