"""Numeric formats: bytes per weight, the dtype activations and KV cache run in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DtypeName = Literal["float32", "bfloat16", "float16", "int8", "int4", "fp8"]
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16", "int8", "int4", "fp8")


@dataclass(frozen=True)
class DtypeInfo:
    """How a model stored in this format moves bytes.

    bitsandbytes LLM.int8 stores int8 weights plus one fp32 scale per output row; NF4 stores
    4-bit codes plus an absmax per 64-weight block (double-quantised to ~8 bits) -- the extra
    bytes are counted per weight below. Both compute in a 16-bit activation dtype.
    """

    name: str
    weight_bytes: float  # per parameter, incl. quantisation metadata
    act_dtype: str  # dtype of activations, attention and small kernels
    act_bytes: int
    kv_bytes: int


DTYPE_INFO: dict[str, DtypeInfo] = {
    "float32": DtypeInfo("float32", 4.0, "float32", 4, 4),
    "bfloat16": DtypeInfo("bfloat16", 2.0, "bfloat16", 2, 2),
    "float16": DtypeInfo("float16", 2.0, "float16", 2, 2),
    # LLM.int8: int8 codes + fp32 row scale (negligible per weight at h>=896)
    "int8": DtypeInfo("int8", 1.0, "float16", 2, 2),
    # NF4 with double quantisation: 4 bits + ~0.127 bits/param of block constants
    "int4": DtypeInfo("int4", 0.5 + 0.127 / 8, "bfloat16", 2, 2),
    # fp8 (e4m3) weights and activations in linears; attention and KV in bf16
    "fp8": DtypeInfo("fp8", 1.0, "bfloat16", 2, 2),
}


def dtype_info(name: str) -> DtypeInfo:
    return DTYPE_INFO[name]


# the profile key of bitsandbytes NF4's one-row (GEMV) regime, fitted apart from its GEMM
# regime (cost/kernels.py decides which rows take it)
NF4_GEMV = "int4_gemv"
# the profile key of float32's one-row (GEMV) regime, fitted apart from its SIMT GEMM regime
# (cost/kernels.py decides which rows take it)
FP32_GEMV = "float32_gemv"
# and of its small-row SIMT GEMM regime (2-8 rows), between the GEMV and the tiled GEMM
FP32_SMALL = "float32_small"
# a kernel fit keyed by the attention's head layout as well as the dtype: "<dtype>@<heads>/<kv
# heads>" (cost/kernels.head_shape_key); a profile without that key takes the dtype's fit
HEAD_SHAPE_SEP = "@"
