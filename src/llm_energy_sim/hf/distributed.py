"""Distributed helpers for transformers tensor parallelism (torchrun, one process per GPU):
rank and device, process-group set-up, sharded model loading, broadcasting rank 0's work.

On CPU the gloo backend runs them, which is how the tests exercise them.
"""

from __future__ import annotations

import os
from pathlib import Path

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.hf import greedy
from llm_energy_sim.hf.build import TORCH_DTYPES, build_model

STOP = None


# An idle manager waits up to 0.1 s for new requests before its next step, each step opening
# with a collective on every rank. Rank 0 wakes at once on add_request, the followers would only
# at their timeout, delaying a request that reaches an idle engine by up to 0.1 s (uniform). The
# followers are woken this often instead, so they already wait in the collective for rank 0.
FOLLOWER_WAKE_S = 0.002


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_device() -> str:
    import torch

    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def init_distributed() -> None:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # never NVLink multicast on shared hosts
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def check_shardable(card: ModelCard, tp: int) -> None:
    """tp_plan="auto" splits attention heads, KV heads and the MLP width over the ranks."""
    for field in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
        n = getattr(card, field)
        if n % tp:
            raise UserError(
                f"tensor parallel over {tp} GPUs needs {field} divisible by {tp}; "
                f"{card.name} has {n}"
            )


def broadcast_object(job):
    import torch.distributed as dist

    box = [job]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def load_tp_model(card: ModelCard, dtype: str, seed: int, model_dir: Path, device: str):
    """Rank 0 saves a random-weight model once; every rank loads its shard with tp_plan."""
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    if rank() == 0 and not (model_dir / "config.json").exists():
        model = build_model(card, dtype, device, seed)
        model.save_pretrained(model_dir)
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    dist.barrier()
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        tp_plan="auto",
        dtype=getattr(torch, TORCH_DTYPES[dtype]),
        attn_implementation="sdpa",
    )
    return model.eval()


def greedy_generate(model, ids: list[int], new_tokens: int, device: str, streamer=None):
    """The generate() call every rank makes: greedy, exactly new_tokens tokens, no EOS."""
    import torch

    x = torch.tensor([ids], device=device)
    return x, greedy.generate(model, x, new_tokens, streamer=streamer)


def follow_manager(manager) -> int:
    """Ranks > 0: step a started continuous batching manager (not the TP driver) in lockstep
    with rank 0's until rank 0 stops it; returns the requests this rank's manager completed."""
    while manager.is_running():
        manager._has_new_requests.set()
        manager._generation_thread.join(timeout=FOLLOWER_WAKE_S)
    error = manager.background_thread_status.fatal_error
    manager.stop(block=True, timeout=60)
    manager.distributed_helper.destroy_cpu_comm_group()
    if error is not None:
        raise RuntimeError(f"rank {rank()}: continuous batching failed: {error}") from error
    # with no result handlers registered on this rank, its outputs went to the shared queue
    served = 0
    while not manager.output_router.output_queue.empty():
        out = manager.output_router.output_queue.get_nowait()
        served += int(out.is_finished() and not out.error)
    return served
