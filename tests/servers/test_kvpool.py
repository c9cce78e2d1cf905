"""The KV block pool every scheduler allocates from (servers/kvpool.py)."""

from __future__ import annotations

import pytest

from llm_energy_sim.servers.kvpool import BlockPool, LazyBlockPool


def test_blocks_round_tokens_up():
    pool = BlockPool(10, 16)
    assert [pool.blocks_for(t) for t in (0, 1, 16, 17, 32)] == [0, 1, 1, 2, 2]
    assert pool.round_up(17) == 32 and pool.round_up(32) == 32
    assert pool.capacity_tokens == 160
    assert BlockPool.of_tokens(100, 16).num_blocks == 6  # whole blocks only
    assert BlockPool.of_tokens(100, 1).capacity_tokens == 100  # TGI's one-token blocks


def test_allocate_and_free_per_owner():
    pool = BlockPool(10, 16)
    pool.allocate("a", 3)
    pool.allocate("b", 4)
    pool.allocate("a", 2)
    assert (pool.held("a"), pool.held("b"), pool.free_blocks) == (5, 4, 1)
    assert pool.can_allocate(1) and not pool.can_allocate(2)
    with pytest.raises(RuntimeError, match="2 blocks asked, 1 free"):
        pool.allocate("c", 2)
    assert pool.free("a") == 5 and pool.held("a") == 0
    assert pool.free("a") == 0  # freeing twice frees nothing
    assert pool.free_blocks == 6 and pool.min_free_blocks == 1
    assert pool.slots_left("b", 50) == 4 * 16 - 50


def test_free_fraction():
    pool = BlockPool(20, 256)
    pool.allocate("a", 17)  # 3 of 20 free: exactly 15%, not below
    assert not pool.below_free_fraction(0.15)
    pool.allocate("a", 1)
    assert pool.below_free_fraction(0.15) and not pool.below_free_fraction(0.0)


def test_lazy_growth_asks_only_when_the_next_tokens_do_not_fit():
    """transformers' rule, asked before each step: a prompt of 600 takes 3 blocks of 256, its
    decodes fit the 168 empty slots, the 169th asks for 1 more (2 // 256 + 1)."""
    pool = LazyBlockPool(10, 256)
    assert pool.to_allocate("r", 0, 600) == 3
    pool.allocate("r", 3)
    assert pool.to_allocate("r", 600, 168) == 0
    assert pool.to_allocate("r", 600, 169) == (169 - 168 + 1) // 256 + 1 == 1
    # the closed form over k decode steps equals asking step by step
    held, tokens, total = 3, 600, 0
    step = LazyBlockPool(100, 256)
    step.allocate("s", held)
    for k in range(1, 700):
        total += (got := step.to_allocate("s", tokens, 1))
        step.allocate("s", got)
        tokens += 1
        assert pool.decode_allocations("r", 600, k) == total, k
