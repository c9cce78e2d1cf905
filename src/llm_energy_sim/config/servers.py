"""Server kinds, each declared once: its settings schema, scheduler, cost-model engine, live
engine and the dtypes it runs.

A scenario's `server` field is the discriminated union of the settings schemas below
(`settings_union`); servers/registry.py resolves an entry's scheduler class, the simulation
dispatches through it, and cost/costmodel.py's ENGINE_SHAPES is keyed by `cost_engine`.
Adding a kind: a settings schema and an entry here, and one scheduler module in servers/
(docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_energy_sim.config.dtypes import DTYPES
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.limits import MAX_TIME_MS
from llm_energy_sim.config.names import refuse_bool_numbers


class ServerSettings(BaseModel):
    """Settings of one server kind; subclasses fix `kind` to their entry's name (a Literal)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        return refuse_bool_numbers(cls, data)

    kind: str


# ---- settings schemas ----------------------------------------------------------------------
class TransformersProcess(ServerSettings):
    """The engines that run in a transformers process started for the run (not TGI, which
    warms up before it serves)."""

    cold_start: bool = Field(
        default=False,
        description="a fresh engine process: its first step pays the measured one-time set-up "
        "(profile host cold_start_s); false: warmed up, like a long-running server",
    )


class SequentialServer(TransformersProcess):
    """HF transformers generate(), one request at a time (the reference paper's naive baseline)."""

    kind: Literal["sequential"]


class StaticServer(TransformersProcess):
    """HF static batching: batches of batch_size, prompts left-padded to the longest."""

    kind: Literal["static"]
    batch_size: int = Field(gt=0)
    max_wait_ms: float | None = Field(
        default=None,
        ge=0,
        le=MAX_TIME_MS,
        description="start a partial batch after the oldest waited this long",
    )
    finished: Literal["stay", "leave"] = Field(
        default="stay",
        description="a sequence that has its output tokens: 'stay' (HF generate() on a batch: "
        "every row keeps decoding, its extra tokens cut, until the batch's longest output is "
        "done, and every request completes when generate() returns, at the batch's end); "
        "'leave': it leaves the decode batch and completes at its own last token",
    )


class TgiServer(ServerSettings):
    """Text Generation Inference v3.3 router; defaults are TGI's own (launcher/src/main.rs)."""

    kind: Literal["tgi"]
    max_concurrent_requests: int = Field(default=128, gt=0)
    max_batch_prefill_tokens: int | None = Field(
        default=None, gt=0, description="default: TGI's formula"
    )
    max_batch_total_tokens: int | None = Field(
        default=None, gt=0, description="default: KV capacity"
    )
    max_batch_size: int | None = Field(default=None, gt=0)
    waiting_served_ratio: float = Field(default=0.3, ge=0)
    max_waiting_tokens: int = Field(default=20, gt=0)
    chunked_prefill: bool = True
    block_size: int = Field(default=1, gt=0, description="flashinfer (TGI 3.x default) uses 1")
    cuda_memory_fraction: float = Field(default=1.0, gt=0, le=1)


class TransformersCbServer(TransformersProcess):
    """transformers' continuous batching manager (the built-in live engine)."""

    kind: Literal["transformers-cb"]
    max_batch_tokens: int | None = Field(default=None, gt=0)
    scheduler: Literal["fifo", "prefill_first"] = "fifo"
    block_size: int = Field(default=256, gt=0)
    num_blocks: int | None = Field(default=None, gt=0)
    cuda_graphs: bool = Field(
        default=False,
        description="run the manager's steps as CUDA graph replays (ContinuousBatchingConfig "
        "use_cuda_graph, transformers 5.17); false: eager launches",
    )


class VllmServer(ServerSettings):
    """vLLM V1 engine (0.11.1, `vllm serve`); defaults are vLLM's own, each with its source
    file in vllm-project/vllm at v0.11.1."""

    kind: Literal["vllm"]
    max_num_seqs: int | None = Field(
        default=None,
        gt=0,
        description="requests running at once; default as `vllm serve` sets it "
        "(engine/arg_utils.py get_batch_defaults): 1024 on a GPU of >= 70 GiB that is not "
        "an A100, else 256; then at most max_num_batched_tokens",
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        gt=0,
        description="token budget of one step; default as `vllm serve` sets it "
        "(engine/arg_utils.py get_batch_defaults, _set_default_args): 8192 on a GPU of "
        ">= 70 GiB that is not an A100, else 2048; at most max_num_seqs x max_model_len, "
        "and without chunked prefill at least max_model_len",
    )
    block_size: int = Field(
        default=16, gt=0, description="KV block tokens (platforms/cuda.py: 16 when unset)"
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="fraction of GPU memory for weights, activations and KV cache "
        "(config/cache.py CacheConfig)",
    )
    enable_prefix_caching: bool = Field(
        default=True,
        description="reuse cached full KV blocks of a shared prefix (on by default for "
        "generative models: engine/arg_utils.py get_chunked_prefill_prefix_caching_defaults)",
    )
    enable_chunked_prefill: bool = Field(
        default=True,
        description="cut a prefill to the step's remaining token budget (V1 default for "
        "generative models, engine/arg_utils.py)",
    )
    max_model_len: int | None = Field(
        default=None,
        gt=0,
        description="longest request (prompt + output); default: the model's context "
        "length (config/model.py)",
    )
    cudagraph_capture_sizes: list[int] | None = Field(
        default=None,
        min_length=1,
        description="batch token counts captured as CUDA graphs; default (config/vllm.py "
        "_set_cudagraph_sizes): 1, 2, 4, multiples of 8 below 256, multiples of 16 from 256, "
        "up to min(2 x max_num_seqs, 512, max_num_batched_tokens)",
    )
    async_scheduling: bool = Field(
        default=False,
        description="schedule step n+1 while step n runs (config/scheduler.py "
        "SchedulerConfig: off by default in 0.11)",
    )
    num_gpu_blocks_override: int | None = Field(
        default=None,
        gt=0,
        description="KV blocks instead of those profiled from free memory "
        "(config/cache.py CacheConfig)",
    )


