"""Cold start: the extra host time of the first forward step of a fresh engine process.

The first step after a model is built pays one-time set-up that no later step pays (cuBLAS and
cuDNN handles, lazily loaded kernels, the first attention plan, the CB manager's first batch).
A fresh process of the transformers engines carries it on its first request (0.57-2.19 s
on an H100, measurements/calibration/h100-v2/coldstart.csv); TGI warms up before it serves. Measured in a
fresh subprocess per engine and dtype, on a host-fit shape: the first request (2 new
tokens) against the same request again; cold_s = first - second.

    python -m llm_energy_sim.calibrate.coldstart --engine hf_eager --dtype bfloat16   # one measurement, JSON
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from llm_energy_sim.calibrate.rawtable import append_row, done_keys

METHOD = "cold-v1"
ENGINES = ("hf_eager", "transformers_cb")
SHAPES = (("qwen2.5-1.5b", 8), ("qwen2.5-7b", 16))
PROMPT = 300
FIELDS = ("engine", "model", "layers", "dtype", "first_s", "second_s", "cold_s", "method", "utc")


def _once(engine: str, name: str, layers: int, dtype: str, device: str) -> dict:
    """In this (fresh) process: build, then time the first and the second identical request."""
    import torch

    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf.build import build_uncached
    from llm_energy_sim.hf.quantize import BUILD_DTYPE

    card = load_model_card(name).model_copy(update={"num_hidden_layers": layers})
    model = build_uncached(card, BUILD_DTYPE[dtype], device, 0, "sdpa")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    ids = list(range(1000, 1000 + PROMPT))
    if engine == "hf_eager":
        from llm_energy_sim.hf import greedy

        x = torch.tensor([ids], device=device)

        def request() -> None:
            greedy.generate(model, x, 2)
    else:
        from llm_energy_sim.calibrate.cbbench import CbBatches

        cb = CbBatches(model, device)

        def request() -> None:
            cb.run([ids], 2)

    times = []
    for _ in range(2):
        sync()
        t = time.perf_counter()
        request()
        sync()
        times.append(time.perf_counter() - t)
    if engine != "hf_eager":
        cb.stop()
    return {"first_s": times[0], "second_s": times[1], "cold_s": times[0] - times[1]}


def run_coldstart(
    out_csv: Path,
    dtypes: tuple[str, ...] = ("bfloat16",),
    device: str = "cuda",
    shapes: tuple[tuple[str, int], ...] = SHAPES,
) -> int:
    """One fresh subprocess per (engine, shape, dtype) not yet in out_csv; rows appended."""
    done, n = done_keys(out_csv), 0
    for engine in ENGINES:
        for name, layers in shapes:
            for dtype in dtypes:
                key = f"{engine}|{name}|{layers}L|{dtype}|{PROMPT}|{METHOD}"
                if key in done:
                    continue
                cmd = [
                    sys.executable,
                    "-m",
                    "llm_energy_sim.calibrate.coldstart",
                    "--engine",
                    engine,
                ]
                cmd += ["--model", name, "--layers", str(layers), "--dtype", dtype]
                cmd += ["--device", device]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
                if r.returncode != 0 or not lines:
                    print(f"cold start {key}: failed: {r.stderr[-300:]}", file=sys.stderr)
                    continue
                row = {
                    "engine": engine,
                    "model": name,
                    "layers": layers,
                    "dtype": dtype,
                    **json.loads(lines[-1]),
                    "method": METHOD,
                    "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                append_row(out_csv, {"key": key, **{k: row[k] for k in FIELDS}})
                n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=ENGINES, required=True)
    ap.add_argument("--model", default=SHAPES[0][0])
    ap.add_argument("--layers", type=int, default=SHAPES[0][1])
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args(argv)
    print(json.dumps(_once(a.engine, a.model, a.layers, a.dtype, a.device)))


if __name__ == "__main__":
    main()
