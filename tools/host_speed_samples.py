"""Collect the serving-host speed samples and the run-to-run spread the shipped profiles carry
(`host_speed`, `run_to_run`; config/profile.py HostSpeedDistribution, RunToRunSpread).

Host speed. Where: every host-speed table committed under measurements/live/ (a `sim replay
--hostspeed` results directory's `hostspeed.parquet|csv`, and a lease's
`host/hostspeed-*.parquet`), each measured in the serving machine's engine process on a lent
H200 VM (measurements/README.md has each lease's where and when). When: each pass's own
`utc` column (2026-11-30 to 2026-12-02). How: one pass is the calibrate/hostspeed.py host-fit
run (HF generate, Qwen2.5-1.5B cut to 8 layers, bf16, batch 1, prompt 512, 32 new tokens);
its factor is its decode time per token over the profile's prediction of that run
(calibrate/hostspeed.host_time_factor), so the samples are recomputed against the profile
they go into, and must be again after a refit (`--write`). A pass bracketing two cases sits
in both cases' tables: it is counted once (same `utc` and decode time to 12 digits), its source the first
directory holding it in path order. No H100 lease measured its host speed (measurements/
live/h100 and h100-s2 predate the tool), so `h100-sxm` borrows the H200 leases' passes,
measured against the H100 calibration host's prediction.

Run-to-run spread. Repeats of one scenario with the same engine settings on the same GPU
kind, listed in REPEATS (measurements/README.md: h100-s2 was the H100's reproducibility run,
h200-graphs-c repeated the CUDA-graph bursts of h200-graphs and h200-graphs-b). Per headline
figure, the pooled standard deviation of ln(figure) within each group of repeats, with
runs - groups degrees of freedom. The repeats ran on different leases, so host speed is part
of what differs; the CUDA-graph engine does one replay per step (little host time), the H100
pair's hosts were not measured.

    python tools/host_speed_samples.py            # print both, per shipped profile
    python tools/host_speed_samples.py --write    # write them into the shipped profiles
    python tools/host_speed_samples.py --check    # exit 1 when a shipped profile is stale
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from llm_energy_sim.analysis.intervals import FIGURE_KEYS  # summary.json key of each figure
from llm_energy_sim.calibrate.hostspeed import host_time_factor
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.profile import (
    INTERVAL_FIGURES,
    HostSpeedDistribution,
    HostSpeedSample,
    ModelResidual,
    ModelResiduals,
    Profile,
    RunToRunSpread,
    load_profile,
)
from llm_energy_sim.results.readcheck import read_any_table

REPO = Path(__file__).resolve().parents[1]
LIVE = REPO / "measurements" / "live"
#: the shipped profiles that carry the samples
PROFILES = ("h200", "h100-sxm")
#: groups of repeated identical live runs (same scenario file, overrides and engine settings)
REPEATS = (
    ("measurements/live/h100/fixed500ms", "measurements/live/h100-s2/fixed500ms"),
    (
        "measurements/live/h200-graphs/graphs-llama-3.1-8b/val-burst-warm",
        "measurements/live/h200-graphs-c/graphs-llama-3.1-8b",
    ),
    (
        "measurements/live/h200-graphs-b/graphs-qwen2.5-7b/val-burst-warm",
        "measurements/live/h200-graphs-c/graphs-qwen2.5-7b",
    ),
)


def host_tables(live: Path = LIVE) -> list[Path]:
    """Every host-speed table under the live measurements, in path order."""
    found = [*live.rglob("hostspeed.parquet"), *live.rglob("hostspeed.csv")]
    found += [*live.rglob("host/hostspeed-*.parquet"), *live.rglob("host/hostspeed-*.csv")]
    return sorted(set(found))


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def passes(live: Path = LIVE) -> pd.DataFrame:
    """Every successful host-speed pass once: the table's rows with a `source` column (the
    table's directory), a pass held by two tables kept at its first."""
    frames = []
    for table in host_tables(live):
        df = read_any_table(table)
        ok = df[pd.to_numeric(df["decode_s_per_token"], errors="coerce") > 0].copy()
        ok["source"] = _rel(table.parent)
        frames.append(ok)
    if not frames:
        raise SystemExit(f"{live}: no host-speed tables")
    runs = pd.concat(frames, ignore_index=True)
    # the copy of a pass in the next case's table was written with fewer digits (CSV)
    same = runs["decode_s_per_token"].map(lambda x: f"{float(x):.12g}")
    keep = ~pd.DataFrame({"utc": runs["utc"], "d": same}).duplicated(keep="first")
    return runs[keep].reset_index(drop=True)


#: shipped profiles whose GPU kind no lease measured the host speed of
BORROWS_H200_LEASES = ("h100-sxm",)


