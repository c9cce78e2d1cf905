"""What every simulated server shares: a FIFO queue, a wake-up event, request bookkeeping."""

from __future__ import annotations

from collections import deque
from collections.abc import Generator

import simpy

from llm_energy_sim.engine.replica import Replica
from llm_energy_sim.engine.request import OK, Request


class Server:
    """Base class: subclasses implement `run()` (a SimPy process) and may override `admit`."""

    #: host-overhead engine of the profile this server's steps use
    engine = "hf_eager"

    def __init__(self, env: simpy.Environment, replica: Replica, settings) -> None:
        self.env = env
        self.replica = replica
        self.settings = settings
        self.queue: deque[Request] = deque()
        self.running: list[Request] = []
        self.closed = False  # no more arrivals will come
        self.in_segment = False
        self._wake: simpy.Event | None = None
        self.process = env.process(self.run())

    # ---- arrivals ----------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        """Validate/accept a request on arrival; return False if rejected (status set)."""
        return True

    def submit(self, req: Request) -> None:
        if not self.admit(req):
            req.t_finish = self.env.now
            return
        was_empty = not self.queue
        self.queue.append(req)
        self.replica.ledger.note_queue(self.env.now, len(self.queue))
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()
        elif self.in_segment and self.should_interrupt(was_empty):
            self.in_segment = False
            self.process.interrupt("arrival")

    def should_interrupt(self, queue_was_empty: bool) -> bool:
        return queue_was_empty

    def close(self) -> None:
        self.closed = True
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def load(self) -> int:
        return len(self.queue) + len(self.running)

    # ---- helpers for run() ---------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Generator:
        """Sleep until an arrival (or close, or the timeout)."""
        self._wake = self.env.event()
        if timeout is None:
            yield self._wake
        else:
            yield self._wake | self.env.timeout(timeout)
        self._wake = None

    def pop(self) -> Request:
        req = self.queue.popleft()
        self.replica.ledger.note_queue(self.env.now, len(self.queue))
        return req

    def finish(self, req: Request) -> None:
        req.t_finish = self.env.now
        req.status = OK

    def run(self) -> Generator:  # pragma: no cover - abstract
        raise NotImplementedError
        yield
