"""matplotlib figures: pyplot without a display, saved as compact PNGs.

matplotlib's RGBA PNGs of line plots shrink by about 60% as 256-colour palette images with
no visible change, which keeps results directories (and a repository that carries some) small. Pillow comes with
matplotlib, so this adds no dependency.
"""

from __future__ import annotations

import io
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on CI or GPU machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """fig.savefig, rendered once in memory, written as an optimised 256-colour palette PNG."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    with Image.open(buf) as im:
        q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    q.save(path, "PNG", optimize=True)
    return path
