"""A server = a scheduler (the kind's policy, no SimPy) driven by one SimPy process.

A server kind is a Scheduler subclass in its own module, named by its registry entry
(config/servers.py); servers/registry.py resolves it. The hooks a subclass provides:

- `build(scenario, card, profile) -> (scheduler, info)` (classmethod): derive the engine's
  limits (KV capacity, budgets, the memory check) for one replica; `info` is reported in the
  run's summary. The default passes the settings alone.
- `admit(req) -> bool`: accept an arriving request, or refuse it with its status set.
- `plan_step(now) -> StepPlan | None`: what the next step runs; None when there is nothing
  to run until an arrival (or `wake_after`). It may change the scheduler's own state (take
  requests from the queue, allocate KV blocks, evict), never time.
- `commit(plan, steps, now)`: apply a step that ran (`steps` of a decode run) at time `now`:
  tokens (a decode run's too: the replica books only time and energy), first-token times,
  completions (`finish`), freed blocks.
- optional: `wake_after(now)` (a timeout to plan again without an arrival), `idle()`,
  `load()` (what a least-loaded balancer sees), `should_interrupt(queue_was_empty)`, the
  class flag `cuts_decode_runs` (an arrival may end a decode run at the step in progress),
  and `run_stats()` (counts kept over the run, summed over the replicas into the summary's
  server_limits: `merged_run_stats`).

Server owns time: it queues arrivals, sleeps, runs each plan on the replica and commits it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Any, ClassVar

import simpy

from llm_energy_sim.engine.replica import Replica
from llm_energy_sim.engine.request import OK, Request
from llm_energy_sim.servers.plan import StepPlan


class Scheduler:
    """The policy of one server kind: a FIFO queue of admitted requests, no SimPy."""

    #: an arrival may cut one of this scheduler's decode runs short (it re-plans then)
    cuts_decode_runs: ClassVar[bool] = False

    def __init__(self, settings) -> None:
        self.settings = settings
        self.queue: deque[Request] = deque()
        self.running: list[Request] = []
        self.closed = False  # no more arrivals will come
        self.in_flight = 0  # admitted and not finished
        self.queue_log: Callable[[float, int], None] | None = None  # (time, queue length)
        self.on_close: Callable[[Request], None] | None = None  # a request ended (RequestLog)

    @classmethod
    def build(cls, scenario, card, profile) -> tuple[Scheduler, dict]:
        """The scheduler of one replica of `scenario` and what it resolved (summary info)."""
        return cls(scenario.server), {}

    # ---- arrivals ----------------------------------------------------------------------
    def admit(self, req: Request) -> bool:
        """Accept a request on arrival; False (with req.status set) refuses it."""
        return True

    def enqueue(self, req: Request, now: float) -> bool:
        """Admit and queue an arriving request; False if refused."""
        if not self.admit(req):
            return False
        self.in_flight += 1
        self.queue.append(req)
        self.note_queue(now)
        return True

    def should_interrupt(self, queue_was_empty: bool) -> bool:
        """Whether an arrival ends a decode run in progress (see cuts_decode_runs)."""
        return queue_was_empty

    # ---- the policy ----------------------------------------------------------------------
    def plan_step(self, now: float) -> StepPlan | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def commit(self, plan: StepPlan, steps: int, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def wake_after(self, now: float) -> float | None:
        """Seconds after which to plan again even if nothing arrives (None: wait for one)."""
        return None

    def idle(self) -> bool:
        """Nothing queued or in service."""
        return not self.queue and not self.running

    def load(self) -> int:
        return len(self.queue) + len(self.running)

    def run_stats(self) -> dict[str, int]:
        """Counts this scheduler kept over the run (e.g. prefix-cache hits); none by default."""
        return {}

    # ---- helpers ---------------------------------------------------------------------------
    def note_queue(self, now: float) -> None:
        if self.queue_log is not None:
            self.queue_log(now, len(self.queue))

    def pop(self, now: float) -> Request:
        req = self.queue.popleft()
        self.note_queue(now)
        return req

    def finish(self, req: Request, now: float) -> None:
        """The request completed at `now` (its energy is booked: nothing changes it later)."""
        req.t_finish = now
        req.status = OK
        self.in_flight -= 1
        if self.on_close is not None:
            self.on_close(req)


def merged_run_stats(schedulers) -> dict[str, int]:
    """Every scheduler's run_stats, summed key by key (one entry per key over the replicas)."""
    total: dict[str, int] = {}
    for s in schedulers:
        for k, v in s.run_stats().items():
            total[k] = total.get(k, 0) + v
    return total


