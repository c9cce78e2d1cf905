"""Live engines under transformers' tensor parallelism: HF generate() one request at a time, and
transformers' continuous batching manager.

Launched with torchrun (one process per GPU). The model is built once with random weights
from a models/ card, saved to local disk by rank 0, and loaded by every rank with
`tp_plan="auto"` (column/row-sharded linears, all-reduces in the attention and MLP
outputs). Rank 0 runs the normal `sim replay` driver and broadcasts each request to the
other ranks, which run the same `generate()` in lockstep (follow()). On CPU it runs with
the gloo backend, which is how the tests exercise it.

Continuous batching (server.kind transformers-cb) needs no mirroring of ours: transformers'
manager is TP-aware (generation/continuous_batching/distributed.py). Every rank starts the same
manager on its shard; local rank 0 (the TP driver) owns the request queue and scheduler and
broadcasts new requests and the stop status each step over a gloo CPU group, and the other
ranks' managers run in lockstep until rank 0 stops them (follow_cb()).
"""

from __future__ import annotations

import os
from pathlib import Path

from calibrate.live import greedy
from calibrate.live.transformers_engine import (
    TORCH_DTYPES,
    TransformersCbEngine,
    TransformersGenerateEngine,
    build_model,
    cb_config,
    start_manager,
)
from sim.errors import UserError
from sim.modelcard import ModelCard

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


def _broadcast(job):
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


class TensorParallelGenerateEngine(TransformersGenerateEngine):
    """Rank 0's engine: the sequential generate engine, mirrored on every rank."""

    name = "transformers-generate-tp"

    def __init__(self, card: ModelCard, dtype: str, model_dir: Path, seed: int = 0):
        super().__init__(card, dtype, device=local_device(), seed=seed)
        self.model_dir = model_dir

    def load(self) -> None:
        self.model = load_tp_model(self.card, self.dtype, self.seed, self.model_dir, self.device)

    def _generate(self, rec, ids) -> None:
        _broadcast((ids, rec.output_tokens))
        super()._generate(rec, ids)

    def stop(self) -> None:
        super().stop()
        _broadcast(STOP)

    def info(self) -> dict:
        return {**super().info(), "tensor_parallel": world_size(), "tp_plan": "auto (transformers)"}


def follow(card: ModelCard, dtype: str, model_dir: Path, seed: int = 0) -> int:
    """Ranks > 0: load the shard, then mirror rank 0's generate() calls until told to stop."""
    device = local_device()
    model = load_tp_model(card, dtype, seed, model_dir, device)
    served = 0
    while (job := _broadcast(STOP)) is not STOP:
        ids, new_tokens = job
        greedy_generate(model, ids, new_tokens, device)
        served += 1
    return served


class TensorParallelCbEngine(TransformersCbEngine):
    """Rank 0's engine: transformers' continuous batching on its shard, as the TP driver."""

    name = "transformers-tp"

    def __init__(self, card: ModelCard, dtype: str, server, model_dir: Path, seed: int = 0):
        super().__init__(card, dtype, server, device=local_device(), seed=seed)
        self.model_dir = model_dir

    def load(self) -> None:
        self.model = load_tp_model(self.card, self.dtype, self.seed, self.model_dir, self.device)

    def start(self) -> None:
        super().start()
        if not self.manager.is_tp_driver:
            raise RuntimeError("rank 0's continuous batching manager is not the TP driver")
        self._info["tensor_parallel"] = self.manager.distributed_helper.tp_size
        self._info["tp_plan"] = "auto (transformers)"
        self._info["follower_wake_s"] = FOLLOWER_WAKE_S

    def stop(self) -> None:
        manager = self.manager
        super().stop()  # the hard stop reaches the other ranks through the TP state all-reduce
        if manager is not None:
            manager.distributed_helper.destroy_cpu_comm_group()


def follow_cb(card: ModelCard, dtype: str, server, model_dir: Path, seed: int = 0) -> int:
    """Ranks > 0: load the shard, run the same continuous batching manager until rank 0 stops it.
    Returns the number of requests this rank's manager completed."""
    device = local_device()
    model = load_tp_model(card, dtype, seed, model_dir, device)
    return follow_manager(start_manager(model, cb_config(server)))


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
