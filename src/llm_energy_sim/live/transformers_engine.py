"""Built-in live engines: transformers' continuous batching manager, and HF generate one at a time.

The model is built from a models/ card with random weights (AutoModelForCausalLM.from_config:
the library's normal initialisation, never zeros), so no download is needed; weight values do not
change time or power much. EOS is disabled so every request generates exactly its trace's
output tokens, as the simulator assumes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any

from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.hf import greedy
from llm_energy_sim.hf.build import (
    WARM_UP_BUDGET,
    WARM_UP_NEW,
    WARM_UP_PROMPT,
    FirstTokenStamp,
    build_model,
    cb_config,
    start_manager,
    warm_up_prompt,
)
from llm_energy_sim.hf.steplog import StepLog
from llm_energy_sim.live.base import ERROR, OK, RequestRecord


class TransformersCbEngine:
    """transformers' ContinuousBatchingManager in this process (init_continuous_batching)."""

    name = "transformers"

    def __init__(self, card: ModelCard, dtype: str, server, device: str = "cuda", seed: int = 0):
        self.card, self.dtype, self.server, self.device, self.seed = (
            card,
            dtype,
            server,
            device,
            seed,
        )
        self.model: Any = None
        self.manager: Any = None
        self.step_log: StepLog | None = None
        self.t0 = 0.0
        self._info: dict = {}

    def load(self) -> None:
        """Build the model (before the meter's window starts)."""
        self.model = build_model(self.card, self.dtype, self.device, self.seed)

    def start(self) -> None:
        if self.model is None:
            self.load()
        self.manager = start_manager(self.model, cb_config(self.server))
        self.step_log = StepLog()
        self.step_log.attach(self.manager.batch_processor)
        r = self.manager.continuous_batching_config
        self._info = {
            "engine": "transformers continuous batching",
            "max_batch_tokens": r.max_batch_tokens,
            "num_blocks": r.num_blocks,
            "block_size": r.block_size,
            "max_requests_per_batch": r.max_requests_per_batch,
            "scheduler": r.scheduler_type,
            "use_cuda_graph": list(r.use_cuda_graph) if r.use_cuda_graph is not None else None,
            "use_async_batching": r.use_async_batching,
            "attn_implementation": self.model.config._attn_implementation,
            "warmed_up": False,
            "step_log": self.step_log.attached,
        }

    async def submit(self, rec: RequestRecord, prompt_ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        rid = str(rec.request_id)

        def on_result(out) -> None:
            if out.is_finished() and not done.done():
                done.set_result(out)

        self.manager.register_result_handler(rid, on_result)
        rec.send_s = time.perf_counter() - self.t0
        accepted = self.manager.add_request(
            prompt_ids,
            request_id=rid,
            max_new_tokens=rec.output_tokens,
            record_timestamps=True,
            eos_token_id=-1,
        )
        if accepted is None:
            rec.status, rec.error = ERROR, "manager refused the request (stopping)"
            return
        out = await done
        ts = out.timestamps or []
        rec.generated_tokens = len(out.generated_tokens)
        if out.lifespan[0] > 0:
            rec.start_s = out.lifespan[0] - self.t0
        if ts:
            rec.first_token_s = ts[0] - self.t0
        rec.finish_s = (out.lifespan[1] if out.lifespan[1] > 0 else time.perf_counter()) - self.t0
        if out.error:
            rec.status, rec.error = ERROR, str(out.error)
        else:
            rec.status = OK
        rec.extra["token_times"] = [t - self.t0 for t in ts]

    def warm_up(self) -> None:
        """Before the trace, fill one step's token budget with warm-up prompts and let them
        finish: the first large step pays the process's one-time costs here, as TGI's warm-up
        does at launch, so the run matches a scenario with server.cold_start false."""
        budget = int(self._info.get("max_batch_tokens") or WARM_UP_BUDGET)
        n = max(1, budget // WARM_UP_PROMPT)
        rids = [f"warm-up-{i}" for i in range(n)]
        for rid in rids:
            self.manager.add_request(
                warm_up_prompt(self.card),
                request_id=rid,
                max_new_tokens=WARM_UP_NEW,
                eos_token_id=-1,
            )
        for rid in rids:
            for out in self.manager.request_id_iter(rid):
                if out.is_finished():
                    if out.error:
                        raise RuntimeError(f"warm-up request failed: {out.error}")
                    break
            else:
                raise RuntimeError("warm-up: the manager stopped before its requests finished")
        self._info["warmed_up"] = True
        self._info["warm_up_tokens"] = n * WARM_UP_PROMPT

    def stop(self) -> None:
        if self.manager is not None:
            try:
                self.manager.stop(block=True, timeout=60, hard_stop=True)
            finally:
                self.manager = None

    def info(self) -> dict:
        return dict(self._info)


class TransformersGenerateEngine:
    """HF generate(), one request at a time in arrival order (the simulator's `sequential`)."""

    name = "transformers-generate"

    def __init__(self, card: ModelCard, dtype: str, device: str = "cuda", seed: int = 0):
        self.card, self.dtype, self.device, self.seed = card, dtype, device, seed
        self.model: Any = None
        self.t0 = 0.0
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.warmed_up = False

    def load(self) -> None:
        self.model = build_model(self.card, self.dtype, self.device, self.seed)

    def start(self) -> None:
        if self.model is None:
            self.load()
        self._thread = threading.Thread(target=self._worker, name="hf-generate", daemon=True)
        self._thread.start()

    def warm_up(self) -> None:
        """One generate() of a WARM_UP_PROMPT-token prompt before the trace (see
        TransformersCbEngine.warm_up), through the requests' own _generate, so an engine that
        mirrors its calls on other ranks (tensor parallelism) mirrors this one too."""
        if self.model is None:
            self.load()
        warm = RequestRecord(-1, 0.0, WARM_UP_PROMPT, WARM_UP_NEW)
        self._generate(warm, warm_up_prompt(self.card))
        self.warmed_up = True

    def _generate(self, rec: RequestRecord, ids: list[int]) -> None:
        import torch

        x = torch.tensor([ids], device=self.device)
        stamp = FirstTokenStamp()
        rec.start_s = time.perf_counter() - self.t0
        out = greedy.generate(self.model, x, rec.output_tokens, streamer=stamp)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        rec.finish_s = time.perf_counter() - self.t0
        rec.first_token_s = stamp.first - self.t0
        rec.generated_tokens = int(out.shape[1] - x.shape[1])
        rec.extra["token_times"] = [t - self.t0 for t in stamp.times]
        rec.status = OK

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                rec, ids, loop, fut = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            if fut.cancelled():
                continue
            try:
                self._generate(rec, ids)
                loop.call_soon_threadsafe(_resolve, fut, None)
            except Exception as exc:  # recorded by the driver
                loop.call_soon_threadsafe(_resolve, fut, exc)

    async def submit(self, rec: RequestRecord, prompt_ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        rec.send_s = time.perf_counter() - self.t0
        self._jobs.put((rec, prompt_ids, loop, fut))
        await fut

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
            self._thread = None

    def info(self) -> dict:
        return {
            "engine": "transformers generate, one request at a time",
            "attn_implementation": self.model.config._attn_implementation if self.model else None,
            "warmed_up": self.warmed_up,
        }


def _resolve(fut: asyncio.Future, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
