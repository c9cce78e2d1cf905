"""Schedulers without SimPy: each step is a StepPlan, and a burst's plans are the simulated
step log, step by step (what `sim steps --predicted` sets beside a live engine's)."""

from __future__ import annotations

import pytest
from conftest import scenario

from llm_energy_sim.config.scenario import scenario_card
from llm_energy_sim.config.servers import SequentialServer, StaticServer, TransformersCbServer
from llm_energy_sim.engine.request import OK, Request
from llm_energy_sim.engine.workload import generate_trace
from llm_energy_sim.servers.plan import Chunk, Decode, StepPlan
from llm_energy_sim.servers.registry import scheduler_class
from llm_energy_sim.servers.sequential import SequentialScheduler
from llm_energy_sim.servers.static import StaticScheduler
from llm_energy_sim.servers.transformers_cb import TransformersCbScheduler
from llm_energy_sim.servers.transformers_cb_limits import CbLimits
from llm_energy_sim.simulation import profile_for, simulate


def drive(sched, requests: list[Request]) -> list[StepPlan]:
    """Queue every request at t=0, then take the scheduler's plans until it has none and
    commit each in full: the schedule of a burst, where time does not change a decision."""
    for r in requests:
        assert sched.enqueue(r, 0.0)
    sched.closed = True
    plans = []
    while (plan := sched.plan_step(0.0)) is not None:
        plans.append(plan)
        sched.commit(plan, plan.decode_steps or 1, 0.0)
    return plans


def per_step(plans: list[StepPlan]) -> list[tuple]:
    """(prefill, n_decode, decode_ctx_sum) of every step; a decode run's KV grows by n a step."""
    rows = []
    for p in plans:
        w = p.work
        rows += [
            (w.prefill, w.n_decode, w.decode_ctx_sum + w.n_decode * j)
            for j in range(max(p.decode_steps, 1))
        ]
    return rows


def test_sequential_prefills_then_decodes_each_request_in_turn():
    seq = SequentialScheduler(SequentialServer(kind="sequential"))
    a, b = Request(0, 0.0, 100, 5), Request(1, 0.0, 50, 1)
    plans = drive(seq, [a, b])
    assert plans == [
        StepPlan(prefill=(Chunk(a, 100, 0),), admitted=(a,)),
        StepPlan(decode=(Decode(a, 101),), decode_steps=4),
        StepPlan(prefill=(Chunk(b, 50, 0),), admitted=(b,)),  # its one token came with it
    ]
    assert a.status == b.status == OK and a.generated == 5 and seq.idle()


def test_static_default_is_hf_generate_every_row_to_the_batch_longest():
    """finished: stay (HF generate()): a's row keeps decoding, padded, until b's 6 tokens are
    done; a keeps its own 3 tokens and both complete when the batch ends."""
    static = StaticScheduler(StaticServer(kind="static", batch_size=2))
    assert static.settings.finished == "stay"
    a, b, c = Request(0, 0.0, 100, 3), Request(1, 0.0, 40, 6), Request(2, 0.0, 10, 2)
    for r in (a, b, c):
        assert static.enqueue(r, 0.0)
    static.closed = True
    plans, t = [], 0.0
    while (plan := static.plan_step(t)) is not None:
        plans.append(plan)
        steps = plan.decode_steps or 1
        t += steps  # one second a step: completion times count the steps before them
        static.commit(plan, steps, t)
    assert plans[0] == StepPlan(prefill=(Chunk(a, 100, 0), Chunk(b, 100, 0)), admitted=(a, b))
    assert plans[1] == StepPlan(decode=(Decode(a, 101), Decode(b, 101)), decode_steps=5)
    assert plans[2].admitted == (c,)  # the next batch: what is left, once closed
    assert plans[3] == StepPlan(decode=(Decode(c, 11),), decode_steps=1)
    assert len(plans) == 4
    assert [r.generated for r in (a, b, c)] == [3, 6, 2]  # a's extra rows are cut
    assert a.t_first == b.t_first == 1.0 and a.t_finish == b.t_finish == 6.0  # batch end
    assert c.t_first == 7.0 and c.t_finish == 8.0
    assert a.status == b.status == c.status == OK and static.idle()


