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

from pathlib import Path

from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.hf.build import cb_config, start_manager
from llm_energy_sim.hf.distributed import (
    FOLLOWER_WAKE_S,
    STOP,
    broadcast_object,
    follow_manager,
    greedy_generate,
    load_tp_model,
    local_device,
    world_size,
)
from llm_energy_sim.live.transformers_engine import TransformersCbEngine, TransformersGenerateEngine


class TensorParallelGenerateEngine(TransformersGenerateEngine):
    """Rank 0's engine: the sequential generate engine, mirrored on every rank."""

    name = "transformers-generate-tp"

    def __init__(self, card: ModelCard, dtype: str, model_dir: Path, seed: int = 0):
        super().__init__(card, dtype, device=local_device(), seed=seed)
        self.model_dir = model_dir

    def load(self) -> None:
        self.model = load_tp_model(self.card, self.dtype, self.seed, self.model_dir, self.device)

    def _generate(self, rec, ids) -> None:
        broadcast_object((ids, rec.output_tokens))
        super()._generate(rec, ids)

    def stop(self) -> None:
        super().stop()
        broadcast_object(STOP)

    def info(self) -> dict:
        return {**super().info(), "tensor_parallel": world_size(), "tp_plan": "auto (transformers)"}


def follow(card: ModelCard, dtype: str, model_dir: Path, seed: int = 0) -> int:
    """Ranks > 0: load the shard, then mirror rank 0's generate() calls until told to stop."""
    device = local_device()
    model = load_tp_model(card, dtype, seed, model_dir, device)
    served = 0
    while (job := broadcast_object(STOP)) is not STOP:
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
