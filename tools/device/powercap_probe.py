"""How the GPU's power limit acts on a serving step (issue 16, a diagnostic): does a step of
kernels of different power draw as the sum of its kernels measured alone (each capped at the
limit by itself), or does the power controller hold the average of the whole step at the
limit? Not part of `sim`.

Three parts, every kernel inside CUDA-graph replays (calibrate/graphbench.py's makers):

1. parts: each kernel of a Llama-3.1-8B decode step at a batch (the four projections, flash
   varlen decode attention, an RMSNorm, the LM head, vLLM's top-p sampler chain) alone, 32
   input sets cycled (the model's 32 layers), in a sustained metered window: time per call,
   mean power, SM clock and power-cap throttling sampled through the window.
2. steps: the whole decode step (32 layers, LM head, sampler; and the same without the
   sampler) captured as one graph, replayed back to back in a metered window.
3. duty: a large GEMM (8192 x 4096 x 28672, above the limit alone) n times, then an idle spin
   (torch.cuda._sleep) of the same length, at periods 2 ms to 400 ms.

    python tools/device/powercap_probe.py --out DIR [--quick]

Writes DIR/parts.csv, steps.csv, duty.csv (one row per window: seconds per replay, energy per
replay, mean power, SM clock p10/median/p90 and the fraction of samples with the power-cap
throttle bit) and environment.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LAYERS = 32
HIDDEN, Q_OUT, INTER, VOCAB = 4096, 6144, 14336, 128256  # Llama-3.1-8B (models/ card)
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
BATCHES = ((64, 1024), (256, 1024), (512, 768))  # (decode batch, KV length per sequence)
WINDOW_S = 2.0
WARM_S = 0.4
SAMPLE_S = 0.002  # NVML clock / throttle poll period in a window
POWER_CAP_BIT = 0x4  # nvmlClocksThrottleReasonSwPowerCap
DUTY_PERIODS_MS = (2, 6, 20, 60, 200, 400)
SLEEP_HZ = 1.98e9  # torch.cuda._sleep counts SM cycles


class ClockTrace:
    """SM clock and throttle reasons polled every SAMPLE_S on a thread while open."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nv = pynvml
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._reasons = getattr(
            pynvml,
            "nvmlDeviceGetCurrentClocksEventReasons",
            getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None),
        )

    def _run(self) -> None:
        nv, h = self.nv, self.h
        while not self._stop.is_set():
            clk = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
            thr = self._reasons(h)
            self.samples.append((clk, thr))
            time.sleep(SAMPLE_S)

    def __enter__(self):
        self.samples = []
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        clk = sorted(c for c, _ in self.samples)
        n = len(clk)
        return {
            "clock_p10_mhz": clk[n // 10],
            "clock_p50_mhz": clk[n // 2],
            "clock_p90_mhz": clk[(9 * n) // 10],
            "power_capped_share": sum(1 for _, t in self.samples if t & POWER_CAP_BIT) / n,
            "clock_samples": n,
        }


def metered(g, monitor, trace: ClockTrace, name: str, window_s: float = WINDOW_S) -> dict:
    """Replay graph g back to back: timed by CUDA events first, then a sustained metered
    window (after WARM_S of replays) with the clock trace running."""
    import torch

    from llm_energy_sim.calibrate.graphbench import _events_ms

    _events_ms(g, 2)
    t_one = statistics.median(_events_ms(g, 5))
    for _ in range(max(1, int(WARM_S / t_one))):
        g.replay()
    torch.cuda.synchronize()
    n = max(3, int(window_s / t_one))
    with trace, monitor.window(name) as w:
        for _ in range(n):
            g.replay()
        torch.cuda.synchronize()
    m = w.measurement
    return {
        "replay_s_events": t_one,
        "replays": n,
        "replay_s": m.time_s / n,
        "energy_j": m.total_j / n,
        "power_w": m.mean_power_w,
        **trace.summary(),
    }


def step_parts(batch: int, ctx: int) -> dict:
    """Each part of a decode step: (name, GPoint, calls per step)."""
    from llm_energy_sim.calibrate.graphbench import GPoint

    lin = lambda n_in, n_out, m=batch: GPoint("linear", "mm", "bfloat16", m, n_in, n_out)  # noqa: E731
    return {
        "qkv": (lin(HIDDEN, Q_OUT), LAYERS),
        "o": (lin(HIDDEN, HIDDEN), LAYERS),
        "gate_up": (lin(HIDDEN, 2 * INTER), LAYERS),
        "down": (lin(INTER, HIDDEN), LAYERS),
        "attn": (
            GPoint(
                "attn_decode",
                "flash_varlen",
                "bfloat16",
                batch=batch,
                q_len=1,
                kv_len=ctx,
                heads=HEADS,
                kv_heads=KV_HEADS,
                head_dim=HEAD_DIM,
            ),
            LAYERS,
        ),
        "rms_norm": (GPoint("rms_norm", "rms_norm", "bfloat16", batch, HIDDEN), 2 * LAYERS + 1),
        "lm_head": (lin(HIDDEN, VOCAB), 1),
        "sampler": (GPoint("sampler", "top_p", "bfloat16", batch, VOCAB), 1),
    }


def prefill_parts(tokens: int) -> dict:
    """A one-sequence prefill step of `tokens` tokens: step_parts' kernels at that many rows,
    causal flash varlen attention over them, the LM head at the one row sampled."""
    from llm_energy_sim.calibrate.graphbench import GPoint

    parts = step_parts(tokens, 0)
    parts.pop("sampler")
    parts["attn"] = (
        GPoint(
            "attn_varlen",
            "flash_varlen",
            "bfloat16",
            batch=1,
            q_len=tokens,
            kv_len=tokens,
            heads=HEADS,
            kv_heads=KV_HEADS,
            head_dim=HEAD_DIM,
        ),
        LAYERS,
    )
    parts["lm_head"] = (GPoint("linear", "mm", "bfloat16", 1, HIDDEN, VOCAB), 1)
    return parts


def build_calls(parts: dict, sets: int) -> dict:
    """Per part, `sets` independent input sets' zero-argument calls."""
    from llm_energy_sim.calibrate.graphbench import make_point

    calls = {}
    for name, (p, n) in parts.items():
        make, _ = make_point(p)
        calls[name] = [make() for _ in range(min(sets, n))]
    return calls


def step_sequence(calls: dict, with_sampler: bool) -> list:
    """One decode step's calls in order: per layer norm, qkv, attention, o, norm, gate_up,
    down; then the final norm, the LM head and (optionally) the sampler."""
    seq = []
    for layer in range(LAYERS):
        for name in ("rms_norm", "qkv", "attn", "o", "rms_norm", "gate_up", "down"):
            fns = calls[name]
            seq.append(fns[layer % len(fns)])
    seq += [calls["rms_norm"][0], calls["lm_head"][0]]
    if with_sampler:
        seq.append(calls["sampler"][0])
    return seq


def capture_seq(seq: list):
    """One CUDA graph of the calls in order (warmed on the capture stream first)."""
    from llm_energy_sim.calibrate.graphbench import capture

    # capture(fns, k) cycles fns for k calls: the whole sequence once
    return capture(seq, len(seq))


def write_rows(path: Path, rows: list[dict]) -> None:
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="one batch, two duty periods")
    ap.add_argument(
        "--prefill",
        default="",
        help="only whole prefill steps of these token counts (comma-separated) into "
        "prefill_steps.csv",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from llm_energy_sim.calibrate.graphbench import (
        GPoint,
        _events_ms,
        capture,
        environment,
        make_point,
    )
    from llm_energy_sim.meter.monitor import EnergyMonitor

    (args.out / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    monitor = EnergyMonitor([0])
    trace = ClockTrace()
    utc = lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # noqa: E731
    if args.prefill:
        rows = []
        for tokens in (int(t) for t in args.prefill.split(",")):
            calls = build_calls(prefill_parts(tokens), LAYERS)
            seq = step_sequence(calls, False)
            for fn in seq:  # every kernel's first call (library handles) before the capture
                fn()
            torch.cuda.synchronize()
            g = capture_seq(seq)
            r = metered(g, monitor, trace, f"prefill-{tokens}", 3.0)
            rows.append({"tokens": tokens, **r, "utc": utc()})
            print(rows[-1], flush=True)
            write_rows(args.out / "prefill_steps.csv", rows)
            del g, calls
            torch.cuda.empty_cache()
        print("done", flush=True)
        return
    batches = BATCHES[1:2] if args.quick else BATCHES
    parts_rows, step_rows, duty_rows = [], [], []
    for batch, ctx in batches:
        parts = step_parts(batch, ctx)
        calls = build_calls(parts, LAYERS)
        for name, fns in calls.items():
            g = capture(fns, max(len(fns), 8))
            r = metered(g, monitor, trace, f"part-{name}-{batch}")
            k = max(len(fns), 8)
            parts_rows.append(
                {
                    "batch": batch,
                    "ctx": ctx,
                    "part": name,
                    "calls_per_step": parts[name][1],
                    "calls_per_replay": k,
                    "seconds": r["replay_s"] / k,
                    **r,
                    "utc": utc(),
                }
            )
            print(parts_rows[-1], flush=True)
            del g
        write_rows(args.out / "parts.csv", parts_rows)
        for with_sampler in (True, False):
            g = capture_seq(step_sequence(calls, with_sampler))
            r = metered(g, monitor, trace, f"step-{batch}-{with_sampler}", 3.0)
            step_rows.append(
                {"batch": batch, "ctx": ctx, "sampler": int(with_sampler), **r, "utc": utc()}
            )
            print(step_rows[-1], flush=True)
            del g
        write_rows(args.out / "steps.csv", step_rows)
        del calls
        torch.cuda.empty_cache()
    # duty cycle: a GEMM above the limit alone, then an idle spin of the same length
    make, _ = make_point(GPoint("linear", "mm", "bfloat16", 8192, 4096, 28672))
    gemm = [make() for _ in range(2)]
    g1 = capture(gemm, 4)
    t_gemm = statistics.median(_events_ms(g1, 5)) / 4
    del g1
    periods = DUTY_PERIODS_MS[1:3] if args.quick else DUTY_PERIODS_MS
    for period_ms in periods:
        half = period_ms / 2e3
        n = max(1, round(half / t_gemm))
        cycles = int(SLEEP_HZ * n * t_gemm)

        def spin(c=cycles):
            torch.cuda._sleep(c)

        seq = [gemm[i % 2] for i in range(n)] + [spin]
        g = capture_seq(seq)
        r = metered(g, monitor, trace, f"duty-{period_ms}", 3.0)
        duty_rows.append(
            {
                "period_ms": period_ms,
                "gemms": n,
                "gemm_s": t_gemm,
                "spin_cycles": cycles,
                **r,
                "utc": utc(),
            }
        )
        print(duty_rows[-1], flush=True)
        del g
    for name, seq in (("gemm_only", [gemm[0], gemm[1]] * 4), ("spin_only", None)):
        if seq is None:
            c = int(SLEEP_HZ * 0.05)
            seq = [lambda c=c: torch.cuda._sleep(c)]
        g = capture_seq(seq)
        r = metered(g, monitor, trace, f"duty-{name}", 2.0)
        duty_rows.append(
            {"period_ms": name, "gemms": len(seq), "gemm_s": t_gemm, **r, "utc": utc()}
        )
        print(duty_rows[-1], flush=True)
        del g
    write_rows(args.out / "duty.csv", duty_rows)
    print("done", flush=True)


if __name__ == "__main__":
    main()
