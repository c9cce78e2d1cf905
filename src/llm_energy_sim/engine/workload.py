"""Request traces: the same scenario and seed always give the same requests, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.scenario import (
    BurstArrival,
    EmpiricalLength,
    FixedArrival,
    FixedLength,
    LognormalLength,
    PoissonArrival,
    TraceArrival,
    UniformArrival,
    UniformLength,
    Workload,
)


@dataclass(frozen=True)
class Trace:
    """Arrival times (s, sorted) and token counts of every request, indexed by request id."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    # per request: the token stream its prompt is a prefix of (Request.prefix_id), -1 if none
    prefix_id: np.ndarray | None = None

    def prefix_ids(self) -> np.ndarray:
        """prefix_id per request (-1 everywhere when the workload shares no prefixes)."""
        if self.prefix_id is None:
            return np.full(len(self), -1, dtype=np.int64)
        return self.prefix_id

    def __len__(self) -> int:
        return len(self.arrival_s)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "request_id": np.arange(len(self)),
                "arrival_s": self.arrival_s,
                "prompt_tokens": self.prompt_tokens,
                "output_tokens": self.output_tokens,
                "prefix_id": self.prefix_ids(),
            }
        )


def _read_csv(path: str, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what}: file not found: {path}")
    try:
        return pd.read_csv(p)
    except Exception as exc:  # pandas raises many kinds
        raise UserError(f"{path}: cannot read CSV: {exc}") from None


def _column(df: pd.DataFrame, col: str, path: str, whole: bool, low: float) -> np.ndarray:
    """A trace column as floats: numeric, finite, >= low, and whole numbers where counts."""
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < low)
    if whole:
        bad |= values != np.round(values)
    if bad.any():
        row = int(np.argmax(bad))
        kind = f"whole numbers >= {low:g}" if whole else f"finite numbers >= {low:g}"
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
        values = df[dist.column].to_numpy(dtype=np.int64)
        if len(values) == 0 or (values <= 0).any():
            raise UserError(f"{dist.path}: column '{dist.column}' must hold positive token counts")
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
        arrival = _column(df, "arrival_s", arr.path, whole=False, low=0.0)
        prompt = _column(df, "prompt_tokens", arr.path, whole=True, low=1.0)
        output = _column(df, "output_tokens", arr.path, whole=True, low=1.0)
        order = np.argsort(arrival, kind="stable")[:n]
        return Trace(arrival[order], prompt[order].astype(np.int64), output[order].astype(np.int64))
    if isinstance(arr, FixedArrival):
        arrivals = np.arange(n, dtype=float) * arr.interval_ms / 1000.0
    elif isinstance(arr, UniformArrival):
        arrivals = _gaps_to_arrivals(rng.uniform(arr.low_ms, arr.high_ms, size=n) / 1000.0)
    elif isinstance(arr, PoissonArrival):
        arrivals = _gaps_to_arrivals(rng.exponential(1.0 / arr.rate, size=n))
    elif isinstance(arr, BurstArrival):
        size = arr.size or n
        arrivals = (np.arange(n) // size).astype(float) * arr.gap_ms / 1000.0
    else:
        raise TypeError(arr)
    prompts = _lengths(workload.prompt_tokens, n, rng, "workload.prompt_tokens.path")
    outputs = _lengths(workload.output_tokens, n, rng, "workload.output_tokens.path")
    return Trace(arrivals, prompts, outputs)