class Server:
    """The SimPy process of one replica: arrivals in, the scheduler's plans run on the replica."""

    def __init__(self, env: simpy.Environment, replica: Replica, scheduler: Scheduler) -> None:
        self.env = env
        self.replica = replica
        self.scheduler = scheduler
        scheduler.queue_log = replica.ledger.note_queue
        self.in_segment = False  # a decode run that an arrival may cut is in progress
        # that run: (its timeout, segment, start, steps); the steps it did, once over or cut
        self._segment: tuple[simpy.Event, Any, float, int] | None = None
        self._done = 0
        self._wake: simpy.Event | None = None
        self.process = env.process(self.run())

    # ---- arrivals ----------------------------------------------------------------------
    def submit(self, req: Request) -> None:
        s = self.scheduler
        was_empty = not s.queue
        if not s.enqueue(req, self.env.now):
            req.t_finish = self.env.now
            if s.on_close is not None:
                s.on_close(req)
            return
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()
        elif self.in_segment and s.should_interrupt(was_empty):
            self._cut()

    def _cut(self) -> None:
        """End the decode run in progress at the end of its step in progress (later arrivals
        just queue): the process, waiting on the run's timeout, is moved to a timeout at that
        step's end (or resumed now, at a step boundary), as SimPy's Process.interrupt moves
        it off its target, without the Interruption event and the exception it throws."""
        self.in_segment = False
        env, proc = self.env, self.process
        timeout, seg, start, k = self._segment
        done = seg.steps_to_reach(env.now - start, k)
        end = start + seg.time(done)
        self._done = done
        timeout.callbacks.remove(proc._resume)
        nxt = env.timeout(end - env.now if env.now < end else 0.0)
        nxt.callbacks.append(proc._resume)
        proc._target = nxt

    def close(self) -> None:
        self.scheduler.closed = True
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def load(self) -> int:
        return self.scheduler.load()

    # ---- the process -------------------------------------------------------------------------
    def run(self) -> Generator:
        """Plan, run on the replica, commit; until closed and idle. One generator, the steps
        inline: it resumes once per step or decode run (a cut run included, see _cut)."""
        env, s, rep = self.env, self.scheduler, self.replica
        cuts = s.cuts_decode_runs
        timeout = env.timeout
        while True:
            now = env.now
            plan = s.plan_step(now)
            if plan is None:
                if s.closed and s.idle():
                    return
                yield from self.wait(s.wake_after(now))
                continue
            for r in plan.admitted:
                if r.t_start != r.t_start:  # NaN: its first step
                    r.t_start = now
            k = plan.decode_steps
            if not k:
                wall, energy, p_gpu = rep.forward_cost(plan)
                yield timeout(wall)
                rep.book_forward(plan, now, env.now, energy, p_gpu)
                s.commit(plan, 1, env.now)
                continue
            reqs = []
            ctx_sum = ctx_max = 0  # = plan.work.decode_ctx_sum, decode_ctx_max
            for d in plan.decode:
                reqs.append(d.req)
                ctx_sum += d.kv_len
                if d.kv_len > ctx_max:
                    ctx_max = d.kv_len
            seg, k, shapes = rep.decode_segment(len(reqs), ctx_sum, k, ctx_max)
            run = timeout(seg.time(k))
            self._done = k
            if cuts:  # an arrival may cut it (_cut sets the steps done)
                self._segment = (run, seg, now, k)
                self.in_segment = True
            yield run
            self.in_segment = False
            self._segment = None
            done = self._done
            rep.book_decode(reqs, seg, done, shapes, now, env.now, ctx_sum)
            s.commit(plan, done, env.now)

    def wait(self, timeout: float | None = None) -> Generator:
        """Sleep until an arrival (or close, or the timeout)."""
        self._wake = self.env.event()
        if timeout is None:
            yield self._wake
        else:
            yield self._wake | self.env.timeout(timeout)
        self._wake = None
