"""vLLM 0.11.1's scheduling rules without SimPy: the plans of servers/vllm.py, step by step
(token budget and chunked prefill, running first then FCFS, max_num_seqs, preemption of the
newest by recompute, prefix-cache hits, CUDA-graph padding) and its resolved limits."""

from __future__ import annotations

import pytest

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.servers import VllmServer
from llm_energy_sim.engine.request import OK, REJECTED_TOO_LONG, Request
from llm_energy_sim.servers.memory import GIB, kv_bytes_per_token_per_gpu, weight_bytes_per_gpu
from llm_energy_sim.servers.plan import Chunk, Decode, StepPlan
from llm_energy_sim.servers.vllm import VllmScheduler
from llm_energy_sim.servers.vllm_limits import (
    NON_TORCH_BYTES,
    VllmLimits,
    capture_sizes,
    profile_peak_bytes,
    vllm_limits,
)

H100 = ("NVIDIA H100 80GB HBM3", 80e9)


def sched(
    budget=64, seqs=4, blocks=100, sizes=(1, 2, 4, 8), max_model_len=4096, **settings
) -> VllmScheduler:
    lim = VllmLimits(
        max_num_batched_tokens=budget,
        max_num_seqs=seqs,
        max_model_len=max_model_len,
        num_gpu_blocks=blocks,
        block_size=16,
        cudagraph_capture_sizes=tuple(sizes),
        kv_cache_bytes=0.0,
    )
    return VllmScheduler(VllmServer(kind="vllm", **settings), lim)


def step(s: VllmScheduler) -> StepPlan | None:
    plan = s.plan_step(0.0)
    if plan is not None:
        s.commit(plan, plan.decode_steps or 1, 0.0)
    return plan


def drive(s: VllmScheduler, requests: list[Request]) -> list[StepPlan]:
    for r in requests:
        assert s.enqueue(r, 0.0)
    plans = []
    while (plan := step(s)) is not None:
        plans.append(plan)
    return plans


def test_prefill_chunks_are_cut_to_the_token_budget_left():
    s = sched(budget=64)
    a, b = Request(0, 0.0, 100, 3), Request(1, 0.0, 30, 2)
    plans = drive(s, [a, b])
    # step 1: a's first 64 tokens fill the budget, b waits
    assert plans[0] == StepPlan(prefill=(Chunk(a, 64, 0),), admitted=(a,))
    # step 2: a (running) first finishes its prompt, b gets the 28 tokens left
    assert plans[1] == StepPlan(prefill=(Chunk(a, 36, 64), Chunk(b, 28, 0)), admitted=(b,))
    # step 3: a decodes, b's last 2 prompt tokens; b's first token comes with it
    assert plans[2].decode == (Decode(a, 101),) and plans[2].prefill == (Chunk(b, 2, 28),)
    assert all(p.work.tokens <= 64 for p in plans)
    assert a.status == b.status == OK and (a.generated, b.generated) == (3, 2)
    assert a.computed_prompt == 100 and b.computed_prompt == 30
    assert s.pool.free_blocks == s.pool.num_blocks  # every block back (cached or not)


def test_without_chunked_prefill_a_prompt_over_the_budget_waits_and_others_pass():
    s = sched(budget=64, enable_chunked_prefill=False)
    a, b = Request(0, 0.0, 40, 20), Request(1, 0.0, 40, 2)
    plans = drive(s, [a, b])
    assert plans[0].prefill == (Chunk(a, 40, 0),)
    # b's 40 tokens exceed the 63 left after a's decode? no: 63 >= 40, so b joins at once
    assert plans[1].decode == (Decode(a, 41),) and plans[1].prefill == (Chunk(b, 40, 0),)
    s2 = sched(budget=64, enable_chunked_prefill=False)
    big, small, c = Request(0, 0.0, 60, 5), Request(1, 0.0, 10, 5), Request(2, 0.0, 62, 2)
    for r in (big, small, c):
        s2.enqueue(r, 0.0)
    # step 1: big (60); small (10 > the 4 left) and c are skipped and keep their places
    assert step(s2).prefill == (Chunk(big, 60, 0),) and list(s2.queue) == [small, c]
    # step 2: after big's decode 63 are left: small passes c, which is over what is left
    assert step(s2).prefill == (Chunk(small, 10, 0),) and list(s2.queue) == [c]


