"""The TGI client against a small local server that follows TGI's documented stream schema.

Limitation: this server is ours (TGI needs Docker or a Rust build and a GPU); it speaks the
`/generate_stream` SSE format of TGI's OpenAPI (StreamResponse events, an error event, 429 when
its queue is full), so it checks the client's parsing and bookkeeping, not TGI itself.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.cli.main import main
from llm_energy_sim.live.base import RequestRecord
from llm_energy_sim.live.driver import replay
from llm_energy_sim.live.tgi_client import TgiClient

MAX_CONCURRENT = 3


class _TgiLike(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    in_flight = 0
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        params = body["parameters"]
        with self.lock:
            busy = type(self).in_flight >= MAX_CONCURRENT
            if not busy:
                type(self).in_flight += 1
        if busy:
            msg = json.dumps({"error": "Model is overloaded", "error_type": "overloaded"}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            n = params["max_new_tokens"]
            n_input = len(body["inputs"].split())
            for i in range(n):
                time.sleep(0.005)
                if n_input == 13 and i == 2:  # a request that fails mid-stream
                    ev = {
                        "error": "Request failed during generation: boom",
                        "error_type": "generation",
                    }
                    self.wfile.write(f"data:{json.dumps(ev)}\n\n".encode())
                    break
                last = i == n - 1
                ev = {
                    "index": i + 1,
                    "token": {"id": 100 + i, "text": " x", "logprob": -0.1, "special": False},
                    "top_tokens": None,
                    "generated_text": " x" * n if last else None,
                    "details": {
                        "finish_reason": "length",
                        "generated_tokens": n,
                        "seed": None,
                        "input_length": n_input,
                    }
                    if last
                    else None,
                }
                self.wfile.write(f"data:{json.dumps(ev)}\n\n".encode())
                self.wfile.flush()
        finally:
            with self.lock:
                type(self).in_flight -= 1
            self.close_connection = True


@pytest.fixture
def tgi_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _TgiLike)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_stream_429_and_error_event_are_recorded(tgi_url):
    recs = [RequestRecord(i, 0.0 if i < 5 else 0.3, 13 if i == 6 else 20, 8) for i in range(7)]
    client = TgiClient(tgi_url)
    client.start()
    client.t0 = time.perf_counter()
    assert replay(client, recs, lambda r: [], client.t0, timeout_s=10)
    client.stop()
    status = [r.status for r in recs]
    assert status[:5].count("rejected_429") == 2 and status[:5].count("ok") == 3
    assert status[5] == "ok" and status[6] == "error" and "boom" in recs[6].error
    for r in recs:
        if r.status == "ok":
            assert r.generated_tokens == 8 and r.extra["finish_reason"] == "length"
            assert r.extra["server_prompt_tokens"] == 20
            assert r.send_s <= r.first_token_s <= r.finish_s
            assert len(r.extra["token_times"]) == 8


def test_sim_replay_tgi_writes_results(tgi_url, tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(
        main,
        [
            "replay",
            "scenarios/validation/fixed50ms.yaml",
            "--engine",
            "tgi",
            "--endpoint",
            tgi_url,
            "--no-meter",
            "--requests",
            "6",
            "--set",
            "workload.prompt_tokens.max=300",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "requests.csv")
    assert len(df) == 6 and (df["status"] == "ok").all()
    assert (df["generated_tokens"] == df["output_tokens"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] == 6 and summary["energy"]["total_j"] is None
