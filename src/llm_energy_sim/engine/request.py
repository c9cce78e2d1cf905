"""A request's life in the simulator: timing, tokens, KV reservation and attributed energy."""

from __future__ import annotations

import math
from dataclasses import dataclass

OK = "ok"
REJECTED_QUEUE_FULL = "rejected_429"
REJECTED_TOO_LONG = "rejected_422"
UNFINISHED = "unfinished"


@dataclass(slots=True, eq=False)
class Request:
    id: int
    arrival: float
    prompt: int
    output: int
    replica: int = -1
    status: str = UNFINISHED
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
