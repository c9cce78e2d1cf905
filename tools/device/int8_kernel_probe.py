"""Diagnostic: the GPU time of a bitsandbytes LLM.int8 linear without its host sync (issue 17).

The profiles' int8 linear fit has a 181-225 us floor per call, timed back to back: each call
reads a flag back to the host (the outlier check), so that floor holds host work and the sync
as well as kernels, and a decode model that adds host and kernels in series counts it twice
(docs/journal/validation.md). This probe times, per shape and row count, CALLS calls of one
`bnb.nn.Linear8bitLt(threshold=6.0)` (hf/quantize.bnb_linear, as the live engines build it) and of the bf16
`nn.Linear` of the same shape: wall time per call (CUDA-synchronised) and, under
torch.profiler, the summed self CUDA time of the kernels per call. Writes calls.csv (dtype, m,
n_in, n_out, wall_us, kernel_us, kernels_per_call) and kernels.csv (the int8 calls' kernel
names) to --out. Not part of `sim`.

    python tools/device/int8_kernel_probe.py --out DIR
    python tools/device/int8_kernel_probe.py --out DIR --dtypes int4,bfloat16 --rows 1,2,4,8,16
        [--shapes 4096x4096,...] [--hostspeed]

(int4: bitsandbytes NF4, `bnb.nn.Linear4bit` with bf16 compute: per rows and shape it runs its
fused kernel or dequantises the weight and runs a GEMM; measurements/calibration/README.md,
h200-nf4rows, says which the probe found.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.device.bnb_probe import _append  # noqa: E402  (one CSV row, header first)

SHAPES = ((4096, 4096), (4096, 14336), (14336, 4096), (3584, 18944), (18944, 3584))
ROWS = (1, 4, 16, 64)
CALLS = 50


def _layer(dtype: str, n_in: int, n_out: int, device: str):
    """The bf16 nn.Linear, or its LLM.int8 swap as the live engines build it (hf/quantize.py)."""
    import torch

    from llm_energy_sim.hf.quantize import bnb_linear

    lin = torch.nn.Linear(n_in, n_out, bias=False, dtype=torch.float16, device=device)
    if dtype == "bfloat16":
        return lin.to(torch.bfloat16), torch.bfloat16
    if dtype == "int4":  # NF4, bf16 compute (hf/quantize.bnb_linear)
        return bnb_linear(lin.to(torch.bfloat16), "int4"), torch.bfloat16
    return bnb_linear(lin, "int8"), torch.float16


def measure(dtype: str, n_in: int, n_out: int, m: int, device: str, out: Path) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    layer, act = _layer(dtype, n_in, n_out, device)
    x = torch.randn(m, n_in, dtype=act, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        for _ in range(5):
            layer(x)
        sync()
        t = time.perf_counter()
        for _ in range(CALLS):
            layer(x)
        sync()
        wall = (time.perf_counter() - t) / CALLS
        acts = [ProfilerActivity.CUDA] if device == "cuda" else [ProfilerActivity.CPU]
        with profile(activities=acts) as prof:
            for _ in range(CALLS):
                layer(x)
            sync()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    kernel_us = sum(e.self_device_time_total for e in events) / CALLS
    launches = sum(e.count for e in events) / CALLS
    _append(
        out / "calls.csv",
        {
            "dtype": dtype,
            "m": m,
            "n_in": n_in,
            "n_out": n_out,
            "wall_us": wall * 1e6,
            "kernel_us": kernel_us,
            "kernels_per_call": launches,
        },
    )
    if dtype in ("int8", "int4"):
        for e in events:
            _append(
                out / "kernels.csv",
                {
                    "dtype": dtype,
                    "m": m,
                    "n_in": n_in,
                    "n_out": n_out,
                    "name": e.key[:160],
                    "us_per_call": e.self_device_time_total / CALLS,
                    "calls_per_call": e.count / CALLS,
                },
            )


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtypes", default="int8,bfloat16")
    ap.add_argument("--rows", default=",".join(map(str, ROWS)), help="token rows, comma-separated")
    ap.add_argument(
        "--shapes",
        default=",".join(f"{i}x{o}" for i, o in SHAPES),
        help="weights IN x OUT, comma-separated (default: SHAPES)",
    )
    ap.add_argument(
        "--hostspeed",
        action="store_true",
        help="bracket the probe with host-speed passes in this process (--out/hostspeed.csv)",
    )
    a = ap.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in a.shapes.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test only
    if a.hostspeed:
        from llm_energy_sim.cli.replay import measure_host_pass

        measure_host_pass(a.out / "hostspeed.csv", device, True, "before")
    for dtype in a.dtypes.split(","):
        for n_in, n_out in shapes:
            for m in map(int, a.rows.split(",")):
                try:
                    measure(dtype, n_in, n_out, m, device, a.out)
                except Exception as e:  # keep the other points
                    print(dtype, n_in, n_out, m, "failed:", repr(e), flush=True)
        print(dtype, "done", flush=True)
    if a.hostspeed:
        measure_host_pass(a.out / "hostspeed.csv", device, True, "after")


if __name__ == "__main__":
    main()
