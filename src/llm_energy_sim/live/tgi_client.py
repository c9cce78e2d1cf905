"""Client of Text Generation Inference's `/generate_stream` (SSE), as TGI's OpenAPI documents it.

Request: {"inputs": text, "parameters": {"max_new_tokens": n, "details": true,
"decoder_input_details": false, "do_sample": false, "stop": []}}. Each event's data is a
StreamResponse: {"index", "token": {"id", "text", "logprob", "special"}, "generated_text"
(last event only), "details": {"finish_reason", "generated_tokens", ...} (last event only)};
an error arrives as {"error": ..., "error_type": ...}. TGI's HTTP API has no parameter that
ignores EOS (the router sends ignore_eos_token=false), so a request may stop before
max_new_tokens: its generated_tokens and finish_reason say so. 429 (queue full) and error
events are recorded, never retried.
"""

from __future__ import annotations

import time

from llm_energy_sim.live.base import RequestRecord
from llm_energy_sim.live.http import (
    StreamingHttpClient,
    record_refusal,
    record_stream_error,
    record_streamed,
)
from llm_energy_sim.live.protocol import (
    ProtocolError,
    check_endpoint,
    check_tgi_event,
    json_object,
)
from llm_energy_sim.live.sse import error_text, sse_events

WORD = " the"  # one token per repetition for Llama-3-style BPE vocabularies


def prompt_text(n_tokens: int) -> str:
    """A prompt of about n_tokens tokens (TGI takes text, not token ids)."""
    return WORD * n_tokens


class TgiClient(StreamingHttpClient):
    name = "tgi"

    def __init__(self, endpoint: str, connect_timeout_s: float = 10.0) -> None:
        self.url = check_endpoint(endpoint).rstrip("/") + "/generate_stream"
        self.connect_timeout_s = connect_timeout_s
        self.t0 = 0.0
        self.client = None

    def start(self) -> None:
        self.open_client()

    def payload(self, rec: RequestRecord) -> dict:
        return {
            "inputs": prompt_text(rec.prompt_tokens),
            "parameters": {
                "max_new_tokens": rec.output_tokens,
                "details": True,
                "decoder_input_details": False,
                "do_sample": False,
                "stop": [],
            },
        }

    async def submit(self, rec: RequestRecord, prompt_ids: list[int]) -> None:
        rec.send_s = time.perf_counter() - self.t0
        async with self.client.stream("POST", self.url, json=self.payload(rec)) as resp:
            if resp.status_code != 200:
                body = await resp.aread()
                record_refusal(rec, resp.status_code, error_text(body), self.t0)
                return
            times: list[float] = []
            final = False
            async for _event, data in sse_events(resp):
                now = time.perf_counter() - self.t0
                msg = json_object(data, "TGI /generate_stream")
                check_tgi_event(msg)
                if "error" in msg:
                    error = f"{msg.get('error_type', 'error')}: {msg['error']}"
                    record_stream_error(rec, error, now, times)
                    return
                if msg.get("token") is not None:
                    times.append(now)
                details = msg.get("details")
                final = final or details is not None or msg.get("generated_text") is not None
                if details:
                    rec.extra["finish_reason"] = details.get("finish_reason")
                    if details.get("input_length") is not None:
                        rec.extra["server_prompt_tokens"] = details["input_length"]
                    rec.generated_tokens = int(details.get("generated_tokens", len(times)))
            if not final:  # e.g. HTTP 200 with a body that is no event stream
                raise ProtocolError(
                    f"TGI /generate_stream: the stream ended after {len(times)} token(s) "
                    "without its final event (generated_text / details)"
                )
        record_streamed(rec, times, self.t0)
        if not rec.generated_tokens:
            rec.generated_tokens = len(times)

    def info(self) -> dict:
        return {"engine": "TGI /generate_stream", "url": self.url}
