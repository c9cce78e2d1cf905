"""Calibration profile: fitted cost- and power-model parameters of one GPU type + software stack.

Written by `sim calibrate` (or the bootstrap builder), read by `sim run`. Every parameter
group carries a `source` saying where its numbers come from.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llm_energy_sim.config.dtypes import FP32_GEMV, FP32_SMALL, HEAD_SHAPE_SEP, NF4_GEMV
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.yamlio import validation_message

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FitError(_Strict):
    """Absolute percentage errors on points held out of the fit."""

    n_points: int = 0
    time_median_ape: float | None = None
    time_p90_ape: float | None = None
    energy_median_ape: float | None = None
    energy_p90_ape: float | None = None


class KernelFit(_Strict):
    """t = max(F/peak_flops, B/bandwidth) + t0_s;  P = p_base_w + w_compute*u_c + w_memory*u_m.

    u_c = F/(peak_flops*t) and u_m = B/(bandwidth*t) are the kernel's utilisations, so the
    kernel's energy is p_base_w*t + w_compute*F/peak_flops + w_memory*B/bandwidth, clipped
    at the GPU's power limit.
    """

    peak_flops: float = Field(gt=0)
    bandwidth: float = Field(gt=0)
    t0_s: float = Field(ge=0)
    p_base_w: float = Field(ge=0)
    w_compute: float = Field(ge=0)
    w_memory: float = Field(ge=0)
    # the share of the dynamic power (the w_compute and w_memory terms) that the data carries:
    # a call whose operands are a share s of zeros draws (1 - zero_share x s) of it (measured
    # for transformers CB's zero-padded KV read, calibrate/trashpad.py); 0: not measured
    zero_share: float = Field(default=0.0, ge=0, le=1)
    fit_error: FitError | None = None
    source: str


class HostOverhead(_Strict):
    """Host (framework) time per forward step: per_step_s + per_layer_s*L + per_sequence_s*n."""

    per_step_s: float = Field(ge=0)
    per_layer_s: float = Field(ge=0)
    per_sequence_s: float = Field(ge=0)
    # host time per KV token a step reads, in the part of the step its kernels wait for (an
    # engine whose input preparation builds a read index over every cached token of every
    # request: transformers CB, calibrate/kvhost.py); 0: not measured or none
    per_kv_token_s: float = Field(default=0.0, ge=0)
    # power of the GPU while it waits for this engine's host inside a step, when measured for
    # the engine (transformers CB); None: the profile's idle.host_wait_w (fitted on HF eager)
    wait_w: float | None = Field(default=None, gt=0)
    # host time of one generate() call outside its forward steps (input and cache set-up,
    # output assembly), serial with the GPU: charged once in each step that starts sequences
    # (a prefill with no past). 0 for engines that admit requests into a running loop.
    setup_s: float = Field(default=0.0, ge=0)
    # multi-token (prefill) steps: the fraction of the shorter of GPU and host time that does
    # not overlap with the other (bitsandbytes layers synchronise the host with the GPU):
    # wall = max(gpu, host) + prefill_serial_fraction * min(gpu, host)
    prefill_serial_fraction: float = Field(default=0.0, ge=0, le=1)
    # the engine's kernels read a result back to the host on every call (bitsandbytes
    # LLM.int8's outlier flag), so in a decode step the host cannot run ahead: host and
    # kernels add up (cost/costmodel.CostModel.decode_sync). Set where the dtype's linear fit
    # holds kernel time only (measurements/calibration/h200-int8kernels)
    decode_sync: bool = False
    # per dtype: host time added to a step whose attention shape the engine's process has not
    # run before (torch's cuDNN attention builds an execution plan per new shape; the GPU
    # waits meanwhile). Measured fresh-vs-cached by `sim calibrate --stages shapemiss`;
    # absent dtypes (and engines) have none.
    attn_shape_miss_s: dict[str, float] = Field(default_factory=dict)
    # ... plus this much per layer of the model (per dtype; the miss grows with the model)
    attn_shape_miss_per_layer_s: dict[str, float] = Field(default_factory=dict)
    # ... plus this much that does not follow the host's speed (per dtype): the part of a CUDA
    # graph capture the host-speed passes do not move (calibrate/graphcapture.py
    # fit_captures_split); absent: all of the miss follows it
    attn_shape_miss_fixed_s: dict[str, float] = Field(default_factory=dict)
    # power per GPU while a miss's plan is built (measured with them); None: wait_w
    attn_shape_miss_w: float | None = Field(default=None, gt=0)
    # host time added to the first forward step of a fresh engine process (library handles,
    # lazily loaded kernels; measured by `sim calibrate --stages coldstart`); 0: warmed up
    cold_start_s: float = Field(default=0.0, ge=0)
    # per activation dtype: host seconds of compiling the masked-attention kernel of a new
    # key-length alignment class on a machine whose CUDA JIT cache lacks it (hardware.
    # kernel_cache: cold), a decode step's and a prefill's (tools/fit_jit_compiles.py)
    jit_masked_decode_s: dict[str, float] = Field(default_factory=dict)
    jit_masked_prefill_s: dict[str, float] = Field(default_factory=dict)
    # host seconds a bitsandbytes NF4 projection adds in a decode step where it dequantises
    # its weight (five launches) instead of running its fused kernel (cost/nf4dispatch.py
    # says where; tools/fit_nf4_dequant_host.py measured it); 0: not measured
    nf4_dequant_call_s: float = Field(default=0.0, ge=0)
    fit_error: FitError | None = None
    source: str


class IdlePower(_Strict):
    """Power when the GPU is not running kernels.

    deep_idle_w: no work for a long time. active_idle_w: model loaded, idle for seconds.
    host_wait_w: inside a step while the GPU waits for the host (launch-bound decode).
    step_standby_fraction: inside a step the GPU stays partly in the power state of its
    kernels, so a wait in a step whose kernels draw P_busy (their energy over their time) is
    charged at host_wait_w + step_standby_fraction*(P_busy - host_wait_w); 0: host_wait_w flat.
    After each step the GPU stays in a 'standby' state: its power in a gap of length t is
    idle(t) + standby_fraction*(P_last - idle(t))*exp(-t/standby_tau_s), where idle(t) decays
    from active_idle_w to deep_idle_w with time constant deep_decay_tau_s.
    """

    deep_idle_w: float = Field(gt=0)
    active_idle_w: float = Field(gt=0)
    host_wait_w: float = Field(gt=0)
    step_standby_fraction: float = Field(default=0.0, ge=0, lt=1)
    standby_fraction: float = Field(ge=0, le=1)
    standby_tau_s: float = Field(gt=0)
    deep_decay_tau_s: float = Field(gt=0)
    source: str

    @model_validator(mode="after")
    def _ordered(self) -> IdlePower:
        if self.deep_idle_w > self.active_idle_w:
            raise ValueError(
                f"deep_idle_w ({self.deep_idle_w:g} W) must be <= active_idle_w "
                f"({self.active_idle_w:g} W): a GPU at rest draws no more than one just used"
            )
        return self


class Interconnect(_Strict):
    """All-reduce of B bytes over g GPUs: alpha_s + 2(g-1)/g * B / bus_bandwidth, at power_w."""

    alpha_s: float = Field(ge=0)
    bus_bandwidth: float = Field(gt=0)
    power_w: float = Field(gt=0)
    fit_error: FitError | None = None
    source: str


class GpuSpec(_Strict):
    name: str
    memory_bytes: float = Field(gt=0, le=1e13, description="bytes (no GPU holds 10 TB)")
    power_limit_w: float = Field(gt=0)
    memory_bandwidth: float | None = Field(
        default=None,
        gt=0,
        description="the GPU's memory bandwidth, bytes/s (datasheet); when given, no "
        "interconnect bus bandwidth may exceed it",
    )
    source: str


#: the headline figures of a run that carry an 80% prediction interval (analysis/intervals.py
#: maps each to its summary.json key); the keys of RunToRunSpread.sigma_log
INTERVAL_FIGURES = (
    "energy_per_request_wh",
    "total_energy_wh",
    "ttft_p50_s",
    "ttft_p90_s",
    "tpot_p50_s",
    "tpot_p90_s",
    "makespan_s",
)


def _figure_values(v: dict[str, float], field: str, what: str, ok) -> dict[str, float]:
    """A per-figure mapping's check: known figures only (INTERVAL_FIGURES), every value finite
    and ok(value) (`what` says what is allowed)."""
    unknown = sorted(set(v) - set(INTERVAL_FIGURES))
    if unknown:
        raise ValueError(
            f"unknown figure {', '.join(unknown)} (allowed: {', '.join(INTERVAL_FIGURES)})"
        )
    for k, x in v.items():
        if not (math.isfinite(x) and ok(x)):
            raise ValueError(f"{field}.{k} ({x}) must be {what}")
    return v


class HostSpeedSample(_Strict):
    """One host-speed pass measured on a serving machine: its host_time_factor against this
    profile (calibrate/hostspeed.py: the host-fit run's decode time per token over this
    profile's prediction), when it ran (ISO 8601 UTC) and the directory of the table it came
    from."""

    factor: float = Field(gt=0)
    utc: str
    source: str = Field(min_length=1)

    @field_validator("utc")
    @classmethod
    def _iso_utc(cls, v: str) -> str:
        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"utc {v!r} is not an ISO 8601 time") from None
        return v


class HostSpeedDistribution(_Strict):
    """The spread of serving-host speeds over leases: every measured pass, once. Its median
    is the host_time_factor a scenario gets when it sets none; its quantiles bound the
    prediction intervals (analysis/intervals.py). Written by tools/host_speed_samples.py."""

    samples: list[HostSpeedSample] = Field(min_length=1)
    source: str

    def factors(self) -> list[float]:
        return sorted(s.factor for s in self.samples)

    def quantile(self, q: float) -> float:
        """The q-quantile of the factors, linear between order statistics (numpy's default,
        Hyndman & Fan type 7)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} outside [0, 1]")
        xs = self.factors()
        pos = q * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])

    def median(self) -> float:
        return self.quantile(0.5)


