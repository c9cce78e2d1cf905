"""`sim replay` against servers that do not follow the protocol, that refuse connections,
and with endpoints that are not URLs: a non-conforming answer is recorded as that request's
error (never "completed" with 0 tokens); a refused connection is a per-request error; a bad
--endpoint is one line, exit 2, nothing written.

Limitation: the servers are ours (small http.server handlers that answer garbage), so this
checks the clients' validation, not any real server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from badinput import SMALL, refused, sim, write_scenario

#: HTTP 200 bodies that are not the event stream the clients speak
GARBAGE = {
    "html": b"<html>hello</html>",
    "empty": b"",
    "json-not-sse": json.dumps({"generated_text": "x"}).encode(),
    "sse-not-json": b"data: hello\n\n",
    "sse-list": b"data: [1, 2]\n\n",
    "sse-no-final": b'data: {"token": {"text": " x"}}\n\n' * 3,
    "sse-bad-token": b'data: {"token": 5}\n\n',
    "sse-bad-count": b'data: {"token": {"text": "x"}, "details": {"generated_tokens": -3}}\n\n',
    "openai-no-choices": b'data: {"id": 1}\n\n',
    "openai-bad-text": b'data: {"choices": [{"text": 7}]}\n\n',
    "binary": bytes(range(256)),
}


def _server(bodies: list[bytes]):
    """A server answering each POST with HTTP 200 and the next body of `bodies`."""
    served = iter(range(10**9))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # /v1/models
            msg = json.dumps({"data": [{"id": "m"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                body = bodies[next(served) % len(bodies)]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _replay(tmp_path, engine: str, url: str, requests: int = 3):
    scen = write_scenario(
        tmp_path / "s.yaml", {**SMALL, "workload": {**SMALL["workload"], "requests": requests}}
    )
    out = tmp_path / "m"
    args = ["replay", scen, "--engine", engine, "--endpoint", url, "--no-meter"]
    args += ["--set", "workload.arrival.interval_ms=0"]  # all at once: no waiting
    r = sim([*args, "--out", out, "--quiet"], tmp_path)
    return r, out


@pytest.mark.parametrize("engine", ["tgi", "openai"])
def test_garbage_answers_are_errors_not_completions(tmp_path, engine):
    """One replay, each request answered with another kind of garbage: every one of them
    is recorded as an error."""
    kinds = sorted(GARBAGE)
    srv = _server([GARBAGE[k] for k in kinds])
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        r, out = _replay(tmp_path, engine, url, requests=len(kinds))
    finally:
        srv.shutdown()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out / "requests.csv")
    assert len(df) == len(kinds)
    assert (df["status"] == "error").all(), df[["status", "error"]]
    assert df["error"].str.len().gt(0).all()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def test_refused_connection_is_a_per_request_error(tmp_path):
    r, out = _replay(tmp_path, "tgi", f"http://127.0.0.1:{_closed_port()}")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out / "requests.csv")
    assert (df["status"] == "error").all()
    assert df["error"].str.contains("Connect").all()


def test_refused_connection_of_the_models_query_is_one_line(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    url = f"http://127.0.0.1:{_closed_port()}"
    args = ["replay", scen, "--engine", "openai", "--endpoint", url, "--no-meter"]
    assert "/models" in refused([*args, "--out", tmp_path / "m", "--quiet"], tmp_path)


@pytest.mark.parametrize(
    "url",
    [
        "localhost:8080",
        "127.0.0.1",
        "ftp://host/x",
        "http://",
        "http:///x",
        "://x",
        "http://h:notaport",
        "http://h:99999",
        "http://[::1",
        "",
    ],
)
@pytest.mark.parametrize("engine", ["tgi", "openai"])
def test_bad_endpoint_is_one_line(tmp_path, url, engine):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["replay", scen, "--engine", engine, "--endpoint", url, "--no-meter"]
    refused([*args, "--out", tmp_path / "m", "--quiet"], tmp_path)


def test_replay_out_under_a_file_is_refused_before_any_request(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    (tmp_path / "f").write_text("x")
    url = f"http://127.0.0.1:{_closed_port()}"
    args = ["replay", scen, "--engine", "tgi", "--endpoint", url, "--no-meter"]
    refused([*args, "--out", tmp_path / "f" / "sub", "--quiet"], tmp_path)
