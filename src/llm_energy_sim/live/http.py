"""What the clients of streaming HTTP servers (tgi_client, openai_client) share: one pooled
httpx client per run, and how a request's failure or streamed completion is recorded."""

from __future__ import annotations

import contextlib
import time

from llm_energy_sim.live.base import ERROR, OK, REJECTED_429, RequestRecord


class StreamingHttpClient:
    """An httpx.AsyncClient without connection limits or a read timeout (a request takes as
    long as the server needs), opened by `open_client` and closed by `stop`."""

    connect_timeout_s: float
    t0: float
    client = None

    def open_client(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=self.connect_timeout_s), limits=limits
        )

    def stop(self) -> None:
        if self.client is not None:
            import asyncio

            with contextlib.suppress(RuntimeError):
                asyncio.run(self.client.aclose())
            self.client = None


def record_refusal(rec: RequestRecord, status_code: int, text: str, t0: float) -> None:
    """A non-200 answer: 429 (queue full) is a rejection, any other code an error; never
    retried."""
    rec.status = REJECTED_429 if status_code == 429 else ERROR
    rec.error = f"HTTP {status_code}: {text}"
    rec.finish_s = time.perf_counter() - t0


def record_stream_error(rec: RequestRecord, error: str, now: float, times: list[float]) -> None:
    """An error event in the stream at `now`: the tokens streamed before it count."""
    rec.status, rec.error = ERROR, error
    rec.finish_s = now
    rec.generated_tokens = len(times)


def record_streamed(rec: RequestRecord, times: list[float], t0: float) -> None:
    """The stream ended: finished now, first token at the first token event, every token's
    time kept; the caller sets generated_tokens (from the server's count where it sends one)."""
    rec.finish_s = time.perf_counter() - t0
    if times:
        rec.first_token_s = times[0]
    rec.extra["token_times"] = times
    rec.status = OK
