"""Wire a scenario into a SimPy run: trace -> balancer -> replicas' servers -> results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.config.profile import Profile, default_profile_name, load_profile
from llm_energy_sim.config.scenario import Scenario, scenario_card
from llm_energy_sim.config.servers import server_kind
from llm_energy_sim.cost.costmodel import CostModel
from llm_energy_sim.engine.heap import trim
from llm_energy_sim.engine.replica import Replica
from llm_energy_sim.engine.request import UNFINISHED, Request
from llm_energy_sim.engine.requestlog import RequestLog
from llm_energy_sim.engine.workload import Trace, generate_trace
from llm_energy_sim.fastcore import runner
from llm_energy_sim.servers.balancer import Balancer
from llm_energy_sim.servers.base import Server, merged_run_stats
from llm_energy_sim.servers.registry import build_server


@dataclass
class SimResult:
    """A finished run. `log` holds every request's outcome in columns (request id order);
    `requests` rebuilds them as Request objects (built on first use: for small runs)."""

    scenario: Scenario
    card: ModelCard
    profile: Profile
    profile_path: Path
    trace: Trace
    log: RequestLog
    replicas: list[Replica]
    servers: list[Server]
    t_end: float
    server_info: dict
    #: where scenario.hardware.host_time_factor came from (resolve_host_factor)
    host_time_factor_source: str = "scenario"
    _requests: list[Request] | None = field(default=None, repr=False)
    #: what the accounting takes from the ledgers, once (results.accounting.ledger_figures)
    ledger_figures: Any = field(default=None, repr=False)

    @property
    def requests(self) -> list[Request]:
        if self._requests is None:
            t = self.trace
            self._requests = self.log.requests(
                t.arrival_s, t.prompt_tokens, t.output_tokens, t.prefix_ids()
            )
        return self._requests


def profile_for(scen: Scenario, override: str | None = None) -> tuple[Profile, Path]:
    name = override or scen.profile or default_profile_name(scen.hardware.gpu)
    return load_profile(name)


def resolve_host_factor(scen: Scenario, profile: Profile) -> tuple[Scenario, str]:
    """The scenario with hardware.host_time_factor set, and where the factor came from: the
    scenario's own (its file, --set, --host-speed) when it gives one, else the profile's
    default, the median of its serving-host samples (1.0 for a profile without any)."""
    if scen.hardware.host_time_factor is not None:
        return scen, "scenario"
    factor = profile.default_host_time_factor()
    hw = scen.hardware.model_copy(update={"host_time_factor": factor})
    hs = profile.host_speed
    source = (
        f"median of the {len(hs.samples)} serving-host samples of profile '{profile.name}' "
        "(host_speed)"
        if hs is not None
        else f"1.0: profile '{profile.name}' has no serving-host samples (host_speed)"
    )
    return scen.model_copy(update={"hardware": hw}), source


def scenario_cost_model(scen, profile, card=None) -> CostModel:
    """The cost model of one replica of `scen` (its host factor already resolved) under
    `profile`: the server kind's cost engine, TP degree, host factor, padding mask and kernel
    cache and sampling as the scenario sets them."""
    kind = server_kind(scen.server.kind)
    hw = scen.hardware
    return CostModel(
        card if card is not None else scenario_card(scen),
        scen.dtype,
        profile,
        kind.cost_engine_of(scen.server),
        hw.gpus_per_replica,
        hw.host_time_factor,
        kind.masked_attention_of(scen),
        hw.kernel_cache == "cold",
        scen.workload.sampling,
    )


def simulate(
    scen: Scenario,
    profile_override: str | None = None,
    progress: bool = False,
    step_log: bool = False,
    trace: Trace | None = None,
) -> SimResult:
    """Run the scenario to completion (every request finished or rejected). step_log: keep
    every step's composition and times on each replica (Replica.step_log). trace: serve these
    requests instead of the ones the scenario's workload draws (a trace built in Python, e.g.
    analysis/mlenergy.py's measured workload). A scenario without hardware.host_time_factor
    runs at the profile's default (resolve_host_factor); the result's scenario has it set.
    TGI runs go through the compiled loop where it applies (fastcore.runner.use_compiled:
    the same events and floats as SimPy, which stays the reference), else through SimPy."""
    profile, ppath = profile_for(scen, profile_override)
    scen, factor_source = resolve_host_factor(scen, profile)
    card = scenario_card(scen)
    if trace is None:
        trace = generate_trace(scen.workload, scen.seed)
    env = simpy.Environment()
    replicas, servers = [], []
    info: dict = {}
    for i in range(scen.hardware.replicas):
        cost = scenario_cost_model(scen, profile, card)
        rep = Replica(i, cost, scen.fast_forward, getattr(scen.server, "cold_start", False))
        if step_log:
            rep.step_log = []
        srv, info = build_server(env, rep, scen, card, profile)
        replicas.append(rep)
        servers.append(srv)
    n = len(trace)
    log = RequestLog(n)
    now = None
    if runner.use_compiled(servers, n):  # TGI: the compiled loop, the same events
        now = runner.run_compiled(servers, scen.hardware.balancer, trace, log, progress)
        if now is None:  # a case it does not cover came up: start again on SimPy
            log = RequestLog(n)
    if now is None:
        for srv in servers:
            srv.scheduler.on_close = log.close
        now = _run_simpy(
            env, servers, Balancer(servers, scen.hardware.balancer), trace, log, progress
        )
    log.close_all()  # the requests still in the system: unfinished
    trim()  # the run's temporaries (Request objects, the loop's buffers), back to the system
    info = {**info, **merged_run_stats(s.scheduler for s in servers)}
    t_end = max([now] + [float(trace.arrival_s[-1]) if len(trace) else 0.0])
    return SimResult(
        scen, card, profile, ppath, trace, log, replicas, servers, t_end, info, factor_source
    )


def _run_simpy(
    env: simpy.Environment,
    servers: list[Server],
    balancer: Balancer,
    trace: Trace,
    log: RequestLog,
    progress: bool,
) -> float:
    """The run on SimPy (the reference path): requests made as they arrive and handed to
    the balancer's server; the clock at the end."""
    n = len(trace)

    def arrivals():
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, unit="req", desc="simulating", leave=False, disable=None)
        cols = (trace.arrival_s, trace.prompt_tokens, trace.output_tokens, trace.prefix_ids())
        live = log.live
        one = servers[0] if len(servers) == 1 else None
        timeout = env.timeout
        chunk = 1 << 14  # requests are made as they arrive, a chunk of the trace at a time
        for lo in range(0, n, chunk):
            part = [
                np.asarray(c[lo : lo + chunk], t).tolist()
                for c, t in zip(cols, (float, np.int64, np.int64, np.int64), strict=True)
            ]
            for i, (a, p, o, g) in enumerate(zip(*part, strict=True), start=lo):
                req = Request(i, a, p, o, -1, UNFINISHED, prefix_id=g)
                live[i] = req  # log.open(req)
                if a > env.now:
                    yield timeout(a - env.now)
                if one is None:
                    idx = balancer.pick()
                    req.replica = idx
                    servers[idx].submit(req)
                else:
                    req.replica = 0
                    one.submit(req)
                if bar is not None:
                    bar.update(1)
        for s in servers:
            s.close()
        if bar is not None:
            bar.close()

    env.process(arrivals())
    env.run()
    return env.now
