"""External checks against measurements made by others: `sim validate mlenergy`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import click

from llm_energy_sim.config.errors import UserError

VALIDATE_FILE = "validate.json"  # marks a directory `sim validate` may replace
DEFAULT_OUT = Path("results") / "validate-mlenergy"


@click.group("validate")
def validate_cmd() -> None:
    """Check the simulator against external measurements it was never fitted on."""


def _max_num_seqs(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(
            f"--max-num-seqs {text!r}: expected whole numbers separated by commas, e.g. 8,64,512"
        ) from None
    return values or None


@validate_cmd.command("mlenergy")
@click.option(
    "--max-num-seqs",
    "--rows",
    "rows_text",
    help="only these rows, by max_num_seqs, comma-separated (e.g. 8,64); default: every H100 row",
)
@click.option(
    "--profile",
    default="h100-sxm",
    show_default=True,
    help="calibration profile (name or JSON path) to predict with",
)
@click.option(
    "--requests",
    "num_requests",
    type=click.IntRange(min=1),
    help="unique requests per repeat (default: the benchmark's 1024); fewer for a quick run",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="seed of the drawn workload",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="directory to write (replaced whole on a rerun)",
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="write mlenergy.png")
@click.option("--quiet", is_flag=True, help="no progress bar")
def mlenergy_cmd(
    rows_text: str | None,
    profile: str,
    num_requests: int | None,
    seed: int,
    out_dir: Path,
    plot: bool,
    quiet: bool,
) -> None:
    """Simulate every H100 row of the ML.ENERGY Leaderboard v3 measurements of vLLM 0.11.1
    serving Llama-3.1-8B-Instruct (lm-arena-chat, one H100 SXM, max_num_seqs 8 to 768) the
    way it was measured, and print measured against predicted energy per output token,
    average GPU power and median ITL per max_num_seqs, with the errors (predicted / measured
    - 1). Targets, reported not asserted: every row within 10% on each.

    \b
    How each row is simulated (the data and its README: data/external/mlenergy-v3/):
    * server kind `vllm` with the run's flags: max_num_seqs of the row,
      max-num-batched-tokens 8192, max-model-len 20480, async scheduling, bfloat16,
      prefix caching on (vLLM 0.11's default); model card llama-3.1-8b; host_time_factor
      1.0; the profile needs a host entry for the vllm engine (else a one-line error);
    * 1024 requests (benchmark.yaml) x num_request_repeats (sweeps.yaml: 1 up to 192,
      2 for 256-512, 3 for 768; the same requests again), all sent at t=0;
    * output lengths: the row's own output-length histogram, scaled to 1024 (uniform within
      a bin; the last bin, ending at max_tokens 4096, at 4096);
    * prompts: an assumed model of multi-turn LMArena chats (a workload.conversations
      block): lognormal turns (mean 2.0, sigma 0.8, 1-20), user messages (mean 69.5
      tokens, sigma 1.0) and history answers (mean 214.5, sigma 0.8), the LMSYS-Chat-1M
      averages, plus 29 + 5 per message chat-template tokens; one prefix id per
      conversation (later turns and repeats hit the prefix cache);
    * the benchmark's steady-state window: from the moment max_num_seqs requests have their
      first token to the moment N - max_num_seqs have; energy per token = GPU energy in the
      window / output tokens received in it; power = window energy / window time; median
      ITL over every request's inter-token gaps (one token per request per engine step).

    Writes mlenergy.csv (measured, predicted, error per row), validate.json (the same with
    every assumption) and mlenergy.png (both curves, one panel per quantity, and the
    errors). Validation data only: nothing in the simulator is fitted to it."""
    from llm_energy_sim.analysis import mlenergy as ml
    from llm_energy_sim.results.staging import check_replaceable, staged_dir

    wanted = _max_num_seqs(rows_text)
    settings = ml.read_settings()
    rows = ml.read_rows()
    if wanted is not None:
        have = {r.max_num_seqs for r in rows}
        missing = [m for m in wanted if m not in have]
        if missing:
            raise UserError(
                f"--max-num-seqs {','.join(map(str, missing))}: no such H100 row "
                f"(rows: {', '.join(str(r.max_num_seqs) for r in rows)})"
            )
        rows = [r for r in rows if r.max_num_seqs in wanted]
    check_replaceable(out_dir, VALIDATE_FILE)
    model = ml.ConversationModel()

    from tqdm import tqdm

    results = []
    bar = tqdm(rows, unit="row", desc="simulating rows", disable=True if quiet else None)
    for row in bar:
        bar.set_postfix_str(f"max_num_seqs={row.max_num_seqs}")
        results.append(
            ml.simulate_row(row, settings, profile, model, seed=seed, num_requests=num_requests)
        )
    bar.close()
    df = ml.results_frame(results)
    meta = {
        "check": "ML.ENERGY Leaderboard v3, vLLM 0.11.1, Llama-3.1-8B-Instruct, lm-arena-chat, "
        "1 x H100 SXM",
        "profile": results[0].extra["profile"] if results else profile,
        "profile_path": results[0].extra["profile_path"] if results else None,
        "seed": seed,
        "requests_per_repeat": num_requests or settings.num_requests,
        "run_settings": asdict(settings)
        | {"repeats": {str(k): v for k, v in settings.repeats.items()}},
        "conversation_model": asdict(model),
        "targets": ml.TARGETS,
        "rows": [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in rec.items()
            }
            | {"extra": r.extra}
            for r, rec in zip(results, df.to_dict("records"), strict=True)
        ],
    }
    with staged_dir(out_dir, VALIDATE_FILE) as tmp:
        df.to_csv(tmp / "mlenergy.csv", index=False)
        (tmp / VALIDATE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if plot and len(df):
            ml.plot_curves(
                df,
                tmp / "mlenergy.png",
                f"ML.ENERGY v3 (vLLM, Llama-3.1-8B, H100) vs simulator ({meta['profile']})",
            )
    _print_table(df, meta)
    wrote = [out_dir / "mlenergy.csv", out_dir / VALIDATE_FILE]
    if plot and len(df):
        wrote.append(out_dir / "mlenergy.png")
    click.echo("wrote " + ", ".join(map(str, wrote)))


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x * 100:+.1f}%"


def _print_table(df, meta: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"ML.ENERGY v3, H100, by max_num_seqs: measured, predicted ({meta['profile']})",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
    )
    heads = ("seqs", "N", "J/tok", "pred", "err", "W", "pred", "err", "ITL ms", "pred")
    for c in (*heads, "err"):
        t.add_column(c, justify="right")
    for r in df.itertuples():
        t.add_row(
            str(r.max_num_seqs),
            str(r.requests),
            f"{r.measured_energy_per_token_j:.4f}",
            f"{r.predicted_energy_per_token_j:.4f}",
            _pct(r.error_energy_per_token_j),
            f"{r.measured_avg_power_w:.0f}",
            f"{r.predicted_avg_power_w:.0f}",
            _pct(r.error_avg_power_w),
            f"{r.measured_median_itl_ms:.2f}",
            f"{r.predicted_median_itl_ms:.2f}",
            _pct(r.error_median_itl_ms),
        )
    Console().print(t)
    click.echo(f"profile: {meta['profile']} ({meta['profile_path']})")
    within = {q: int((df[f"error_{q}"].abs() <= lim).sum()) for q, lim in meta["targets"].items()}
    click.echo(
        f"within 10%: energy/token {within['energy_per_token_j']}/{len(df)} rows, power "
        f"{within['avg_power_w']}/{len(df)}, median ITL {within['median_itl_ms']}/{len(df)} "
        "(error = predicted / measured - 1)"
    )


MATRIX_MEASURED = Path("measurements") / "live" / "h200-matrix"
MATRIX_OUT = Path("results") / "validate-matrix"


@validate_cmd.command("matrix")
@click.argument(
    "measured", type=click.Path(path_type=Path), default=MATRIX_MEASURED, required=False
)
@click.option(
    "--profile",
    help="calibration profile (name or JSON path); default: each scenario's (h200)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=MATRIX_OUT,
    show_default=True,
    help="directory to write (replaced whole on a rerun)",
)
@click.option(
    "--interval/--no-interval",
    default=True,
    show_default=True,
    help="also check the 80% prediction intervals' coverage (coverage.md, coverage.csv)",
)
def matrix_cmd(measured: Path, profile: str | None, out_dir: Path, interval: bool) -> None:
    """Predict every case of a live validation matrix (tools/device/matrix.sh's results,
    default measurements/live/h200-matrix) and set the errors side by side.

    \b
    Per case (MEASURED/<model>-<dtype>-<scenario>/, a sim replay results dir):
    * the scenario it replayed, MEASURED/scenarios/<case>.yaml;
    * hardware.host_time_factor from the case's own host-speed passes (its hostspeed
      table: the pass just before and just after it, in the engine's process), as
      `sim run --host-speed CASE_DIR` sets it; 1.0 where the case has none (said so);
    * the prediction (OUT/predicted/<case>/, as `sim run` writes it) and the comparison
      (OUT/compare/<case>.csv, `sim compare`'s table).

    Writes OUT/matrix.md (model, dtype, server, scenario, energy per request measured /
    predicted / error, TTFT / TPOT / E2E p50 errors, then the median and worst |energy
    error|), OUT/matrix.csv and validate.json; prints the Markdown.

    \b
    Ordering (issue 17: the order of dtypes by energy as measured): every pair of cases
    whose scenarios differ only in dtype; of one model and server kind across dtypes
    (also differing in batch or workload, listed); across models on one workload. Per
    pair the measured order of energy per request (a tie within the two measurements'
    run-to-run spread compares nothing) against the predicted one, at each case's own
    host factor and (with --interval) at the profile's default; it says so when no pair
    differs only in dtype. In matrix.md, the printed output and validate.json "ordering".

    \b
    Coverage (--interval, default): each case predicted as a user would get it, at the
    profile's default host_time_factor (the median of its serving-host samples, not the
    case's own), with sim run's 80% prediction intervals; per case whether the interval
    holds the measured energy per request, TTFT p50 and TPOT p50, then the fraction held
    and the median relative width (upper - lower) / value, per figure and over all; then
    the same with the samples measured in MEASURED itself left out of the distribution.
    Writes OUT/coverage.md and OUT/coverage.csv."""
    import pandas as pd

    from llm_energy_sim.analysis import matrix as mx
    from llm_energy_sim.analysis.compare import compare_dirs
    from llm_energy_sim.cli.options import load_with_host_speed
    from llm_energy_sim.results.staging import check_replaceable, staged_dir

    cases = mx.find_cases(measured)
    check_replaceable(out_dir, VALIDATE_FILE)
    rows, notes = [], []
    cold = mx.cold_cache_cases(cases, measured)
    notes += [f"{name}: predicted on a cold kernel cache ({why})" for name, why in cold.items()]
    with staged_dir(out_dir, VALIDATE_FILE) as tmp:
        for case in cases:
            tables = [case.measured] if case.has_host_speed else []
            try:
                scen, runs = load_with_host_speed(case.scenario, {}, tables, profile)
            except UserError as exc:  # passes that all failed: say so, predict at 1.0
                notes.append(f"{case.name}: {exc}; predicted at the profile's default")
                scen, runs = load_with_host_speed(case.scenario, {}, [], profile)
            if runs is None:
                notes.append(
                    f"{case.name}: no host-speed passes; the profile's default host_time_factor"
                )
            if case.name in cold:
                scen = mx.on_cold_cache(scen)
            pred = mx.predict(scen, case.scenario, tmp / "predicted" / case.name, profile, runs)
            table, _, _ = compare_dirs(pred, case.measured)
            (tmp / "compare").mkdir(exist_ok=True)
            table.to_csv(tmp / "compare" / f"{case.name}.csv", index=False)
            factor = scen.hardware.host_time_factor if runs is not None else None
            rows.append(mx.case_row(case, scen, _measured_summary(case), table, factor))
        name = profile or "each scenario's (h200)"
        coverage = _coverage(cases, measured, profile, tmp, rows, cold) if interval else None
        ordering = _ordering(cases, profile, rows, coverage)
        md = mx.markdown(rows, name)
        if notes:
            md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        md += "\n" + ordering["markdown"]
        (tmp / "matrix.md").write_text(md)
        pd.DataFrame(rows).to_csv(tmp / "matrix.csv", index=False)
        if coverage is not None:
            md += "\n" + coverage["markdown"]
        meta = {
            "check": "live validation matrix (tools/device/matrix.sh)",
            "measured": str(measured),
            "profile": name,
            "summary": mx.summary_stats(rows),
            "coverage": None
            if coverage is None
            else {k: v for k, v in coverage.items() if k != "markdown"},
            "ordering": {k: v for k, v in ordering.items() if k != "markdown"},
            "notes": notes,
            "rows": [
                {
                    k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in r.items()
                }
                for r in rows
            ],
        }
        (tmp / VALIDATE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    click.echo(md, nl=False)
    cov = f", {out_dir / 'coverage.md'}, {out_dir / 'coverage.csv'}" if interval else ""
    click.echo(
        f"wrote {out_dir / 'matrix.md'}, {out_dir / 'matrix.csv'}{cov}, {out_dir / VALIDATE_FILE}"
    )


def load_matrix(measured: Path, profile: str | None = None) -> dict:
    """`sim validate matrix --no-interval` on a matrix directory (the committed one:
    measurements/live/h200-matrix) into a temporary directory: its validate.json, as a
    dict (the notebooks of Figures 1 and 2 state from it which cells were validated)."""
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args = [str(measured), "--no-interval", "--out", f"{tmp}/out"]
        if profile is not None:
            args += ["--profile", profile]
        with contextlib.redirect_stdout(io.StringIO()):
            matrix_cmd.main(args, standalone_mode=False)
        return json.loads((Path(tmp) / "out" / VALIDATE_FILE).read_text())


def _coverage(
    cases, measured: Path, profile: str | None, tmp: Path, matrix_rows, cold: dict[str, str]
) -> dict:
    """Each case predicted as a user would get it (the profile's default host factor and its
    80% intervals, not the case's own measured factor), against the measured figures; then
    the same with this matrix's own host-speed samples left out of the distribution.
    matrix_rows: the cases' matrix lines (their errors at their own factor); cold: the cases
    predicted on a cold kernel cache (analysis/matrix.cold_cache_cases). Writes
    coverage.md / coverage.csv (and the held-out profile copies under profiles/)."""
    import pandas as pd

    from llm_energy_sim.analysis import matrix as mx
    from llm_energy_sim.analysis.intervals import simulate_with_bounds
    from llm_energy_sim.config.profile import save_profile
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.simulation import profile_for

    out: dict = {}
    md = ""
    tables = []
    for variant in ("shipped", "held_out"):
        rows = []
        for case in cases:
            scen = load_scenario(case.scenario)  # no host factor: the profile's default
            if case.name in cold:
                scen = mx.on_cold_cache(scen)
            prof, _ = profile_for(scen, profile)
            use = profile
            if variant == "held_out":
                kept = mx.held_out(prof, measured)
                if kept is None:
                    continue
                use = str(tmp / "profiles" / f"{kept.name}.json")
                if not Path(use).exists():
                    save_profile(kept, Path(use))
            # the case's own model residual left out: its interval is what a configuration
            # outside the residuals would get
            summary, _ = simulate_with_bounds(scen, use, exclude=case.key)
            own = next(r for r in matrix_rows if r["case"] == case.name)
            iv = summary.get("intervals")
            rows.append(mx.coverage_row(case, scen, _measured_summary(case), iv, own))
        if not rows:
            continue
        stats = mx.coverage_stats(rows)
        n = len(prof.host_speed.samples) if prof.host_speed is not None else 0
        title = (
            f"80% intervals from profile {prof.name}'s {n} serving-host samples (as shipped)"
            if variant == "shipped"
            else f"the same with the samples measured in {measured} left out"
        )
        md += (f"\n### {title}\n\n" if variant == "held_out" else "") + mx.coverage_markdown(
            rows, stats, "coverage" if variant == "shipped" else "coverage, held out"
        )
        out[variant] = {"title": title, "stats": stats, "rows": rows}
        tables.append(pd.DataFrame(rows).assign(variant=variant))
    (tmp / "coverage.md").write_text(md)
    pd.concat(tables, ignore_index=True).to_csv(tmp / "coverage.csv", index=False)
    out["markdown"] = md
    return out


def _ordering(cases, profile: str | None, rows: list[dict], coverage: dict | None) -> dict:
    """The ordering check of the matrix (analysis/matrix.ordering_pairs): every pair of
    cases that differ in dtype (or across models on one workload), measured order against
    predicted; a measured order within the cases' run-to-run spread is a tie."""
    from llm_energy_sim.analysis import matrix as mx
    from llm_energy_sim.analysis.intervals import t_quantile
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.simulation import profile_for

    scenarios, tie = {}, {}
    for case in cases:
        scen = load_scenario(case.scenario)  # as replayed, before any host factor
        scenarios[case.name] = scen
        spread = profile_for(scen, profile)[0].run_to_run
        sigma = spread.sigma_log.get("energy_per_request_wh", 0.0) if spread else 0.0
        tie[case.name] = t_quantile(spread.dof) * sigma if spread else 0.0
    at_default = None
    if coverage is not None and "shipped" in coverage:
        at_default = {
            r["case"]: r["energy_per_request_wh_value"]
            for r in coverage["shipped"]["rows"]
            if r["energy_per_request_wh_value"] is not None
        }
    pairs = mx.ordering_pairs(rows, scenarios, tie, at_default)
    stats = mx.ordering_stats(pairs)
    return {
        "summary": mx.ordering_summary(stats),
        "stats": stats,
        "pairs": pairs,
        "markdown": mx.ordering_markdown(pairs, stats),
    }


def _measured_summary(case) -> dict:
    """The measured case's summary.json as a dict."""
    from llm_energy_sim.results.output import read_summary

    return read_summary(case.measured).to_dict()
