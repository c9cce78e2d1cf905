"""Does the host probe (tools/hostprobe.py) see what a host-bound engine sees?

Runs HF generate decode on the host-fit shape (Qwen2.5-1.5B cut to 8 layers, bf16, batch 1:
host-bound, a few ms a step) for DURATION seconds with every step timestamped, while the
probe process times its slices beside it. Writes steps.csv and probe.csv to OUT_DIR and
prints, per 2 s bin, the median step and the median probe slices, and their correlation.

Usage (GPU node): python -m calibrate.device.hostprobe_check OUT_DIR [DURATION_S]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main(out_dir: Path, duration_s: float) -> None:
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import build_uncached
    from tools.hostprobe import HostProbe

    out_dir.mkdir(parents=True, exist_ok=True)
    card = load_model_card("qwen2.5-1.5b").model_copy(update={"num_hidden_layers": 8})
    model = build_uncached(card, "bfloat16", "cuda", 0, "sdpa")
    x = torch.randint(1000, card.vocab_size, (1, 512), device="cuda")
    greedy.generate(model, x, 8)  # warm-up
    torch.cuda.synchronize()
    rows = []
    with HostProbe(out_dir / "probe.csv"):
        t_end = time.perf_counter() + duration_s
        while time.perf_counter() < t_end:
            clock = step_clock()
            greedy.generate(model, x, 129, stopping_criteria=clock)
            s = np.asarray(clock.stamps)
            rows += [{"t_s": t, "step_s": d} for t, d in zip(s[2:], np.diff(s[1:]), strict=True)]
    steps = pd.DataFrame(rows)
    steps.to_csv(out_dir / "steps.csv", index=False)
    report(steps, pd.read_csv(out_dir / "probe.csv"))


def report(steps: pd.DataFrame, probe: pd.DataFrame, bin_s: float = 2.0) -> pd.DataFrame:
    """Per bin: median decode step and median probe slices; prints them and the correlation
    of their logarithms (a host that runs x times slower scales both by x)."""
    t0 = min(steps["t_s"].min(), probe["t_s"].min())
    steps = steps.assign(bin=((steps["t_s"] - t0) // bin_s) * bin_s)
    probe = probe.assign(bin=((probe["t_s"] - t0) // bin_s) * bin_s)
    joined = (
        steps.groupby("bin")["step_s"]
        .median()
        .to_frame()
        .join(probe.groupby("bin")[["python_s", "torch_s"]].median(), how="inner")
    )
    print((joined * [1e3, 1e3, 1e3]).round(3).to_string())
    logs = np.log(joined)
    for col in ("python_s", "torch_s"):
        r = np.corrcoef(logs["step_s"], logs[col])[0, 1]
        print(
            f"log step vs log {col}: r = {r:.3f}; spread step {_spread(joined['step_s'])}, "
            f"{col} {_spread(joined[col])}"
        )
    return joined


def _spread(s: pd.Series) -> str:
    return f"p90/p10 {s.quantile(0.9) / s.quantile(0.1):.2f}"


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 150.0)
