"""Scenario files: the YAML schema, validated on load with one-line errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llm_energy_sim.config.dtypes import DtypeName
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.limits import (
    MAX_HOST_TIME_FACTOR,
    MAX_RATE,
    MAX_SIGMA,
    MAX_TIME_MS,
    MAX_TIME_S,
    MIN_RATE,
)
from llm_energy_sim.config.modelcard import ModelCard, load_model_card
from llm_energy_sim.config.names import check_name, refuse_bool_numbers
from llm_energy_sim.config.paths import shipped_scenario
from llm_energy_sim.config.servers import server_kind, settings_union
from llm_energy_sim.config.yamlio import load_yaml_text, read_yaml, validation_message


class _Strict(BaseModel):
    """Unknown keys refused; every float finite (NaN and +-inf refused, also from YAML's .inf)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        return refuse_bool_numbers(cls, data)


# ---- arrivals ---------------------------------------------------------------------------
class FixedArrival(_Strict):
    kind: Literal["fixed"]
    interval_ms: float = Field(ge=0, le=MAX_TIME_MS)


class UniformArrival(_Strict):
    """Gaps drawn from U(low_ms, high_ms): the reference paper's random spacing U(k, l)."""

    kind: Literal["uniform"]
    low_ms: float = Field(ge=0, le=MAX_TIME_MS)
    high_ms: float = Field(ge=0, le=MAX_TIME_MS)

    @model_validator(mode="after")
    def _ordered(self) -> UniformArrival:
        if self.high_ms < self.low_ms:
            raise ValueError("high_ms must be >= low_ms")
        return self


class PoissonArrival(_Strict):
    kind: Literal["poisson"]
    rate: float = Field(ge=MIN_RATE, le=MAX_RATE, description="requests per second")


class BurstArrival(_Strict):
    """Groups of `size` requests at once, `gap_ms` apart; size omitted = all at t=0."""

    kind: Literal["burst"]
    size: int | None = Field(default=None, gt=0)
    gap_ms: float = Field(default=0.0, ge=0, le=MAX_TIME_MS)


class TraceArrival(_Strict):
    """CSV with columns arrival_s, prompt_tokens, output_tokens (one request per row)."""

    kind: Literal["trace"]
    path: str


Arrival = Annotated[
    FixedArrival | UniformArrival | PoissonArrival | BurstArrival | TraceArrival,
    Field(discriminator="kind"),
]


# ---- token-length distributions -----------------------------------------------------------
class FixedLength(_Strict):
    kind: Literal["fixed"]
    value: int = Field(gt=0)


class UniformLength(_Strict):
    kind: Literal["uniform"]
    min: int = Field(gt=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class LognormalLength(_Strict):
    """Lognormal with the given mean (before clipping) and log-space sigma, clipped to [min, max]."""

    kind: Literal["lognormal"]
    mean: float = Field(gt=0)
    sigma: float = Field(default=0.8, gt=0, le=MAX_SIGMA)
    min: int = Field(default=1, gt=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LognormalLength:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class EmpiricalLength(_Strict):
    """Resample (with replacement) a column of a CSV file of token counts."""

    kind: Literal["empirical"]
    path: str
    column: str = "tokens"


Length = Annotated[
    FixedLength | UniformLength | LognormalLength | EmpiricalLength,
    Field(discriminator="kind"),
]


# ---- conversations (multi-turn chat whose prompts carry the history) -----------------------
class FixedDuration(_Strict):
    kind: Literal["fixed"]
    value_s: float = Field(ge=0, le=MAX_TIME_S)


class UniformDuration(_Strict):
    """Drawn from U(low_s, high_s)."""

    kind: Literal["uniform"]
    low_s: float = Field(ge=0, le=MAX_TIME_S)
    high_s: float = Field(ge=0, le=MAX_TIME_S)

    @model_validator(mode="after")
    def _ordered(self) -> UniformDuration:
        if self.high_s < self.low_s:
            raise ValueError("high_s must be >= low_s")
        return self


class ExponentialDuration(_Strict):
    kind: Literal["exponential"]
    mean_s: float = Field(gt=0, le=MAX_TIME_S)


class LognormalDuration(_Strict):
    """Lognormal with the given mean (before clipping) and log-space sigma, clipped to
    [min_s, max_s]."""

    kind: Literal["lognormal"]
    mean_s: float = Field(gt=0, le=MAX_TIME_S)
    sigma: float = Field(default=0.8, gt=0, le=MAX_SIGMA)
    min_s: float = Field(default=0.0, ge=0, le=MAX_TIME_S)
    max_s: float | None = Field(
        default=None, gt=0, le=MAX_TIME_S, description="default: no upper clip"
    )

    @model_validator(mode="after")
    def _ordered(self) -> LognormalDuration:
        if self.max_s is not None and self.max_s < self.min_s:
            raise ValueError("max_s must be >= min_s")
        return self


Duration = Annotated[
    FixedDuration | UniformDuration | ExponentialDuration | LognormalDuration,
    Field(discriminator="kind"),
]


def length_max(dist: FixedLength | UniformLength | LognormalLength | EmpiricalLength) -> int | None:
    """The largest value a length distribution can draw; None for an empirical file (known
    only once it is read)."""
    if isinstance(dist, FixedLength):
        return dist.value
    if isinstance(dist, UniformLength | LognormalLength):
        return dist.max
    return None


class Conversations(_Strict):
    """Multi-turn conversations whose prompts carry the history. `workload.arrival` gives
    the conversations' start times, the arrival of their first turns (a burst's `size` counts
    conversations); turn k+1 arrives `think_time` after turn k arrived (open loop: not after
    turn k's answer, so the trace is the same on every server; the think time includes the
    time the answer takes). Turn 1's prompt is the first user message; turn k+1's prompt is
    turn k's prompt + turn k's answer as the history holds it + the new user message, so it
    starts with every earlier prompt of its conversation, and every request of conversation c
    (numbered in start order from 0) has prefix_id c. The history's answer is the dataset's
    (`answer_tokens`), not what the run generates (`output_tokens` of the workload): generated
    tokens are not part of the shared prefix. Conversations are generated in start order,
    whole, until their turns add up to `workload.requests`; the last one is cut to fit."""

    turns: Length = Field(description="turns (requests) per conversation, at least 1")
    first_message_tokens: Length = Field(description="the first user message: turn 1's prompt")
    message_tokens: Length = Field(description="each later user message (turns 2, 3, ...)")
    answer_tokens: Length = Field(
        description="each answer as the next turn's prompt holds it (the history's answer, "
        "e.g. a replayed dataset's; not the generated tokens)"
    )
    think_time: Duration = Field(
        description="seconds from a turn's arrival to the next turn's arrival (open loop)"
    )
    max_prompt_tokens: int | None = Field(
        default=None,
        gt=0,
        description="a conversation ends before the first turn whose prompt would exceed this "
        "(the history is never truncated from the front: that would break the shared prefix); "
        "first_message_tokens must not exceed it; default: no cap",
    )

    @model_validator(mode="after")
    def _first_fits(self) -> Conversations:
        top = length_max(self.first_message_tokens)
        if self.max_prompt_tokens is not None and top is not None and top > self.max_prompt_tokens:
            raise ValueError(
                f"first_message_tokens reaches {top} tokens, above max_prompt_tokens "
                f"({self.max_prompt_tokens}): a first prompt cannot be shortened"
            )
        return self


class Workload(_Strict):
    requests: int = Field(
        gt=0, description="requests to generate (with conversations: turns, all together)"
    )
    arrival: Arrival = Field(
        description="request arrivals (with conversations: the conversations' start times)"
    )
    prompt_tokens: Length | None = Field(
        default=None, description="not with conversations, which build the prompts"
    )
    output_tokens: Length | None = Field(
        default=None, description="tokens each request generates (every turn, with conversations)"
    )
    conversations: Conversations | None = Field(
        default=None, description="multi-turn conversations sharing prefixes; default: none"
    )
    sampling: Literal["greedy", "random", "top_p"] = Field(
        default="greedy",
        description="how each output token is drawn: greedy (argmax, the live engines' "
        "setting), random (temperature sampling) or top_p (temperature and nucleus sampling, "
        "for which vLLM's sampler sorts every row of the logits; cost/kernels.sampler_kernel)",
    )

    @model_validator(mode="after")
    def _lengths(self) -> Workload:
        if self.conversations is not None:
            if self.prompt_tokens is not None:
                raise ValueError(
                    "give workload.prompt_tokens or workload.conversations, not both "
                    "(conversations build each prompt from its history)"
                )
            if self.arrival.kind == "trace":
                raise ValueError(
                    "workload.conversations cannot be used with arrival.kind 'trace' "
                    "(a trace gives every request)"
                )
            if self.output_tokens is None:
                raise ValueError("workload.output_tokens is required with workload.conversations")
            return self
        if self.arrival.kind != "trace" and (
            self.prompt_tokens is None or self.output_tokens is None
        ):
            raise ValueError(
                "prompt_tokens and output_tokens are required unless arrival.kind is 'trace'"
            )
        return self

    def length_distributions(self) -> list[Any]:
        """Every length distribution the workload names (where empirical files are)."""
        dists = [self.prompt_tokens, self.output_tokens]
        if self.conversations is not None:
            c = self.conversations
            dists += [c.turns, c.first_message_tokens, c.message_tokens, c.answer_tokens]
        return [d for d in dists if d is not None]


# ---- servers: one schema per kind, from the registry (config/servers.py) ------------------
Server = settings_union()


class Hardware(_Strict):
    gpu: str = "h100-sxm"
    gpus_per_replica: int = Field(default=1, gt=0, description="tensor-parallel degree")
    replicas: int = Field(default=1, gt=0)
    balancer: Literal["round_robin", "least_loaded"] = "round_robin"
    host_time_factor: float | None = Field(
        default=None,
        gt=0,
        le=MAX_HOST_TIME_FACTOR,
        description="multiplier on every per-step host-side time of the profile (engine host "
        "overhead, attention plan misses, generate() set-up; not the one-time cold start, which "
        "did not follow it): the serving machine's CPU against the calibration host's; "
        "`sim calibrate --stages hostspeed` measures it on a machine. Default (null): the "
        "median of the profile's serving-host samples (its host_speed; 1.0 for a profile "
        "without any)",
    )
    kernel_cache: Literal["warm", "cold"] = Field(
        default="warm",
        description="CUDA's on-disk JIT cache of the machine: 'warm' (it has run this engine's "
        "kernels before: a serving host in production) or 'cold' (a fresh machine or "
        "container: HF static batches compile a masked-attention kernel the first time each "
        "key-length alignment class meets a padding mask, measurements/calibration/"
        "h200-jitprobe)",
    )


class Output(_Strict):
    timeline_bin_s: float | None = Field(default=None, gt=0, description="default: makespan/2000")


class Scenario(_Strict):
    name: str = Field(description="a name (it names results/<name>): no path separators")
    model: str
    dtype: DtypeName
    hardware: Hardware = Field(default_factory=Hardware)
    profile: str | None = Field(
        default=None, description="profile name or JSON path; default by gpu"
    )
    server: Server
    workload: Workload
    seed: int = Field(default=0, ge=0, lt=2**63, description="random seed, 0 <= seed < 2^63")
    fast_forward: bool = Field(default=True, description="advance decode runs in closed form")
    output: Output = Field(default_factory=Output)

    @field_validator("name")
    @classmethod
    def _a_name(cls, v: str) -> str:
        check_name(v, "a scenario name")
        return v


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'workload.requests=100' -> ('workload.requests', 100); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected key=value, e.g. workload.requests=100")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"override '{text}': the key must be a dotted field name, e.g. dtype")
    return key, load_yaml_text(raw, f"override '{text}'")


def load_scenario_dict(
    data: dict[str, Any],
    source: str,
    overrides: dict[str, Any] | None = None,
    base_dir: Path | None = None,
) -> Scenario:
    data = copy.deepcopy(data)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        scen = Scenario.model_validate(data)
    except ValidationError as exc:
        raise UserError(validation_message(source, exc)) from None
    # resolve relative file paths against the scenario's folder
    base = base_dir or Path.cwd()
    wl = scen.workload
    for dist in (wl.arrival, *wl.length_distributions()):
        if hasattr(dist, "path") and not Path(dist.path).is_absolute():
            dist.path = str((base / dist.path).resolve())
    try:
        card = load_model_card(scen.model)
    except UserError as exc:
        raise UserError(f"{source}: field 'model': {exc}") from None
    server_kind(scen.server.kind).check_dtype(scen.dtype, source)
    check_tensor_parallel(card, scen.hardware.gpus_per_replica, source)
    return scen


def check_tensor_parallel(card: ModelCard, tp: int, source: str = "scenario") -> None:
    """Tensor parallelism shards attention by heads, so tp must divide the card's attention
    and KV heads (transformers' tp_plan, which the live TP engines load with, splits both
    evenly: hf/distributed.py check_shardable). One-line UserError naming the field."""
    bad = [
        f"{field} ({n})"
        for field in ("num_attention_heads", "num_key_value_heads")
        if (n := getattr(card, field)) % tp
    ]
    if bad:
        raise UserError(
            f"{source}: field 'hardware.gpus_per_replica': tensor parallel over {tp} GPUs needs "
            f"the heads divisible by {tp}, but {card.name} has {' and '.join(bad)}"
        )


def resolve_scenario_path(path: str | Path) -> Path:
    """The file a scenario argument names: the path itself when it exists, else the shipped
    scenario of that name (`scenarios/fixed500ms.yaml` works from any directory)."""
    path = Path(path)
    if path.exists():
        return path
    return shipped_scenario(path) or path


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    path = resolve_scenario_path(path)
    return load_scenario_dict(read_yaml(path), str(path), overrides, base_dir=path.parent)


def scenario_card(scen: Scenario) -> ModelCard:
    return load_model_card(scen.model)
