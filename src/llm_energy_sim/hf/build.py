"""HF models built from model cards, with random weights, and the continuous batching manager.

The model comes from AutoModelForCausalLM.from_config (the library's normal initialisation,
never zeros), so no download is needed; weight values do not change time or power much. EOS
is disabled so every request generates exactly its trace's output tokens, as the simulator
assumes. torch / transformers are imported inside the functions.
"""

from __future__ import annotations

import math
import time
from typing import Any

from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.hf.quantize import BUILD_DTYPE, QUANTIZED, quantize_linears

# transformers model_type of each architecture a card may name
MODEL_TYPES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "MistralForCausalLM": "mistral",
}


TORCH_DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


def hf_config(card: ModelCard, dtype: str):
    """A transformers config with the card's architecture (Llama family)."""
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(
        MODEL_TYPES[card.architecture],
        hidden_size=card.hidden_size,
        intermediate_size=card.intermediate_size,
        num_hidden_layers=card.num_hidden_layers,
        num_attention_heads=card.num_attention_heads,
        num_key_value_heads=card.num_key_value_heads,
        head_dim=card.d_head,
        vocab_size=card.vocab_size,
        max_position_embeddings=card.max_position_embeddings,
        tie_word_embeddings=card.tie_word_embeddings,
        attention_bias=card.attention_bias,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    if card.architecture == "MistralForCausalLM":
        # MistralConfig defaults to a 4096-token sliding window; the Mistral-7B v0.3 card's
        # config.json has none ("sliding_window": null). transformers CB would otherwise
        # page every layer as sliding-window attention (continuous_batching/cache.py).
        cfg.sliding_window = None
    cfg.torch_dtype = TORCH_DTYPES[dtype]
    return cfg


MODEL_CACHE: dict[tuple, Any] = {}


def build_model(card: ModelCard, dtype: str, device: str, seed: int = 0, attn: str = "sdpa"):
    """Random-weight model on `device`, initialised there directly (fast for 8B on a GPU);
    int8 / int4 are built in their activation dtype and their linears quantised with
    bitsandbytes (hf/quantize.py). Built once per process and card/dtype/device, so several
    scenarios replay on one model."""
    key = (card.model_dump_json(), dtype, device, seed, attn)
    if key not in MODEL_CACHE:
        if MODEL_CACHE:
            _release_cached()  # one model on the device at a time
        if dtype in QUANTIZED:
            model = build_uncached(card, BUILD_DTYPE[dtype], device, seed, attn)
            quantize_linears(model, dtype)
        else:
            model = build_uncached(card, dtype, device, seed, attn)
        MODEL_CACHE[key] = model
    return MODEL_CACHE[key]


def _release_cached() -> None:
    """Drop the cached model and give its memory back to the device, so the next model (and a
    CB manager sizing its cache from free memory) sees what a fresh process would."""
    import gc

    import torch

    MODEL_CACHE.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_uncached(card: ModelCard, dtype: str, device: str, seed: int, attn: str):
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in TORCH_DTYPES:
        from llm_energy_sim.config.errors import UserError

        runs = ", ".join([*TORCH_DTYPES, *QUANTIZED])
        raise UserError(f"the transformers engines run {runs}; not {dtype}")
    torch.manual_seed(seed)
    cfg = hf_config(card, dtype)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            cfg, dtype=getattr(torch, TORCH_DTYPES[dtype]), attn_implementation=attn
        )
    return model.eval()


def greedy_no_eos(max_new_tokens: int = 16):
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=False, eos_token_id=-1, pad_token_id=0, max_new_tokens=max_new_tokens
    )


def cb_config(server):
    """The manager's ContinuousBatchingConfig from a transformers-cb scenario's server fields."""
    from transformers import ContinuousBatchingConfig

    return ContinuousBatchingConfig(
        block_size=server.block_size,
        num_blocks=server.num_blocks,
        max_batch_tokens=server.max_batch_tokens,
        scheduler_type=server.scheduler,
        use_cuda_graph=server.cuda_graphs,
    )


def start_manager(model, config, timeout_s: float = 600.0):
    """init_continuous_batching (greedy, EOS off) with this ContinuousBatchingConfig + start,
    returning once the batch processor (cache, scheduler) exists. Under tensor parallelism
    every rank calls this: the processor's set-up is collective."""
    manager = model.init_continuous_batching(
        generation_config=greedy_no_eos(), continuous_batching_config=config
    )
    manager.start()
    deadline = time.perf_counter() + timeout_s
    while manager.batch_processor is None and time.perf_counter() < deadline:
        if not manager.is_running():
            raise RuntimeError("transformers continuous batching thread died at start")
        time.sleep(0.01)
    return manager


# The warm-up, like TGI's at launch: prefill a full step's token budget. One short request is
# not enough: on a fresh H200 process a 32-token warm-up left the first full step of a burst
# at 1.07 s against 0.40 s predicted warm (measurements/live/h200-f/burst_warm); the first
# large step pays for itself (allocator growth, GEMM and attention plans for the large shapes).
WARM_UP_PROMPT = 512


WARM_UP_NEW = 2


WARM_UP_BUDGET = 8192  # tokens, when the engine reports no budget of its own


def warm_up_prompt(card: ModelCard, length: int = WARM_UP_PROMPT) -> list[int]:
    """Token ids of a warm-up prompt (any ids below the vocabulary size do)."""
    return [1 + i % (card.vocab_size - 1) for i in range(length)]


class FirstTokenStamp:
    """A generate() streamer that notes when the first new token comes out (put() gets the
    prompt first, then one call per new token)."""

    def __init__(self) -> None:
        self.calls = 0
        self.first = math.nan
        self.times: list[float] = []

    def put(self, value) -> None:
        self.calls += 1
        if self.calls >= 2:
            now = time.perf_counter()
            self.times.append(now)
            if math.isnan(self.first):
                self.first = now

    def end(self) -> None:
        pass
