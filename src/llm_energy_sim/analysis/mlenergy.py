"""External check against the ML.ENERGY Leaderboard v3 measurements: `sim validate mlenergy`.

The measurements (data/external/mlenergy-v3/, its README says how they were taken) are
vLLM 0.11.1 serving Llama-3.1-8B-Instruct on one H100 SXM, the lm-arena-chat workload, at
max_num_seqs 8 to 768. Each H100 row is simulated the way it was measured:

* the run's own vLLM settings (run-settings/: max-num-batched-tokens 8192, max-model-len
  20480, bfloat16) and the row's max_num_seqs, on the `vllm` server kind;
* 1024 requests (benchmark.yaml) repeated num_request_repeats times (sweeps.yaml: 1, 2 or 3;
  the benchmark copies the same request vector), all sent at t=0;
* output lengths from the row's own output-length histogram (`histogram_lengths`);
* tokens drawn with temperature and top-p (SAMPLING), which vLLM's sampler prices by a sort
  of the vocabulary per row (`workload.sampling: top_p`);
* prompts from a stated model of multi-turn LMArena chats (`ConversationModel`): the public
  file has no prompt lengths;
* the benchmark's steady-state window (`steady_state`): from the moment max_num_seqs requests
  have their first token to the moment N - max_num_seqs have; energy per token = GPU energy
  in the window / output tokens received in the window; average power = window energy /
  window time; median ITL over every request's inter-token gaps.

Validation data only: nothing here is fitted to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.paths import DATA_DIR
from llm_energy_sim.config.yamlio import read_yaml
from llm_energy_sim.engine.workload import Trace

MLENERGY_DIR = DATA_DIR / "external" / "mlenergy-v3"
MLENERGY_JSON = "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
SETTINGS_DIR = "run-settings"
GPU_PREFIX = "H100"
MODEL_CARD = "llama-3.1-8b"  # the shipped card of Llama-3.1-8B(-Instruct): same shapes
DEFAULT_PROFILE = "h100-sxm"

#: what every benchmark request asks for: ml-energy/benchmark at c1d6557 (the commit the
#: run settings come from), mlenergy/benchmark/llm/benchmark.py, the Args defaults top_p 0.95,
#: temperature 0.8, top_k and min_p None, sent with every request; the command template
#: (benchmark.yaml) does not override them. vLLM 0.11 uses FlashInfer's sorting-free sampler
#: only with VLLM_USE_FLASHINFER_SAMPLER=1, which the run's env.yaml does not set.
SAMPLING = {"temperature": 0.8, "top_p": 0.95}


def sampling_method(temperature: float, top_p: float) -> str:
    """The workload.sampling of requests with these parameters, as vLLM 0.11's sampler treats
    them: temperature 0 is greedy; a top-p below 1 sorts every row (top_p); else random."""
    if temperature == 0.0:
        return "greedy"
    return "top_p" if top_p < 1.0 else "random"


#: targets reported (not asserted): |error| within these
TARGETS = {"energy_per_token_j": 0.10, "avg_power_w": 0.10, "median_itl_ms": 0.10}


# ---- the measured data ----------------------------------------------------------------------
@dataclass(frozen=True)
class RunSettings:
    """What run-settings/ says about the H100 runs."""

    num_requests: int  # unique requests per repeat (benchmark.yaml)
    max_output_tokens: int  # the cap sent with each request (benchmark.yaml)
    repeats: dict[int, int]  # max_num_seqs -> num_request_repeats (sweeps.yaml)
    max_num_batched_tokens: int
    max_model_len: int
    dtype: str
    num_gpus: int
    async_scheduling: bool


@dataclass(frozen=True)
class MeasuredRow:
    """One H100 record of the JSON: a max_num_seqs and what was measured at it."""

    gpu_model: str
    max_num_seqs: int
    energy_per_token_j: float
    avg_power_w: float
    median_itl_ms: float
    avg_output_len: float
    avg_batch_size: float
    output_throughput_tok_s: float
    bins: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def requests(self) -> int:
        """Requests of the run (the histogram's total: 1024 x num_request_repeats)."""
        return int(sum(self.counts))


def _data_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else MLENERGY_DIR


def read_settings(data_dir: Path | None = None) -> RunSettings:
    d = _data_dir(data_dir) / SETTINGS_DIR
    bench = read_yaml(d / "benchmark.yaml")
    sweeps = read_yaml(d / "llama-3.1-8b-h100.sweeps.yaml")
    vllm = read_yaml(d / "llama-3.1-8b-h100.monolithic.config.yaml")
    try:
        gpus = int((d / "llama-3.1-8b-h100.num_gpus.txt").read_text().strip())
        repeats = {
            int(m): int(r)
            for group in sweeps["sweep"]
            for r in group["num_request_repeats"]
            for m in group["max_num_seqs"]
        }
        wd = bench["workload_defaults"]
        return RunSettings(
            num_requests=int(wd["num_requests"]),
            max_output_tokens=int(wd["max_output_tokens"]),
            repeats=repeats,
            max_num_batched_tokens=int(vllm["max-num-batched-tokens"]),
            max_model_len=int(vllm["max-model-len"]),
            dtype=str(vllm["dtype"]),
            num_gpus=gpus,
            async_scheduling=bool(vllm.get("async-scheduling", False)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UserError(f"{d}: cannot read the ML.ENERGY run settings: {what}") from None


def read_rows(data_dir: Path | None = None, gpu_prefix: str = GPU_PREFIX) -> list[MeasuredRow]:
    """The JSON's records whose gpu_model starts with gpu_prefix, by max_num_seqs."""
    path = _data_dir(data_dir) / MLENERGY_JSON
    try:
        data = json.loads(path.read_text())
        configs = data["configurations"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: cannot read the ML.ENERGY measurements: {exc}") from None
    rows = []
    for c in configs:
        if not str(c.get("gpu_model", "")).startswith(gpu_prefix):
            continue
        hist = c["output_length_distribution"]
        rows.append(
            MeasuredRow(
                gpu_model=str(c["gpu_model"]),
                max_num_seqs=int(c["max_num_seqs"]),
                energy_per_token_j=float(c["energy_per_token_joules"]),
                avg_power_w=float(c["avg_power_watts"]),
                median_itl_ms=float(c["median_itl_ms"]),
                avg_output_len=float(c["avg_output_len"]),
                avg_batch_size=float(c["avg_batch_size"]),
                output_throughput_tok_s=float(c["output_throughput_tokens_per_sec"]),
                bins=tuple(float(b) for b in hist["bins"]),
                counts=tuple(int(n) for n in hist["counts"]),
            )
        )
    if not rows:
        raise UserError(f"{path}: no record with gpu_model starting with {gpu_prefix!r}")
    return sorted(rows, key=lambda r: r.max_num_seqs)


# ---- output lengths: the row's histogram as an empirical distribution -------------------------
def histogram_allocation(counts: Sequence[int], n: int) -> np.ndarray:
    """How many of n draws fall in each bin: counts scaled to n, rounded by largest remainder
    (so the draws' histogram is the measured one, scaled)."""
    c = np.asarray(counts, float)
    if c.sum() <= 0 or (c < 0).any():
        raise UserError("output-length histogram: counts must be >= 0 with a positive total")
    exact = c * n / c.sum()
    alloc = np.floor(exact).astype(np.int64)
    short = n - int(alloc.sum())
    if short:
        order = np.argsort(-(exact - alloc), kind="stable")
        alloc[order[:short]] += 1
    return alloc


def histogram_lengths(
    bins: Sequence[float],
    counts: Sequence[int],
    n: int,
    rng: np.random.Generator,
    cap: int | None = None,
) -> np.ndarray:
    """n output lengths (shuffled) whose histogram over `bins` is `counts` scaled to n.

    Within a bin a length is uniform over the whole numbers in it (numpy.histogram's bins:
    [lo, hi), the last one [lo, hi]). When the last bin ends at `cap` (the max_tokens every
    request was sent with) its lengths are `cap`: those requests were cut at max_tokens (the
    bin holds 68 of the 39936 lengths of the JSON's aggregate histogram against 0-2 in each of
    the ten bins before it)."""
    edges = np.asarray(bins, float)
    if len(edges) != len(counts) + 1 or (np.diff(edges) <= 0).any():
        raise UserError("output-length histogram: bins must be increasing, one more than counts")
    alloc = histogram_allocation(counts, n)
    out = []
    last = len(alloc) - 1
    for i, k in enumerate(alloc):
        if k == 0:
            continue
        lo = max(1, math.ceil(edges[i]))
        hi = math.floor(edges[i + 1]) if i == last else math.ceil(edges[i + 1]) - 1
        if i == last and cap is not None and math.isclose(edges[-1], cap):
            out.append(np.full(k, cap, dtype=np.int64))
            continue
        hi = max(hi, lo)
        out.append(rng.integers(lo, hi + 1, size=k, dtype=np.int64))
    lengths = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    rng.shuffle(lengths)
    return lengths


# ---- prompts: a stated model of multi-turn LMArena chats -------------------------------------
@dataclass(frozen=True)
class ConversationModel:
    """Prompt lengths of lm-arena-chat requests, which the public file does not give, as a
    `workload.conversations` block (engine/workload.py builds the prompts and prefix ids).

    The benchmark (mlenergy/llm/datasets.py, LMArenaHumanPreferenceDataset) walks shuffled
    conversations of lmarena-ai/arena-human-preference-100k and makes one request per turn
    whose prompt is the conversation so far: the user messages and conversation_a's answers
    before it (another model's answers, not Llama's), sent as chat messages. Every number
    below is an assumption, none fitted to the measurements:

    * turns per conversation, user message and earlier-answer lengths: lognormal, means
      `mean_turns` = 2.0, `user_mean` = 69.5 and `answer_mean` = 214.5 tokens: the averages
      of LMSYS-Chat-1M (Zheng et al. 2023, arXiv:2309.11998, Table 1: 2.0 turns per
      conversation, 69.5 tokens per user prompt, 214.5 per response), the Chatbot Arena's
      earlier conversation log; arena-human-preference-100k (2024) publishes no such table;
    * log-sigmas 0.8 (turns, rounded to whole turns, 1 to `max_turns` 20), 1.0 (user
      messages), 0.8 (answers): assumptions (heavy-tailed, as chat prompts are);
    * the Llama-3.1 chat template: `template_tokens` = 29 per prompt (BOS, the default
      system header with its knowledge-cutoff and date lines, the assistant header the model
      answers after) and `message_tokens` = 5 per message (role header and end of turn),
      added to the means (and the floors) of the first message, each later message and each
      answer;
    * a conversation ends before a turn whose prompt would exceed max_model_len - max_tokens
      (vLLM would refuse it).
    """

    mean_turns: float = 2.0
    turns_sigma: float = 0.8
    max_turns: int = 20
    user_mean: float = 69.5
    user_sigma: float = 1.0
    answer_mean: float = 214.5
    answer_sigma: float = 0.8
    template_tokens: int = 29
    message_tokens: int = 5
    source: str = (
        "LMSYS-Chat-1M averages (arXiv:2309.11998 Table 1): 2.0 turns, 69.5 user-prompt and "
        "214.5 response tokens; sigmas and chat-template counts assumed"
    )

    def block(self, max_prompt_tokens: int) -> dict:
        """The workload.conversations block of this model."""
        m, t = self.message_tokens, self.template_tokens

        def tokens(mean: float, sigma: float, floor: int) -> dict:
            return {
                "kind": "lognormal",
                "mean": mean + floor,
                "sigma": sigma,
                "min": floor + 1,
                "max": max_prompt_tokens,
            }

        return {
            "turns": {
                "kind": "lognormal",
                "mean": self.mean_turns,
                "sigma": self.turns_sigma,
                "min": 1,
                "max": self.max_turns,
            },
            "first_message_tokens": tokens(self.user_mean, self.user_sigma, t + m),
            "message_tokens": tokens(self.user_mean, self.user_sigma, m),
            "answer_tokens": tokens(self.answer_mean, self.answer_sigma, m),
            "think_time": {"kind": "fixed", "value_s": 0.0},
            "max_prompt_tokens": max_prompt_tokens,
        }


def conversation_prompts(
    model: ConversationModel, n: int, seed: int, max_prompt: int
) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, conversation id) of the first n turn-requests, conversation by
    conversation in order (the benchmark's order), from workload.conversations."""
    from llm_energy_sim.config.scenario import Workload
    from llm_energy_sim.engine.workload import generate_trace

    wl = Workload(
        requests=n,
        arrival={"kind": "burst"},
        output_tokens={"kind": "fixed", "value": 1},
        conversations=model.block(max_prompt),
    )
    t = generate_trace(wl, seed)
    return t.prompt_tokens.astype(np.int64), t.prefix_ids().astype(np.int64)


def build_trace(
    row: MeasuredRow,
    settings: RunSettings,
    model: ConversationModel | None = None,
    seed: int = 0,
    num_requests: int | None = None,
) -> Trace:
    """The row's requests: num_requests (default the benchmark's 1024) unique turn-requests
    (prompts from `model`, seed `seed`; the same at every row, as the benchmark's) with output
    lengths from the row's histogram (seed `seed` + 1), repeated num_request_repeats times (the
    same prompts and outputs again, after the first copy: prefix_id per conversation, so
    repeats and later turns hit vLLM's prefix cache), all arriving at t=0."""
    model = model or ConversationModel()
    n_unique = num_requests or settings.num_requests
    repeats = settings.repeats.get(row.max_num_seqs)
    if repeats is None:
        raise UserError(
            f"max_num_seqs {row.max_num_seqs}: not in the run settings' sweep "
            f"({', '.join(map(str, sorted(settings.repeats)))})"
        )
    max_prompt = settings.max_model_len - settings.max_output_tokens
    prompts, conv = conversation_prompts(model, n_unique, seed, max_prompt)
    rng = np.random.Generator(np.random.PCG64(seed + 1))
    outputs = histogram_lengths(row.bins, row.counts, n_unique, rng, settings.max_output_tokens)
    n = n_unique * repeats
    return Trace(
        arrival_s=np.zeros(n),
        prompt_tokens=np.tile(prompts, repeats),
        output_tokens=np.tile(outputs, repeats),
        prefix_id=np.tile(conv, repeats),
    )


# ---- the steady-state window ----------------------------------------------------------------
@dataclass(frozen=True)
class SteadyState:
    """The benchmark's steady-state figures of one run (measured or simulated)."""

    t_begin_s: float
    t_end_s: float
    energy_j: float
    tokens: int
    median_itl_s: float
    itl_count: int

    @property
    def duration_s(self) -> float:
        return self.t_end_s - self.t_begin_s

    @property
    def energy_per_token_j(self) -> float:
        return self.energy_j / self.tokens if self.tokens else math.nan

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan


def token_times(
    first_token_s: float, finish_s: float, output_tokens: int, step_end_s: np.ndarray
) -> np.ndarray:
    """When a request's tokens came out: its first at first_token_s, then one at the end of
    every step after it up to its finish (a running vLLM request decodes one token in every
    step: decodes are scheduled before new prefills and max_num_batched_tokens >=
    max_num_seqs), at most output_tokens in all. step_end_s: sorted step end times."""
    if not math.isfinite(first_token_s) or output_tokens < 1:
        return np.zeros(0)
    lo = np.searchsorted(step_end_s, first_token_s, side="right")
    hi = np.searchsorted(step_end_s, finish_s, side="right") if math.isfinite(finish_s) else None
    later = step_end_s[lo:hi][: output_tokens - 1]
    return np.concatenate([[first_token_s], later])


def steady_state(
    first_token_s: Sequence[float],
    finish_s: Sequence[float],
    output_tokens: Sequence[int],
    step_end_s: Sequence[float],
    energy_at: Callable[[np.ndarray], np.ndarray],
    max_num_seqs: int,
) -> SteadyState:
    """The window from the moment max_num_seqs requests have their first token to the moment
    N - max_num_seqs have (N = all requests); its GPU energy (energy_at: cumulative energy at
    given times), the output tokens received in it (those after its start, up to and including
    its end) and the median inter-token gap over every request's whole stream."""
    first = np.asarray(first_token_s, float)
    n = len(first)
    b = int(max_num_seqs)
    if b < 1 or n - b < b:
        raise UserError(
            f"steady state needs at least 2 x max_num_seqs requests ({2 * b}); the run has {n}"
        )
    ordered = np.sort(np.where(np.isfinite(first), first, np.inf))
    t0, t1 = float(ordered[b - 1]), float(ordered[n - b - 1])
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise UserError("steady state: fewer than N - max_num_seqs requests got a first token")
    ends = np.sort(np.asarray(step_end_s, float))
    tokens = 0
    gaps = []
    for f, e, o in zip(first, np.asarray(finish_s, float), output_tokens, strict=True):
        tt = token_times(float(f), float(e), int(o), ends)
        tokens += int(np.count_nonzero((tt > t0) & (tt <= t1)))
        if len(tt) > 1:
            gaps.append(np.diff(tt))
    itl = np.concatenate(gaps) if gaps else np.zeros(0)
    e0, e1 = np.asarray(energy_at(np.array([t0, t1])), float)
    return SteadyState(
        t_begin_s=t0,
        t_end_s=t1,
        energy_j=float(e1 - e0),
        tokens=tokens,
        median_itl_s=float(np.median(itl)) if len(itl) else math.nan,
        itl_count=len(itl),
    )


def steps_energy_at(
    starts: Sequence[float], ends: Sequence[float], energy_j: Sequence[float], gap_w: float = 0.0
) -> Callable[[np.ndarray], np.ndarray]:
    """Cumulative energy from t=0 of a step log with each step's energy (linear within a step)
    and a constant power gap_w between steps: the energy_at of a hand-built log."""
    s, e, en = (np.asarray(x, float) for x in (starts, ends, energy_j))
    order = np.argsort(s, kind="stable")
    s, e, en = s[order], e[order], en[order]
    t = [0.0]
    cum = [0.0]
    for a, z, q in zip(s, e, en, strict=True):
        cum.append(cum[-1] + gap_w * max(a - t[-1], 0.0))
        t.append(a)
        cum.append(cum[-1] + q)
        t.append(z)
    t_arr, c_arr = np.asarray(t), np.asarray(cum)

    def at(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        inside = np.interp(x, t_arr, c_arr)
        return np.where(x > t_arr[-1], c_arr[-1] + gap_w * (x - t_arr[-1]), inside)

    return at


# ---- simulating a row -----------------------------------------------------------------------
SERVER_KIND = "vllm"


def vllm_server(row: MeasuredRow, settings: RunSettings, kind: str = SERVER_KIND) -> dict:
    """The scenario's `server` block of a row: the run's own vLLM flags (max_num_seqs,
    max-num-batched-tokens, max-model-len, async-scheduling) where the server kind's schema has
    the field, prefix caching on as vLLM 0.11 has it by default; vLLM's defaults otherwise
    (block 16, gpu_memory_utilization 0.9, chunked prefill on)."""
    from llm_energy_sim.config.servers import server_kind

    fields = server_kind(kind).settings.model_fields
    wanted = {
        "max_num_seqs": row.max_num_seqs,
        "max_num_batched_tokens": settings.max_num_batched_tokens,
        "max_model_len": settings.max_model_len,
        "enable_prefix_caching": True,
        "async_scheduling": settings.async_scheduling,
    }
    return {"kind": kind, **{k: v for k, v in wanted.items() if k in fields}}


def row_scenario(row: MeasuredRow, settings: RunSettings, n: int, server: dict | None = None):
    """The Scenario of a row (its workload block only sizes the run: build_trace's requests
    are served instead)."""
    from llm_energy_sim.config.scenario import load_scenario_dict

    data = {
        "name": f"mlenergy-v3-h100-mns{row.max_num_seqs}",
        "model": MODEL_CARD,
        "dtype": settings.dtype,
        # the measuring host's speed is unknown, and it is not one of this project's leases
        # (whose spread the profile's default comes from): the calibration host's, 1.0
        "hardware": {
            "gpu": "h100-sxm",
            "gpus_per_replica": settings.num_gpus,
            "host_time_factor": 1.0,
        },
        "server": server or vllm_server(row, settings),
        "workload": {
            "requests": n,
            "arrival": {"kind": "burst"},
            "prompt_tokens": {"kind": "fixed", "value": 1},
            "output_tokens": {"kind": "fixed", "value": 1},
            "sampling": sampling_method(**SAMPLING),
        },
    }
    return load_scenario_dict(data, f"ML.ENERGY v3 row max_num_seqs={row.max_num_seqs}")


@dataclass
class RowResult:
    """Measured against predicted at one max_num_seqs (errors: predicted / measured - 1)."""

    max_num_seqs: int
    requests: int
    measured_energy_per_token_j: float
    predicted_energy_per_token_j: float
    measured_avg_power_w: float
    predicted_avg_power_w: float
    measured_median_itl_ms: float
    predicted_median_itl_ms: float
    predicted_window_s: float
    predicted_window_tokens: int
    predicted_mean_batch: float
    predicted_prompt_computed: (
        float  # prompt tokens prefilled / prompt tokens (prefix-cache hits and
    )
    # repeats lower it; padding raises it)
    completed: int
    predicted_preemptions: int | None  # the server's count (vllm), None if it keeps none
    extra: dict = field(default_factory=dict)

    def errors(self) -> dict[str, float]:
        return {
            q: getattr(self, f"predicted_{q}") / getattr(self, f"measured_{q}") - 1.0
            for q in TARGETS
        }

    def record(self) -> dict:
        rec = {k: v for k, v in asdict(self).items() if k != "extra"}
        rec.update({f"error_{q}": e for q, e in self.errors().items()})
        return rec


def _mean_batch(res, t0: float, t1: float) -> float:
    """Mean decode batch over the window's steps, weighted by step time."""
    rows = [r for rep in res.replicas for r in (rep.step_log or []) if r[0] >= t0 and r[1] <= t1]
    if not rows:
        return math.nan
    w = np.array([r[1] - r[0] for r in rows])
    n = np.array([r[3] + len(r[2]) for r in rows], float)
    return float(np.average(n, weights=w)) if w.sum() > 0 else math.nan


def simulate_row(
    row: MeasuredRow,
    settings: RunSettings,
    profile: str = DEFAULT_PROFILE,
    model: ConversationModel | None = None,
    seed: int = 0,
    num_requests: int | None = None,
    server: dict | None = None,
) -> RowResult:
    """Simulate one row as measured and compute the benchmark's steady-state figures."""
    from llm_energy_sim.simulation import simulate

    trace = build_trace(row, settings, model, seed, num_requests)
    n = len(trace)
    if n < 2 * row.max_num_seqs:
        raise UserError(
            f"max_num_seqs {row.max_num_seqs}: {n} requests, fewer than 2 x max_num_seqs "
            f"(the benchmark's own minimum); ask for more --requests"
        )
    scen = row_scenario(row, settings, n, server)
    res = simulate(scen, profile_override=profile, step_log=True, trace=trace)
    reqs = res.requests
    ends = np.sort([r[1] for rep in res.replicas for r in rep.step_log])
    ledgers = [rep.ledger for rep in res.replicas]

    def energy_at(t: np.ndarray) -> np.ndarray:
        return sum(led.cumulative_energy(t, res.t_end) for led in ledgers)

    ss = steady_state(
        [r.t_first for r in reqs],
        [r.t_finish for r in reqs],
        [r.generated for r in reqs],
        ends,
        energy_at,
        row.max_num_seqs,
    )
    prompt = sum(r.prompt for r in reqs)
    computed = sum(r.computed_prompt for r in reqs)
    return RowResult(
        max_num_seqs=row.max_num_seqs,
        requests=n,
        measured_energy_per_token_j=row.energy_per_token_j,
        predicted_energy_per_token_j=ss.energy_per_token_j,
        measured_avg_power_w=row.avg_power_w,
        predicted_avg_power_w=ss.avg_power_w,
        measured_median_itl_ms=row.median_itl_ms,
        predicted_median_itl_ms=ss.median_itl_s * 1000.0,
        predicted_window_s=ss.duration_s,
        predicted_window_tokens=ss.tokens,
        predicted_mean_batch=_mean_batch(res, ss.t_begin_s, ss.t_end_s),
        predicted_prompt_computed=computed / prompt if prompt else math.nan,
        completed=sum(1 for r in reqs if str(r.status) == "ok"),
        predicted_preemptions=res.server_info.get("preemptions"),
        extra={
            "server_info": json.loads(json.dumps(res.server_info, default=str)),
            "measured_avg_batch_size": row.avg_batch_size,
            "mean_prompt_tokens": float(np.mean(trace.prompt_tokens)),
            "mean_output_tokens": float(np.mean(trace.output_tokens)),
            "profile": res.profile.name,
            "profile_path": str(res.profile_path),
        },
    )


def results_frame(results: Sequence[RowResult]) -> pd.DataFrame:
    """One row per max_num_seqs: measured, predicted and error of each quantity."""
    return pd.DataFrame([r.record() for r in results])


# ---- the plot -------------------------------------------------------------------------------
PANELS = (
    ("energy_per_token_j", "energy per output token (J)"),
    ("avg_power_w", "average GPU power (W)"),
    ("median_itl_ms", "median ITL (ms)"),
)


def plot_curves(df: pd.DataFrame, path: Path, title: str) -> Path:
    """Measured and predicted against max_num_seqs, one panel per quantity (log2 x axis), and
    a last panel of the errors (%) with the +-10% targets."""
    from llm_energy_sim.results.pngsave import pyplot, save_figure

    plt = pyplot()
    from matplotlib.ticker import FormatStrFormatter, NullLocator

    fig, axes = plt.subplots(1, len(PANELS) + 1, figsize=(19, 4.4))
    x = df["max_num_seqs"]
    for ax, (q, label) in zip(axes, PANELS, strict=False):
        ax.plot(x, df[f"measured_{q}"], "o-", color="k", label="measured (ML.ENERGY v3)")
        ax.plot(x, df[f"predicted_{q}"], "s--", color="tab:red", label="predicted")
        ax.set_ylabel(label)
        if q == "energy_per_token_j":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
    ax = axes[-1]
    for (q, label), colour in zip(PANELS, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        ax.plot(x, df[f"error_{q}"] * 100, "o-", color=colour, label=label.split(" (")[0])
    ax.axhspan(-10, 10, color="0.85", zorder=0, label="target +-10%")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("error, predicted / measured - 1 (%)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(x))
        ax.set_xticklabels([str(v) for v in x], rotation=45, fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("max_num_seqs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