def host_speed(profile: Profile, live: Path = LIVE) -> HostSpeedDistribution:
    """The profile's serving-host distribution: every pass's factor against `profile`."""
    runs = passes(live)
    f = host_time_factor(runs, profile)
    samples = [
        HostSpeedSample(factor=round(float(x), 6), utc=str(u), source=src)
        for x, u, src in zip(f["host_time_factor"], f["utc"], runs["source"], strict=True)
    ]
    samples.sort(key=lambda s: (s.utc, s.source))
    borrowed = (
        " No H100 lease measured its host speed: these are the H200 leases' passes against "
        "this profile's (the H100 calibration host's) prediction."
        if profile.name in BORROWS_H200_LEASES
        else ""
    )
    return HostSpeedDistribution(
        samples=samples,
        source=(
            f"tools/host_speed_samples.py: {len(samples)} host-fit passes of calibrate/"
            "hostspeed.py (HF generate, Qwen2.5-1.5B cut to 8 layers, bf16, batch 1, 512 + 32 "
            "tokens) in the engine process of `sim replay --hostspeed` on lent H200 VMs, "
            f"{samples[0].utc[:10]} to {samples[-1].utc[:10]} (each sample's utc and results "
            "dir), every host-speed table under measurements/live/; factor = measured decode "
            "time per token / this profile's prediction; a pass bracketing two cases counted "
            f"once.{borrowed}"
        ),
    )


def _figure(summary: dict, name: str) -> float:
    node = summary
    for k in FIGURE_KEYS[name]:
        node = node[k]
    return float(node)


def run_to_run(repeats=REPEATS) -> RunToRunSpread:
    """The pooled within-group standard deviation of ln(figure) over the repeated runs."""
    groups = []
    for group in repeats:
        groups.append([json.loads((REPO / d / "summary.json").read_text()) for d in group])
    dof = sum(len(g) - 1 for g in groups)
    sigma = {}
    for name in INTERVAL_FIGURES:
        ss = 0.0
        for g in groups:
            logs = [math.log(_figure(s, name)) for s in g]
            mean = sum(logs) / len(logs)
            ss += sum((x - mean) ** 2 for x in logs)
        sigma[name] = round(math.sqrt(ss / dof), 6)
    return RunToRunSpread(
        sigma_log=sigma,
        dof=dof,
        runs=[list(g) for g in repeats],
        source=(
            "tools/host_speed_samples.py: pooled standard deviation of ln(figure) within each "
            "group of repeated identical live runs (runs: the same scenario, overrides and "
            "engine settings, on different leases; summary.json of each): Llama-3.1-8B bf16 "
            "transformers CB at one request per 500 ms on an H100 (2026-11-22), and the warm "
            "100-request bursts of Llama-3.1-8B and Qwen2.5-7B bf16 with CUDA graphs on an "
            "H200 (2026-12-02); dof = runs - groups"
        ),
    )


#: live runs of configurations no fit used (analysis/matrix.py layout), whose cases give the
#: model residuals
RESIDUAL_RUNS = ("measurements/live/h200-matrix", "measurements/live/h200-static-holdout")
#: the profile the residual runs are predicted with (they ran on H200s)
RESIDUAL_PROFILE = "h200"


def _log_ratios(meas: dict, pred: dict) -> dict[str, float]:
    """ln(measured / predicted) of every interval figure both have (positive), 6 decimals."""
    return {
        f: round(math.log(meas[f] / pred[f]), 6)
        for f in INTERVAL_FIGURES
        if meas.get(f) and pred.get(f) and meas[f] > 0 and pred[f] > 0
    }


def _borrowed(res: ModelResiduals, name: str, why: str) -> ModelResiduals:
    """res as profile `name` carries it: the residuals profile's own, others' say they borrow."""
    if name == RESIDUAL_PROFILE:
        return res
    return res.model_copy(update={"source": res.source + f"; borrowed by '{name}': {why}"})


def model_residuals(runs=RESIDUAL_RUNS) -> ModelResiduals:
    """Per case of the residual runs, ln(measured / predicted) of every interval figure, each
    case predicted by `sim validate matrix` (the shipped h200 profile, at the host speed
    measured in the case's own engine process)."""
    from llm_energy_sim.analysis.intervals import figures
    from llm_energy_sim.analysis.matrix import case_key, find_cases

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, run in enumerate(runs):
            out = Path(tmp) / str(i)
            cmd = [sys.executable, "-m", "llm_energy_sim.cli", "validate", "matrix", run]
            cmd += ["--no-interval", "--profile", RESIDUAL_PROFILE, "--out", str(out)]
            subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
            for case in find_cases(REPO / run):
                meas = figures(json.loads((case.measured / "summary.json").read_text()))
                pred = figures(
                    json.loads((out / "predicted" / case.name / "summary.json").read_text())
                )
                cases.append(
                    ModelResidual(case=case_key(case.measured), log_ratio=_log_ratios(meas, pred))
                )
    return ModelResiduals(
        cases=cases,
        source=(
            f"tools/host_speed_samples.py: ln(measured / predicted) per figure of the "
            f"{len(cases)} cases of {', '.join(runs)} (live configurations no fit used: five "
            "models, five dtypes, HF sequential, static batches with padding and transformers "
            f"CB, on H200s, 2026-12-02), predicted with profile '{RESIDUAL_PROFILE}' by `sim "
            "validate matrix` at the host speed measured in each case's engine process"
        ),
    )


