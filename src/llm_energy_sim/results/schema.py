"""The results schema: summary.json, the rows of requests.csv and their status values.

`sim run` (results/accounting.py) and `sim replay` (results/measured.py) build the same
:class:`Summary`; summary.json is its JSON form (:meth:`Summary.to_dict`). Compatibility rule:
keys are added, never renamed, so every summary.json written before a key existed still reads.
A key listed in a model's ``OPTIONAL`` is written only when it was set (or read from a file
holding it): `sim run` writes ``host_time_factor``, ``simulation_wall_s`` and ``intervals``,
`sim replay` writes ``measured`` and the ``errors``/``timeouts`` counts, and old files keep
their keys as they are. Keys a file holds beyond this schema are kept (``extra="allow"``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, model_serializer

from llm_energy_sim.engine.request import RequestStatus

__all__ = [
    "LIVE_REQUEST_COLUMNS",
    "REQUEST_COLUMNS",
    "Batch",
    "Energy",
    "Latency",
    "LatencyStats",
    "LiveRequestRow",
    "Overrides",
    "Provenance",
    "RequestCounts",
    "RequestRow",
    "RequestStatus",
    "Summary",
    "Throughput",
    "Tokens",
    "check_requests",
]


class Record(BaseModel):
    """A JSON object of the results schema: keys in OPTIONAL are dropped unless set."""

    model_config = ConfigDict(extra="allow")
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_unset_optional(self, handler) -> dict[str, Any]:
        data = handler(self)
        for key in self.OPTIONAL - self.model_fields_set:
            data.pop(key, None)
        return data

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (summary.json's for a Summary): NaN and infinities become null."""
        return _finite(self.model_dump(mode="python"))


class RequestCounts(Record):
    """How the requests ended; errors and timeouts only happen (and are written) in live runs."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"errors", "timeouts"})
    total: int
    completed: int
    rejected_429: int
    rejected_422: int
    unfinished: int
    errors: int | None = None
    timeouts: int | None = None


class Throughput(Record):
    requests_per_s: float | None
    output_tokens_per_s: float | None


class Energy(Record):
    """Joules and watt-hours over [0, makespan] (results/accounting.py states the split).

    None where it cannot be known: no meter in a live run, no completed request, no tokens.
    """

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"attribution", "co2_g", "co2_g_per_request"})
    total_j: float | None
    total_wh: float | None
    busy_j: float | None
    idle_j: float | None
    prefill_j: float | None
    decode_j: float | None
    deep_idle_floor_j: float | None
    idle_fraction: float | None
    per_request_wh: float | None
    per_request_active_wh: float | None
    per_request_idle_share_wh: float | None
    per_input_token_effective_j: float | None
    per_input_token_computed_j: float | None
    per_output_token_j: float | None
    mean_power_per_gpu_w: float | None
    attribution: str | None = None  # live runs: how measured energy is split per request
    co2_g: float | None = None  # with a grid carbon intensity (sim run --grid-intensity)
    co2_g_per_request: float | None = None

    @classmethod
    def unknown(cls, attribution: str | None = None) -> Energy:
        """Every figure None (a live run without a meter)."""
        fields = {k: None for k in cls.model_fields if k not in cls.OPTIONAL}
        return cls(**fields, attribution=attribution)


class LatencyStats(Record):
    """Seconds over the completed requests; None when there are none."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class Latency(Record):
    ttft: LatencyStats
    tpot: LatencyStats
    e2e: LatencyStats


class Tokens(Record):
    """Tokens of the completed requests."""

    prompt_effective: int
    prompt_computed: int
    output: int


class Batch(Record):
    mean_size_when_busy: float
    max_size: float


class Overrides(Record):
    """The scenario overrides of the command line, as given."""

    set: list[str]  # each --set KEY=VALUE
    requests: int | None  # --requests


