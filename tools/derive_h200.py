"""Derive an H200 profile from the measured H100 one, until `sim calibrate` runs on an H200.

The H200 is the H100's Hopper die (same SMs and tensor-core rates, same 700 W limit) with
HBM3e. Memory-bound rates scale by the ratio of device-to-device copy bandwidth measured on
this workplace's machines (device tool KINDS.md: H200 ~4.3 TB/s, H100 ~3.0 TB/s); memory
size is nvidia-smi's 143771 MiB (KINDS.md). Idle and host behaviour are taken from the H100
as an assumption, and every changed group says so in its source.
"""

from __future__ import annotations

from pathlib import Path

from llm_energy_sim.config.profile import GpuSpec, load_profile, save_profile

H200_COPY_BW, H100_COPY_BW = 4.3e12, 3.0e12
H200_MEMORY_BYTES = 143771 * 2**20


def derive() -> None:
    h100, _ = load_profile("h100-sxm")
    ratio = H200_COPY_BW / H100_COPY_BW
    kernels = {
        kc: {
            dt: kf.model_copy(
                update={
                    "bandwidth": kf.bandwidth * ratio,
                    "source": f"derived: H100 fit x {ratio:.3f} (copy bandwidth H200/H100 measured here) on bandwidth; {kf.source}",
                }
            )
            for dt, kf in by.items()
        }
        for kc, by in h100.kernels.items()
    }
    prof = h100.model_copy(
        update={
            "name": "h200-derived",
            "description": "H200 derived from the measured H100 profile (bandwidths scaled by measured copy bandwidth); not calibrated on an H200.",
            "gpu": GpuSpec(
                name="NVIDIA H200",
                memory_bytes=float(H200_MEMORY_BYTES),
                power_limit_w=700.0,
                source="memory: nvidia-smi 143771 MiB (device KINDS.md); 700 W: H200 SXM datasheet TDP",
            ),
            "kernels": kernels,
            "idle": h100.idle.model_copy(
                update={"source": "assumption: H100's measured idle/standby; " + h100.idle.source}
            ),
            "provenance": {
                "kind": "derived",
                "from": "h100-sxm",
                "built_by": "tools/derive_h200.py",
            },
        }
    )
    out = Path(__file__).parent / "profiles" / "h200-derived.json"
    save_profile(prof, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    derive()