def graph_residuals() -> ModelResiduals:
    """Per live CUDA-graph run of tools/graph_regime_table.py (transformers CB with graphs on
    H200s: Llama-3.1-8B, Qwen2.5-7B, Mistral-7B, Qwen2.5-14B), ln(measured / predicted) of
    every interval figure, each run predicted at the host speed measured in it."""
    from llm_energy_sim.analysis.intervals import figures
    from llm_energy_sim.analysis.matrix import case_key

    sys.path.insert(0, str(REPO / "tools"))
    import graph_regime_table as g

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for _, model, scen, measured, graphs in g.CASES:
            if not graphs:
                continue
            pred_dir = g.predict_run(Path(tmp), model, scen, measured, graphs)
            meas = figures(json.loads((measured / "summary.json").read_text()))
            pred = figures(json.loads((pred_dir / "summary.json").read_text()))
            cases.append(ModelResidual(case=case_key(measured), log_ratio=_log_ratios(meas, pred)))
    return ModelResiduals(
        cases=cases,
        source=(
            f"tools/host_speed_samples.py: ln(measured / predicted) per figure of the "
            f"{len(cases)} live transformers-CB runs with CUDA graphs of "
            "tools/graph_regime_table.py (measurements/live/h200-graphs, -b, -c, -d, -e: "
            "Llama-3.1-8B, Qwen2.5-7B, Mistral-7B, Qwen2.5-14B bf16, four arrival patterns and "
            "bursts of 100 and 256 requests, on H200s, 2026-12-02/03), predicted with profile "
            f"'{RESIDUAL_PROFILE}' at the host speed measured in each run; used for the engines "
            "that replay CUDA graphs"
        ),
    )


def updated(
    name: str, residuals: ModelResiduals | None = None, graph: ModelResiduals | None = None
) -> tuple[dict, dict]:
    """(the shipped profile's JSON, the same with fresh host_speed, run_to_run,
    model_residuals and graph_residuals; `residuals`, `graph`: computed once for all
    profiles)."""
    path = PROFILES_DIR / f"{name}.json"
    data = json.loads(path.read_text())
    base = {
        k: v
        for k, v in data.items()
        if k not in ("host_speed", "run_to_run", "model_residuals", "graph_residuals")
    }
    profile = Profile.model_validate(base)  # the samples depend on the fit only
    new = dict(base)
    new["host_speed"] = host_speed(profile).model_dump(mode="json")
    new["run_to_run"] = run_to_run().model_dump(mode="json")
    res = residuals if residuals is not None else model_residuals()
    res = _borrowed(res, name, "no live matrix ran on its GPU")
    new["model_residuals"] = res.model_dump(mode="json")
    gres = graph if graph is not None else graph_residuals()
    new["graph_residuals"] = _borrowed(gres, name, "no graph run on its GPU").model_dump(
        mode="json"
    )
    return data, new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="write into the shipped profiles")
    ap.add_argument("--check", action="store_true", help="exit 1 if a profile is stale")
    a = ap.parse_args(argv)
    stale = []
    residuals, graph = model_residuals(), graph_residuals()
    for name in PROFILES:
        old, new = updated(name, residuals, graph)
        hs = HostSpeedDistribution.model_validate(new["host_speed"])
        rr = new["run_to_run"]
        print(
            f"{name}: {len(hs.samples)} host-speed samples, median {hs.median():.4f}, "
            f"p10 {hs.quantile(0.1):.4f}, p90 {hs.quantile(0.9):.4f}, "
            f"range {hs.factors()[0]:.3f}-{hs.factors()[-1]:.3f}; run-to-run sigma_log "
            + ", ".join(f"{k} {v:.4f}" for k, v in rr["sigma_log"].items())
            + f" (dof {rr['dof']}); model residuals of {len(new['model_residuals']['cases'])} cases, "
            + f"graph residuals of {len(new['graph_residuals']['cases'])} runs"
        )
        if old != new:
            stale.append(name)
            if a.write:
                (PROFILES_DIR / f"{name}.json").write_text(json.dumps(new, indent=2) + "\n")
                load_profile(name)  # it still validates
                print(f"wrote {PROFILES_DIR / f'{name}.json'}")
    if a.check and stale:
        print(f"stale: {', '.join(stale)} (run: python tools/host_speed_samples.py --write)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