class RunToRunSpread(_Strict):
    """How much repeated identical live runs differ: per headline figure the pooled standard
    deviation of ln(figure) within groups of repeats (sigma_log, about the relative spread),
    its degrees of freedom (runs minus groups) and the repeated runs. Written by
    tools/host_speed_samples.py."""

    sigma_log: dict[str, float]
    dof: int = Field(gt=0)
    runs: list[list[str]] = Field(min_length=1)
    source: str

    @field_validator("sigma_log")
    @classmethod
    def _figures(cls, v: dict[str, float]) -> dict[str, float]:
        return _figure_values(v, "sigma_log", "a finite number >= 0", lambda s: s >= 0)

    @field_validator("runs")
    @classmethod
    def _groups(cls, v: list[list[str]]) -> list[list[str]]:
        if any(len(g) < 2 for g in v):
            raise ValueError("every group of repeated runs needs at least two runs")
        return v


class ModelResidual(_Strict):
    """One validated configuration's model error: per headline figure ln(measured / predicted),
    predicted at the host speed measured in the case's own engine process, so that host speed
    is not part of it (analysis/matrix.py's cases). `case` is the case's directory."""

    case: str = Field(min_length=1)
    log_ratio: dict[str, float]

    @field_validator("log_ratio")
    @classmethod
    def _figures(cls, v: dict[str, float]) -> dict[str, float]:
        return _figure_values(v, "log_ratio", "finite", lambda r: True)


