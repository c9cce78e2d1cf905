"""Wire a scenario into a SimPy run: trace -> balancer -> replicas' servers -> results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import simpy

from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.config.profile import Profile, default_profile_name, load_profile
from llm_energy_sim.config.scenario import Scenario, scenario_card
from llm_energy_sim.cost.costmodel import CostModel
from llm_energy_sim.engine.replica import Replica
from llm_energy_sim.engine.request import Request
from llm_energy_sim.engine.workload import Trace, generate_trace
from llm_energy_sim.servers.balancer import Balancer
from llm_energy_sim.servers.base import Server
from llm_energy_sim.servers.memory import MemoryCheck
from llm_energy_sim.servers.sequential import SequentialServer
from llm_energy_sim.servers.static import StaticServer
from llm_energy_sim.servers.tgi import TgiServer
from llm_energy_sim.servers.tgi_limits import tgi_limits


@dataclass
class SimResult:
    scenario: Scenario
    card: ModelCard
    profile: Profile
    profile_path: Path
    trace: Trace
    requests: list[Request]
    replicas: list[Replica]
    servers: list[Server]
    t_end: float
    server_info: dict


def profile_for(scen: Scenario, override: str | None = None) -> tuple[Profile, Path]:
    name = override or scen.profile or default_profile_name(scen.hardware.gpu)
    return load_profile(name)


def _make_server(scen: Scenario, env, replica: Replica, card: ModelCard, profile: Profile):
    kind = scen.server.kind
    if kind == "sequential":
        return SequentialServer(
            env, replica, scen.server, MemoryCheck.for_replica(scen, card, profile)
        ), {}
    if kind == "static":
        memory = MemoryCheck.for_replica(scen, card, profile, hint=", a smaller server.batch_size")
        return StaticServer(env, replica, scen.server, memory), {}
    if kind == "tgi":
        s = scen.server
        lim = tgi_limits(
            card,
            scen.dtype,
            scen.hardware.gpus_per_replica,
            profile.gpu.memory_bytes,
            s.cuda_memory_fraction,
            s.max_batch_prefill_tokens,
            s.max_batch_total_tokens,
        )
        return TgiServer(env, replica, s, lim), {
            "max_batch_prefill_tokens": lim.max_batch_prefill_tokens,
            "max_batch_total_tokens": lim.kv_capacity_tokens,
            "max_total_tokens": lim.max_total_tokens,
        }
    if kind == "transformers-cb":
        from llm_energy_sim.servers.transformers_cb import make_transformers_cb

        return make_transformers_cb(env, replica, scen, card, profile)
    raise ValueError(kind)


ENGINE_OF_KIND = {
    "sequential": "hf_eager",
    "static": "hf_eager",
    "tgi": "tgi",
    "transformers-cb": "transformers_cb",
}


def simulate(
    scen: Scenario,
    profile_override: str | None = None,
    progress: bool = False,
    step_log: bool = False,
) -> SimResult:
    """Run the scenario to completion (every request finished or rejected). step_log: keep
    every step's composition and times on each replica (Replica.step_log)."""
    profile, ppath = profile_for(scen, profile_override)
    card = scenario_card(scen)
    trace = generate_trace(scen.workload, scen.seed)
    env = simpy.Environment()
    engine = ENGINE_OF_KIND[scen.server.kind]
    replicas, servers = [], []
    info: dict = {}
    for i in range(scen.hardware.replicas):
        hw = scen.hardware
        cost = CostModel(
            card, scen.dtype, profile, engine, hw.gpus_per_replica, hw.host_time_factor
        )
        rep = Replica(env, i, cost, scen.fast_forward, getattr(scen.server, "cold_start", False))
        if step_log:
            rep.step_log = []
        srv, info = _make_server(scen, env, rep, card, profile)
        replicas.append(rep)
        servers.append(srv)
    balancer = Balancer(servers, scen.hardware.balancer)
    requests = [
        Request(i, float(a), int(p), int(o))
        for i, (a, p, o) in enumerate(
            zip(trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True)
        )
    ]

    def arrivals():
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(requests), unit="req", desc="simulating", leave=False, disable=None
            )
        for req in requests:
            if req.arrival > env.now:
                yield env.timeout(req.arrival - env.now)
            idx = balancer.pick()
            req.replica = idx
            servers[idx].submit(req)
            if bar is not None:
                bar.update(1)
        for s in servers:
            s.close()
        if bar is not None:
            bar.close()

    env.process(arrivals())
    env.run()
    t_end = max([env.now] + [float(trace.arrival_s[-1]) if len(trace) else 0.0])
    return SimResult(scen, card, profile, ppath, trace, requests, replicas, servers, t_end, info)
