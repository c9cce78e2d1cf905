"""Request traces: the same scenario and seed always give the same requests, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.limits import MAX_TIME_S
from llm_energy_sim.config.scenario import (
    BurstArrival,
    Conversations,
    EmpiricalLength,
    ExponentialDuration,
    FixedArrival,
    FixedDuration,
    FixedLength,
    LognormalDuration,
    LognormalLength,
    PoissonArrival,
    TraceArrival,
    UniformArrival,
    UniformDuration,
    UniformLength,
    Workload,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Trace:
    """Arrival times (s, sorted) and token counts of every request, indexed by request id."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    # per request: the token stream its prompt is a prefix of (Request.prefix_id), -1 if none;
    # with workload.conversations, the request's conversation (numbered in start order)
    prefix_id: np.ndarray | None = None
    # per request: its turn in its conversation (0 = the first), None without conversations
    turn: np.ndarray | None = None

    def prefix_ids(self) -> np.ndarray:
        """prefix_id per request (-1 everywhere when the workload shares no prefixes: then a
        read-only view of one value, not n of them)."""
        if self.prefix_id is None:
            return np.broadcast_to(np.int64(-1), (len(self),))
        return self.prefix_id

    def __len__(self) -> int:
        return len(self.arrival_s)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {
                "request_id": np.arange(len(self)),
                "arrival_s": self.arrival_s,
                "prompt_tokens": self.prompt_tokens,
                "output_tokens": self.output_tokens,
                "prefix_id": self.prefix_ids(),
                **({} if self.turn is None else {"turn": self.turn}),
            }
        )


#: the largest token count a trace or length file may hold
MAX_COUNT = 2**31 - 1


def _read_csv(path: str, what: str) -> pd.DataFrame:
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise UserError(f"{what}: file not found: {path}")
    if not p.is_file():
        raise UserError(f"{what}: not a file: {path}")
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file; need a header row and one row per value") from None
    except Exception as exc:  # pandas raises many kinds
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"{path}: cannot read CSV: {msg}") from None


def _column(
    df: pd.DataFrame, col: str, path: str, whole: bool, low: float, high: float | None = None
) -> np.ndarray:
    """A trace column as floats: numeric, finite, in [low, high], and whole numbers where
    counts (counts also below 2^31, so a cast to int64 never wraps)."""
    import pandas as pd

    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < low)
    if high is not None:
        bad |= values > high
    if whole:
        bad |= (values != np.round(values)) | (values > MAX_COUNT)
    if bad.any():
        row = int(np.argmax(bad))
        if whole:
            kind = f"whole numbers from {low:g} to {MAX_COUNT}"
        elif high is not None:
            kind = f"finite numbers from {low:g} to {high:g}"
        else:
            kind = f"finite numbers >= {low:g}"
        raise UserError(
            f"{path}: row {row + 2}, column '{col}': {df[col].iloc[row]!r}; must be {kind}"
        )
    return values