# ---- the registry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerKind:
    """One server kind.

    name: the `server.kind` of a scenario. settings: its schema. scheduler: "module:Class" of
    its servers.base.Scheduler subclass (resolved by servers/registry.py, so this layer
    imports nothing above it). cost_engine: the cost model's engine (an ENGINE_SHAPES key and
    the profile's host-overhead entry). dtypes: those the engine runs (a scenario with another
    is refused at load). live_engine: the `sim replay --engine` that runs this kind, None if
    none does. pads_prompts: its batches run left-padded under an attention mask (HF generate
    on a static batch: hf/greedy.left_pad), see masked_attention_of.
    """

    name: str
    settings: type[ServerSettings]
    scheduler: str
    cost_engine: str
    dtypes: tuple[str, ...]
    live_engine: str | None = None
    pads_prompts: bool = False

    def masked_attention_of(self, scenario) -> bool:
        """Whether this scenario's attention runs under a padding mask: a padding kind whose
        batches hold several prompts of unequal length (transformers drops an all-ones mask,
        so a batch of equal prompts, fixed-length prompts or a batch of one is unmasked).
        Decided per scenario: a rare batch whose drawn prompts happen to be equal is priced
        masked too."""
        if not self.pads_prompts or getattr(scenario.server, "batch_size", 1) <= 1:
            return False
        w = scenario.workload
        fixed = getattr(w.prompt_tokens, "kind", None) == "fixed"
        return not (fixed and w.arrival.kind != "trace")

    def cost_engine_of(self, settings: ServerSettings) -> str:
        """The cost-model engine of a server with these settings: the entry's cost_engine,
        or its '_graphs' variant where the settings turn CUDA graphs on (transformers-cb's
        cuda_graphs)."""
        return self.cost_engine + ("_graphs" if getattr(settings, "cuda_graphs", False) else "")

    def check_dtype(self, dtype: str, source: str = "scenario") -> None:
        """One-line UserError naming the field when this kind's engine does not run `dtype`."""
        if dtype not in self.dtypes:
            raise UserError(
                f"{source}: field 'dtype': server kind '{self.name}' does not run {dtype}; "
                f"it runs {', '.join(self.dtypes)}"
            )


# HF generate() (sequential, static): every dtype the simulator costs for it (16/32-bit,
# bitsandbytes int8/NF4, fp8 linears). TGI: `--dtype float16|bfloat16` or `--quantize
# bitsandbytes|bitsandbytes-nf4|fp8` (launcher/src/main.rs, enums Dtype and Quantization); no
# float32. transformers CB: the dtypes its live engine builds (hf/build.py): 16/32-bit, and
# bitsandbytes LLM.int8 / NF4 linears (hf/quantize.py; the manager runs the model's own
# modules, so the quantised linears run inside its steps as in HF generate). vLLM
# 0.11.1: `--dtype float16|bfloat16` (config/model.py ModelDType) and `--quantization fp8`
# (model_executor/layers/quantization/__init__.py); it also runs float32 and bitsandbytes, not
# listed: the vllm engine is costed with CUDA-graph kernel fits, planned for the 16-bit and
# fp8 dtypes only.
SERVER_KINDS: dict[str, ServerKind] = {
    k.name: k
    for k in (
        ServerKind(
            name="sequential",
            settings=SequentialServer,
            scheduler="llm_energy_sim.servers.sequential:SequentialScheduler",
            cost_engine="hf_eager",
            dtypes=DTYPES,
            live_engine="transformers-generate",
        ),
        ServerKind(
            name="static",
            settings=StaticServer,
            scheduler="llm_energy_sim.servers.static:StaticScheduler",
            cost_engine="hf_eager",
            dtypes=DTYPES,
            live_engine="transformers-static",
            pads_prompts=True,
        ),
        ServerKind(
            name="tgi",
            settings=TgiServer,
            scheduler="llm_energy_sim.servers.tgi:TgiScheduler",
            cost_engine="tgi",
            dtypes=("bfloat16", "float16", "int8", "int4", "fp8"),
            live_engine="tgi",
        ),
        ServerKind(
            name="transformers-cb",
            settings=TransformersCbServer,
            scheduler="llm_energy_sim.servers.transformers_cb:TransformersCbScheduler",
            cost_engine="transformers_cb",
            dtypes=("bfloat16", "float16", "float32", "int8", "int4"),
            live_engine="transformers",
        ),
        ServerKind(
            name="vllm",
            settings=VllmServer,
            scheduler="llm_energy_sim.servers.vllm:VllmScheduler",
            cost_engine="vllm",
            dtypes=("bfloat16", "float16", "fp8"),
            live_engine=None,
        ),
    )
}


def server_kind(name: str) -> ServerKind:
    """The registry entry of a server kind (UserError listing the kinds if there is none)."""
    try:
        return SERVER_KINDS[name]
    except KeyError:
        raise UserError(
            f"unknown server kind '{name}' (kinds: {', '.join(SERVER_KINDS)})"
        ) from None


def settings_union():
    """The `server` field's type: every kind's settings, discriminated by `kind`."""
    schemas = tuple(k.settings for k in SERVER_KINDS.values())
    return Annotated[Union[schemas], Field(discriminator="kind")]  # noqa: UP007