class ModelResiduals(_Strict):
    """The model's own error over live configurations that no fit used (the validation
    matrix and the held-out static run), one entry per case; the prediction intervals take
    its split-conformal quantiles (analysis/intervals.py). Written by
    tools/host_speed_samples.py."""

    cases: list[ModelResidual] = Field(min_length=1)
    source: str

    def quantiles(
        self, figure: str, q: tuple[float, float], exclude: str | None = None
    ) -> tuple[float, float] | None:
        """The (q_lo, q_hi) split-conformal quantiles of ln(measured / predicted) for `figure`
        over the cases (`exclude`: a case directory left out, for checking coverage on it):
        the ceil((n + 1) q)-th smallest of n residuals for an upper quantile q, and the
        mirror for a lower one, which covers a new case with probability >= q (Vovk et al.,
        Algorithmic Learning in a Random World, 2005; Lei et al., JASA 113, 2018). None when
        too few cases bound it."""
        xs = sorted(
            c.log_ratio[figure]
            for c in self.cases
            if figure in c.log_ratio and (exclude is None or c.case != exclude)
        )
        n = len(xs)
        k_hi = math.ceil((n + 1) * q[1])
        k_lo = math.floor((n + 1) * q[0])
        if n == 0 or k_hi > n or k_lo < 1:
            return None
        return xs[k_lo - 1], xs[k_hi - 1]


