"""Regenerate the tables of docs/accuracy.md that `sim validate matrix` computes, from the
committed live runs: for the H200 validation matrix (measurements/live/h200-matrix) its error
table, its energy-ordering section and its 80% interval coverage; for the held-out static run
(measurements/live/h200-static-holdout) and the second, blind matrix lease
(measurements/live/h200-matrix-r) and the third, transformers CB at the Qwen2.5 head
layouts (measurements/live/h200-matrix-q) and the fourth, bitsandbytes NF4 at 4-16 rows
(measurements/live/h200-matrix-n), the same three. Each block sits between
`<!-- generated: NAME -->` and `<!-- end: NAME -->` in the document and is replaced whole;
the prose around it is not touched. Runs on any CPU in seconds.

    python tools/update_accuracy_tables.py            # rewrite docs/accuracy.md
    python tools/update_accuracy_tables.py --check    # exit 1 if a block is stale
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs/accuracy.md"
RUNS = {
    "matrix": "measurements/live/h200-matrix",
    "holdout": "measurements/live/h200-static-holdout",
    "repeat": "measurements/live/h200-matrix-r",
    "qwencb": "measurements/live/h200-matrix-q",
    "nf4": "measurements/live/h200-matrix-n",
}
ORDERING = "### Ordering by energy per request"


def validate(run: str, out: Path) -> tuple[str, str]:
    """(matrix.md, coverage.md) of `sim validate matrix RUN --out OUT`."""
    subprocess.run(
        [sys.executable, "-m", "llm_energy_sim.cli", "validate", "matrix", run, "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return (out / "matrix.md").read_text(), (out / "coverage.md").read_text()


def blocks() -> dict[str, str]:
    """Every generated block's text, by name ('<run>-table', '-ordering', '-coverage')."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in RUNS.items():
            matrix, coverage = validate(run, Path(tmp) / name)
            table, ordering = matrix.split(ORDERING, 1)
            out[f"{name}-table"] = table.strip()
            out[f"{name}-ordering"] = ordering.strip()
            out[f"{name}-coverage"] = coverage.strip()
    return out


def render(doc: str, new: dict[str, str]) -> str:
    """The document with each marked block replaced; SystemExit if a block's markers are
    missing."""
    for name, text in new.items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} [^>]*-->\n)(?:.*?\n)?(<!-- end: {re.escape(name)} -->)",
            re.S,
        )
        if not pattern.search(doc):
            raise SystemExit(f"{DOC}: no block '{name}' (<!-- generated: {name} ... -->)")
        doc = pattern.sub(lambda m, text=text: m.group(1) + text + "\n" + m.group(2), doc)
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    old = DOC.read_text()
    text = render(old, blocks())
    stale = text != old
    if stale and not args.check:
        DOC.write_text(text)
    if stale:
        print(("stale: " if args.check else "rewrote: ") + str(DOC.relative_to(ROOT)))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
