"""Save matplotlib figures as compact PNGs.

Plots are committed beside every validation run (docs/validation/), and the whole repository
travels to the lent GPU machine under a 64 MiB limit; matplotlib's RGBA PNGs of line plots
shrink by about 60% as 256-colour palette images with no visible change. Pillow comes with
matplotlib, so this adds no dependency.
"""

from __future__ import annotations

from pathlib import Path


def compact_png(path: Path) -> None:
    """Rewrite a PNG in place as an optimised 256-colour palette image."""
    from PIL import Image

    with Image.open(path) as im:
        q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    q.save(path, "PNG", optimize=True)


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """fig.savefig, then compact_png."""
    fig.savefig(path, dpi=dpi)
    compact_png(path)
    return path
