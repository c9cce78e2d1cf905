"""TGI v3.3's derived limits: default prefill budget and the KV capacity from free memory.

Sources (huggingface/text-generation-inference): launcher/src/main.rs (`compute_optimal`,
`Config::flop`, `vram_maximum`, default 4096), server/.../flash_causal_lm.py `warmup`
(KV blocks from free memory x MEMORY_FRACTION x TGI_WIGGLE_ROOM=0.90 after a warm-up
prefill of max_batch_prefill_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.servers.memory import kv_bytes_per_token_per_gpu, weight_bytes_per_gpu

TGI_WIGGLE_ROOM = 0.90
HOPPER_F16_FLOP = 900e12  # launcher/src/main.rs: Gpu::H100 f16_flop
DEFAULT_PREFILL_TOKENS = 4096


@dataclass(frozen=True)
class TgiLimits:
    max_batch_prefill_tokens: int
    kv_capacity_tokens: int  # max_batch_total_tokens
    max_total_tokens: int  # per request: input + max_new_tokens
    max_input_tokens: int


def _launcher_flop(c: ModelCard) -> float:
    """Config::flop in the launcher: per-token FLOPs of all layers (2*params of the projections)."""
    h, d = c.hidden_size, c.d_head
    q = 2 * c.num_attention_heads * d * h
    kv = 2 * c.num_key_value_heads * d * h
    attn = q + kv + kv + q + q  # q, k, v, attention, o -- as written there
    mlp = 2 * 3 * h * c.intermediate_size
    return float((attn + mlp) * c.num_hidden_layers)


def _vram_maximum(c: ModelCard, memory_bytes: float, fraction: float, tp: int) -> int | None:
    """`vram_maximum`: tokens that fit after the model, at 2 bytes per value, as TGI estimates."""
    d = c.d_head
    attn = (c.num_attention_heads + 2 * c.num_key_value_heads) * d
    o = c.num_attention_heads * d * c.hidden_size
    mlp = 3 * c.intermediate_size * c.hidden_size
    params = (mlp + attn + o) * c.num_hidden_layers + 2 * c.hidden_size * c.vocab_size
    model = params * 2
    kv = c.num_key_value_heads * 2 * d * 2 * c.num_hidden_layers
    mlp_tok = (c.intermediate_size + c.intermediate_size // 2) * 1 * 2 * 3
    available = memory_bytes * fraction * tp
    if available < model:
        return None
    return int((available - model) // (kv + mlp_tok))


def tgi_limits(
    card: ModelCard,
    dtype: str,
    tp: int,
    memory_bytes: float,
    fraction: float,
    max_batch_prefill_tokens: int | None,
    max_batch_total_tokens: int | None,
) -> TgiLimits:
    dt = dtype_info(dtype)
    if max_batch_prefill_tokens is None:
        optimal = HOPPER_F16_FLOP * tp / _launcher_flop(card)
        value = int(optimal) if optimal > 100 else DEFAULT_PREFILL_TOKENS
        value = min(value, card.max_position_embeddings)
        vmax = _vram_maximum(card, memory_bytes, fraction, tp)
        if vmax is not None:
            value = min(value, vmax)
        max_batch_prefill_tokens = max(value, 1)
    if max_batch_total_tokens is None:
        weights = weight_bytes_per_gpu(card, dtype, tp)
        kv_per_token = kv_bytes_per_token_per_gpu(card, dtype, tp)
        # peak activations of the warm-up prefill (hidden, qkv, gate/up, down input), an estimate
        act = (
            max_batch_prefill_tokens
            * dt.act_bytes
            * (
                3 * card.hidden_size
                + (card.q_dim + 2 * card.kv_dim) / tp
                + 3 * card.intermediate_size / tp
            )
        )
        free = memory_bytes * fraction * TGI_WIGGLE_ROOM - weights - act
        if free <= kv_per_token * 16:
            raise UserError(
                f"model '{card.name}' in {dtype} does not fit {tp} GPU(s) of "
                f"{memory_bytes / 1e9:.0f} GB with room for a KV cache: "
                f"weights {weights / 1e9:.1f} GB per GPU; use more GPUs (hardware.gpus_per_replica) "
                f"or a smaller dtype"
            )
        max_batch_total_tokens = int(free // kv_per_token)
    max_total = min(max_batch_total_tokens, card.max_position_embeddings)
    return TgiLimits(
        max_batch_prefill_tokens=max_batch_prefill_tokens,
        kv_capacity_tokens=max_batch_total_tokens,
        max_total_tokens=max_total,
        max_input_tokens=max_total - 1,
    )
