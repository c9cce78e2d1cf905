"""Attention shape misses on models outside the host-fit grid, on a lent GPU (diagnostic).

Runs calibrate/shapemiss.py's fresh-vs-cached measurement (bf16, both engines) on the cards
named on the command line, each optionally cut to N layers (`name:N`), into OUT/shapemiss-
check.csv: the validation model as a held-out check of the fitted miss, and wider attention
geometries (more query / KV heads than the host-fit Qwen shapes) to see what a miss depends on.

    python3 calibrate/device/shapemiss_check.py OUT llama-3.1-8b mistral-7b:8 qwen2.5-14b:8
"""

from __future__ import annotations

import sys
from pathlib import Path

from calibrate.meter import GpuMeter
from calibrate.shapemiss import run_shapemiss
from sim.modelcard import load_model_card


def main(out: str, *names: str) -> None:
    meter = GpuMeter([0])
    for spec in names:
        name, _, layers = spec.partition(":")
        card = load_model_card(name)
        if layers:
            card = card.model_copy(update={"num_hidden_layers": int(layers)})
        run_shapemiss(Path(out) / "shapemiss-check.csv", meter, ("bfloat16",), card=card)


if __name__ == "__main__":
    main(*sys.argv[1:])