def _lengths(dist, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    if isinstance(dist, FixedLength):
        return np.full(n, dist.value, dtype=np.int64)
    if isinstance(dist, UniformLength):
        return rng.integers(dist.min, dist.max + 1, size=n, dtype=np.int64)
    if isinstance(dist, LognormalLength):
        # choose mu so that the (unclipped) mean is dist.mean
        mu = np.log(dist.mean) - dist.sigma**2 / 2.0
        draw = rng.lognormal(mu, dist.sigma, size=n)
        return np.clip(np.rint(draw), dist.min, dist.max).astype(np.int64)
    if isinstance(dist, EmpiricalLength):
        df = _read_csv(dist.path, what)
        if dist.column not in df.columns:
            raise UserError(
                f"{dist.path}: no column '{dist.column}' (has: {', '.join(df.columns)})"
            )
        if len(df) == 0:
            raise UserError(f"{dist.path}: column '{dist.column}' has no rows; give token counts")
        values = _column(df, dist.column, dist.path, whole=True, low=1.0).astype(np.int64)
        return rng.choice(values, size=n, replace=True)
    raise TypeError(dist)


def _gaps_to_arrivals(gaps: np.ndarray) -> np.ndarray:
    """First request at t=0, the rest after cumulative gaps."""
    return np.concatenate([[0.0], np.cumsum(gaps[1:])]) if len(gaps) else gaps


def generate_trace(workload: Workload, seed: int) -> Trace:
    """Draw arrivals first, then prompt lengths, then output lengths, from one PCG64 stream."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n = workload.requests
    arr = workload.arrival
    if isinstance(arr, TraceArrival):
        df = _read_csv(arr.path, "workload.arrival.path")
        need = ["arrival_s", "prompt_tokens", "output_tokens"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise UserError(
                f"{arr.path}: missing column(s) {', '.join(missing)} (need {', '.join(need)})"
            )
        if len(df) < n:
            raise UserError(
                f"{arr.path}: the trace holds {len(df)} requests but workload.requests is {n}; "
                f"ask for at most {len(df)} (workload.requests or --requests)"
            )
        arrival = _column(df, "arrival_s", arr.path, whole=False, low=0.0, high=MAX_TIME_S)
        prompt = _column(df, "prompt_tokens", arr.path, whole=True, low=1.0)
        output = _column(df, "output_tokens", arr.path, whole=True, low=1.0)
        order = np.argsort(arrival, kind="stable")[:n]
        return Trace(arrival[order], prompt[order].astype(np.int64), output[order].astype(np.int64))
    arrivals = _arrival_times(arr, n, rng)
    if workload.conversations is not None:
        return _conversation_trace(workload.conversations, workload, arrivals, rng)
    prompts = _lengths(workload.prompt_tokens, n, rng, "workload.prompt_tokens.path")
    outputs = _lengths(workload.output_tokens, n, rng, "workload.output_tokens.path")
    return Trace(arrivals, prompts, outputs)


def _arrival_times(arr, n: int, rng: np.random.Generator) -> np.ndarray:
    """n arrival times (s) of a generated arrival process, the first at t=0."""
    if isinstance(arr, FixedArrival):
        return np.arange(n, dtype=float) * arr.interval_ms / 1000.0
    if isinstance(arr, UniformArrival):
        return _gaps_to_arrivals(rng.uniform(arr.low_ms, arr.high_ms, size=n) / 1000.0)
    if isinstance(arr, PoissonArrival):
        return _gaps_to_arrivals(rng.exponential(1.0 / arr.rate, size=n))
    if isinstance(arr, BurstArrival):
        size = arr.size or n
        return (np.arange(n) // size).astype(float) * arr.gap_ms / 1000.0
    raise TypeError(arr)


def _durations(dist, n: int, rng: np.random.Generator) -> np.ndarray:
    """n think times in seconds."""
    if isinstance(dist, FixedDuration):
        return np.full(n, dist.value_s, dtype=float)
    if isinstance(dist, UniformDuration):
        return rng.uniform(dist.low_s, dist.high_s, size=n)
    if isinstance(dist, ExponentialDuration):
        return rng.exponential(dist.mean_s, size=n)
    if isinstance(dist, LognormalDuration):
        mu = np.log(dist.mean_s) - dist.sigma**2 / 2.0
        high = np.inf if dist.max_s is None else dist.max_s
        return np.clip(rng.lognormal(mu, dist.sigma, size=n), dist.min_s, high)
    raise TypeError(dist)


def _within(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sums restarted at every group (groups of `counts` consecutive values that
    begin at index `starts`), exact for integers."""
    total = np.cumsum(values)
    return total - np.repeat(total[starts] - values[starts], counts)


def _conversation_trace(
    conv: Conversations, workload: Workload, starts: np.ndarray, rng: np.random.Generator
) -> Trace:
    """The trace of workload.conversations, after the conversations' start times.

    Draws, in this order: per conversation (n = workload.requests of them, as many as could
    be needed, each having at least one turn), the turn counts and the first messages; then
    the output tokens of the n requests; then, batch by batch, for each later turn (2, 3, ...)
    of a batch's conversations, the user messages, the answers in the history, the think
    times. Batch j holds the conversations whose planned turns begin in [j*n, (j+1)*n), so a
    conversation's draws depend on the turn counts alone, not on max_prompt_tokens (a cap
    only cuts conversations short, and takes further batches when the first ones fall short
    of n turns); without a cap batch 0 is enough.
    """
    n = workload.requests
    turns = _lengths(conv.turns, n, rng, "workload.conversations.turns.path")
    first = _lengths(
        conv.first_message_tokens, n, rng, "workload.conversations.first_message_tokens.path"
    )
    cap = conv.max_prompt_tokens
    if cap is not None and (first > cap).any():  # only an empirical file can (see schema)
        raise UserError(
            f"{getattr(conv.first_message_tokens, 'path', 'first_message_tokens')}: a first "
            f"message of {int(first.max())} tokens exceeds workload.conversations"
            f".max_prompt_tokens ({cap}); a first prompt cannot be shortened"
        )
    outputs = _lengths(workload.output_tokens, n, rng, "workload.output_tokens.path")
    planned_start = np.cumsum(turns) - turns  # each conversation's first turn, uncapped
    batch_of = planned_start // n
    parts: list[tuple[np.ndarray, ...]] = []
    have = 0
    for j in range(int(batch_of[-1]) + 1):
        lo, hi = np.searchsorted(batch_of, [j, j + 1])
        t = turns[lo:hi]
        m = int(t.sum()) - len(t)  # later turns of the batch
        msgs = _lengths(conv.message_tokens, m, rng, "workload.conversations.message_tokens.path")
        answers = _lengths(conv.answer_tokens, m, rng, "workload.conversations.answer_tokens.path")
        thinks = _durations(conv.think_time, m, rng)
        cid = np.repeat(np.arange(lo, hi), t)
        offsets = np.cumsum(t) - t
        turn = np.arange(len(cid)) - np.repeat(offsets, t)
        later = turn > 0
        grow = np.zeros(len(cid), dtype=np.int64)
        grow[later] = answers + msgs
        prompt = first[cid] + _within(grow, offsets, t)
        wait = np.zeros(len(cid))
        wait[later] = thinks
        # per-conversation running sums of float think times, each summed in turn order
        import pandas as pd  # only conversation workloads group by conversation

        arrival = starts[cid] + pd.Series(wait).groupby(cid).cumsum().to_numpy()
        # prompts grow within a conversation, so the turns under the cap are a prefix of it
        keep = np.ones(len(cid), dtype=bool) if cap is None else prompt <= cap
        parts.append((arrival[keep], prompt[keep], cid[keep], turn[keep]))
        have += int(keep.sum())
        if have >= n:
            break
    arrival, prompt, cid, turn = (np.concatenate(col)[:n] for col in zip(*parts, strict=True))
    order = np.argsort(arrival, kind="stable")
    return Trace(arrival[order], prompt[order], outputs, cid[order].astype(np.int64), turn[order])