def test_running_requests_go_first_then_waiting_ones_in_arrival_order_up_to_max_num_seqs():
    s = sched(budget=512, seqs=2)
    a, b, c = (Request(i, 0.0, 20, n) for i, n in enumerate((3, 5, 2)))
    plans = drive(s, [a, b, c])
    assert plans[0].admitted == (a, b) and [x.req for x in plans[0].prefill] == [a, b]
    assert list(s.queue) == [] and c.status == OK
    # c waits for a seat: it is admitted in the step after a finishes (a's 3rd token)
    joined = next(i for i, p in enumerate(plans) if c in p.admitted)
    assert [d.req for d in plans[joined].decode] == [b]  # b, still running, came first
    assert max(len(p.requests) for p in plans) == 2


def test_a_request_short_of_blocks_preempts_the_newest_which_recomputes():
    """4 blocks of 16 tokens: a and b (30-token prompts) take 2 each; when a needs a third
    block at its 33rd token, b (the newest) is preempted: its blocks freed, back to the front
    of the queue; once a is done b recomputes its prompt and the 3 tokens it had generated."""
    s = sched(budget=64, blocks=4, enable_prefix_caching=False)
    a, b = Request(0, 0.0, 30, 30), Request(1, 0.0, 30, 10)
    plans = drive(s, [a, b])
    evicting = [p for p in plans if p.evicted]
    assert len(evicting) == 1 and evicting[0].evicted == (b,)
    assert [d.req for d in evicting[0].decode] == [a] and not evicting[0].admitted
    again = next(p for p in plans if b in p.admitted and p is not plans[0])
    assert again.prefill == (Chunk(b, 33, 0),)  # prompt + 3 generated, from scratch
    assert a.t_finish <= b.t_finish and a.status == b.status == OK
    assert (a.generated, b.generated) == (30, 10) and b.computed_prompt == 30 + 33
    assert s.preemptions == 1 and s.pool.free_blocks == 4


def test_a_preempted_request_hits_its_own_blocks_if_they_were_not_evicted():
    """With prefix caching, a preempted request's full blocks stay cached (freed, tail
    first); blocks not reused in the meantime are a hit when it is scheduled again."""
    s = sched(budget=256, blocks=9, seqs=4)
    a, b = Request(0, 0.0, 60, 60), Request(1, 0.0, 40, 40)
    plans = drive(s, [a, b])
    assert [p.evicted for p in plans if p.evicted] == [(b,)]
    # preempted at 57 tokens, b's 4 blocks went to the free queue tail last first; a (at
    # most 119 tokens, 8 blocks) took three of them, so b's block 0 is still cached
    again = next(p for p in plans if b in p.admitted and p is not plans[0])
    (chunk,) = again.prefill
    assert chunk.past == 16 and s.prefix_hit_tokens == 16
    assert b.computed_prompt == 40 + chunk.tokens and b.status == OK and b.generated == 40


def test_prefix_cache_hits_skip_compute_of_full_shared_blocks_but_never_the_last_token():
    s = sched(budget=1024, seqs=8)
    a = Request(0, 0.0, 100, 2, prefix_id=7)
    b = Request(1, 0.0, 100, 2, prefix_id=7)  # same stream: a's 6 full blocks
    c = Request(2, 0.0, 100, 2)  # unique
    d = Request(3, 0.0, 96, 2, prefix_id=9)
    e = Request(4, 0.0, 96, 2, prefix_id=9)  # 6 full blocks shared, the last token is not
    first = drive(s, [a, b, c, d, e])[0]
    assert first.prefill == (
        Chunk(a, 100, 0),
        Chunk(b, 4, 96),  # hit in the same step (blocks are hashed when scheduled)
        Chunk(c, 100, 0),
        Chunk(d, 96, 0),
        Chunk(e, 16, 80),  # at most 95 tokens may hit: 5 blocks
    )
    assert s.prefix_hit_tokens == 96 + 80 and s.prefix_queried_tokens == 100 * 3 + 96 * 2
    assert b.computed_prompt == 4 and e.computed_prompt == 16
    # the blocks of finished requests stay cached: a later request of stream 7 hits them
    f = Request(5, 0.0, 120, 2, prefix_id=7)
    plans = drive(s, [f])
    assert plans[0].prefill == (Chunk(f, 120 - 96, 96),)  # block 6 of f is new (100 < 112)


