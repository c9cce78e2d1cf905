"""How much of a kernel's dynamic power its data carries: transformers CB's padded KV read.

With CUDA graphs transformers CB reads KV padded to a multiple of 16384 rows and points every
padding row at one zeroed trash row of the cache (transformers 5.17 continuous_batching/
cache.py read_trash_index; input_outputs.py fills the read index with it), so at light load
most of what `paged|sdpa` gathers, expands and attends over is zeros. The time does not
change; the power does, as switching a zero costs less than switching random bits.
tools/device/trash_pad_probe.py measured one layer's K/V copies and masked SDPA at real-row
shares 1, 1/2, 1/4 and 1/16 (pad.csv). Per kernel class the fit is one number, the share z of
the dynamic power (above the class's fitted base) that the data carries:

    P(real) = p_base + (P(1) - p_base) x (1 - z x (1 - real)),

least squares over every (layout, query count) group's rows, each group scaled by its own
measured P(1). The simulator charges it as KernelFit.zero_share with KernelGroup.zeros = the
padding share of the read (cost/costmodel.py group_cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the probe's part of a layer -> the graph class whose fit takes the share
PART_CLASS = {"kv_copy": "attn_kv_copy_graph", "masked_sdpa": "attn_masked_sdpa_graph"}


@dataclass(frozen=True)
class ZeroShare:
    share: float  # z
    points: int  # rows with real < 1 used
    median_error: float  # |predicted / measured power - 1|, in sample


def fit_zero_share(table: pd.DataFrame, part: str, p_base_w: float) -> ZeroShare:
    """z of one part (see the module docstring), clipped to [0, 1]."""
    rows = table[table["part"] == part]
    xs, ys, full_dyn = [], [], []
    for _, g in rows.groupby(["heads", "kv_heads", "q"]):
        full = g[g["real"] == 1.0]
        if full.empty:
            continue
        dyn1 = float(full["power_w"].mean()) - p_base_w
        if dyn1 <= 0:
            continue
        part_rows = g[g["real"] < 1.0]
        xs += list(1.0 - part_rows["real"].to_numpy(float))
        ys += list(1.0 - (part_rows["power_w"].to_numpy(float) - p_base_w) / dyn1)
        full_dyn += [dyn1] * len(part_rows)
    if not xs:
        raise ValueError(f"{part}: no rows at a real share below 1 with a full-share row")
    x, y = np.array(xs), np.array(ys)
    z = float(np.clip((x @ y) / (x @ x), 0.0, 1.0))
    d1 = np.array(full_dyn)
    measured = p_base_w + d1 * (1.0 - y)
    predicted = p_base_w + d1 * (1.0 - z * x)
    err = float(np.median(np.abs(predicted / measured - 1.0)))
    return ZeroShare(z, len(x), err)
