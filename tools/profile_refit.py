"""The command line the profile refit tools share (tools/refit_graph_regime.py,
refit_masked_attention.py, fit_jit_compiles.py): rewrite a shipped profile with a refit, or with
--check exit 1 when the shipped file is not what the refit gives."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from llm_energy_sim.config.paths import PROFILES_DIR


def run(refit: Callable[[], dict], description: str, name: str = "h200") -> int:
    """Parse --check, compare the shipped profile NAME with refit() and rewrite or report."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    path = PROFILES_DIR / f"{name}.json"
    text = json.dumps(refit(), indent=2) + "\n"
    stale = path.read_text() != text
    if stale and not args.check:
        path.write_text(text)
    if stale:
        print(("stale: " if args.check else "rewrote: ") + name)
    return 1 if (args.check and stale) else 0


def run_each(refit: Callable[[str], dict], description: str, names) -> int:
    """run() for each shipped profile of names, refit(name) giving its refit; 1 if any was
    stale under --check."""
    return max(run(lambda n=n: refit(n), description, name=n) for n in names)


if __name__ == "__main__":
    sys.exit("a library for the refit tools, not a command")