def test_prefix_caching_off_never_hits():
    s = sched(budget=1024, enable_prefix_caching=False)
    a, b = Request(0, 0.0, 100, 2, prefix_id=7), Request(1, 0.0, 100, 2, prefix_id=7)
    assert drive(s, [a, b])[0].prefill == (Chunk(a, 100, 0), Chunk(b, 100, 0))
    assert s.prefix_hit_tokens == 0


def test_cached_blocks_are_evicted_lru_when_the_pool_needs_them():
    s = sched(budget=1024, blocks=8)
    a = Request(0, 0.0, 64, 1, prefix_id=1)  # 4 blocks, cached once a finishes
    drive(s, [a])
    assert s.pool.free_blocks == 8 and s.pool.cached_blocks == 4
    b = Request(1, 0.0, 120, 1)  # 8 blocks: takes the 4 never used, then evicts a's
    drive(s, [b])
    assert s.pool.evictions == 4
    c = Request(2, 0.0, 64, 1, prefix_id=1)
    assert drive(s, [c])[0].prefill == (Chunk(c, 64, 0),)  # a's blocks are gone


def test_steps_up_to_the_largest_capture_size_are_padded_to_the_next_one():
    s = sched(budget=64, seqs=8, sizes=(1, 2, 4, 8))
    reqs = [Request(i, 0.0, 2, 6) for i in range(3)]
    plans = drive(s, reqs)
    assert plans[0].work.tokens == 6 and plans[0].graph_tokens == 8  # piecewise, padded
    decodes = [p for p in plans if p.decode and not p.prefill]
    # 3 decodes run at the graph of 4, one step at a time (a decode run is costed unpadded)
    assert decodes and all(p.graph_tokens == 4 and p.decode_steps == 0 for p in decodes)
    assert decodes[0].work.graph_tokens == 4
    s = sched(budget=64, seqs=8, sizes=(1, 2, 4, 8))
    plans = drive(s, [Request(i, 0.0, 3, 6) for i in range(4)])
    assert plans[0].work.tokens == 12 and plans[0].graph_tokens == 0  # over 8: eager
    (run,) = [p for p in plans if p.decode_steps]
    assert run.decode_steps == 5 and run.graph_tokens == 0  # 4 = a captured size: a run


def test_capture_sizes_follow_vllm_0_11_defaults():
    sizes = capture_sizes(None, 256, 8192)
    assert sizes[:5] == (1, 2, 4, 8, 16) and sizes[-1] == 512
    assert 248 in sizes and 256 in sizes and 264 not in sizes and 272 in sizes
    assert capture_sizes(None, 1024, 8192)[-1] == 512  # min(2 x seqs, 512)
    assert capture_sizes(None, 64, 8192)[-1] == 128
    assert capture_sizes(None, 256, 100) == (1, 2, 4, *range(8, 97, 8))  # <= the budget
    assert capture_sizes([8, 4, 4, 9000], 256, 8192) == (4, 8)
    lim = vllm_limits(
        load_model_card("llama-3.1-8b"), "bfloat16", 1, *H100, VllmServer(kind="vllm")
    )
    assert [lim.graph_tokens(n) for n in (1, 3, 9, 250, 257, 512, 513)] == [
        1,
        4,
        16,
        256,
        272,
        512,
        0,
    ]


