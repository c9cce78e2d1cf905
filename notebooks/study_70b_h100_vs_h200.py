"""Study: Llama-3.1-70B at 10^6 requests/day on H100 vs H200 -- the energy-optimal fleet on each.

    python notebooks/study_70b_h100_vs_h200.py            # writes docs/study_70b_h100_vs_h200.md
                                                          # and docs/img/study_70b_h100_vs_h200.png

The same search as `sim plan optimize ... --replicas auto --set hardware.gpu=h100-sxm,h200`
(qMeter case study 8.2): for every GPU x dtype x tensor-parallel degree, one replica's
saturation rate under the SLOs by bisection, ceil(rate / saturation) replicas, the fleet
checked by simulation at the target rate, ranked by energy per request (= kWh/day).

Works with whatever profiles are shipped: it reports which profile each GPU used and whether
it was measured or derived. Besides the shipped H200 profile it also derives one from the
current H100 fit with tools/derive_h200.py's method (bandwidths x the measured copy
bandwidth ratio, memory size of the H200), in a temporary file, so the H100/H200 comparison
is not confounded by an H200 profile derived from an older H100 fit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd

from llm_energy_sim.analysis.capacity import SECONDS_PER_DAY, Slo, optimize
from llm_energy_sim.config.profile import (
    GpuSpec,
    Profile,
    default_profile_name,
    load_profile,
    save_profile,
)
from llm_energy_sim.results.pngsave import pyplot, save_figure

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIO = REPO_ROOT / "scenarios" / "llama70b_tp4_fixed500ms.yaml"
PER_DAY = 1e6
SLO = Slo(ttft_p90_s=2.0, tpot_p90_s=0.1)
DTYPES = ["bfloat16", "float16", "fp8", "int8", "int4"]
TPS = [1, 2, 4, 8]
NAME = "study_70b_h100_vs_h200"


def rederived_h200(h100: Profile) -> Profile:
    """tools/derive_h200.py's derivation applied to the current H100 profile."""
    from tools.derive_h200 import H100_COPY_BW, H200_COPY_BW, H200_MEMORY_BYTES

    ratio = H200_COPY_BW / H100_COPY_BW
    kernels = {
        kc: {dt: kf.model_copy(update={"bandwidth": kf.bandwidth * ratio}) for dt, kf in by.items()}
        for kc, by in h100.kernels.items()
    }
    return h100.model_copy(
        update={
            "name": "h200-rederived",
            "description": f"H200 derived from {h100.name} now (study only)",
            "gpu": GpuSpec(
                name="NVIDIA H200",
                memory_bytes=float(H200_MEMORY_BYTES),
                power_limit_w=700.0,
                source="tools/derive_h200.py constants",
            ),
            "kernels": kernels,
            "provenance": {"kind": "derived", "from": h100.name, "built_by": __file__},
        }
    )


def profiles_used() -> list[dict]:
    """Which profile each GPU resolves to, and whether it was measured."""
    out = []
    for gpu in ("h100-sxm", "h200"):
        try:
            prof, path = load_profile(default_profile_name(gpu))
        except Exception as exc:  # no profile at all for this GPU: say so in the report
            out.append({"gpu": gpu, "profile": None, "kind": f"missing ({exc})", "path": None})
            continue
        kind = prof.provenance.get("kind", "measured")
        out.append({"gpu": gpu, "profile": prof.name, "kind": kind, "path": path})
    return out


def run(
    out_dir: Path,
    dtypes: list[str] = DTYPES,
    tps: list[int] = TPS,
    requests: int = 500,
    workers: int = 2,
) -> pd.DataFrame:
    """Run the search for every available GPU profile; write the report and the figure."""
    rate = PER_DAY / SECONDS_PER_DAY
    used = profiles_used()
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        variants: list[tuple[str, list]] = []
        for u in used:
            if u["profile"] is not None:
                variants.append((f"{u['gpu']} ({u['profile']})", [("hardware.gpu", [u["gpu"]])]))
        h100 = next((u for u in used if u["gpu"] == "h100-sxm" and u["profile"]), None)
        if h100 is not None:
            path = Path(tmp) / "h200-rederived.json"
            save_profile(rederived_h200(load_profile(h100["profile"])[0]), path)
            variants.append(
                (
                    "h200 (re-derived from current H100 fit)",
                    [("hardware.gpu", ["h200"]), ("profile", [str(path)])],
                )
            )
        for label, axes in variants:
            df = optimize(
                SCENARIO,
                rate,
                SLO,
                dtypes,
                tps,
                "auto",
                requests,
                axes,
                workers,
                max_replicas=256,
            )
            df.insert(1, "variant", label)
            frames.append(df.drop(columns=["profile"], errors="ignore"))
    table = pd.concat(frames, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "img").mkdir(exist_ok=True)
    plot(table, out_dir / "img" / f"{NAME}.png")
    (out_dir / f"{NAME}.md").write_text(report(table, used, rate, requests, dtypes, tps))
    return table


