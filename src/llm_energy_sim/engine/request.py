"""A request's life in the simulator: timing, tokens, KV reservation and attributed energy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class RequestStatus(str, Enum):
    """A request's outcome: the `status` column of requests.csv, in `sim run` and `sim replay`.

    The one set of status values; members are plain strings (``RequestStatus.OK == "ok"``,
    ``str(RequestStatus.OK) == "ok"``). ERROR and TIMEOUT happen only in live runs.
    """

    OK = "ok"
    REJECTED_QUEUE_FULL = "rejected_429"  # the server's queue was full (HTTP 429)
    REJECTED_TOO_LONG = "rejected_422"  # prompt + output exceed the server's limit (HTTP 422)
    UNFINISHED = "unfinished"  # the run ended before the request did
    ERROR = "error"  # a live engine or server answered with an error
    TIMEOUT = "timeout"  # a live request got no answer in time

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


OK = RequestStatus.OK
REJECTED_QUEUE_FULL = RequestStatus.REJECTED_QUEUE_FULL
REJECTED_TOO_LONG = RequestStatus.REJECTED_TOO_LONG
UNFINISHED = RequestStatus.UNFINISHED
ERROR = RequestStatus.ERROR
TIMEOUT = RequestStatus.TIMEOUT


@dataclass(slots=True, eq=False)
class Request:
    id: int
    arrival: float
    prompt: int
    output: int
    replica: int = -1
    status: RequestStatus = UNFINISHED
    t_start: float = math.nan  # first forward step that touched it
    t_first: float = math.nan  # first output token produced
    t_finish: float = math.nan
    generated: int = 0  # output tokens produced so far
    prefilled: int = 0  # prompt tokens already in the KV cache
    next_chunk: int = 0  # prompt tokens the next forward will prefill (chunked prefill)
    computed_prompt: int = 0  # prompt tokens computed, padding included
    kv_blocks: int = 0
    e_prefill: float = 0.0
    e_decode: float = 0.0
    # the token stream this prompt is a prefix of (a conversation: every turn's prompt starts
    # with the previous turns' prompts), -1 for a prompt shared with no other request. Prompt
    # block i of any request with the same prefix_id holds the same tokens (prefix caching).
    prefix_id: int = -1

    @property
    def decoding(self) -> bool:
        return self.generated >= 1 and self.prefilled >= self.prompt

    @property
    def kv_len(self) -> int:
        """KV length the next decode step attends over (prompt + tokens generated so far)."""
        return self.prompt + self.generated

    @property
    def remaining(self) -> int:
        return self.output - self.generated
