"""A run's memory, estimated from its scenario before anything runs, so a run that cannot
fit is refused in a second (one line, exit code 2) instead of dying of MemoryError after
minutes. `--force` runs it anyway.

The figures are measured on this simulator: the peak resident memory of `sim run` grows by
0.32-0.73 KB per request (slope between 2e4 and 1e5 requests, /usr/bin/time, CPython 3.12,
2026-12-02: multiturn_chat 0.32, poisson_1m 0.34, random_uniform 0.41, fixed500ms 0.43,
static_b4 0.54, sequential 0.73 KB), the request log, ledgers and trace held as columns; 24
bytes per timeline cell (a bin x a column: every GPU's power, batch, queue and busy columns
per replica), and 100 bytes per logged step; each doubled here for safety, plus the
interpreter and libraries (~130 MB). A trace or length file is read whole: 4 bytes per
byte of it.

`sim sweep` and `sim plan` check every run they will simulate (check_points_memory): a
sweep's grid points, a plan's bisection at its lowest rate and its largest fleet. `sim
replay` holds what `sim run` holds and, besides, a time stamp per generated token (and the
built-in engine's step log) and the energy counters read every 20 ms (estimate_replay_memory).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llm_energy_sim.config.errors import UserError

BASE_BYTES = 160e6
PER_REQUEST_BYTES = 1536.0  # 2 x the largest measured slope (sequential, 0.73 KB)
PER_CELL_BYTES = 48.0
PER_STEP_BYTES = 200.0
PER_REPLICA_BYTES = 256e3
#: vLLM's prefix-caching pool holds one ordered-dict entry per KV block
PER_KV_BLOCK_BYTES = 120.0
DEFAULT_BINS = 2000
#: the default limit: this share of the machine's physical memory
LIMIT_SHARE = 0.5
#: sim replay, per generated token: its time stamp in the request's record, its line of
#: token_times.csv as text, and the engine's step log (one step per token at most)
PER_TOKEN_BYTES = 200.0
#: sim replay, per reading of the energy counters (a time and an array of one value per GPU)
PER_SAMPLE_BYTES = 200.0
#: sim replay reads the counters this often (meter/sampler.py POLL_S)
SAMPLE_INTERVAL_S = 0.02
#: per byte of a trace or length file: pandas reads the whole CSV (its text, then columns)
PER_FILE_BYTE = 4.0
#: what the refusal of a simulated run suggests
RUN_HINT = "shorten it (--requests, hardware.replicas, output.timeline_bin_s) or give --force"


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes of one run, and what drives it."""

    bytes: float
    requests: int
    bins: float
    columns: int

    def describe(self) -> str:
        return (
            f"{self.bytes / 2**30:.3g} GiB ({self.requests} requests, "
            f"{self.bins:.3g} timeline bins x {self.columns} columns)"
        )


def _arrival_span_s(arrival, n: int) -> float:
    """A lower bound on the span of n arrivals (s); 0 when the file says (a trace)."""
    kind = arrival.kind
    if kind == "fixed":
        return (n - 1) * arrival.interval_ms / 1000.0
    if kind == "uniform":
        return (n - 1) * (arrival.low_ms + arrival.high_ms) / 2000.0
    if kind == "poisson":
        return n / arrival.rate
    if kind == "burst":
        size = arrival.size or n
        return (math.ceil(n / size) - 1) * arrival.gap_ms / 1000.0
    return 0.0


def _max_output(workload) -> float:
    dist = workload.output_tokens
    if dist is None:
        return 1000.0  # a trace: its rows say; a generous guess
    return float(getattr(dist, "max", None) or getattr(dist, "value", None) or 1000.0)


def _kv_blocks(scen, gpu_memory_bytes: float | None) -> float:
    """KV blocks a vLLM replica's pool numbers one by one (an upper bound: the GPU's whole
    memory as KV cache at 2 bytes a value); 0 for the other servers, which count tokens."""
    if scen.server.kind != "vllm" or not gpu_memory_bytes:
        return 0.0
    from llm_energy_sim.config.modelcard import load_model_card

    card = load_model_card(scen.model)
    per_token = card.kv_bytes_per_token(2.0) / scen.hardware.gpus_per_replica
    return gpu_memory_bytes / (per_token * scen.server.block_size)


