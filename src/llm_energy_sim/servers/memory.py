"""GPU memory of one replica: weights per GPU under tensor parallel, KV cache per token, and
the fit check of the engines that allocate no cache up front (HF `generate()`: sequential,
static batching).

TGI (tgi_limits.py) and transformers CB (transformers_cb.py) size their KV capacity from the
memory left after the weights, with the same two helpers; sequential and static servers hold
only what they are serving, so they check that the weights plus the KV cache of that work
fit: the request being served (sequential) or the padded batch (static: every sequence
padded to the batch's longest prompt, each growing to the batch's longest output, as HF
`generate()` keeps the batch's cache tensor whole until the batch ends).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard

GIB = float(2**30)


def weight_bytes_per_gpu(card: ModelCard, dtype: str, tp: int) -> float:
    """Weights one GPU of a tensor-parallel replica holds (quantisation metadata included)."""
    return card.num_params() * dtype_info(dtype).weight_bytes / tp


def kv_bytes_per_token_per_gpu(card: ModelCard, dtype: str, tp: int) -> int:
    """KV-cache bytes of one token on one GPU: K and V of every layer, this GPU's KV heads
    (a KV head is replicated when tp exceeds the number of KV heads)."""
    kv_dim = max(card.num_key_value_heads // tp, 1) * card.d_head
    return 2 * card.num_hidden_layers * kv_dim * dtype_info(dtype).kv_bytes


@dataclass(frozen=True)
class MemoryCheck:
    """Does the work a replica holds at once fit in one GPU's memory? (UserError if not)."""

    scenario: str
    model: str
    dtype: str
    tp: int
    gpu: str
    memory_bytes: float
    weights: float  # bytes per GPU
    kv_per_token: float  # bytes per GPU
    hint: str = ""  # what else the user could change, e.g. the batch size

    @classmethod
    def for_replica(cls, scen, card: ModelCard, profile, hint: str = "") -> MemoryCheck:
        """The check for one replica of `scen` on the GPU of calibration `profile`."""
        tp = scen.hardware.gpus_per_replica
        return cls(
            scenario=scen.name,
            model=card.name,
            dtype=scen.dtype,
            tp=tp,
            gpu=profile.gpu.name,
            memory_bytes=float(profile.gpu.memory_bytes),
            weights=weight_bytes_per_gpu(card, scen.dtype, tp),
            kv_per_token=float(kv_bytes_per_token_per_gpu(card, scen.dtype, tp)),
            hint=hint,
        )

    def needed_bytes(self, kv_tokens: int) -> float:
        return self.weights + kv_tokens * self.kv_per_token

    def check(self, kv_tokens: int, what: str = "") -> None:
        """Raise a one-line UserError when the weights + the KV cache of `kv_tokens` tokens
        (`what` says whose) exceed one GPU's memory; kv_tokens=0 checks the weights alone."""
        need = self.needed_bytes(kv_tokens)
        if need <= self.memory_bytes:
            return
        if kv_tokens:
            kv = kv_tokens * self.kv_per_token
            parts = f"weights {self.weights / GIB:.1f} GiB + KV cache {kv / GIB:.1f} GiB for {what}"
            fixes = f", use a smaller dtype{self.hint} or shorter requests"
        else:
            parts = "the weights alone"
            fixes = " or use a smaller dtype"
        raise UserError(
            f"scenario '{self.scenario}': {self.model} in {self.dtype} with tp={self.tp} "
            f"does not fit the GPU memory: needs {need / GIB:.1f} GiB per GPU ({parts}) but "
            f"the profile's {self.gpu} has {self.memory_bytes / GIB:.1f} GiB; raise "
            f"hardware.gpus_per_replica (tensor parallel){fixes}"
        )
