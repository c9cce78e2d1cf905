"""Data parallelism: a load balancer in front of several replicas."""

from __future__ import annotations

from collections.abc import Sequence

from llm_energy_sim.servers.base import Server


class Balancer:
    def __init__(self, servers: Sequence[Server], policy: str) -> None:
        self.servers = list(servers)
        self.policy = policy
        self._next = 0

    def pick(self) -> int:
        if self.policy == "least_loaded":
            loads = [s.load() for s in self.servers]
            return loads.index(min(loads))  # ties: lowest index, deterministic
        i = self._next
        self._next = (self._next + 1) % len(self.servers)
        return i