class Provenance(Record):
    """What produced a results directory (results/provenance.py fills it in); `sim run`
    also says where its host_time_factor came from (simulation.resolve_host_factor)."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"host_time_factor"})
    command: str  # "sim run", "sim replay"
    package: str
    version: str  # llm_energy_sim.__version__
    commit: str | None  # git HEAD of the checkout the package ran from, None outside one
    dirty: bool | None  # tracked files differed from that commit
    scenario_path: str | None
    overrides: Overrides
    created_utc: str  # ISO 8601, seconds
    host_time_factor: str | None = None  # where the simulated run's factor came from


class Summary(Record):
    """summary.json of `sim run` and `sim replay`."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {
            "host_time_factor",
            "simulation_wall_s",
            "host_time_factor_runs",
            "measured",
            "host_speed",
            "provenance",
            "intervals",
        }
    )
    scenario: str
    model: str
    dtype: str
    server: str
    gpus: int
    tensor_parallel: int
    host_time_factor: float | None = None  # the simulator's (sim run)
    replicas: int
    profile: str | None
    profile_path: str | None
    seed: int
    server_limits: dict[str, Any]
    requests: RequestCounts
    makespan_s: float
    throughput: Throughput
    energy: Energy
    latency_s: Latency
    tokens: Tokens
    batch: Batch
    steps: int | None  # forward steps simulated; None for live runs
    simulation_wall_s: float | None = None
    host_time_factor_runs: list[dict[str, Any]] | None = None  # sim run --host-speed
    measured: dict[str, Any] | None = None  # sim replay: engine, meter, send lag, files
    host_speed: dict[str, Any] | None = None  # sim replay --hostspeed
    provenance: Provenance | None = None  # absent in results written before it existed
    # sim run: 80% prediction intervals of the headline figures (analysis/intervals.py)
    intervals: dict[str, Any] | None = None


def _finite(obj):
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


class RequestRow(Record):
    """One row of requests.csv as `sim run` writes it (column order = field order).

    Times are seconds since the first arrival (NaN when the request never got there),
    energies joules (NaN for a live run without a meter).
    """

    request_id: int
    replica: int
    status: RequestStatus
    arrival_s: float
    start_s: float
    first_token_s: float
    finish_s: float
    prompt_tokens: int
    computed_prompt_tokens: int
    output_tokens: int
    generated_tokens: int
    energy_prefill_j: float
    energy_decode_j: float
    energy_idle_share_j: float
    energy_j: float
    ttft_s: float
    e2e_s: float
    tpot_s: float


class LiveRequestRow(RequestRow):
    """A row of `sim replay`'s requests.csv: also when the client sent it and the error text."""

    send_s: float
    error: str


def _columns(model: type[BaseModel]) -> dict[str, type]:
    return {
        name: str if f.annotation is RequestStatus else f.annotation
        for name, f in model.model_fields.items()
    }


#: requests.csv columns and their types (int, float, str), `sim run` and `sim replay`
REQUEST_COLUMNS: dict[str, type] = _columns(RequestRow)
LIVE_REQUEST_COLUMNS: dict[str, type] = _columns(LiveRequestRow)


def _dtype_fits(dtype, kind: type) -> bool:
    from pandas.api import types

    if kind is int:
        return types.is_integer_dtype(dtype)
    if kind is float:  # whole-number times (simpy's clock starts at int 0) are floats too
        return types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
    return types.is_object_dtype(dtype) or types.is_string_dtype(dtype)


def check_requests(df, live: bool = False) -> None:
    """Raise ValueError unless df has every column of the request row with its type and only
    RequestStatus values (a frame about to be written; a bug if not)."""
    want = LIVE_REQUEST_COLUMNS if live else REQUEST_COLUMNS
    missing = [c for c in want if c not in df.columns]
    if missing:
        raise ValueError(f"requests frame lacks columns {missing}")
    wrong = {c: str(df[c].dtype) for c, t in want.items() if not _dtype_fits(df[c].dtype, t)}
    if wrong:
        raise ValueError(f"requests frame columns of the wrong dtype: {wrong}")
    bad = set(df["status"]) - {s.value for s in RequestStatus}
    if bad:
        raise ValueError(f"requests frame has unknown status values {sorted(map(str, bad))}")