def plot(table: pd.DataFrame, png: Path) -> None:
    plt = pyplot()

    ok = table[table.status == "ok"]
    variants = list(dict.fromkeys(table.variant))
    fig, axes = plt.subplots(
        1, len(variants), figsize=(5.2 * len(variants), 4), sharey=True, squeeze=False
    )
    for ax, v in zip(axes[0], variants, strict=True):
        d = ok[ok.variant == v].pivot_table(index="tp", columns="dtype", values="kwh_per_day")
        if len(d):
            d.plot.bar(ax=ax, logy=True, rot=0)
        ax.set_title(v, fontsize=9)
        ax.set_xlabel("tensor parallel per replica (replicas: auto)")
        ax.set_ylabel("kWh/day at 1e6 requests/day")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        "Llama-3.1-70B, TGI, 1e6 requests/day, p90 TTFT <= 2 s, p90 TPOT <= 0.1 s "
        "(configurations meeting the SLOs)",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def _md(df: pd.DataFrame) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v).replace("|", "/")

    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join(
        "| " + " | ".join(cell(v) for v in r) + " |\n" for r in df.itertuples(index=False)
    )


def h200_caveat(used: list[dict]) -> str:
    """What the H200 numbers rest on: a calibration on a lent H200, or a derivation."""
    kind = next((u["kind"] for u in used if u["gpu"] == "h200"), "missing")
    if kind == "fitted":
        return (
            "- The H200 profile is calibrated (`sim calibrate` on a lent H200: kernels, idle, "
            "HF eager and CB host); its all-reduce is the one measured on the 4 x H200 node. "
            "TGI's own host overhead is an assumption (CUDA graphs: 0) on both GPUs."
        )
    return (
        "- The H200 numbers come from a derived profile, not from measurements on an H200; "
        "run `sim calibrate` on an H200 to replace it."
    )


def report(table, used, rate, requests, dtypes, tps) -> str:
    ok = table[table.status == "ok"]
    best = ok.sort_values("wh_per_request").groupby("variant", sort=False).head(1)
    cols = [
        "variant",
        "dtype",
        "tp",
        "replicas",
        "gpus",
        "wh_per_request",
        "kwh_per_day",
        "mean_power_per_gpu_w",
        "ttft_p90_s",
        "tpot_p90_s",
    ]
    best_bf16 = (
        ok[ok.dtype == "bfloat16"]
        .sort_values("wh_per_request")
        .groupby("variant", sort=False)
        .head(1)
    )
    missing_h200 = not any(u["gpu"] == "h200" and u["profile"] for u in used)
    derived = [u for u in used if u["profile"] and u["kind"] == "derived"]
    lines = [
        "# Study: Llama-3.1-70B at 10^6 requests/day, H100 vs H200",
        "",
        f"Generated by `python notebooks/{NAME}.py` on {date.today()} "
        f"(llm_energy_sim.analysis.capacity.optimize; {requests} requests per simulated run).",
        "",
        "**Question.** Serving Llama-3.1-70B-Instruct with TGI at 10^6 requests/day "
        f"({rate:.2f} requests/s, Poisson) with p90 TTFT <= {SLO.ttft_p90_s:g} s and p90 TPOT "
        f"<= {SLO.tpot_p90_s:g} s, on the paper's request lengths (prompts lognormal mean 1200, "
        "200-4000 tokens; outputs 10-300): which dtype, tensor-parallel degree and replica "
        "count use the least energy on H100 SXM and on H200, how many GPUs, how many kWh/day?",
        "",
        "**Method** (qMeter case study 8.2): for each GPU x dtype x TP "
        f"({', '.join(dtypes)} x TP {', '.join(map(str, tps))}), bisect one replica's "
        "saturation rate under the SLOs, provision ceil(rate / saturation) replicas "
        "(round-robin), simulate the whole fleet at the target rate, and rank the "
        "configurations that meet the SLOs by energy per request (total accounting: every GPU, "
        "idle included). kWh/day = Wh/request x 10^6 / 1000. The CLI equivalent:",
        "",
        "```",
        "sim plan optimize scenarios/llama70b_tp4_fixed500ms.yaml --per-day 1e6 \\",
        f"    --slo-ttft-p90 {SLO.ttft_p90_s:g} --slo-tpot-p90 {SLO.tpot_p90_s:g} "
        f"--dtypes {','.join(dtypes)} --tp {','.join(map(str, tps))} \\",
        f"    --replicas auto --set hardware.gpu=h100-sxm,h200 --requests {requests}",
        "```",
        "",
        "## Profiles used",
        "",
        _md(pd.DataFrame(used)[["gpu", "profile", "kind"]]),
    ]
    if missing_h200:
        lines += [
            "",
            "**No H200 profile is shipped**: only the H100 rows below are real "
            "predictions of a shipped profile.",
        ]
    if derived:
        lines += [
            "",
            "**No measured H200 profile exists.** "
            + ", ".join(f"`{u['profile']}`" for u in derived)
            + " is derived from the H100 measurements (tools/derive_h200.py): the same "
            "Hopper compute rates, power model, idle and host behaviour, with memory-bound "
            "rates scaled by the H200/H100 copy bandwidth measured on the lent machines "
            "(4.3/3.0 TB/s) and 141 GB of memory. Its H200-vs-H100 differences are therefore "
            "those two effects only; in particular the H200's power draw at a given "
            "utilisation is assumed equal to the H100's. The shipped derived file was also "
            "made from an earlier H100 fit (its attention and host-wait parameters differ "
            "from the current `h100-sxm.json` by more than the bandwidth scaling), so this "
            "study adds a third variant re-derived from the current H100 fit; where the two "
            "H200 variants differ, the re-derived one is the consistent comparison.",
        ]
    lines += [
        "",
        "## Best configuration per GPU",
        "",
        _md(best[cols]),
        "",
        "Best `bfloat16` configuration per GPU (no quantisation):",
        "",
        _md(best_bf16[cols]),
        "",
        f"![kWh/day by dtype and TP](img/{NAME}.png)",
        "",
        "## Reading it",
        "",
    ]
    lines += findings(table, best, best_bf16)
    if derived:
        lines += [
            "",
            "Since the derived H200 shares the H100's compute rates and power model, every "
            "difference above comes from two things: 141 GB instead of 80 GB (a 70 GB fp8 or "
            "int8 copy of the model fits one GPU with a large KV cache, so replicas need fewer "
            "GPUs, no all-reduces, and fewer GPUs idle) and ~1.4x the memory bandwidth "
            "(memory-bound decode steps finish sooner, so each replica saturates later).",
        ]
    lines += [
        "",
        "## Caveats",
        "",
        h200_caveat(used),
        "- TGI's own default limits are simulated (128 concurrent requests per replica, KV "
        "capacity from free memory): a replica whose queue would exceed 128 refuses requests "
        "(429), which counts as missing the SLO, so saturation here is often the concurrency "
        "limit rather than latency.",
        "- Traces are shortened to a few hundred requests per run; per-request energies at a "
        "fixed rate are stable to a few percent at that length, saturation rates less so "
        "(the bisection tolerance is 2%).",
        "- Energy is the GPUs' only (no CPU, memory, network or cooling), as in the paper.",
        "",
        "## Full ranked table",
        "",
        _md(
            table[
                [
                    "variant",
                    "rank",
                    "dtype",
                    "tp",
                    "replicas",
                    "gpus",
                    "status",
                    "wh_per_request",
                    "kwh_per_day",
                    "ttft_p90_s",
                    "tpot_p90_s",
                    "saturation_rps_per_replica",
                    "note",
                ]
            ]
        ),
    ]
    return "\n".join(lines) + "\n"


