"""What a live run records per request, and the interface every engine or client implements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from llm_energy_sim.engine.request import RequestStatus

# the status values of the simulator's requests (engine/request.py: RequestStatus)
OK = RequestStatus.OK
ERROR = RequestStatus.ERROR
TIMEOUT = RequestStatus.TIMEOUT
REJECTED_429 = RequestStatus.REJECTED_QUEUE_FULL
UNFINISHED = RequestStatus.UNFINISHED  # the run ended (Ctrl-C) before the request did


@dataclass(slots=True)
class RequestRecord:
    """One request of a live run. Times are seconds since the run's t0 (first arrival)."""

    request_id: int
    arrival_s: float  # when the trace says it arrives
    prompt_tokens: int
    output_tokens: int  # max_new_tokens asked for
    send_s: float = math.nan  # when the client actually sent it
    start_s: float = math.nan  # first scheduled by the engine (in-process engines only)
    first_token_s: float = math.nan
    finish_s: float = math.nan
    generated_tokens: int = 0
    status: RequestStatus = UNFINISHED
    error: str = ""
    extra: dict = field(default_factory=dict)


class LiveEngine(Protocol):
    """A serving engine (in process) or a client of a server, driven by `driver.replay`."""

    name: str
    t0: float  # perf_counter time of the run's first arrival: the zero of every record time

    def start(self) -> None:
        """Get ready (load the model, open connections); the caller sets t0 afterwards."""

    async def submit(self, rec: RequestRecord, prompt_ids: list[int]) -> None:
        """Serve one request and fill in `rec` (never raise for a failed request: record it)."""

    def stop(self) -> None:
        """Release everything; called on every exit path."""

    def info(self) -> dict:
        """Resolved settings of the engine, for summary.json."""
