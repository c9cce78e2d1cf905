"""PNG plots of a results directory: power timeline, batch/queue, per-request energy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llm_energy_sim.results.pngsave import pyplot, save_figure
from llm_energy_sim.results.schema import RequestStatus


def step_bins(ax, starts, values, bin_s: float, label: str) -> None:
    """Per-bin values (e.g. medians over 10 s) as a step line, each bin drawn to its end,
    the last one included."""
    starts, values = list(starts), list(values)
    if starts:
        x = [*starts, starts[-1] + bin_s]
        ax.step(x, [*values, values[-1]], where="post", color="k", label=label)


def plot_results(
    out_dir: Path, summary: dict, requests: pd.DataFrame, timeline: pd.DataFrame
) -> list[Path]:
    plt = pyplot()
    paths: list[Path] = []
    t = timeline["t_start_s"]
    title = f"{summary['scenario']} ({summary['model']} {summary['dtype']}, {summary['server']})"

    fig, ax = plt.subplots(figsize=(10, 4))
    for c in [c for c in timeline.columns if c.startswith("power_w_")][:8]:
        ax.plot(t, timeline[c], lw=0.8, label=c.replace("power_w_", ""))
    floor_j = summary["energy"]["deep_idle_floor_j"]  # None: unknown (a live run, no meter)
    if floor_j is not None:
        floor = floor_j / max(summary["makespan_s"], 1e-9) / summary["gpus"]
        ax.axhline(floor, color="gray", ls="--", lw=0.8, label="deep idle")
    _label_timeline(ax, "power per GPU (W)", f"GPU power: {title}")
    paths.append(_save(plt, fig, out_dir / "power.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for c in [c for c in timeline.columns if c.startswith("batch_r")][:4]:
        ax.plot(t, timeline[c], lw=0.8, label=f"batch {c[6:]}")
    for c in [c for c in timeline.columns if c.startswith("queue_r")][:4]:
        ax.plot(t, timeline[c], lw=0.8, ls="--", label=f"queue {c[6:]}")
    _label_timeline(ax, "requests", f"Batch size (while busy) and queue length: {title}")
    paths.append(_save(plt, fig, out_dir / "batch_queue.png"))

    # completed requests with a known energy (a live run without a meter has none)
    ok = requests[(requests["status"] == RequestStatus.OK) & requests["energy_j"].notna()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if len(ok):
        axes[0].hist(
            ok["energy_j"] / 3600.0,
            bins=50,
            color="tab:blue",
            alpha=0.8,
            label="total (idle share incl.)",
        )
        axes[0].hist(
            (ok["energy_prefill_j"] + ok["energy_decode_j"]) / 3600.0,
            bins=50,
            color="tab:orange",
            alpha=0.6,
            label="active",
        )
        axes[1].scatter(ok["output_tokens"], ok["energy_j"] / 3600.0, s=3, alpha=0.5)
    axes[0].set_xlabel("energy per request (Wh)")
    axes[0].set_ylabel("requests")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("output tokens")
    axes[1].set_ylabel("energy per request (Wh)")
    fig.suptitle(f"Per-request energy: {title}")
    paths.append(_save(plt, fig, out_dir / "request_energy.png"))
    if (summary.get("intervals") or {}).get("figures"):
        paths.append(plot_intervals(out_dir / "intervals.png", summary["intervals"], title))
    return paths


#: the labels of the interval figures (analysis/intervals.py FIGURE_KEYS), their units
INTERVAL_LABELS = {
    "energy_per_request_wh": ("energy per request", "Wh"),
    "total_energy_wh": ("total energy", "Wh"),
    "ttft_p50_s": ("TTFT p50", "s"),
    "ttft_p90_s": ("TTFT p90", "s"),
    "tpot_p50_s": ("TPOT p50", "s"),
    "tpot_p90_s": ("TPOT p90", "s"),
    "makespan_s": ("makespan", "s"),
}


def plot_intervals(path: Path, intervals: dict, title: str) -> Path:
    """intervals.png: each headline figure's 80% prediction interval relative to its value
    (bar: lower to upper; thick part: the host-speed part alone), labelled in its units."""
    plt = pyplot()
    figs = [(k, e) for k, e in intervals["figures"].items() if e]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(figs) + 1.6))
    for i, (name, e) in enumerate(reversed(figs)):
        v = e["value"]
        ax.plot([e["lower"] / v - 1, e["upper"] / v - 1], [i, i], color="tab:blue", lw=2)
        ax.plot(
            [e["host_lower"] / v - 1, e["host_upper"] / v - 1],
            [i, i],
            color="tab:blue",
            lw=7,
            alpha=0.5,
        )
        ax.plot([0], [i], "o", color="k", ms=4)
        label, unit = INTERVAL_LABELS.get(name, (name, ""))
        ax.annotate(
            f"{v:.4g} [{e['lower']:.4g}, {e['upper']:.4g}] {unit}",
            (e["upper"] / v - 1, i),
            xytext=(6, -3),
            textcoords="offset points",
            fontsize=7,
        )
    ax.set_yticks(range(len(figs)))
    ax.set_yticklabels([INTERVAL_LABELS.get(k, (k, ""))[0] for k, _ in reversed(figs)])
    ax.axvline(0, color="gray", lw=0.8)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:+.0%}")
    ax.set_xlabel(
        f"relative to the predicted value: {intervals['level']:.0%} interval (thin), its "
        "host-speed part alone (thick)"
    )
    ax.set_title(f"Prediction intervals: {title}", fontsize=9)
    ax.margins(x=0.5)
    return _save(plt, fig, path)


def _label_timeline(ax, ylabel: str, title: str) -> None:
    """Axes of a timeline plot: time (s) across, ylabel up, the title, a small legend."""
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)


def _save(plt, fig, path: Path) -> Path:
    """Lay fig out tightly, save it as path (120 dpi) and close it."""
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path
