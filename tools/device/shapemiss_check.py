"""Attention shape misses on models outside the host-fit grid, on a lent GPU (diagnostic).

Runs calibrate/shapemiss.py's fresh-vs-cached measurement (bf16, both engines) on the cards
named on the command line, each optionally cut to N layers (`name:N`), into OUT/shapemiss-
check.csv: the validation model as a held-out check of the fitted miss, and wider attention
geometries (more query / KV heads than the host-fit Qwen shapes) to see what a miss depends on.

    python3 tools/device/shapemiss_check.py OUT llama-3.1-8b mistral-7b:8 qwen2.5-14b:8

`--cb-batch B` (first argument after OUT): CB only, B requests per step instead of
shapemiss.py's 4 (does a miss grow with the packed shape?).
"""

from __future__ import annotations

import sys
from pathlib import Path

from llm_energy_sim.calibrate.rawtable import append_row
from llm_energy_sim.calibrate.shapemiss import FIELDS, measure_engine, row_key, run_shapemiss
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.meter.monitor import EnergyMonitor


def main(out: str, *names: str) -> None:
    monitor = EnergyMonitor([0])
    cb_batch = None
    if names and names[0] == "--cb-batch":
        cb_batch, names = int(names[1]), names[2:]
    for spec in names:
        name, _, layers = spec.partition(":")
        card = load_model_card(name)
        if layers:
            card = card.model_copy(update={"num_hidden_layers": int(layers)})
        if cb_batch is None:
            run_shapemiss(Path(out) / "shapemiss-check.csv", monitor, ("bfloat16",), card=card)
            continue
        row = measure_engine("transformers_cb", card, "bfloat16", monitor, cb_batch=cb_batch)
        key = row_key("transformers_cb", card.name, card.num_hidden_layers, "bfloat16", cb_batch)
        append_row(
            Path(out) / "shapemiss-check.csv",
            {"key": key, **{k: row.get(k, "") for k in FIELDS}, "error": ""},
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