def test_limits_resolve_vllm_serve_defaults_and_the_kv_blocks_from_memory():
    card = load_model_card("llama-3.1-8b")
    lim = vllm_limits(card, "bfloat16", 1, *H100, VllmServer(kind="vllm"))
    assert (lim.max_num_batched_tokens, lim.max_num_seqs) == (8192, 1024)
    assert lim.max_model_len == card.max_position_embeddings and lim.block_size == 16
    free = (
        80e9 * 0.9
        - weight_bytes_per_gpu(card, "bfloat16", 1)
        - profile_peak_bytes(card, "bfloat16", 1, 8192, 1024)
        - NON_TORCH_BYTES
    )
    per_block = 16 * kv_bytes_per_token_per_gpu(card, "bfloat16", 1)
    assert lim.num_gpu_blocks == int(free // per_block) - 1  # the null block
    a100 = vllm_limits(card, "bfloat16", 1, "NVIDIA A100-SXM4-80GB", 80e9, VllmServer(kind="vllm"))
    assert (a100.max_num_batched_tokens, a100.max_num_seqs) == (2048, 256)
    small = vllm_limits(card, "bfloat16", 1, "NVIDIA L40S", 48e9, VllmServer(kind="vllm"))
    assert (small.max_num_batched_tokens, small.max_num_seqs) == (2048, 256)
    s = VllmServer(kind="vllm", enable_chunked_prefill=False, max_model_len=16384)
    assert vllm_limits(card, "bfloat16", 1, *H100, s).max_num_batched_tokens == 16384
    s = VllmServer(kind="vllm", num_gpu_blocks_override=500)
    assert vllm_limits(card, "bfloat16", 1, *H100, s).num_gpu_blocks == 499


@pytest.mark.parametrize("tp", [2, 4])
def test_tensor_parallel_shards_the_weights_and_the_kv_heads_of_each_gpu(tp):
    card = load_model_card("llama-3.1-8b")
    one = vllm_limits(card, "bfloat16", 1, *H100, VllmServer(kind="vllm"))
    lim = vllm_limits(card, "bfloat16", tp, *H100, VllmServer(kind="vllm"))
    # each GPU holds 1/tp of the KV heads, so a block costs 1/tp of the bytes, and the
    # weights leave more room: more than tp times the blocks of one GPU
    assert lim.num_gpu_blocks > tp * one.num_gpu_blocks
    kv = kv_bytes_per_token_per_gpu(card, "bfloat16", tp)
    assert kv * tp == kv_bytes_per_token_per_gpu(card, "bfloat16", 1)
    assert lim.num_gpu_blocks == int(lim.kv_cache_bytes // (16 * kv)) - 1


def test_a_model_that_leaves_no_kv_memory_or_no_room_for_max_model_len_is_refused():
    from llm_energy_sim.config.errors import UserError

    card = load_model_card("llama-3.1-70b")
    with pytest.raises(UserError, match="leaves no memory for a KV cache"):
        vllm_limits(card, "bfloat16", 1, *H100, VllmServer(kind="vllm"))
    small = load_model_card("llama-3.1-8b")
    s = VllmServer(kind="vllm", gpu_memory_utilization=0.25)
    with pytest.raises(UserError, match="max_model_len 131072 tokens needs 8192 KV blocks"):
        vllm_limits(small, "bfloat16", 1, *H100, s)
    s = VllmServer(kind="vllm", gpu_memory_utilization=0.25, max_model_len=8192)
    assert vllm_limits(small, "bfloat16", 1, *H100, s).num_gpu_blocks > 512
    assert 80e9 * 0.25 / GIB < 19  # (the 8B's 15 GiB of weights leave a few GiB)


def test_requests_over_max_model_len_are_refused():
    s = sched(max_model_len=1000)
    ok, long_prompt, long_total = (
        Request(0, 0.0, 999, 1),
        Request(1, 0.0, 1000, 1),
        Request(2, 0.0, 900, 101),
    )
    assert s.enqueue(ok, 0.0)
    for r in (long_prompt, long_total):
        assert not s.enqueue(r, 0.0) and r.status == REJECTED_TOO_LONG
    assert s.in_flight == 1