def findings(table: pd.DataFrame, best: pd.DataFrame, best_bf16: pd.DataFrame) -> list[str]:
    """Sentences computed from the results (so they stay true when the profiles change)."""
    out = []
    b = best.set_index("variant")
    for v, r in b.iterrows():
        out.append(
            f"- **{v}**: best is {r['dtype']} TP{r['tp']} x {r['replicas']} = "
            f"{r['gpus']} GPUs, {r['wh_per_request']:.3g} Wh/request, "
            f"**{r['kwh_per_day']:.1f} kWh/day** (mean {r['mean_power_per_gpu_w']:.0f} W "
            "per GPU)."
        )
    h100 = [v for v in b.index if v.startswith("h100")]
    h200 = [v for v in b.index if v.startswith("h200")]
    for v in h200:
        if h100:
            gain = 1 - b.loc[v, "kwh_per_day"] / b.loc[h100[0], "kwh_per_day"]
            word = "less" if gain >= 0 else "more"
            out.append(
                f"- {v} vs {h100[0]}: {abs(gain):.0%} {word} energy per day "
                f"({b.loc[v, 'gpus']} vs {b.loc[h100[0], 'gpus']} GPUs)."
            )
    misfit = table[table.status == "does not fit"]
    if len(misfit):
        fits = ", ".join(
            sorted({f"{r.variant.split()[0]} {r.dtype} TP{r.tp}" for r in misfit.itertuples()})
        )
        out.append(
            f"- Configurations that do not fit the GPU memory with room for a KV cache "
            f"(listed as infeasible): {fits}."
        )
    nofit_slo = table[table.status == "infeasible"]
    if len(nofit_slo):
        out.append(
            "- Configurations that miss the SLOs even at 1/256 of the rate per replica "
            "(per-token latency too high at any load): "
            + ", ".join(
                sorted(
                    {f"{r.variant.split()[0]} {r.dtype} TP{r.tp}" for r in nofit_slo.itertuples()}
                )
            )
            + "."
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    table = run(args.out, requests=args.requests, workers=args.workers)
    print(
        json.dumps(
            table[table.status == "ok"]
            .groupby("variant")
            .head(1)[["variant", "dtype", "tp", "replicas", "gpus", "kwh_per_day"]]
            .to_dict("records"),
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
