"""What every request of a run ended with, in columns: the simulator's requests table.

A run keeps a Request object only while the request is in the system (from its arrival to
its completion or refusal); `RequestLog.close` copies its outcome into numpy columns indexed
by request id and forgets the object, so memory per request is the columns' 53 bytes, not a
Python object's ~400. `close_all` closes the requests still in the system when the run ends
(unfinished). `requests()` rebuilds Request objects from the columns for callers that want
them (small runs: tests, analysis/mlenergy.py).
"""

from __future__ import annotations

import numpy as np

from llm_energy_sim.engine.request import UNFINISHED, Request, RequestStatus

#: status code (the int8 stored) -> status
STATUSES: tuple[RequestStatus, ...] = tuple(RequestStatus)
_CODE = {s: i for i, s in enumerate(STATUSES)}


#: closed requests buffered before their outcomes are copied into the columns
BUFFER = 4096

#: the columns, in the order close() writes them (counts in 4 bytes: token counts are below
#: 2**31, workload.MAX_COUNT; the requests table widens them to int64)
FIELDS = (
    ("replica", np.int32),
    ("status", np.int8),
    ("t_start", np.float64),
    ("t_first", np.float64),
    ("t_finish", np.float64),
    ("computed_prompt", np.int32),
    ("generated", np.int32),
    ("e_prefill", np.float64),
    ("e_decode", np.float64),
)


class RequestLog:
    """Outcome columns of n requests with ids 0..n-1 (times NaN until set). The columns are
    fields of one structured array (`rows`), so closing a request is one assignment."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rows = np.zeros(n, np.dtype(list(FIELDS)))
        self.rows["replica"] = -1
        self.rows["status"] = _CODE[UNFINISHED]
        for f in ("t_start", "t_first", "t_finish"):
            self.rows[f] = np.nan
        self.live: dict[int, Request] = {}  # in the system: arrived, not closed
        # closed and not yet copied into `rows`: ids and outcome tuples, copied BUFFER at a
        # time (one assignment of many rows is much cheaper than one of each)
        self._ids: list[int] = []
        self._out: list[tuple] = []

    def __getattr__(self, name: str) -> np.ndarray:
        """A column by its field name (a strided view of `rows`, every closed request in)."""
        if name in _FIELD_NAMES:
            self.flush()
            return self.rows[name]
        raise AttributeError(name)

    def flush(self) -> None:
        """Copy the buffered outcomes into `rows`."""
        if self._ids:
            self.rows[np.array(self._ids, np.int64)] = np.array(self._out, self.rows.dtype)
            self._ids.clear()
            self._out.clear()

    def open(self, req: Request) -> None:
        """A request arrived; it is closed when it ends (or by close_all)."""
        self.live[req.id] = req

    def close(self, req: Request) -> None:
        """Copy the request's outcome into the columns; it must not change afterwards."""
        self.live.pop(req.id, None)
        self._ids.append(req.id)
        self._out.append(
            (
                req.replica,
                _CODE[req.status],
                req.t_start,
                req.t_first,
                req.t_finish,
                req.computed_prompt,
                req.generated,
                req.e_prefill,
                req.e_decode,
            )
        )
        if len(self._ids) >= BUFFER:
            self.flush()

    def close_all(self) -> None:
        """Close every request still in the system (the run is over)."""
        for req in list(self.live.values()):
            self.close(req)
        self.flush()

    def status_strings(self) -> np.ndarray:
        """The status column as strings (an object array)."""
        return np.array([str(s) for s in STATUSES], dtype=object)[self.status]

    def requests(self, arrival, prompt, output, prefix_id) -> list[Request]:
        """Request objects rebuilt from the columns and the trace's arrays (a copy: changing
        them changes nothing in the log)."""
        out = []
        cols = zip(
            np.asarray(arrival, float).tolist(),
            np.asarray(prompt).tolist(),
            np.asarray(output).tolist(),
            np.asarray(prefix_id).tolist(),
            self.replica.tolist(),
            self.status.tolist(),
            self.t_start.tolist(),
            self.t_first.tolist(),
            self.t_finish.tolist(),
            self.computed_prompt.tolist(),
            self.generated.tolist(),
            self.e_prefill.tolist(),
            self.e_decode.tolist(),
            strict=True,
        )
        for i, (a, p, o, g, rep, st, ts, tf, te, cp, gen, ep, ed) in enumerate(cols):
            r = Request(i, a, p, o, replica=rep, status=STATUSES[st], prefix_id=g)
            r.t_start, r.t_first, r.t_finish = ts, tf, te
            r.computed_prompt, r.generated, r.e_prefill, r.e_decode = cp, gen, ep, ed
            out.append(r)
        return out


_FIELD_NAMES = frozenset(name for name, _ in FIELDS)