def test_static_finished_leave_drops_finished_sequences():
    static = StaticScheduler(StaticServer(kind="static", batch_size=2, finished="leave"))
    a, b, c = Request(0, 0.0, 100, 3), Request(1, 0.0, 40, 6), Request(2, 0.0, 10, 2)
    plans = drive(static, [a, b, c])
    assert plans[0] == StepPlan(prefill=(Chunk(a, 100, 0), Chunk(b, 100, 0)), admitted=(a, b))
    assert plans[1] == StepPlan(decode=(Decode(a, 101), Decode(b, 101)), decode_steps=2)
    assert plans[2] == StepPlan(decode=(Decode(b, 103),), decode_steps=3)  # a left the batch
    assert plans[3].admitted == (c,)  # the next batch: what is left, once closed
    assert b.computed_prompt == 100 and [r.generated for r in (a, b, c)] == [3, 6, 2]


def test_static_stay_a_one_token_batch_completes_at_its_prefill():
    static = StaticScheduler(StaticServer(kind="static", batch_size=2))
    a, b = Request(0, 0.0, 30, 1), Request(1, 0.0, 20, 1)
    plans = drive(static, [a, b])
    assert len(plans) == 1 and a.status == b.status == OK and static.idle()


def test_a_full_cache_soft_resets_the_newest_and_re_prefills_it_later():
    """transformers CB with 6 blocks of 16 tokens: two 40-token prompts fill it as they
    decode; the newer one is evicted, queued again, and later prefilled from scratch with
    its generated tokens as part of its prompt."""
    lim = CbLimits(
        max_batch_tokens=512,
        num_blocks=6,
        block_size=16,
        max_requests_per_batch=512,
        safety_margin=0.0,
    )
    cb = TransformersCbScheduler(TransformersCbServer(kind="transformers-cb"), lim)
    a, b = Request(0, 0.0, 40, 30), Request(1, 0.0, 40, 30)
    plans = drive(cb, [a, b])
    evicting = [p for p in plans if p.evicted]
    assert evicting and evicting[0].evicted == (b,)
    again = next(p for p in plans if p.admitted == (b,) and p is not plans[0])
    (chunk,) = again.prefill
    assert chunk.past == 0 and chunk.tokens > b.prompt  # prompt + the tokens it had generated
    assert a.status == b.status == OK and a.generated == b.generated == 30
    assert cb.pool.free_blocks == lim.num_blocks and cb.evictions == 1
    assert b.computed_prompt == 40 + chunk.tokens


BURSTS = [
    ({"kind": "tgi"}, {}),
    ({"kind": "tgi", "chunked_prefill": False}, {}),
    ({"kind": "transformers-cb"}, {}),
    ({"kind": "transformers-cb", "num_blocks": 12}, {}),  # soft resets
    ({"kind": "transformers-cb", "scheduler": "prefill_first", "max_batch_tokens": 700}, {}),
    ({"kind": "static", "batch_size": 8}, {}),
    ({"kind": "sequential"}, {"gpus_per_replica": 2}),
    ({"kind": "vllm", "max_num_seqs": 16}, {}),
    ({"kind": "vllm", "num_gpu_blocks_override": 120, "max_num_batched_tokens": 1024}, {}),
]


@pytest.mark.parametrize(
    "server,hw",
    BURSTS,
    ids=["tgi", "tgi-nochunk", "cb", "cb-tiny", "cb-pf", "static", "seq", "vllm", "vllm-preempt"],
)
def test_a_bursts_plans_are_its_simulated_step_log(server, hw):
    wl = {
        "requests": 40,
        "arrival": {"kind": "burst"},
        "prompt_tokens": {"kind": "uniform", "min": 200, "max": 1000},
        "output_tokens": {"kind": "uniform", "min": 10, "max": 100},
    }
    scen = scenario(server=server, hardware=hw, workload=wl)
    res = simulate(scen, step_log=True)
    logged = [(pf, n, ctx) for _s, _e, pf, n, ctx, _r in res.replicas[0].step_log]

    profile, _ = profile_for(scen)
    sched, _info = scheduler_class(scen.server.kind).build(scen, scenario_card(scen), profile)
    trace = generate_trace(scen.workload, scen.seed)
    requests = [
        Request(i, float(a), int(p), int(o))
        for i, (a, p, o) in enumerate(
            zip(trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True)
        )
    ]
    assert per_step(drive(sched, requests)) == logged
