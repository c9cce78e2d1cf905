"""Client of `/v1/completions` with streaming, for any OpenAI-compatible server (TGI, vLLM,
`transformers serve`).

max_tokens = the trace's output tokens; `ignore_eos: true` and `min_tokens` are sent as extra
fields (vLLM honours them; servers that do not know them ignore them, and the recorded
generated_tokens / finish_reason show where a request stopped early). The prompt is text of
about the trace's prompt length; `stream_options.include_usage` asks for the server's own token
counts, recorded when it sends them.
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
    check_openai_chunk,
    json_object,
)
from llm_energy_sim.live.sse import error_text, sse_events
from llm_energy_sim.live.tgi_client import prompt_text


class OpenAiClient(StreamingHttpClient):
    name = "openai"

    def __init__(
        self, endpoint: str, model: str | None = None, connect_timeout_s: float = 10.0
    ) -> None:
        base = check_endpoint(endpoint).rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.send_eos_fields = (
            True  # ignore_eos / min_tokens, until the server says it rejects them
        )
        self.connect_timeout_s = connect_timeout_s
        self.t0 = 0.0
        self.client = None

    def start(self) -> None:
        import httpx

        from llm_energy_sim.config.errors import UserError

        if self.model is None:
            url = self.base + "/models"
            try:
                r = httpx.get(url, timeout=self.connect_timeout_s)
                r.raise_for_status()
                body = r.json()
            except httpx.HTTPError as exc:
                raise UserError(
                    f"{url}: cannot ask for the model ({type(exc).__name__}: {exc})"
                ) from None
            except ValueError:
                raise UserError(f"{url}: the answer is not JSON; give --model-name") from None
            models = body.get("data") if isinstance(body, dict) else None
            if not models or not isinstance(models, list):
                raise UserError(f"{url} lists no model: give --model-name")
            first = models[0]
            if not isinstance(first, dict) or not isinstance(first.get("id"), str):
                raise UserError(f"{url}: data[0].id is not a model name; give --model-name")
            self.model = first["id"]
        self.open_client()

    def payload(self, rec: RequestRecord) -> dict:
        return {
            "model": self.model,
            "prompt": prompt_text(rec.prompt_tokens),
            "max_tokens": rec.output_tokens,
            **(
                {"min_tokens": rec.output_tokens, "ignore_eos": True}
                if self.send_eos_fields
                else {}
            ),
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def submit(self, rec: RequestRecord, prompt_ids: list[int]) -> None:
        rec.send_s = time.perf_counter() - self.t0
        async with self.client.stream(
            "POST", self.base + "/completions", json=self.payload(rec)
        ) as resp:
            if resp.status_code != 200:
                body = await resp.aread()
                text = error_text(body)
                if (
                    resp.status_code in (400, 422)
                    and self.send_eos_fields
                    and ("ignore_eos" in text or "min_tokens" in text)
                ):
                    # a server that refuses unknown fields (transformers serve): drop them for the
                    # rest of the run, say so in summary.json, and send this request again
                    self.send_eos_fields = False
                    return await self.submit(rec, prompt_ids)
                record_refusal(rec, resp.status_code, text, self.t0)
                return
            times: list[float] = []
            final = False
            async for _event, data in sse_events(resp):
                now = time.perf_counter() - self.t0
                if data.strip() == "[DONE]":
                    final = True
                    break
                msg = json_object(data, "OpenAI /v1/completions")
                check_openai_chunk(msg)
                if "error" in msg:
                    record_stream_error(rec, error_text(data), now, times)
                    return
                for choice in msg.get("choices") or []:
                    if choice.get("text"):
                        times.append(now)
                    if choice.get("finish_reason"):
                        rec.extra["finish_reason"] = choice["finish_reason"]
                        final = True
                usage = msg.get("usage")
                if usage:
                    rec.extra["server_prompt_tokens"] = usage.get("prompt_tokens")
                    rec.extra["server_completion_tokens"] = usage.get("completion_tokens")
            if not final:  # e.g. HTTP 200 with a body that is no event stream
                raise ProtocolError(
                    f"OpenAI /v1/completions: the stream ended after {len(times)} token(s) "
                    "without a finish_reason or [DONE]"
                )
        record_streamed(rec, times, self.t0)
        done = rec.extra.get("server_completion_tokens")
        rec.generated_tokens = int(done) if done else len(times)

    def info(self) -> dict:
        return {
            "engine": "OpenAI-compatible /v1/completions",
            "url": self.base,
            "model": self.model,
            "ignore_eos_sent": self.send_eos_fields,
        }