# a profile measured before a class existed costs it with its nearest measured class:
# attn_packed (transformers CB's masked SDPA) with the flash prefill fit -- an optimistic
# stand-in, since the masked kernel runs slower than flash attention
CLASS_FALLBACK = {
    "attn_packed": "attn_prefill",
    # attention under a padding mask (cost/costmodel.kv_read_heads), priced with the unmasked
    # fit at the masked path's bytes where a profile has no masked measurement
    "attn_prefill_masked": "attn_prefill",
    "attn_decode_masked": "attn_decode",
}


class Profile(_Strict):
    schema_version: int = SCHEMA_VERSION
    name: str
    description: str = ""
    gpu: GpuSpec
    provenance: dict[str, Any] = Field(default_factory=dict)
    kernels: dict[str, dict[str, KernelFit]]
    host: dict[str, HostOverhead]
    idle: IdlePower
    interconnect: dict[str, Interconnect] = Field(
        default_factory=dict, description="keyed by GPU count as a string ('2', '4', '8')"
    )
    # measured serving-host speeds over leases; None: no samples (the factor defaults to 1.0)
    host_speed: HostSpeedDistribution | None = None
    # measured spread of repeated identical live runs; None: not measured
    run_to_run: RunToRunSpread | None = None
    # the model's error over held-out live configurations; None: not measured
    model_residuals: ModelResiduals | None = None
    # the same over live CUDA-graph runs (transformers CB with graphs): the intervals of the
    # engines that replay CUDA graphs (vLLM, TGI, CB with graphs) take these; None: those
    # take model_residuals
    graph_residuals: ModelResiduals | None = None

    @model_validator(mode="after")
    def _physical(self) -> Profile:
        """Physical sense: deep idle <= active idle <= the power limit (busy), the powers of
        waits and links within the limit, no link faster than the GPU's memory."""
        limit = self.gpu.power_limit_w
        checks = [("idle.active_idle_w", self.idle.active_idle_w)]
        checks.append(("idle.host_wait_w", self.idle.host_wait_w))
        checks += [(f"host.{k}.wait_w", h.wait_w) for k, h in self.host.items()]
        checks += [
            (f"host.{k}.attn_shape_miss_w", h.attn_shape_miss_w) for k, h in self.host.items()
        ]
        checks += [(f"interconnect.{k}.power_w", c.power_w) for k, c in self.interconnect.items()]
        for field, watts in checks:
            if watts is not None and watts > limit:
                raise ValueError(
                    f"{field} ({watts:g} W) is above gpu.power_limit_w ({limit:g} W); "
                    "a GPU's power is at most its limit"
                )
        bw = self.gpu.memory_bandwidth
        for k, c in self.interconnect.items():
            if bw is not None and c.bus_bandwidth > bw:
                raise ValueError(
                    f"interconnect.{k}.bus_bandwidth ({c.bus_bandwidth:g} B/s) is above "
                    f"gpu.memory_bandwidth ({bw:g} B/s)"
                )
        for k in self.interconnect:
            if not k.isdigit() or int(k) < 2:
                raise ValueError(f"interconnect key '{k}' must be a GPU count >= 2 ('2', '4', ...)")
        return self

    def default_host_time_factor(self) -> float:
        """The host_time_factor of a scenario that sets none: the median of the profile's
        serving-host samples, 1.0 (the calibration host) when it has none."""
        return self.host_speed.median() if self.host_speed is not None else 1.0

    def kernel(self, kclass: str, dtype: str) -> KernelFit:
        """Fit of a kernel class in a dtype; a dtype missing for a non-linear class falls back
        to bfloat16 (small kernels and attention run in the activation dtype); the NF4 GEMV
        and float32 GEMV
        regimes of one-row linears ('int4_gemv', 'float32_gemv') and float32's small-row GEMM
        ('float32_small') fall back to the 'int4' and 'float32' fits where a profile has none (profiles fitted before they were split off)."""
        by_dtype = self.kernels.get(kclass)
        if not by_dtype and kclass in CLASS_FALLBACK:
            return self.kernel(CLASS_FALLBACK[kclass], dtype)
        if not by_dtype:
            raise UserError(f"profile '{self.name}': no kernel class '{kclass}'")
        if dtype in by_dtype:
            return by_dtype[dtype]
        if HEAD_SHAPE_SEP in dtype:  # a head shape not measured: the dtype's pooled fit
            return self.kernel(kclass, dtype.split(HEAD_SHAPE_SEP, 1)[0])
        if dtype == NF4_GEMV:
            return self.kernel(kclass, "int4")
        if dtype in (FP32_GEMV, FP32_SMALL):
            return self.kernel(kclass, "float32")
        if kclass not in ("linear", "linear_graph"):
            for fallback in ("bfloat16", "float16"):
                if fallback in by_dtype:
                    return by_dtype[fallback]
        raise UserError(
            f"profile '{self.name}': kernel class '{kclass}' has no fit for dtype '{dtype}' "
            f"(has: {', '.join(sorted(by_dtype))})"
        )

    def host_overhead(self, engine: str, dtype: str | None = None, tp: int = 1) -> HostOverhead:
        """The engine's host overhead, measured for this dtype ('engine:dtype') when it was
        (bitsandbytes launches extra kernels per linear), else the engine's general one;
        under tensor parallelism the engine's entry measured at this TP degree ('_tp4'), else
        its '_tp' entry (DTensor dispatch; the highest degree measured)."""
        for key in (f"{engine}_tp{tp}", f"{engine}_tp") if tp > 1 else ():
            if key in self.host:
                return self.host[key]
        if dtype is not None and f"{engine}:{dtype}" in self.host:
            return self.host[f"{engine}:{dtype}"]
        if engine not in self.host:
            raise UserError(
                f"profile '{self.name}': no host overhead for engine '{engine}' "
                f"(has: {', '.join(sorted(self.host))})"
            )
        return self.host[engine]

    def allreduce(self, n_gpus: int) -> Interconnect:
        key = str(n_gpus)
        if key in self.interconnect:
            return self.interconnect[key]
        if not self.interconnect:
            raise UserError(f"profile '{self.name}': no interconnect model for {n_gpus} GPUs")
        nearest = min(self.interconnect, key=lambda k: abs(int(k) - n_gpus))
        return self.interconnect[nearest]


