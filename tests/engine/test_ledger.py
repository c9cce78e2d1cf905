"""The ledger keeps a start and a power only after an idle gap: what it rebuilds is exact."""

from __future__ import annotations

import numpy as np
import pytest

from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.idle import gap_energy_per_gpu
from llm_energy_sim.engine.ledger import Ledger
from llm_energy_sim.engine.request import OK, Request
from llm_energy_sim.engine.requestlog import RequestLog


def _intervals(rng: np.random.Generator, n: int) -> list[tuple[float, float, float, int, float]]:
    """n busy intervals in time order, most back to back, some after a gap (the first at 0)."""
    out, t = [], 0.0
    for i in range(n):
        if i and rng.random() < 0.3:
            t += float(rng.exponential(0.5))
        end = t + float(rng.uniform(0.001, 0.05))
        out.append(
            (t, end, float(rng.uniform(10, 500)), int(rng.integers(1, 9)), 300 + 400 * rng.random())
        )
        t = end
    return out


@pytest.fixture(scope="module")
def idle():
    return load_profile("h100-sxm")[0].idle


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_starts_and_gaps_are_the_dense_ones(idle, seed):
    rows = _intervals(np.random.default_rng(seed), 500)
    led = Ledger(n_gpus=2, idle=idle)
    for r in rows:
        led.add_busy(*r)
    s, e, en, b = led.arrays()
    dense = np.array(rows)
    assert len(led) == len(rows) == len(led.starts)
    assert (s == dense[:, 0]).all() and (e == dense[:, 1]).all()
    assert (en == dense[:, 2]).all() and (b == dense[:, 3]).all()
    # the dense form: gap j after interval j-1 (active idle before the first), to t_end
    t_end = float(dense[-1, 1]) + 3.0
    g_start = np.r_[0.0, dense[:, 1]]
    g_len = np.maximum(np.r_[dense[:, 0], t_end] - g_start, 0.0)
    p_before = np.r_[idle.active_idle_w, dense[:, 4]]
    start, length, p = led.gaps(t_end)
    assert (start == g_start).all() and (length == g_len).all()
    has_length = g_len > 0
    assert has_length.sum() > 100  # the case is exercised
    assert (p[has_length] == p_before[has_length]).all()
    dense_gap_e = gap_energy_per_gpu(idle, p_before, g_len)
    assert (gap_energy_per_gpu(idle, p, length) == dense_gap_e).all()  # 0 where no length
    assert led.idle_energy(t_end) == pytest.approx(2 * dense_gap_e.sum(), rel=1e-12)
    # cumulative energy at every interval's end: the gaps and intervals up to it
    cum = led.cumulative_energy(dense[:, 1], t_end)
    expect = np.cumsum(2 * dense_gap_e[:-1] + dense[:, 2])
    np.testing.assert_allclose(cum, expect, rtol=1e-12)
    total = led.cumulative_energy(np.array([t_end]), t_end)[0]
    assert total == pytest.approx(led.busy_energy() + led.idle_energy(t_end), rel=1e-12)


def test_release_forgets_everything(idle):
    led = Ledger(n_gpus=1, idle=idle)
    for r in _intervals(np.random.default_rng(3), 20):
        led.add_busy(*r)
    led.note_queue(0.5, 3)
    led.arrays()
    led.release()
    assert len(led) == 0 and len(led.queue_t) == 0 and len(led.gap_at) == 0
    led.add_busy(1.0, 2.0, 5.0, 1, 400.0)  # usable again, as a fresh ledger
    _, length, p = led.gaps(3.0)
    assert length.tolist() == [1.0, 1.0] and p.tolist() == [idle.active_idle_w, 400.0]


def test_request_log_buffered_closes_land_in_their_rows(monkeypatch):
    monkeypatch.setattr("llm_energy_sim.engine.requestlog.BUFFER", 3)
    log = RequestLog(8)
    reqs = [Request(i, float(i), 100 + i, 10, replica=i % 2) for i in range(8)]
    for i in (5, 0, 7, 2, 1):  # out of order, more than one buffer's worth
        r = reqs[i]
        r.status, r.t_start, r.t_first, r.t_finish = OK, i + 0.1, i + 0.2, i + 0.3
        r.generated, r.computed_prompt, r.e_prefill, r.e_decode = 10, r.prompt, 1.5 * i, 2.5 * i
        log.close(r)
    closed = [0, 1, 2, 5, 7]
    assert log.t_finish[closed].tolist() == [i + 0.3 for i in closed]
    assert log.e_decode[closed].tolist() == [2.5 * i for i in closed]
    assert log.replica[closed].tolist() == [i % 2 for i in closed]
    assert np.isnan(log.t_finish[[3, 4, 6]]).all() and (log.replica[[3, 4, 6]] == -1).all()
