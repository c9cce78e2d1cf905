"""Held-out whole-model check: HF generate measurements vs what the fitted profile predicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import Profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork


def predict_row(
    card_name: str, dtype: str, batch: int, prompt: int, new_tokens: int, profile: Profile
) -> dict:
    """Prefill = one step over the prompt(s); decode = mean step as the context grows."""
    cm = CostModel(load_model_card(card_name), dtype, profile, engine="hf_eager")
    pre = cm.step_cost(StepWork(prefill=tuple((prompt, 0) for _ in range(batch))))
    steps = [
        cm.step_cost(StepWork(n_decode=batch, decode_ctx_sum=batch * (prompt + j)))
        for j in range(1, new_tokens + 1)
    ]
    return {
        "pred_prefill_s": pre.wall_s,
        "pred_prefill_j": pre.energy_j,
        "pred_decode_s_per_token": float(np.mean([s.wall_s for s in steps])),
        "pred_decode_j_per_token": float(np.mean([s.energy_j for s in steps])),
    }


def compare(measured: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Measured runs (averaged over their passes) beside the prediction, with signed errors."""
    from llm_energy_sim.calibrate.fit import host_runs

    m = host_runs(measured)
    preds = [
        predict_row(
            r["model"], r["dtype"], int(r["batch"]), int(r["prompt"]), int(r["new_tokens"]), profile
        )
        for _, r in m.iterrows()
    ]
    out = pd.concat([m.reset_index(drop=True), pd.DataFrame(preds)], axis=1)
    for q in ("prefill_s", "prefill_j", "decode_s_per_token", "decode_j_per_token"):
        out[f"err_{q}"] = out[f"pred_{q}"] / out[q].astype(float) - 1.0
    return out


def dtype_order_agreement(cmp: pd.DataFrame, phase_col: str) -> dict[str, bool]:
    """Per model: is the ranking of dtypes by energy the same in prediction and measurement?"""
    out = {}
    for model, d in cmp.groupby("model"):
        meas = list(d.sort_values(phase_col)["dtype"])
        pred = list(d.sort_values(f"pred_{phase_col}")["dtype"])
        out[model] = meas == pred
    return out