# shipped profiles per hardware.gpu, best first: the fitted one, then the bootstrap
DEFAULT_PROFILES_BY_GPU = {
    "h100-sxm": ("h100-sxm", "h100-sxm-bootstrap"),
    "h200": ("h200", "h200-derived"),
}


def default_profile_name(gpu: str) -> str:
    for name in DEFAULT_PROFILES_BY_GPU.get(gpu, (gpu,)):
        if (PROFILES_DIR / f"{name}.json").exists():
            return name
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
    raise UserError(
        f"no shipped profile for gpu '{gpu}'; give --profile (shipped: {', '.join(names)})"
    )


def shipped_profile_names() -> list[str]:
    """The default (best shipped) profile of each GPU kind, e.g. h100-sxm and h200."""
    names = []
    for gpu in DEFAULT_PROFILES_BY_GPU:
        try:
            names.append(default_profile_name(gpu))
        except UserError:
            continue
    return names


def resolve_profile_path(name_or_path: str) -> Path:
    """A path to a JSON file, or the name of a shipped profile (src/llm_energy_sim/data/profiles/NAME.json)."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.exists():
        return candidate
    shipped = PROFILES_DIR / f"{name_or_path}.json"
    if shipped.exists():
        return shipped
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
    raise UserError(f"no profile '{name_or_path}': give a JSON path or one of: {', '.join(names)}")


#: larger than this a profile file is refused before it is read (the shipped ones are at
#: most 60 kB)
MAX_PROFILE_BYTES = 16 * 2**20


def load_profile(name_or_path: str) -> tuple[Profile, Path]:
    path = resolve_profile_path(name_or_path)
    if not path.exists():
        raise UserError(f"{path}: profile file not found")
    try:
        if path.is_file() and path.stat().st_size > MAX_PROFILE_BYTES:
            raise UserError(
                f"{path}: larger than {MAX_PROFILE_BYTES // 2**20} MiB; not a calibration profile"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the profile ({type(exc).__name__}: {exc})") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{path}: not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: a profile is a JSON object of fields, not a {type(data).__name__}"
        )
    try:
        return Profile.model_validate(data), path
    except ValidationError as exc:
        raise UserError(validation_message(path, exc)) from None


def save_profile(profile: Profile, path: Path) -> None:
    """The profile as JSON at `path`, replaced whole (a kill never leaves a torn profile)."""
    from llm_energy_sim.config.files import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(profile.model_dump(mode="json"), indent=2) + "\n")
