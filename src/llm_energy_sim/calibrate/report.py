"""Tables of docs/calibration.md, computed from the committed raw tables and fitted profile.

`python -m llm_energy_sim.calibrate.report RAW_DIR PROFILE_JSON [--passes RAW_DIR ...]` prints the markdown tables (kernel fit
errors, host overhead, whole-model check, run-to-run spread, int8 vs float32 decode), writes
docs/calibration_wholemodel_check.csv and the measured-vs-fitted plots, so every number in
the document comes from data in the repository.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.calibrate.hostbench import CHECK_MODELS
from llm_energy_sim.calibrate.rawread import read_raw
from llm_energy_sim.calibrate.wholemodel import compare
from llm_energy_sim.config.profile import Profile, load_profile

PHASES = {
    "prefill": ("prefill_s", "prefill_j"),
    "decode": ("decode_s_per_token", "decode_j_per_token"),
}


def kernel_table(profile: Profile) -> str:
    rows = [
        "| class | dtype | points | time median / p90 APE | energy median / p90 APE "
        "| C (TFLOP/s) | M (TB/s) | t0 (us) | p_base / w_c / w_m (W) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kc, by in profile.kernels.items():
        for dt, f in sorted(by.items()):
            e = f.fit_error
            if e is None or not e.n_points:
                continue
            en = (
                f"{e.energy_median_ape:.1f}% / {e.energy_p90_ape:.1f}%"
                if e.energy_median_ape is not None
                else "-"
            )
            c = "-" if f.peak_flops >= 1e17 else f"{f.peak_flops / 1e12:.0f}"
            rows.append(
                f"| {kc} | {dt} | {e.n_points} | {e.time_median_ape:.1f}% / {e.time_p90_ape:.1f}% "
                f"| {en} | {c} | {f.bandwidth / 1e12:.2f} | {f.t0_s * 1e6:.1f} "
                f"| {f.p_base_w:.0f} / {f.w_compute:.0f} / {f.w_memory:.0f} |"
            )
    return "\n".join(rows)


def host_table(profile: Profile) -> str:
    rows = [
        "| entry | per step (ms) | per layer (ms) | per sequence (ms) | runs | median / p90 APE "
        "| generate() set-up (ms) | prefill serial fraction | wait power (W) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, h in profile.host.items():
        e = h.fit_error
        err = f"{e.time_median_ape:.1f}% / {e.time_p90_ape:.1f}%" if e else "-"
        rows.append(
            f"| `{k}` | {h.per_step_s * 1e3:.2f} | {h.per_layer_s * 1e3:.3f} "
            f"| {h.per_sequence_s * 1e3:.3f} | {e.n_points if e else '-'} | {err} "
            f"| {h.setup_s * 1e3:.1f} | {h.prefill_serial_fraction:.2f} "
            f"| {h.wait_w or profile.idle.host_wait_w:.0f} |"
        )
    return "\n".join(rows)


def check_frame(raw_dir: Path, profile: Profile) -> pd.DataFrame:
    wm = read_raw(raw_dir / "wholemodel.csv")
    wm = wm[wm["model"].isin(CHECK_MODELS)]  # drift repeats of host-fit shapes are no check
    return compare(wm, profile)


def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def check_table(c: pd.DataFrame) -> str:
    head = (
        "| model | dtype | runs | prefill s meas / pred | err | prefill J meas / pred | err "
        "| decode ms/token meas / pred | err | decode J/token meas / pred | err |"
    )
    rows = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in c.iterrows():
        rows.append(
            f"| {r['model']} | {r['dtype']} | {int(r.passes)} "
            f"| {r.prefill_s:.4f} / {r.pred_prefill_s:.4f} | {_pct(r.err_prefill_s)} "
            f"| {r.prefill_j:.2f} / {r.pred_prefill_j:.2f} | {_pct(r.err_prefill_j)} "
            f"| {r.decode_s_per_token * 1e3:.1f} / {r.pred_decode_s_per_token * 1e3:.1f} "
            f"| {_pct(r.err_decode_s_per_token)} "
            f"| {r.decode_j_per_token:.2f} / {r.pred_decode_j_per_token:.2f} "
            f"| {_pct(r.err_decode_j_per_token)} |"
        )
    return "\n".join(rows)


def median_errors(c: pd.DataFrame) -> dict[str, float]:
    return {
        q: float(np.median(np.abs(c[f"err_{q}"])) * 100) for cols in PHASES.values() for q in cols
    }


def order_agreement(c: pd.DataFrame, col: str, spread: pd.Series | None = None) -> dict:
    """Per model: do prediction and measurement order every pair of dtypes by energy the same
    way? With `spread` (relative run-to-run spread per row), pairs whose measured energies
    differ by less than that spread count as ties and are skipped."""
    out = {}
    for model, d in c.groupby("model"):
        agree = total = 0
        for (_, a), (_, b) in combinations(d.iterrows(), 2):
            gap = abs(a[col] / b[col] - 1.0)
            if spread is not None and gap <= max(spread[a.name], spread[b.name]):
                continue
            total += 1
            agree += (a[col] < b[col]) == (a[f"pred_{col}"] < b[f"pred_{col}"])
        out[model] = (agree, total)
    return out


def run_spread(passes: pd.DataFrame, col: str) -> pd.DataFrame:
    """(max - min) / min over the passes (check_passes) of each configuration."""
    g = passes.groupby(["model", "dtype"])[col]
    return (g.max() / g.min() - 1.0).rename(f"spread_{col}")


def check_passes(raw_dirs: list[Path]) -> pd.DataFrame:
    """Every successful pass of the check configurations in raw_dirs, one row each, labelled
    `pass_id` = raw dir name : tag (several raw dirs of the same GPU kind)."""
    frames = []
    for d in raw_dirs:
        wm = read_raw(d / "wholemodel.csv")
        wm = wm[(wm["error"].isna()) & wm["model"].isin(CHECK_MODELS)]
        frames.append(wm.assign(pass_id=[f"{d.name}:{'' if pd.isna(t) else t}" for t in wm["tag"]]))
    return pd.concat(frames, ignore_index=True)


def order_reproducibility(passes: pd.DataFrame, col: str) -> pd.DataFrame:
    """Per model and pair of dtypes measured together in two or more passes: the measured
    energy ratio (second / first dtype) in each pass, and whether the pair's order is the same
    in all of them. A pair whose order flips between passes of the same configuration has no
    measured order that a prediction could reproduce."""
    rows = []
    for model, d in passes.groupby("model"):
        piv = d.pivot_table(index="pass_id", columns="dtype", values=col)
        for a, b in combinations(sorted(piv.columns), 2):
            ratio = (piv[b] / piv[a]).dropna()
            if len(ratio) < 2:
                continue
            rows.append(
                {
                    "model": model,
                    "first": a,
                    "second": b,
                    "passes": len(ratio),
                    "ratios": " ".join(f"{x:.3f}" for x in ratio),
                    "reproducible": bool((ratio > 1).all() or (ratio < 1).all()),
                }
            )
    return pd.DataFrame(rows)


def agreement_on_reproducible(c: pd.DataFrame, repro: pd.DataFrame, col: str) -> tuple[int, int]:
    """(agree, pairs) over the pairs whose measured order is the same in every pass: does the
    prediction order them as the passes' mean does?"""
    agree = total = 0
    by = c.set_index(["model", "dtype"])
    for _, r in repro[repro["reproducible"]].iterrows():
        a, b = by.loc[(r["model"], r["first"])], by.loc[(r["model"], r["second"])]
        total += 1
        agree += int((a[col] < b[col]) == (a[f"pred_{col}"] < b[f"pred_{col}"]))
    return agree, total


