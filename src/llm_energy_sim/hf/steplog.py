"""The live continuous batching engine's own step log: when each forward step ran and what it
computed, read from transformers' scheduler in the engine's thread.

Why: a latency error of a live run mixes two causes, a scheduler model that batches
differently and a step cost that differs (a cloud machine's host speed moves by up to 1.9x
within minutes, docs/host-speed.md). With every step's composition and wall time, `sim steps` costs
the very same steps with the cost model, so the two causes separate, and the ratio over time
is the host speed as the engine's own thread saw it (a separate probe process did not follow
it). Logging reads Python attributes only (no device sync): a few microseconds per step.

transformers' manager is wrapped at three methods of its batch processor (prepare_next_batch,
scheduler.schedule_batch, update_batch), which exist in transformers 5.x; where they do not,
the log stays empty and the run goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from llm_energy_sim.results.steptable import write_steps as write_table


@dataclass(slots=True)
class LoggedStep:
    """One engine step. prefill: (new, past) tokens per sequence being prefilled;
    n_decode / decode_ctx_sum: sequences decoding one token and the sum of their KV lengths
    (each including that token), as llm_energy_sim.cost.costmodel.StepWork counts them."""

    start: float  # perf_counter
    end: float
    prefill: tuple[tuple[int, int], ...]
    n_decode: int
    decode_ctx_sum: int


def split_batch(batch) -> tuple[tuple[tuple[int, int], ...], int, int]:
    """(prefill, n_decode, decode_ctx_sum) of a scheduled batch of FutureRequestStates, read
    before the batch's tensors are built (position_offset is then still the past length).
    A one-token query over a non-empty past is a decode step's work (also the last token of
    a chunked prompt, which costs the same)."""
    prefill = []
    n_decode = ctx = 0
    for fs in batch:
        q, past = int(fs.query_length), int(fs.state.position_offset)
        if q == 1 and past > 0:
            n_decode += 1
            ctx += past + 1
        else:
            prefill.append((q, past))
    return tuple(prefill), n_decode, ctx


class StepLog:
    """Steps of one continuous batching manager, appended by its generation thread."""

    def __init__(self) -> None:
        self.steps: list[LoggedStep] = []
        self.attached = False
        self._start = 0.0
        self._open: tuple[float, tuple, int, int] | None = None

    def attach(self, processor) -> bool:
        """Wrap the processor's per-step methods; False (and nothing wrapped) when this
        transformers version lacks them."""
        sched = getattr(processor, "scheduler", None)
        names = ("prepare_next_batch", "update_batch")
        if sched is None or not all(hasattr(processor, n) for n in names):
            return False
        if not hasattr(sched, "schedule_batch"):
            return False
        prepare, update, schedule = (
            processor.prepare_next_batch,
            processor.update_batch,
            sched.schedule_batch,
        )

        def logged_prepare(*args, **kwargs):
            self._start = time.perf_counter()
            self._open = None
            return prepare(*args, **kwargs)

        def logged_schedule(*args, **kwargs):
            out = schedule(*args, **kwargs)
            batch = out[0] if isinstance(out, tuple) and out else None
            if batch:
                self._open = (self._start, *split_batch(batch))
            return out

        def logged_update(*args, **kwargs):
            result = update(*args, **kwargs)
            if self._open is not None:
                start, prefill, n_dec, ctx = self._open
                self.steps.append(LoggedStep(start, time.perf_counter(), prefill, n_dec, ctx))
                self._open = None
            return result

        processor.prepare_next_batch = logged_prepare
        processor.update_batch = logged_update
        sched.schedule_batch = logged_schedule
        self.attached = True
        return True

    def since(self, t0: float) -> list[LoggedStep]:
        """The steps that started at or after t0 (a warm-up's steps come before)."""
        return [s for s in self.steps if s.start >= t0]


def write_steps(out_dir: Path, steps: list[LoggedStep], t0: float) -> Path:
    """steps.csv beside the results (results/steptable.py's format): times since the run's t0."""
    rows = ((s.start - t0, s.end - t0, s.prefill, s.n_decode, s.decode_ctx_sum, 0) for s in steps)
    return write_table(out_dir, rows)
