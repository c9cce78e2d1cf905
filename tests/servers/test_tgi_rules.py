"""TGI v3 router admission rules, checked on simulated runs."""

from __future__ import annotations

import numpy as np
from conftest import run, scenario

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.servers import TgiServer
from llm_energy_sim.engine.request import OK, REJECTED_QUEUE_FULL, Request
from llm_energy_sim.servers.tgi import TgiScheduler
from llm_energy_sim.servers.tgi_limits import TgiLimits, _launcher_flop, tgi_limits


def _wl(n, arrival, prompt=(200, 3000), out=(10, 300)):
    return {
        "requests": n,
        "arrival": arrival,
        "prompt_tokens": {"kind": "uniform", "min": prompt[0], "max": prompt[1]},
        "output_tokens": {"kind": "uniform", "min": out[0], "max": out[1]},
    }


def test_kv_reservation_never_exceeds_capacity():
    cap = 12000
    res, df, _ = run(
        scenario(
            server={"kind": "tgi", "max_batch_total_tokens": cap, "max_concurrent_requests": 500},
            workload=_wl(200, {"kind": "poisson", "rate": 20}),
        )
    )
    ok = df[df.status == "ok"]
    reserve = (ok.prompt_tokens + ok.output_tokens - 1).to_numpy()
    starts, ends = ok.start_s.to_numpy(), ok.finish_s.to_numpy()
    events = sorted(
        [(s, 1, r) for s, r in zip(starts, reserve, strict=True)]
        + [(e, 0, -r) for e, r in zip(ends, reserve, strict=True)]
    )
    in_use = peak = 0
    for _, _, r in events:  # releases sort before admissions at the same instant
        in_use += r
        peak = max(peak, in_use)
    assert peak <= cap
    assert peak > 0.5 * cap  # the cache was actually the constraint


def test_fifo_admission_order():
    _, df, _ = run(
        scenario(
            server={"kind": "tgi", "max_batch_total_tokens": 8000, "max_concurrent_requests": 500},
            workload=_wl(150, {"kind": "poisson", "rate": 40}),
        )
    )
    ok = df[df.status == "ok"].sort_values("request_id")
    assert np.all(np.diff(ok.start_s.to_numpy()) >= 0)


def test_max_concurrent_requests_rejects_with_429():
    _, df, summ = run(
        scenario(
            server={"kind": "tgi", "max_concurrent_requests": 16},
            workload=_wl(50, {"kind": "burst"}),
        )
    )
    assert summ["requests"]["rejected_429"] == 50 - 16
    assert summ["requests"]["completed"] == 16
    assert df[df.status == "rejected_429"].energy_j.eq(0).all()


def test_too_long_requests_rejected_with_422():
    _, df, summ = run(
        scenario(
            server={"kind": "tgi", "max_batch_total_tokens": 1500},
            workload=_wl(40, {"kind": "fixed", "interval_ms": 500}, prompt=(200, 3000)),
        )
    )
    too_long = df.prompt_tokens + df.output_tokens > 1500
    assert (df[too_long].status == "rejected_422").all()
    assert (df[~too_long].status == "ok").all()
    assert too_long.any() and (~too_long).any()


def test_chunked_prefill_splits_long_prompts_over_steps():
    wl = {
        "requests": 1,
        "arrival": {"kind": "fixed", "interval_ms": 10},
        "prompt_tokens": {"kind": "fixed", "value": 4000},
        "output_tokens": {"kind": "fixed", "value": 2},
    }
    res_chunk, a, _ = run(
        scenario(server={"kind": "tgi", "max_batch_prefill_tokens": 1000}, workload=wl)
    )
    res_whole, b, _ = run(scenario(server={"kind": "tgi"}, workload=wl))
    # 4 prefill forwards (1000 tokens each) + the decode vs one prefill forward + the decode
    assert res_chunk.replicas[0].steps == 5
    assert res_whole.replicas[0].steps == 2
    assert a.ttft_s[0] > b.ttft_s[0]


def test_default_prefill_budget_follows_launcher_formula():
    card = load_model_card("llama-3.1-8b")
    lim = tgi_limits(card, "bfloat16", 1, 80e9, 1.0, None, None)
    assert lim.max_batch_prefill_tokens == min(
        int(900e12 / _launcher_flop(card)), lim.max_batch_prefill_tokens
    )
    assert lim.max_batch_prefill_tokens > 4096
    assert lim.kv_capacity_tokens > 100_000  # ~55 GB free for a 16 GB model at 128 KiB/token
    assert lim.max_total_tokens == min(lim.kv_capacity_tokens, card.max_position_embeddings)


# ---- max_concurrent_requests: every request in flight holds a permit ----------------------------
LIMITS = TgiLimits(
    max_batch_prefill_tokens=4096,
    kv_capacity_tokens=100_000,
    max_total_tokens=8192,
    max_input_tokens=8191,
)


def test_requests_being_prefilled_count_against_the_limit():
    """The router's semaphore is taken on arrival and held until the response ends, so two
    requests taken into a prefill forward still hold both permits of a limit of 2."""
    tgi = TgiScheduler(TgiServer(kind="tgi", max_concurrent_requests=2), LIMITS)
    a, b, c = (Request(i, 0.0, 100, 3) for i in range(3))
    assert tgi.enqueue(a, 0.0) and tgi.enqueue(b, 0.0)
    plan = tgi.plan_step(0.0)
    assert [ch.req for ch in plan.prefill] == [a, b] and plan.admitted == (a, b)
    assert not tgi.queue and not tgi.running  # neither queued nor running: being prefilled
    assert not tgi.enqueue(c, 0.01) and c.status == REJECTED_QUEUE_FULL
    tgi.commit(plan, 1, 0.02)
    run_ = tgi.plan_step(0.02)  # both decode their last 2 tokens in one closed-form run
    assert run_.decode_steps == 2 and [d.req for d in run_.decode] == [a, b]
    tgi.commit(run_, 2, 0.05)
    assert a.status == b.status == OK and tgi.in_flight == 0
    d = Request(3, 0.06, 100, 3)
    assert tgi.enqueue(d, 0.06)  # the permits came back


def test_a_full_server_answers_429_before_validating_length():
    """router/src/infer/mod.rs generate_stream: the permit first, then validation (422)."""
    tgi = TgiScheduler(TgiServer(kind="tgi", max_concurrent_requests=1), LIMITS)
    assert tgi.enqueue(Request(0, 0.0, 100, 3), 0.0)
    too_long = Request(1, 0.0, 9000, 3)
    assert not tgi.enqueue(too_long, 0.0) and too_long.status == REJECTED_QUEUE_FULL


def test_in_flight_never_exceeds_max_concurrent_requests():
    """50 req/s of 1200-token prompts overload one 8B replica: at most 128 requests are ever
    between arrival and finish (missing those in a prefill forward, it let 166 in)."""
    _, df, summ = run(scenario(workload=_wl(400, {"kind": "fixed", "interval_ms": 20})))
    ok = df[df.status == "ok"]
    events = sorted(
        [(t, 1) for t in ok.arrival_s] + [(t, -1) for t in ok.finish_s],
        key=lambda e: (e[0], e[1]),  # a finish frees its permit before an arrival at that instant
    )
    in_flight = np.cumsum([d for _, d in events])
    assert in_flight.max() == 128
    assert summ["requests"]["rejected_429"] > 0
