"""Built-in live engine for `server.kind: static`: HF generate() on static batches.

Batches are collected as the simulator's StaticScheduler collects them (servers/static.py):
in arrival order, a batch starts when batch_size requests wait, when every request of the
trace has arrived (the simulator's `closed`), or, with max_wait_ms, once the oldest has waited
that long since its trace arrival; the next batch starts only when the previous generate()
has returned. The prompts are left-padded (pad id 0, attention mask 0 on the padding) to the
batch's longest and the batch runs one greedy, EOS-off generate() of the batch's longest
output (hf/greedy.py).

Rule for finished sequences (HF generate()'s own, the simulator's `finished: stay`): every
row keeps computing until the batch's longest output is done; a row that wanted fewer tokens
keeps only its first `output_tokens` (the rest are cut). Each request's first token is the
batch's first (the streamer's first put after the prompt), its token times those of the
first `output_tokens` steps, and it finishes when generate() returns (the batch's end): the
time a caller of generate() gets its answer. `finished: leave` has no live engine here.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
import time
from typing import Any

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.hf import greedy
from llm_energy_sim.hf.build import (
    WARM_UP_NEW,
    FirstTokenStamp,
    build_model,
    warm_up_prompt,
)
from llm_energy_sim.live.base import OK, RequestRecord


class _Job:
    """One submitted request waiting for its batch; `done` is resolved in the client's loop."""

    __slots__ = ("rec", "ids", "loop", "done")

    def __init__(self, rec: RequestRecord, ids: list[int], loop, done: asyncio.Future) -> None:
        self.rec, self.ids, self.loop, self.done = rec, ids, loop, done

    def key(self) -> tuple[float, int]:
        return (self.rec.arrival_s, self.rec.request_id)


class TransformersStaticEngine:
    """HF generate() on static batches of server.batch_size (the simulator's `static`)."""

    name = "transformers-static"

    def __init__(
        self, card: ModelCard, dtype: str, server, device: str = "cuda", seed: int = 0
    ) -> None:
        if getattr(server, "finished", "stay") != "stay":
            raise UserError(
                "the live static engine runs HF generate()'s rule (server.finished: stay); "
                f"not {server.finished}"
            )
        self.card, self.dtype, self.server, self.device, self.seed = (
            card,
            dtype,
            server,
            device,
            seed,
        )
        self.model: Any = None
        self.t0 = 0.0
        self.expected: int | None = None  # requests in the trace: all arrived = closed
        self._queue: list[_Job] = []
        self._arrived = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self.batches: list[dict] = []  # per batch: size, padded prompt, new tokens, times
        self.warmed_up = False

    def expect(self, n_requests: int) -> None:
        """The trace's request count: once that many have arrived, a partial batch starts
        (the simulator starts one when no more requests will arrive)."""
        self.expected = n_requests

    def load(self) -> None:
        self.model = build_model(self.card, self.dtype, self.device, self.seed)

    def start(self) -> None:
        if self.model is None:
            self.load()
        self._stop = False
        self._thread = threading.Thread(target=self._worker, name="hf-static", daemon=True)
        self._thread.start()

    def warm_up(self) -> None:
        """One generate() of a full batch of WARM_UP_PROMPT-token prompts (WARM_UP_NEW new
        tokens) before the trace, so the batch shape's one-time costs come before the meter
        (see TransformersCbEngine.warm_up)."""
        if self.model is None:
            self.load()
        prompts = [warm_up_prompt(self.card)] * self.server.batch_size
        ids, mask = greedy.left_pad(prompts, self.device)
        greedy.generate(self.model, ids, WARM_UP_NEW, attention_mask=mask)
        self._sync()
        self.warmed_up = True

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    # ---- batching, as servers/static.py StaticScheduler ------------------------------------
    def _closed(self) -> bool:
        return self.expected is not None and self._arrived >= self.expected

    def _wait_s(self) -> float | None:
        """Seconds until a partial batch may start (max_wait_ms after the oldest's arrival),
        None when only a full batch or the end of the trace starts one."""
        if self.server.max_wait_ms is None or not self._queue:
            return None
        due = self._queue[0].rec.arrival_s + self.server.max_wait_ms / 1000.0
        return due - (time.perf_counter() - self.t0)

    def _take_batch(self) -> list[_Job] | None:
        """Block until a batch may start (None when stopping); pops it in arrival order."""
        b = self.server.batch_size
        with self._cond:
            while not self._stop:
                if len(self._queue) >= b or (self._closed() and self._queue):
                    break
                left = self._wait_s()
                if left is not None and left <= 1e-9:
                    break
                self._cond.wait(timeout=0.1 if left is None else min(left, 0.1))
            if self._stop:
                return None
            batch, self._queue = self._queue[:b], self._queue[b:]
            return batch

    def _worker(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            batch = [j for j in batch if not j.done.cancelled()]
            if not batch:
                continue
            try:
                self._generate(batch)
                exc = None
            except Exception as e:  # every request of the batch records it
                exc = e
            for j in batch:
                j.loop.call_soon_threadsafe(_resolve, j.done, exc)

    def _generate(self, batch: list[_Job]) -> None:
        """One generate() of the left-padded batch for its longest output; per request: the
        batch's first token, its own first output_tokens token times, the batch's end."""
        ids, mask = greedy.left_pad([j.ids for j in batch], self.device)
        longest = max(j.rec.output_tokens for j in batch)
        stamp = FirstTokenStamp()
        start = time.perf_counter() - self.t0
        for j in batch:
            j.rec.start_s = start
        out = greedy.generate(self.model, ids, longest, streamer=stamp, attention_mask=mask)
        self._sync()
        end = time.perf_counter() - self.t0
        new = int(out.shape[1] - ids.shape[1])
        times = [t - self.t0 for t in stamp.times]
        for j in batch:
            rec = j.rec
            rec.first_token_s = stamp.first - self.t0 if not math.isnan(stamp.first) else end
            rec.finish_s = end
            rec.generated_tokens = min(new, rec.output_tokens)
            rec.extra["token_times"] = times[: rec.generated_tokens]
            rec.extra["computed_prompt_tokens"] = int(ids.shape[1])
            rec.extra["batch"] = len(self.batches)
            rec.status = OK
        self.batches.append(
            {
                "size": len(batch),
                "padded_prompt": int(ids.shape[1]),
                "new_tokens": new,
                "start_s": start,
                "end_s": end,
            }
        )

    async def submit(self, rec: RequestRecord, prompt_ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        rec.send_s = time.perf_counter() - self.t0
        job = _Job(rec, prompt_ids, loop, done)
        with self._cond:
            keys = [j.key() for j in self._queue]
            self._queue.insert(bisect.bisect(keys, job.key()), job)
            self._arrived += 1
            self._cond.notify_all()
        await done

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=600)
            self._thread = None

    def info(self) -> dict:
        return {
            "engine": "transformers generate, static batches (left-padded, one generate() "
            "per batch, every row to the batch's longest output)",
            "batch_size": self.server.batch_size,
            "max_wait_ms": self.server.max_wait_ms,
            "finished": "stay",
            "attn_implementation": self.model.config._attn_implementation if self.model else None,
            "warmed_up": self.warmed_up,
            "batches": len(self.batches),
            "batch_sizes": [b["size"] for b in self.batches],
            "padded_prompts": [b["padded_prompt"] for b in self.batches],
        }


def _resolve(fut: asyncio.Future, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
