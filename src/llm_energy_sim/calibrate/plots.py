"""Measured-vs-fitted plots of each kernel class (docs/calibration.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.fit import kernel_regimes, predict_kernel
from llm_energy_sim.config.profile import Profile
from llm_energy_sim.results.pngsave import pyplot, save_figure


def _scatter(axes, dd: pd.DataFrame, profile: Profile, kc: str, key: str) -> None:
    F, B = dd.flops.to_numpy(float), dd.bytes.to_numpy(float)
    t, e = predict_kernel(profile.kernel(kc, key), F, B, profile.gpu.power_limit_w)
    axes[0].scatter(dd.seconds, t, s=12, label=key)
    ok = dd.energy_j.notna()
    axes[1].scatter(dd.energy_j[ok], e[ok.to_numpy()], s=12, label=key)


def plot_fits(raw: pd.DataFrame, profile: Profile, out_dir: Path) -> list[Path]:
    plt = pyplot()

    out_dir.mkdir(parents=True, exist_ok=True)
    raw = raw[pd.to_numeric(raw["seconds"], errors="coerce") > 0]
    paths = []
    for kc, d in raw.groupby("kclass"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for dt, d_dt in d.groupby("dtype"):
            for key, dd in kernel_regimes(kc, dt, d_dt):  # NF4: one-row GEMV apart
                if len(dd):
                    _scatter(axes, dd, profile, kc, key)
        for ax, what in zip(axes, ("time per call (s)", "energy per call (J)"), strict=True):
            lo, hi = ax.get_xlim()
            ax.plot([1e-7, 1e3], [1e-7, 1e3], color="gray", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_xlabel(f"measured {what}")
            ax.set_ylabel(f"fitted {what}")
            ax.legend(fontsize=7)
        fig.suptitle(
            f"{kc}: measured vs fitted (H100 SXM, {profile.provenance.get('measured_utc', '')})"
        )
        fig.tight_layout()
        paths.append(out_dir / f"calib_{kc}.png")
        save_figure(fig, paths[-1])
        plt.close(fig)
    return paths
