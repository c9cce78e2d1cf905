"""Fit the masked-attention compile costs of the shipped h200 profile (hardware.kernel_cache:
cold) from measurements/calibration/h200-jitprobe (tools/device/jit_probe.py): per activation
dtype, the host seconds a decode step and a prefill add when their masked attention needs a
kernel variant (cost/costmodel.compile_key) that the machine's CUDA JIT cache lacks.

From each model's `cold` process (an empty CUDA_CACHE_PATH), its first padded batch:

* decode: the steps at the first key length of each alignment class (cost/costmodel.
  align_class), each minus the median of the batch's other decode steps (which pay the same
  per-length plan miss), median over them;
* prefill: that batch's prefill minus the prefill of the next padded batch (new lengths, the
  same class: a plan miss but no compile);

each divided by the host factor measured in the same process (its host-speed pass), to put it
in calibration-host time as every host term is. bfloat16 from Llama-3.1-8B, float16 the median
of Qwen2.5-7B LLM.int8 and Mistral-7B fp16. Written into the HF generate entries (hf_eager,
hf_eager:int8, hf_eager:int4); every other field is kept.

    python tools/fit_jit_compiles.py            # rewrite the shipped profile
    python tools/fit_jit_compiles.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.calibrate.hostspeed import host_time_factor
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import align_class

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.profile_refit import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "measurements/calibration/h200-jitprobe"
ENTRIES = ("hf_eager", "hf_eager:int8", "hf_eager:int4")
MARK = "; masked-attention compiles"


def case_costs(steps: pd.DataFrame, case: str, factor: float) -> tuple[float, float, list[int]]:
    """(decode compile s, prefill compile s, the compiling steps) of one case's cold process,
    in calibration-host time."""
    g = steps[(steps["case"] == case) & (steps["process"] == "cold")]
    first = g[g["run"] == "padded-A"].sort_values("step")
    longest = int(first["longest"].iloc[0])
    dec = first[first["step"] > 0]
    classes: set[int] = set()
    compiling = []
    for s in dec["step"].astype(int):
        c = align_class(longest + s)
        if c not in classes:
            compiling.append(s)
            classes.add(c)
    is_new = dec["step"].isin(compiling)
    base = float(dec.loc[~is_new, "seconds"].median())
    decode = float((dec.loc[is_new, "seconds"] - base).median()) / factor
    nxt = g[(g["run"] == "padded-B") & (g["step"] == 0)]["seconds"].iloc[0]
    prefill = float(first["seconds"].iloc[0] - nxt) / factor
    return decode, prefill, compiling


def fit(profile) -> tuple[dict, dict, str]:
    steps = pd.read_csv(RAW / "steps.csv.gz")
    passes = pd.read_csv(RAW / "hostspeed.csv.gz")
    factors = host_time_factor(passes, profile)
    by_dtype: dict[str, list[tuple[float, float]]] = {}
    notes = []
    for case in steps["case"].drop_duplicates():
        factor = float(factors.loc[factors["tag"] == f"{case}|cold", "host_time_factor"].iloc[0])
        d, p, compiling = case_costs(steps, case, factor)
        act = dtype_info(case.split(":")[1]).act_dtype
        by_dtype.setdefault(act, []).append((d, p))
        notes.append(
            f"{case} decode {d:.3f} s (steps {compiling}), prefill {p:.3f} s at factor {factor:.2f}"
        )
    decode = {a: float(np.median([d for d, _ in v])) for a, v in by_dtype.items()}
    prefill = {a: float(np.median([p for _, p in v])) for a, v in by_dtype.items()}
    note = (
        f"{MARK} on a cold CUDA JIT cache (hardware.kernel_cache: cold), in calibration-host "
        f"time: {'; '.join(notes)}; per activation dtype the median; raw: {RAW.name}/steps.csv.gz"
        ", hostspeed.csv.gz (tools/device/jit_probe.py, 2026-12-02T19:42Z; "
        "tools/fit_jit_compiles.py)"
    )
    return decode, prefill, note


def refit(name: str = "h200") -> dict:
    prof, path = load_profile(name)
    decode, prefill, note = fit(prof)
    data = json.loads(Path(path).read_text())
    for key in ENTRIES:
        entry = data["host"][key]
        entry["jit_masked_decode_s"] = decode
        entry["jit_masked_prefill_s"] = prefill
        entry["source"] = entry["source"].split(MARK)[0] + note
    return data


def main() -> int:
    return run(refit, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
