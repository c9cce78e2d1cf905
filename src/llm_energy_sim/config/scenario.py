"""Scenario files: the YAML schema, validated on load with one-line errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_energy_sim.config.dtypes import DtypeName
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard, load_model_card
from llm_energy_sim.config.paths import shipped_scenario
from llm_energy_sim.config.servers import server_kind, settings_union
from llm_energy_sim.config.yamlio import read_yaml, validation_message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- arrivals ---------------------------------------------------------------------------
class FixedArrival(_Strict):
    kind: Literal["fixed"]
    interval_ms: float = Field(ge=0)


class UniformArrival(_Strict):
    """Gaps drawn from U(low_ms, high_ms): the reference paper's random spacing U(k, l)."""

    kind: Literal["uniform"]
    low_ms: float = Field(ge=0)
    high_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformArrival:
        if self.high_ms < self.low_ms:
            raise ValueError("high_ms must be >= low_ms")
        return self


class PoissonArrival(_Strict):
    kind: Literal["poisson"]
    rate: float = Field(gt=0, description="requests per second")


class BurstArrival(_Strict):
    """Groups of `size` requests at once, `gap_ms` apart; size omitted = all at t=0."""

    kind: Literal["burst"]
    size: int | None = Field(default=None, gt=0)
    gap_ms: float = Field(default=0.0, ge=0)


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
    sigma: float = Field(default=0.8, gt=0)
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


class Workload(_Strict):
    requests: int = Field(gt=0)
    arrival: Arrival
    prompt_tokens: Length | None = None
    output_tokens: Length | None = None

    @model_validator(mode="after")
    def _lengths(self) -> Workload:
        if self.arrival.kind != "trace" and (
            self.prompt_tokens is None or self.output_tokens is None
        ):
            raise ValueError(
                "prompt_tokens and output_tokens are required unless arrival.kind is 'trace'"
            )
        return self


# ---- servers: one schema per kind, from the registry (config/servers.py) ------------------
Server = settings_union()


class Hardware(_Strict):
    gpu: str = "h100-sxm"
    gpus_per_replica: int = Field(default=1, gt=0, description="tensor-parallel degree")
    replicas: int = Field(default=1, gt=0)
    balancer: Literal["round_robin", "least_loaded"] = "round_robin"
    host_time_factor: float = Field(
        default=1.0,
        gt=0,
        description="multiplier on every per-step host-side time of the profile (engine host "
        "overhead, attention plan misses, generate() set-up; not the one-time cold start, which "
        "did not follow it): the serving machine's CPU against the calibration host's; "
        "`sim calibrate --stages hostspeed` measures it on a machine",
    )


class Output(_Strict):
    timeline_bin_s: float | None = Field(default=None, gt=0, description="default: makespan/2000")


class Scenario(_Strict):
    name: str
    model: str
    dtype: DtypeName
    hardware: Hardware = Field(default_factory=Hardware)
    profile: str | None = Field(
        default=None, description="profile name or JSON path; default by gpu"
    )
    server: Server
    workload: Workload
    seed: int = 0
    fast_forward: bool = Field(default=True, description="advance decode runs in closed form")
    output: Output = Field(default_factory=Output)


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
    return key.strip(), yaml.safe_load(raw)


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
        scen = Scenario(**data)
    except ValidationError as exc:
        raise UserError(validation_message(source, exc)) from None
    # resolve relative file paths against the scenario's folder
    base = base_dir or Path.cwd()
    wl = scen.workload
    for dist in (wl.arrival, wl.prompt_tokens, wl.output_tokens):
        if dist is not None and hasattr(dist, "path") and not Path(dist.path).is_absolute():
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