def main(
    raw_dir: Path,
    profile_path: str,
    docs: Path = Path("docs"),
    spread_dirs: tuple[Path, ...] = (),
    csv_name: str = "calibration_wholemodel_check.csv",
) -> None:
    """Tables, whole-model check and plots of a profile against its raw tables. The run-to-run
    spread and the order reproducibility come from the passes of raw_dir and spread_dirs (the
    H100 check: measurements/calibration/h100-v2 holds one pass of each configuration,
    measurements/calibration/h100 two more)."""
    from llm_energy_sim.calibrate.plots import plot_fits

    prof, _ = load_profile(profile_path)
    print("## kernel fits\n\n" + kernel_table(prof) + "\n")
    print("## host overhead\n\n" + host_table(prof) + "\n")
    c = check_frame(raw_dir, prof)
    spread_passes = check_passes(list(spread_dirs) or [raw_dir])
    for cols in PHASES.values():
        for col in cols:
            sp = run_spread(spread_passes, col)
            c = c.merge(sp.reset_index(), on=["model", "dtype"], how="left")
    c.to_csv(docs / csv_name, index=False, float_format="%.6g")
    print("## whole-model check\n\n" + check_table(c) + "\n")
    print("median |error| %:", {k: round(v, 1) for k, v in median_errors(c).items()})
    passes = check_passes([raw_dir, *spread_dirs])
    for phase, (ts, js) in PHASES.items():
        sp = c[f"spread_{js}"]
        print(
            f"run-to-run spread {phase}: time median {c[f'spread_{ts}'].median() * 100:.1f}%,"
            f" energy median {sp.median() * 100:.1f}%, max {sp.max() * 100:.0f}%"
        )
        print(f"dtype order by {phase} energy, all pairs (agree, pairs):", order_agreement(c, js))
        print(
            f"dtype order by {phase} energy, pairs apart by more than the run-to-run spread:",
            order_agreement(c, js, sp),
        )
        repro = order_reproducibility(passes, js)
        if len(repro):
            print(f"\nmeasured {phase} energy order over the passes ({passes.pass_id.nunique()}):")
            print(repro.to_markdown(index=False))
            print(
                f"pairs with the same measured order in every pass, ordered the same by the "
                f"prediction (agree, pairs): {agreement_on_reproducible(c, repro, js)}\n"
            )
    meas = c.pivot(index="model", columns="dtype", values="decode_j_per_token")
    pred = c.pivot(index="model", columns="dtype", values="pred_decode_j_per_token")
    if {"int8", "float32"} <= set(meas.columns):
        print(
            "\nint8 / float32 decode energy per token, measured:",
            (meas.int8 / meas.float32).round(2).to_dict(),
        )
        print(
            "int8 / float32 decode energy per token, predicted:",
            (pred.int8 / pred.float32).round(2).to_dict(),
        )
    print("\nmeasured decode J/token\n" + meas.round(2).to_markdown())
    print(
        "\nmeasured prefill J\n"
        + c.pivot(index="model", columns="dtype", values="prefill_j").round(1).to_markdown()
    )
    if (raw_dir / "microbench.csv").exists():
        raw = read_raw(raw_dir / "microbench.csv")
        for p in plot_fits(raw, prof, docs / "img"):
            print("plot:", p)
