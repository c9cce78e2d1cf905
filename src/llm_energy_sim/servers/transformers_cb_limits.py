"""transformers' continuous batching (v5.17): the engine sizes it resolves on a GPU.

From transformers 5.17 src/transformers/generation/continuous_batching/ (read, not copied):
`cache.py` PagedAttentionMemoryHandler with sdpa attention (which needs an attention mask, so
no CUDA graphs and no async batching): max_batch_tokens = 8192, bounded so one batch fills at
most 10% of the cache; num_blocks solved from 90% of the free memory after the weights for
the KV cache, the attention mask [M, N+M] and the step's activations; at most
min(1024, max_batch_tokens) requests per batch (prefix sharing possible, as for Llama).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.servers.memory import weight_bytes_per_gpu

DEFAULT_MAX_BATCH_TOKENS = 8192
MIN_MAX_BATCH_TOKENS = 256
MAX_MEMORY_PERCENT = 0.9  # no logits processors (greedy, EOS off)
CACHE_FILL_PER_BATCH = 0.1
MAX_REQUESTS_PER_BATCH = 1024
CUDA_CONTEXT_BYTES = (
    0.5 * 2**30
)  # counted as used by torch.cuda.mem_get_info before the cache is built
SAFETY_MARGIN = {"fifo": 0.15, "prefill_first": 0.0}


@dataclass(frozen=True)
class CbLimits:
    """Resolved sizes of the engine: what `ContinuousBatchingConfig` ends up with."""

    max_batch_tokens: int
    num_blocks: int
    block_size: int
    max_requests_per_batch: int
    safety_margin: float


def _memory_coefficients(
    card: ModelCard, act_bytes: int, tp: int
) -> list[tuple[float, float, float, float]]:
    """(per batch token M, per cache token N, per M*N, per M^2) bytes for each activation peak.

    The two peaks transformers checks: the LM head (hidden + fp32 logits per token) and attention
    (hidden, q, new k/v per token; old k/v of the whole cache). Both add the KV cache itself,
    the int32/int64 index tensors and the [M, N+M] attention mask that sdpa needs.
    """
    kv_heads = max(card.num_key_value_heads // tp, 1)
    page = card.d_head * kv_heads  # values per token per layer for K (and again for V)
    q_per_token = card.num_attention_heads * card.d_head
    layers = card.num_hidden_layers
    peaks = [
        (card.hidden_size * act_bytes + card.vocab_size * 4, 0.0),
        (act_bytes * (card.hidden_size + q_per_token + 2 * page), 2.0 * page * act_bytes),
    ]
    out = []
    for dm, dn in peaks:
        cn = dn + 2 * layers * page * act_bytes + 8  # KV cache + read index (N part)
        cm = dm + 7 * 4 + 4 + 8 + 8  # packed inputs, output ids, write index, read index (M part)
        out.append((cm, cn, float(act_bytes), float(act_bytes)))  # mask: M*N and M*M parts
    return out


def _solve_num_pages(coeffs, available: float, m: int) -> int:
    """Largest N (cache tokens) with memory(M=m, N) <= available for every peak."""
    best = math.inf
    for cm, cn, cmn, cmm in coeffs:
        best = min(best, math.floor((available - cm * m - cmm * m * m) / (cn + cmn * m)))
    return int(best)


def _upper_bound_batch_tokens(coeffs, available: float) -> int:
    """M when a batch is CACHE_FILL_PER_BATCH of the cache (M = f*N), the bound transformers uses."""
    f = CACHE_FILL_PER_BATCH
    best = math.inf
    for cm, cn, cmn, cmm in coeffs:
        a, b = cmn * f + cmm * f * f, cn + cm * f
        n = (-b + math.sqrt(b * b + 4 * a * available)) / (2 * a)
        best = min(best, int(math.floor(n) * f))
    return int(best)


def transformers_cb_limits(
    card: ModelCard, dtype: str, tp: int, gpu_memory_bytes: float, settings
) -> CbLimits:
    """The engine's defaults on this GPU, or the scenario's explicit values."""
    dt = dtype_info(dtype)
    weights = weight_bytes_per_gpu(card, dtype, tp)
    available = MAX_MEMORY_PERCENT * (gpu_memory_bytes - weights - CUDA_CONTEXT_BYTES)
    if available <= 0:
        raise UserError(
            f"{card.name} in {dtype} ({weights / 2**30:.1f} GiB per GPU) does not fit in "
            f"{gpu_memory_bytes / 2**30:.1f} GiB"
        )
    coeffs = _memory_coefficients(card, dt.act_bytes, tp)
    bs = settings.block_size
    m = settings.max_batch_tokens
    if m is None:
        m = max(
            min(DEFAULT_MAX_BATCH_TOKENS, _upper_bound_batch_tokens(coeffs, available)),
            MIN_MAX_BATCH_TOKENS,
        )
    n_blocks = settings.num_blocks
    if n_blocks is None:
        n_blocks = max(_solve_num_pages(coeffs, available, m) // bs, 1)
    return CbLimits(
        max_batch_tokens=int(m),
        num_blocks=int(n_blocks),
        block_size=bs,
        max_requests_per_batch=min(MAX_REQUESTS_PER_BATCH, int(m)),
        safety_margin=SAFETY_MARGIN[settings.scheduler],
    )
