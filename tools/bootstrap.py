"""Build the bootstrap H100 SXM profile from measured facts (docs/cost-model.md) and datasheets.

This profile exists only until a fitted one from `sim calibrate` is shipped; every number
below says where it comes from. Run `python -m tools.bootstrap` to regenerate the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm_energy_sim.config.profile import (
    GpuSpec,
    HostOverhead,
    IdlePower,
    Interconnect,
    KernelFit,
    Profile,
    save_profile,
)

FACTS = "docs/cost-model.md 'Measured facts the bootstrap profile and the physics rest on'"
POWER_FACTS = "its power rows"

# --- measured on an H100 SXM, 2026-11-22 (docs/cost-model.md) ---
BF16_GEMM_FLOPS = 680e12  # bf16 GEMM 8192^3, 697 W
BF16_GEMM_W = 697.0
FP32_GEMM_FLOPS = 51.6e12  # no TF32, 679 W
FP32_GEMM_W = 679.0
GEMV_BW = 2.8e12  # 512 MiB bf16 weight, batch 1, 486 W
GEMV_W = 486.0
COPY_BW = 3.0e12  # device-to-device copy (read+write), 394 W
COPY_W = 394.0
ACTIVE_IDLE_W = 125.0  # after load, held for seconds
SETTLED_IDLE_W = 118.0  # about 30 s after load
DEEP_IDLE_W = 71.5
LIN_FP16_1TOK_S = 43e-6  # bitsandbytes probe, linear 4096x14336, 1 token
LIN_INT8_1TOK_S = 193e-6
LIN_NF4_1TOK_S = 78e-6
EAGER_DECODE_S_PER_TOKEN = 7.37 / 128  # Llama-3.1-8B shape, bf16, HF eager, 163 W
EAGER_DECODE_W = 163.0
LLAMA8B_LAYERS = 32
LLAMA8B_BF16_WEIGHT_BYTES = 16.06e9  # 8.03e9 params x 2 bytes (model card)
DUTY_10MS_W = 528.0  # 10 ms on / 10 ms off bf16 GEMM
DUTY_100MS_W = 485.0
GEMM_BACK_TO_BACK_W = 693.0

# --- datasheets ---
H100_SXM_DATASHEET = "NVIDIA H100 Tensor Core GPU datasheet (SXM5): 80 GB HBM3, 3.35 TB/s, 989 TFLOP/s bf16 dense, 1979 TFLOP/s fp8 dense, NVLink 900 GB/s, TDP 700 W"
FP8_DENSE_FLOPS_DATASHEET = 1979e12
BF16_DENSE_FLOPS_DATASHEET = 989e12


def _t0_from_one_token_linear(seconds: float, weight_bytes_per_param: float) -> float:
    """Fixed cost of a 1-token linear beyond streaming its 4096x14336 weight at GEMV bandwidth."""
    stream = 4096 * 14336 * weight_bytes_per_param / GEMV_BW
    return max(seconds - stream, 0.0)


def fit_standby(p_idle: float, p_busy: float) -> tuple[float, float]:
    """Standby fraction and time constant that reproduce both measured GEMM duty cycles.

    A gap of length g after work at p_busy averages p_idle + f*(p_busy-p_idle)*(tau/g)*(1-e^{-g/tau}).
    """
    import numpy as np
    from scipy.optimize import brentq

    def gap_mean(duty_w: float) -> float:  # 50% duty: mean = (busy + gap)/2
        return 2 * duty_w - p_busy

    def shape(g: float, tau: float) -> float:
        return tau / g * (1 - np.exp(-g / tau))

    r10 = (gap_mean(DUTY_10MS_W) - p_idle) / (p_busy - p_idle)
    r100 = (gap_mean(DUTY_100MS_W) - p_idle) / (p_busy - p_idle)
    tau = brentq(lambda t: shape(0.010, t) / shape(0.100, t) - r10 / r100, 1e-3, 10.0)
    return float(r10 / shape(0.010, tau)), float(tau)


MEASURED_INTERCONNECT = (
    Path(__file__).resolve().parents[1]
    / "measurements"
    / "calibration"
    / "interconnect-h200x4.json"
)


def measured_interconnect() -> dict[str, Interconnect]:
    """NCCL all-reduce fits measured on the lent 4 x H200 node (NVLink 4, NV18, the same fabric
    as an H100 SXM HGX board); 8 GPUs reuse the 4-GPU fit until measured."""
    data = json.loads(MEASURED_INTERCONNECT.read_text())
    out = {k: Interconnect(**v) for k, v in data.items()}
    if "4" in out and "8" not in out:
        out["8"] = out["4"].model_copy(
            update={"source": out["4"].source + "; 8 GPUs: the 4-GPU fit reused (not measured)"}
        )
    return out


def build() -> Profile:
    base_w = ACTIVE_IDLE_W
    w_mem = GEMV_W - base_w
    w_comp_bf16 = BF16_GEMM_W - base_w
    t0_lin = _t0_from_one_token_linear(LIN_FP16_1TOK_S, 2.0)
    t0_int8 = _t0_from_one_token_linear(LIN_INT8_1TOK_S, 1.0)
    t0_nf4 = _t0_from_one_token_linear(LIN_NF4_1TOK_S, 0.5)
    src_lin = (
        f"{FACTS}: peak = bf16 GEMM 8192^3 680 TFLOP/s at 697 W; bandwidth = GEMV 2.8 TB/s at "
        f"486 W; t0 = fp16 1-token linear 4096x14336 (43 us) minus its weight stream; p_base = "
        f"active idle 125 W"
    )

    def lin(peak: float, t0: float, w_c: float, note: str) -> KernelFit:
        return KernelFit(
            peak_flops=peak,
            bandwidth=GEMV_BW,
            t0_s=t0,
            p_base_w=base_w,
            w_compute=w_c,
            w_memory=w_mem,
            source=f"{src_lin}; {note}",
        )

    linear = {
        "bfloat16": lin(BF16_GEMM_FLOPS, t0_lin, w_comp_bf16, "measured"),
        "float16": lin(
            BF16_GEMM_FLOPS, t0_lin, w_comp_bf16, "assumption: fp16 = bf16 tensor-core rate"
        ),
        "float32": lin(
            FP32_GEMM_FLOPS,
            t0_lin,
            FP32_GEMM_W - base_w,
            "peak/power: fp32 GEMM 51.6 TFLOP/s at 679 W (measured)",
        ),
        "int8": lin(
            BF16_GEMM_FLOPS,
            t0_int8,
            w_comp_bf16,
            "t0 from int8 1-token linear 193 us (measured); peak: assumption = bf16",
        ),
        "int4": lin(
            BF16_GEMM_FLOPS,
            t0_nf4,
            w_comp_bf16,
            "t0 from nf4 1-token linear 78 us (measured); peak: assumption = bf16",
        ),
        "fp8": lin(
            FP8_DENSE_FLOPS_DATASHEET * BF16_GEMM_FLOPS / BF16_DENSE_FLOPS_DATASHEET,
            t0_lin,
            w_comp_bf16,
            "peak: datasheet fp8 dense 1979 TFLOP/s x measured bf16 efficiency 680/989 (assumption)",
        ),
    }
    attn_src = f"assumption until calibrated: attention runs at the measured bf16 GEMM rate / GEMV bandwidth ({FACTS})"
    attn = {
        "bfloat16": KernelFit(
            peak_flops=BF16_GEMM_FLOPS,
            bandwidth=GEMV_BW,
            t0_s=t0_lin,
            p_base_w=base_w,
            w_compute=w_comp_bf16,
            w_memory=w_mem,
            source=attn_src,
        ),
        "float32": KernelFit(
            peak_flops=FP32_GEMM_FLOPS,
            bandwidth=GEMV_BW,
            t0_s=t0_lin,
            p_base_w=base_w,
            w_compute=FP32_GEMM_W - base_w,
            w_memory=w_mem,
            source=attn_src + "; fp32 rate 51.6 TFLOP/s",
        ),
    }
    elem = {
        "bfloat16": KernelFit(
            peak_flops=BF16_GEMM_FLOPS,
            bandwidth=COPY_BW,
            t0_s=t0_lin,
            p_base_w=base_w,
            w_compute=0.0,
            w_memory=COPY_W - base_w,
            source=f"{FACTS}: device-to-device copy 3.0 TB/s at 394 W; t0 as linear (assumption)",
        ),
    }
    busy = LLAMA8B_BF16_WEIGHT_BYTES / GEMV_BW
    wait = EAGER_DECODE_S_PER_TOKEN - busy
    host_wait_w = (EAGER_DECODE_W * EAGER_DECODE_S_PER_TOKEN - GEMV_W * busy) / wait
    eager = HostOverhead(
        per_step_s=0.0,
        per_layer_s=EAGER_DECODE_S_PER_TOKEN / LLAMA8B_LAYERS,
        per_sequence_s=0.0,
        source=f"{FACTS}: Llama-3.1-8B HF eager generate 128 tokens in 7.37 s (57.6 ms/token) / 32 layers",
    )
    standby_fraction, standby_tau = fit_standby(ACTIVE_IDLE_W, GEMM_BACK_TO_BACK_W)
    return Profile(
        name="h100-sxm-bootstrap",
        description="Bootstrap H100 SXM profile from the measured facts in docs/cost-model.md and the datasheet; replaced by a fitted profile once `sim calibrate` has run.",
        gpu=GpuSpec(
            name="NVIDIA H100 80GB HBM3",
            memory_bytes=80e9,
            power_limit_w=700.0,
            source=H100_SXM_DATASHEET,
        ),
        provenance={"kind": "bootstrap", "built_by": "tools/bootstrap.py", "facts": FACTS},
        kernels={"linear": linear, "attn_prefill": attn, "attn_decode": attn, "elementwise": elem},
        host={
            "hf_eager": eager,
            "transformers_cb": eager.model_copy(
                update={
                    "source": "assumption: eager transformers CB has the per-layer host cost of HF eager generate; "
                    + eager.source
                }
            ),
            "tgi": HostOverhead(
                per_step_s=0.0,
                per_layer_s=0.0,
                per_sequence_s=0.0,
                source="assumption: TGI decodes with CUDA graphs so the host is never the bottleneck; not measurable here (TGI cannot be installed on the lent GPU)",
            ),
        },
        idle=IdlePower(
            deep_idle_w=DEEP_IDLE_W,
            active_idle_w=ACTIVE_IDLE_W,
            host_wait_w=host_wait_w,
            standby_fraction=standby_fraction,
            standby_tau_s=standby_tau,
            deep_decay_tau_s=214.0,
            source=(
                f"{FACTS} and {POWER_FACTS}: deep idle 71.5 W; active idle 125 W; host_wait from "
                f"eager decode 163 W at 57.6 ms/token with the weight stream at 486 W; standby "
                f"fraction and tau fitted (fit_standby) to the 10 ms/10 ms (528 W) and 100 ms/100 ms "
                f"(485 W) GEMM duty cycles; deep decay tau 214 s from 125 W -> 118 W in 30 s"
            ),
        ),
        interconnect=measured_interconnect(),
    )


def main() -> None:
    from llm_energy_sim.config.paths import PROFILES_DIR

    out = PROFILES_DIR / "h100-sxm-bootstrap.json"
    save_profile(build(), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
