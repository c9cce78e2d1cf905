"""Server-sent events over httpx: the stream format both TGI and OpenAI-compatible servers use."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator


async def sse_events(response) -> AsyncIterator[tuple[str, str]]:
    """Yield (event name, data) per event of an httpx streaming response ('' = unnamed)."""
    event, data = "", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def error_text(body: bytes | str) -> str:
    """The 'error' field of a JSON error body, else the body itself (shortened)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return text[:300]
