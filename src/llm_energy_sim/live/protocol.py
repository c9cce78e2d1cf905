"""What a streaming server must answer, checked event by event: a response that does not
follow the protocol (HTTP 200 with a body that is not the documented event stream, events
that are not JSON objects of the documented shape, a stream that ends without its final
event) is a ProtocolError, which the client records as that request's error; never a
"completed" request of 0 tokens."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from llm_energy_sim.config.errors import UserError


class ProtocolError(Exception):
    """A server response that does not follow the protocol the client speaks."""


def check_endpoint(url: str) -> str:
    """`url` itself when it is an http(s) URL with a host; UserError (one line) otherwise,
    e.g. a scheme-less 'localhost:8080'."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise UserError(f"--endpoint {url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"--endpoint {url!r}: give an http:// or https:// URL with a host, "
            "e.g. http://127.0.0.1:8080"
        )
    try:
        parts.port  # noqa: B018  (ValueError on a port that is not a number in 0-65535)
    except ValueError:
        raise UserError(f"--endpoint {url!r}: the port must be a number 0-65535") from None
    return url


def json_object(data: str, what: str) -> dict[str, Any]:
    """An event's data as a JSON object, else ProtocolError."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise ProtocolError(f"{what}: event data is not JSON: {data[:80]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: event data is not a JSON object: {data[:80]!r}")
    return obj


def whole_count(value: Any, field: str, what: str) -> int:
    """A token count the server sent: a whole number >= 0, else ProtocolError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{what}: '{field}' is {value!r}, not a token count")
    return value


def check_tgi_event(msg: dict[str, Any]) -> None:
    """A TGI StreamResponse: 'token' an object with text; 'details' (last event) an object
    with a whole generated_tokens; else ProtocolError."""
    what = "TGI /generate_stream"
    token = msg.get("token")
    if "error" not in msg and not isinstance(token, dict):
        raise ProtocolError(f"{what}: an event without a 'token' object: {str(msg)[:80]}")
    if isinstance(token, dict) and not isinstance(token.get("text", ""), str):
        raise ProtocolError(f"{what}: token.text is not a string")
    details = msg.get("details")
    if details is not None:
        if not isinstance(details, dict):
            raise ProtocolError(f"{what}: 'details' is not an object")
        if "generated_tokens" in details:
            whole_count(details["generated_tokens"], "details.generated_tokens", what)


def check_openai_chunk(msg: dict[str, Any]) -> None:
    """An OpenAI completions chunk: 'choices' a list of objects with string text (a usage
    chunk may have none); usage counts whole; else ProtocolError."""
    what = "OpenAI /v1/completions"
    choices = msg.get("choices")
    if "error" in msg:
        return
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ProtocolError(f"{what}: a chunk without a 'choices' list: {str(msg)[:80]}")
    if not choices and not isinstance(msg.get("usage"), dict):
        raise ProtocolError(f"{what}: a chunk with no choices and no usage")
    for c in choices:
        if not isinstance(c.get("text", ""), str):
            raise ProtocolError(f"{what}: choices[].text is not a string")
    usage = msg.get("usage")
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        whole_count(usage["completion_tokens"], "usage.completion_tokens", what)