def estimate_memory(
    scen, step_log: bool = False, gpu_memory_bytes: float | None = None
) -> MemoryEstimate:
    """The peak memory `sim run` of `scen` needs, roughly (see the module doc); with the
    profile's GPU memory, vLLM's KV block pool too."""
    wl, hw = scen.workload, scen.hardware
    n = wl.requests
    columns = 3 + hw.replicas * (hw.gpus_per_replica + 3)
    bin_s = scen.output.timeline_bin_s
    bins = DEFAULT_BINS if bin_s is None else max(_arrival_span_s(wl.arrival, n) / bin_s, 1.0)
    total = BASE_BYTES + PER_REQUEST_BYTES * n + PER_CELL_BYTES * bins * columns
    total += (PER_REPLICA_BYTES + PER_KV_BLOCK_BYTES * _kv_blocks(scen, gpu_memory_bytes)) * (
        hw.replicas
    )
    if step_log:
        total += PER_STEP_BYTES * n * _max_output(wl)
    total += PER_FILE_BYTE * _files_bytes(wl)
    return MemoryEstimate(total, n, bins, columns)


def _files_bytes(workload) -> int:
    """Bytes of the trace and length files the workload reads (read whole, whatever
    workload.requests is); 0 for a file that is not there (the run says so)."""
    total = 0
    for dist in (workload.arrival, *workload.length_distributions()):
        path = getattr(dist, "path", None)
        if isinstance(path, str) and os.path.isfile(path):
            total += os.stat(path).st_size
    return total


def memory_limit() -> float:
    """The default limit in bytes: LIMIT_SHARE of this machine's physical memory (8 GiB
    where the platform does not say)."""
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        phys = 16 * 2**30
    return LIMIT_SHARE * phys


def estimate_replay_memory(scen) -> MemoryEstimate:
    """The peak memory `sim replay` of `scen` needs in this process, roughly: the tables
    `sim run` builds, plus PER_TOKEN_BYTES per generated token (at the workload's longest
    output) and PER_SAMPLE_BYTES per energy reading over the arrivals' span (the model on
    the GPU is not counted)."""
    est = estimate_memory(scen)
    wl = scen.workload
    tokens = PER_TOKEN_BYTES * wl.requests * _max_output(wl)
    samples = PER_SAMPLE_BYTES * _arrival_span_s(wl.arrival, wl.requests) / SAMPLE_INTERVAL_S
    return MemoryEstimate(est.bytes + tokens + samples, est.requests, est.bins, est.columns)


def _gpu_memory(scen, profile: str | None) -> float | None:
    from llm_energy_sim.config.profile import default_profile_name, load_profile

    try:
        name = profile or scen.profile or default_profile_name(scen.hardware.gpu)
        return load_profile(name)[0].gpu.memory_bytes
    except UserError:
        return None  # the run itself says what is wrong with the profile


def refuse_above_limit(
    est: MemoryEstimate, source: str = "", what: str = "run", hint: str = RUN_HINT
) -> None:
    """UserError (one line) when `est` is above memory_limit(): what needs how much, the
    limit, and `hint` (how to shorten it, or --force)."""
    limit = memory_limit()
    if est.bytes > limit:
        where = f"{source}: " if source else ""
        raise UserError(
            f"{where}the {what} needs about {est.describe()}, above the limit of "
            f"{limit / 2**30:.3g} GiB (half this machine's memory); {hint}"
        )


def check_memory(
    scen,
    force: bool = False,
    step_log: bool = False,
    source: str = "",
    profile: str | None = None,
    hint: str = RUN_HINT,
    extra_runs: int = 0,
) -> None:
    """UserError (one line) when the run's estimate, plus `extra_runs` copies of it without
    a step log alive at the same time (sim run's interval bound runs), is above
    memory_limit(), unless force."""
    if force:
        return
    gpu = _gpu_memory(scen, profile)
    est = estimate_memory(scen, step_log, gpu)
    if extra_runs:  # the bound runs alive beside the central one
        extra = extra_runs * estimate_memory(scen, False, gpu).bytes
        est = dataclasses.replace(est, bytes=est.bytes + extra)
        hint += f" (this counts {extra_runs} interval bound run(s); --no-interval runs one)"
    refuse_above_limit(est, source, "run", hint)


def check_replay_memory(scen, force: bool = False, source: str = "") -> None:
    """UserError (one line) when the replay's estimate is above memory_limit(), unless force."""
    if not force:
        hint = "shorten it (--requests, output.timeline_bin_s) or give --force"
        refuse_above_limit(estimate_replay_memory(scen), source, "replay", hint)


def check_points_memory(
    ref,
    points: Iterable[dict[str, Any]],
    requests: int | None = None,
    force: bool = False,
    hint: str = RUN_HINT,
) -> None:
    """check_memory of the run of every point (a dict of overrides of the ScenarioRef `ref`,
    with workload.requests = `requests` when given) that loads; one that does not load is
    skipped (its run reports its error, as before)."""
    if force:
        return
    for p in points:
        ov = dict(p) if requests is None else {**p, "workload.requests": requests}
        try:
            scen = ref.load(ov)
        except UserError:
            continue
        check_memory(scen, source=f"{ref.source} point {p}", hint=hint)
