"""The compiled TGI loop (fastcore) gives the SimPy path's results: every request's outcome,
every ledger interval, gap and queue note, the step counts and the end of the run, within
1e-9 (they are equal bit for bit), on every shipped TGI scenario and on TGI settings the
shipped ones do not use (no chunking, a KV-bound pool, round robin, a batch cap, no fast
forward, requests refused)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, scenario

from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.engine.ledger import array_view
from llm_energy_sim.fastcore import runner
from llm_energy_sim.fastcore.build import library
from llm_energy_sim.simulation import simulate

pytestmark = pytest.mark.skipif(
    library() is None, reason="no C compiler: the compiled loop cannot be built here"
)

LEDGER = ("ends", "energy", "batch", "gap_at", "gap_start", "gap_p", "queue_t", "queue_len")
#: the shipped scenarios' requests are capped here (poisson_1m has 10^6; the rest run whole)
CAP = 20_000


def _run(scen, core: str, monkeypatch):
    """simulate() on SimPy ("simpy") or on the compiled loop ("compiled", which must not fall
    back to SimPy)."""
    monkeypatch.setenv(runner.CORE_ENV, core)
    ran = []
    real = runner.run_compiled
    monkeypatch.setattr(runner, "run_compiled", lambda *a: ran.append(real(*a)) or ran[-1])
    res = simulate(scen)
    monkeypatch.setattr(runner, "run_compiled", real)
    if core == "compiled":
        assert len(ran) == 1 and ran[0] is not None, "the compiled loop fell back to SimPy"
    else:
        assert not ran
    return res


def assert_same(a, b) -> None:
    """Two results of one scenario agree within 1e-9 (NaN equal to NaN)."""
    for name in a.log.rows.dtype.names:
        np.testing.assert_allclose(
            b.log.rows[name].astype(float), a.log.rows[name].astype(float), rtol=1e-9,
            atol=0, equal_nan=True, err_msg=name,
        )  # fmt: skip
    assert b.t_end == pytest.approx(a.t_end, rel=1e-9)
    assert b.server_info == a.server_info
    for ra, rb in zip(a.replicas, b.replicas, strict=True):
        assert rb.steps == ra.steps
        for name in LEDGER:
            x, y = array_view(getattr(ra.ledger, name)), array_view(getattr(rb.ledger, name))
            np.testing.assert_allclose(y, x, rtol=1e-9, atol=0, err_msg=name)
        assert rb.ledger._p_prev == pytest.approx(ra.ledger._p_prev, rel=1e-9)


def _tgi_scenarios():
    out = []
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        scen = load_scenario(path)
        if scen.server.kind == "tgi":
            out.append(pytest.param(path, id=path.stem))
    return out


@pytest.mark.parametrize("path", _tgi_scenarios())
def test_shipped_tgi_scenarios(path, monkeypatch):
    scen = load_scenario(path)
    if scen.workload.requests > CAP:
        wl = scen.workload.model_copy(update={"requests": CAP})
        scen = scen.model_copy(update={"workload": wl})
    ref = _run(scen, "simpy", monkeypatch)
    got = _run(scen, "compiled", monkeypatch)
    assert_same(ref, got)
    assert len(got.replicas[0].ledger) > 0


CASES = {
    "nochunk": ({"kind": "tgi", "chunked_prefill": False}, {}, {"kind": "poisson", "rate": 25}),
    "kvbound-dp2": (
        {"kind": "tgi", "max_batch_total_tokens": 9000},
        {"replicas": 2, "balancer": "least_loaded"},
        {"kind": "uniform", "low_ms": 5, "high_ms": 80},
    ),
    "round-robin-dp3": ({"kind": "tgi"}, {"replicas": 3}, {"kind": "poisson", "rate": 30}),
    "batch-cap-nochunk": (
        {"kind": "tgi", "chunked_prefill": False, "max_batch_size": 4, "block_size": 16},
        {},
        {"kind": "poisson", "rate": 20},
    ),
    "small-budget-blocks": (
        {"kind": "tgi", "max_batch_prefill_tokens": 1500, "block_size": 16},
        {},
        {"kind": "fixed", "interval_ms": 40},
    ),
    "refusals": (
        {"kind": "tgi", "max_concurrent_requests": 8, "max_batch_total_tokens": 3000},
        {"gpus_per_replica": 2},
        {"kind": "burst", "size": 40, "gap_ms": 2000},
    ),
}


@pytest.mark.parametrize("spare", [runner.QUEUE_SPARE, 0], ids=["queue", "tight-queue"])
@pytest.mark.parametrize("fast_forward", [True, False], ids=["ff", "stepwise"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_tgi_settings(case, fast_forward, spare, monkeypatch):
    """(tight-queue: the event queue starts as small as it may and grows during the run)"""
    monkeypatch.setattr(runner, "QUEUE_SPARE", spare)
    server, hw, arrival = CASES[case]
    wl = {
        "requests": 400,
        "arrival": arrival,
        "prompt_tokens": {"kind": "lognormal", "mean": 1200, "min": 200, "max": 4000},
        "output_tokens": {"kind": "uniform", "min": 1, "max": 300},
    }
    scen = scenario(server=server, hardware=hw, workload=wl, fast_forward=fast_forward)
    assert_same(_run(scen, "simpy", monkeypatch), _run(scen, "compiled", monkeypatch))


def test_auto_uses_compiled_loop_for_tgi_only(monkeypatch):
    monkeypatch.delenv(runner.CORE_ENV, raising=False)
    tgi = simulate(scenario()).servers
    static = simulate(scenario(server={"kind": "static", "batch_size": 4})).servers
    assert runner.use_compiled(tgi, runner.MIN_REQUESTS)
    assert not runner.use_compiled(tgi, runner.MIN_REQUESTS - 1)
    assert not runner.use_compiled(static, 10**6)
    monkeypatch.setenv(runner.CORE_ENV, "simpy")
    assert not runner.use_compiled(tgi, 10**6)


def test_a_pricer_the_loop_does_not_repeat_runs_on_simpy(monkeypatch):
    """A cost model changed without tgicore.c (here: every forward 1% longer) fails the probe
    before the run: the run falls back to SimPy and gets the changed model's results."""
    from llm_energy_sim.cost.stepprice import StepPricer

    price = StepPricer.price

    def slower(self, *args, **kwargs):
        wall, energy = price(self, *args, **kwargs)
        return wall * 1.01, energy

    monkeypatch.setattr(StepPricer, "price", slower)
    wl = {"requests": 300, "arrival": {"kind": "poisson", "rate": 20}}
    scen = scenario(workload={**scenario().workload.model_dump(), **wl})
    probed = []
    real_probe = runner._probe
    monkeypatch.setattr(runner, "_probe", lambda *a: probed.append(real_probe(*a)) or probed[-1])
    ref = _run(scen, "simpy", monkeypatch)
    monkeypatch.setenv(runner.CORE_ENV, "compiled")
    got = simulate(scen)
    assert probed == [False]
    assert_same(ref, got)


def test_a_compiler_that_fails_builds_nothing(tmp_path, monkeypatch):
    """build() answers None for a compiler that fails (the run then takes the SimPy path),
    and a library's name follows its source, so an edit is never served a stale build."""
    from llm_energy_sim.fastcore import build

    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path))
    assert build.build(["false"]) is None
    assert not list(tmp_path.glob("*.so"))
    before = build.library_path(["cc"])
    monkeypatch.setattr(build, "source_text", lambda: "int x;\n")
    assert build.library_path(["cc"]) != before
