"""Send a trace's requests at their arrival times from one asyncio loop.

Each request is its own task, created at its arrival time whatever earlier requests are doing,
so a slow server never delays later arrivals (an open-loop client, like real traffic). A
request that fails or times out is recorded and the run goes on; Ctrl-C (or any exception)
cancels what is in flight, and the records say which requests had finished.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import numpy as np

from llm_energy_sim.live.base import ERROR, TIMEOUT, UNFINISHED, LiveEngine, RequestRecord


def prompt_ids(seed: int, request_id: int, length: int, vocab_size: int) -> list[int]:
    """Random token ids for a request: the same ids for the same scenario seed and request,
    and never the special ids at the very start of the vocabulary."""
    rng = np.random.Generator(np.random.PCG64([seed, request_id]))
    low = min(1000, vocab_size // 2)
    return rng.integers(low, vocab_size, size=length).tolist()


async def _one(engine: LiveEngine, rec: RequestRecord, ids: list[int], timeout_s: float) -> None:
    try:
        await asyncio.wait_for(engine.submit(rec, ids), timeout=timeout_s)
    except asyncio.TimeoutError:
        rec.status, rec.error = TIMEOUT, f"no answer within {timeout_s:g} s"
    except asyncio.CancelledError:
        if rec.status == UNFINISHED:
            rec.error = "run stopped before the request finished"
        raise
    except Exception as exc:  # a failed request must not end the run
        rec.status, rec.error = ERROR, f"{type(exc).__name__}: {exc}"


async def _replay(
    engine: LiveEngine,
    records: list[RequestRecord],
    ids_of: Callable[[RequestRecord], list[int]],
    t0: float,
    timeout_s: float,
) -> None:
    tasks: list[asyncio.Task] = []
    try:
        for rec in records:
            delay = t0 + rec.arrival_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ids = ids_of(rec)
            tasks.append(asyncio.create_task(_one(engine, rec, ids, timeout_s)))
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def replay(
    engine: LiveEngine,
    records: list[RequestRecord],
    ids_of: Callable[[RequestRecord], list[int]],
    t0: float,
    timeout_s: float = 600.0,
) -> bool:
    """Run the trace to the end; returns False if it was interrupted (Ctrl-C)."""
    try:
        asyncio.run(_replay(engine, records, ids_of, t0, timeout_s))
        return True
    except KeyboardInterrupt:
        return False


def end_time(records: list[RequestRecord], t_stop: float) -> float:
    """Run end: the last finish, or when it was stopped."""
    finishes = [r.finish_s for r in records if not math.isnan(r.finish_s)]
    return max(finishes + [t_stop if not finishes else 0.0])
