"""What a new CUDA-graph shape costs transformers continuous batching (`transformers_cb_graphs`).

With `use_cuda_graph` the engine runs each step at a padded static shape (queries to a multiple
of 64, KV read to a multiple of 16384: cost/costmodel.py ENGINE_SHAPES) and captures a graph
the first time it meets a shape; later steps at that shape replay it. The capture (a Python
forward recorded instead of launched, then the replay) is host work serial with the step, and
the simulator charges it as the engine's shape miss (HostOverhead.attn_shape_miss_s and
attn_shape_miss_per_layer_s, CostModel.miss_s). Method: one engine per (model, layers), one
request at a time, each with a prompt in a different KV bucket, `NEW_TOKENS` decode steps
each; the engine's own step log (hf/steplog.py) times every step. The first decode step of a
request meets a new shape; the others replay it. A second pass over the same prompts finds
every shape captured: its first-step excess is the control (should be ~0).
capture excess = first decode step - median of the request's later decode steps;
fit: excess = a + b x layers (non-negative least squares over pass-1 rows).
torch / transformers are imported lazily (GPU side); the fit runs anywhere.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

CAPTURE_CSV = "graph_capture.csv"
# prompts whose decode steps read KV in the buckets 1, 2, 3, 4 x 16384 (far from the edges)
PROMPTS = (1000, 17000, 34000, 50000)
NEW_TOKENS = 24
# calibration shapes (none is a validation model): one width at two depths for the per-layer
# slope, and a second width
CAPTURE_SHAPES = (("qwen2.5-1.5b", 8), ("qwen2.5-1.5b", 28), ("qwen2.5-3b", 36))
COLUMNS = (
    "model",
    "layers",
    "dtype",
    "pass",
    "prompt",
    "first_s",
    "replay_s",
    "excess_s",
    "decode_steps",
    "utc",
)


def excess_rows(steps, prompt: int) -> tuple[float, float, int]:
    """(first decode step, median of the later ones, count) among one request's steps
    (LoggedStep list of a lone request: one or more prefill steps, then decodes)."""
    dec = [s.end - s.start for s in steps if s.n_decode and not s.prefill]
    if len(dec) < 3:
        raise RuntimeError(f"prompt {prompt}: {len(dec)} decode steps logged (need >= 3)")
    return dec[0], statistics.median(dec[1:]), len(dec)


def measure_captures(
    shapes=CAPTURE_SHAPES,
    dtype: str = "bfloat16",
    device: str = "cuda",
    out_csv: Path | None = None,
    prompts: tuple[int, ...] = PROMPTS,
    new_tokens: int = NEW_TOKENS,
) -> pd.DataFrame:
    """Run the method above for each (model, layers); rows appended to out_csv as measured."""
    import torch

    from llm_energy_sim.calibrate.cbbench import start_cb_manager
    from llm_energy_sim.calibrate.rawtable import append_row
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf.build import build_uncached
    from llm_energy_sim.hf.steplog import StepLog

    rows = []
    for name, layers in shapes:
        # the prompts reach 50k tokens: positions past the card's 32k are as cheap (random
        # weights, RoPE computed per position), so the limit is lifted for the probe
        card = load_model_card(name).model_copy(
            update={"num_hidden_layers": layers, "max_position_embeddings": 65536}
        )
        torch.manual_seed(0)
        model = build_uncached(card, dtype, device, 0, "sdpa")
        manager = start_cb_manager(model, device, cuda_graphs=True)
        log = StepLog()
        log.attach(manager.batch_processor)
        gen = torch.Generator(device="cpu").manual_seed(0)
        try:
            for pas in (1, 2):
                for i, prompt in enumerate(prompts):
                    ids = torch.randint(1000, card.vocab_size, (prompt,), generator=gen).tolist()
                    rid = f"cap-{pas}-{i}"
                    t0 = time.perf_counter()
                    manager.add_request(ids, request_id=rid, max_new_tokens=new_tokens + 1)
                    for out in manager.request_id_iter(rid):
                        if out.is_finished():
                            if out.error:
                                raise RuntimeError(f"{rid}: {out.error}")
                            break
                    first, replay, n = excess_rows(log.since(t0), prompt)
                    utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
                    values = (
                        name,
                        layers,
                        dtype,
                        pas,
                        prompt,
                        first,
                        replay,
                        first - replay,
                        n,
                        utc,
                    )
                    row = dict(zip(COLUMNS, values, strict=True))
                    rows.append(row)
                    if out_csv is not None:
                        append_row(out_csv, row)
        finally:
            manager.stop(block=True, timeout=60, hard_stop=True)
            model = None
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return pd.DataFrame(rows, columns=COLUMNS)


def fit_captures(table: pd.DataFrame) -> tuple[float, float, float, float]:
    """(a, b, median |residual| / excess, control) for excess = a + b x layers over pass-1
    rows (a, b >= 0); control: the median first-step excess of pass 2 (shapes already
    captured), which should be near 0."""
    from scipy.optimize import nnls

    first = table[table["pass"] == 1]
    if len(first) < 2 or first["layers"].nunique() < 2:
        raise ValueError("graph capture fit needs pass-1 rows at two or more layer counts")
    A = np.c_[np.ones(len(first)), first["layers"].to_numpy(float)]
    y = first["excess_s"].to_numpy(float)
    (a, b), _ = nnls(A, y)
    rel = float(np.median(np.abs(A @ (a, b) - y) / np.abs(y)))
    second = table[table["pass"] == 2]
    control = float(second["excess_s"].median()) if len(second) else float("nan")
    return float(a), float(b), rel, control


def fit_captures_split(table: pd.DataFrame) -> tuple[float, float, float, float]:
    """(fixed, host, host per layer, median |residual| / excess) for excess = fixed + (host +
    host_per_layer x layers) x f over pass-1 rows (each with the host factor `f` measured
    around it, non-negative least squares; a first capture of a process above 1 s, which
    pays the process's one-time set-up, is left out): a capture's part the host-speed passes
    do not move (CUDA graph instantiation and the driver's work) and its part that follows
    them (the Python forward recorded), in calibration-host time."""
    from scipy.optimize import nnls

    first = table[(table["pass"] == 1) & (table["excess_s"] < 1.0)]
    if len(first) < 4 or first["f"].nunique() < 2 or first["layers"].nunique() < 2:
        raise ValueError("the split capture fit needs pass-1 rows at two host factors and depths")
    f, L = first["f"].to_numpy(float), first["layers"].to_numpy(float)
    A = np.c_[np.ones(len(first)), f, f * L]
    y = first["excess_s"].to_numpy(float)
    coef, _ = nnls(A, y)
    rel = float(np.median(np.abs(A @ coef - y) / np.abs(y)))
    return float(coef[0]), float(coef[1]), float(coef[2]), rel
