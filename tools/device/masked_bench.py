"""The masked-attention microbenchmarks (tools/device/grid_bench.py --grid masked), under the
name the h200-masked measurements were taken with.

    python tools/device/masked_bench.py --out DIR [--dtypes bfloat16,float16,float32]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tools.device.grid_bench import main

    main(["--grid", "masked", *sys.argv[1:]])
