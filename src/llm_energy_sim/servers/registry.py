"""The servers layer's side of the registry (config/servers.py): each kind's scheduler class,
and the server of one replica built through it."""

from __future__ import annotations

import importlib

import simpy

from llm_energy_sim.config.servers import ServerKind, server_kind
from llm_energy_sim.engine.replica import Replica
from llm_energy_sim.servers.base import Scheduler, Server


def scheduler_class(kind: str | ServerKind) -> type[Scheduler]:
    """The Scheduler subclass a registry entry names ("module:Class")."""
    entry = server_kind(kind) if isinstance(kind, str) else kind
    module, _, name = entry.scheduler.partition(":")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise TypeError(f"server kind '{entry.name}': {entry.scheduler} is not a Scheduler")
    return cls


def build_server(
    env: simpy.Environment, replica: Replica, scenario, card, profile
) -> tuple[Server, dict]:
    """The server of one replica of `scenario`, and what its scheduler resolved (summary info)."""
    scheduler, info = scheduler_class(scenario.server.kind).build(scenario, card, profile)
    return Server(env, replica, scheduler), info
