"""Diagnostic: which kernels a transformers continuous-batching decode step at large batch and
KV spends its GPU time in, Qwen2.5-7B against Llama-3.1-8B (issue 16: in
measurements/live/h200-graphs-d the 256-request burst's decode steps ran 1.31x the model for
Qwen2.5-7B and 1.12x for Llama-3.1-8B, eager; 1.2x / 1.1x with CUDA graphs).

One process per call, full-size models (random weights, hf/build.build_model), the manager as
`sim replay` starts it for scenarios/validation/burst_large.yaml (hf/build.cb_config). For each
(model, mode): BATCH prompts of PROMPT tokens added at once, run to 1 + DECODE new tokens, once to
warm up, then again with torch.profiler on for WINDOW steps once every request decodes (no
prefill left in the step, read off the engine's step log, hf/steplog.py). Writes kernels.csv
(model, mode, steps in the window, op name, self CUDA us, calls), steps.csv (the profiled
window's steps and those of a plain window of as many steps before it, as logged: wall s,
prefills, decodes, KV) and phases.csv (the plain window's engine phases timed as
tools/device/step_probe.py times them: prepare, schedule, tensors, forward_launch, d2h_wait,
update) to --out, row by row. Not part of `sim`.

    python tools/device/cb_profile.py --out DIR [--models qwen2.5-7b,llama-3.1-8b]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.device.bnb_probe import _append  # noqa: E402  (one CSV row, header first)
from tools.device.step_probe import CONDITION, ROWS, instrument  # noqa: E402

BATCH, PROMPT, DECODE, WINDOW = 256, 320, 48, 12
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios/validation/burst_large.yaml"


def _add(manager, prompts: list[list[int]], n_new: int, tag: str) -> set[str]:
    ids = set()
    for i, p in enumerate(prompts):
        rid = f"{tag}-{i}"
        manager.add_request(p, request_id=rid, max_new_tokens=n_new, eos_token_id=-1)
        ids.add(rid)
    return ids


def _wait(manager, left: set[str]) -> None:
    while left:
        out = manager.get_result(timeout=300)
        if out is None:
            raise RuntimeError("no result in 300 s")
        if out.request_id in left and out.is_finished():
            left.discard(out.request_id)


def _until(cond, timeout_s: float = 300.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out waiting for the engine")
        time.sleep(0.002)


def profile_case(
    model_name: str, graphs: bool, out: Path, batch: int = BATCH, prompt: int = PROMPT
) -> None:
    """Warm up, then one run whose decode-only steps at full batch (every request past its
    prefill) are profiled for WINDOW steps, read off the engine's own step log."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.hf.build import build_model, cb_config, start_manager
    from llm_energy_sim.hf.steplog import StepLog

    scen = load_scenario(SCENARIO)
    server = scen.server.model_copy(update={"cuda_graphs": graphs})
    card = load_model_card(model_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test only
    if device == "cpu":
        server = server.model_copy(update={"num_blocks": 64, "max_batch_tokens": 1024})
    model = build_model(card, "bfloat16", device)
    manager = start_manager(model, cb_config(server))
    log = StepLog()
    log.attach(manager.batch_processor)
    gen = torch.Generator(device="cpu").manual_seed(0)
    prompts = torch.randint(1000, card.vocab_size, (batch, prompt), generator=gen).tolist()
    mode = "graphs" if graphs else "eager"
    acts = [ProfilerActivity.CUDA if device == "cuda" else ProfilerActivity.CPU]
    try:
        _wait(manager, _add(manager, prompts, 1 + DECODE, "warm"))
        first = len(log.steps)
        left = _add(manager, prompts, 1 + DECODE, "prof")

        def full_decode() -> bool:
            return any(not s.prefill and s.n_decode == batch for s in log.steps[first:])

        _until(full_decode)
        plain = len(log.steps)  # first a window of plain steps, their phases timed
        CONDITION[0] = f"{model_name}|{mode}"
        _until(lambda: len(log.steps) >= plain + WINDOW)
        CONDITION[0] = ""
        begin = len(log.steps)
        with profile(activities=acts) as prof:
            _until(lambda: len(log.steps) >= begin + WINDOW)
            if device == "cuda":
                torch.cuda.synchronize()
        stop = len(log.steps)
        _wait(manager, left)
        steps = log.steps[begin:stop]
        for window, rows in (("plain", log.steps[plain:begin]), ("profiled", steps)):
            for s in rows:
                _append(
                    out / "steps.csv",
                    {
                        "model": model_name,
                        "mode": mode,
                        "window": window,
                        "start_s": s.start,
                        "wall_s": s.end - s.start,
                        "n_prefill": len(s.prefill),
                        "n_decode": s.n_decode,
                        "decode_ctx_sum": s.decode_ctx_sum,
                    },
                )
        for cond, phase, start, seconds, *_extra in ROWS:
            if cond == f"{model_name}|{mode}":
                _append(
                    out / "phases.csv",
                    {
                        "model": model_name,
                        "mode": mode,
                        "batch": batch,
                        "prompt": prompt,
                        "phase": phase,
                        "start_s": start,
                        "seconds": seconds,
                    },
                )
        ROWS.clear()
        for ev in prof.key_averages():
            self_us = ev.self_device_time_total if device == "cuda" else ev.self_cpu_time_total
            if self_us <= 0:
                continue
            _append(
                out / "kernels.csv",
                {
                    "model": model_name,
                    "mode": mode,
                    "steps": len(steps),
                    "name": ev.key[:160],
                    "self_us": self_us,
                    "calls": ev.count,
                },
            )
        print(model_name, mode, len(steps), "steps profiled", flush=True)
    finally:
        manager.stop(block=True, timeout=60, hard_stop=True)


def main() -> None:
    instrument()  # time each phase of the engine's step (tools/device/step_probe.py)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="qwen2.5-7b,llama-3.1-8b")
    ap.add_argument("--modes", default="eager,graphs")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--prompt", type=int, default=PROMPT)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for m in a.models.split(","):
        for mode in a.modes.split(","):
            try:
                profile_case(m, mode == "graphs", a.out, a.batch, a.prompt)
            except Exception as e:  # keep the other cases
                print(m, mode, "failed:", repr(e), flush=True)


if __name__ == "__main__":
    main()
