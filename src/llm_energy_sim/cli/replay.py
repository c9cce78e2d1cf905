"""`sim replay`: drive a live engine or server with a scenario's exact request trace, metered.

The trace is llm_energy_sim.engine.workload.generate_trace of the scenario (same seed, same requests as `sim run`).
Results go to the same files as `sim run` (summary.json, requests.csv, timeline.csv), so
`sim compare` and the plots read both.
"""

from __future__ import annotations

import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from llm_energy_sim.cli.options import POSITIVE
from llm_energy_sim.config.errors import UserError

ENGINES = ("transformers", "transformers-generate", "transformers-static", "tgi", "openai")
BUILTIN = ("transformers", "transformers-generate", "transformers-static")
LEAD_S = 0.5  # the first arrival is this long after the engine is ready and the meter runs

# the built-in engine of each server kind (`--engine transformers` picks by the kind)
_KIND_ENGINE = {
    "sequential": "transformers-generate",
    "static": "transformers-static",
    "transformers-cb": "transformers",
}


def _builtin_engine(name: str, kind: str) -> str:
    """The built-in engine a scenario's server kind runs on: transformers-generate (HF
    generate, one request at a time) for sequential, transformers-static (HF generate on
    static batches) for static, transformers (continuous batching) for transformers-cb;
    `--engine transformers` picks by the kind. A mismatch is a UserError."""
    if name == "transformers" and kind in _KIND_ENGINE:
        return _KIND_ENGINE[kind]
    if name == "transformers":
        raise UserError(
            f"--engine transformers runs the scenario's server on a built-in engine: "
            f"server.kind must be one of {', '.join(_KIND_ENGINE)}, not {kind}"
        )
    if name in _KIND_ENGINE.values() and _KIND_ENGINE.get(kind) != name:
        wants = next(k for k, e in _KIND_ENGINE.items() if e == name)
        raise UserError(
            f"--engine {name} runs server.kind {wants}: the scenario's server.kind is {kind} "
            "(use --engine transformers, which picks by the kind)"
        )
    return name


def _make_engine(name: str, scen, card, endpoint: str | None, model_name: str | None, device: str):
    if name in ("tgi", "openai") and not endpoint:
        raise UserError(f"--engine {name} needs --endpoint URL (e.g. http://127.0.0.1:8080)")
    if name in BUILTIN:
        name = _builtin_engine(name, scen.server.kind)
    if name == "transformers":
        from llm_energy_sim.live.transformers_engine import TransformersCbEngine

        return TransformersCbEngine(card, scen.dtype, scen.server, device=device, seed=scen.seed)
    if name == "transformers-generate":
        from llm_energy_sim.live.transformers_engine import TransformersGenerateEngine

        return TransformersGenerateEngine(card, scen.dtype, device=device, seed=scen.seed)
    if name == "transformers-static":
        from llm_energy_sim.live.static_engine import TransformersStaticEngine

        return TransformersStaticEngine(
            card, scen.dtype, scen.server, device=device, seed=scen.seed
        )
    if name == "tgi":
        from llm_energy_sim.live.tgi_client import TgiClient

        return TgiClient(endpoint)
    from llm_energy_sim.live.openai_client import OpenAiClient

    return OpenAiClient(endpoint, model=model_name)


@click.command("replay")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--engine", "engine_name", type=click.Choice(ENGINES), required=True, help="what to drive"
)
@click.option("--endpoint", help="server URL for tgi / openai, e.g. http://127.0.0.1:8080")
@click.option("--model-name", help="'model' field of OpenAI requests (default: the server's first)")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="results dir (default results/<name>-measured); with several scenarios, their parent",
)
@click.option("--requests", type=int, help="override workload.requests")
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="override any scenario field"
)
@click.option(
    "--timeout", "timeout_s", type=POSITIVE, default=600.0, show_default=True, help="per request, s"
)
@click.option(
    "--device", default="cuda", show_default=True, help="torch device of the built-in engines"
)
@click.option("--meter/--no-meter", default=True, help="read the GPUs' energy counters (NVML)")
@click.option(
    "--gpus", help="GPU indices to meter, comma separated (default: the first the scenario uses)"
)
@click.option("--plot/--no-plot", default=False, help="also write PNG plots")
@click.option(
    "--hostspeed/--no-hostspeed",
    default=False,
    help="before the first replay and after each, measure this machine's "
    "hardware.host_time_factor (built-in engines, one GPU; about 10 s a pass) and record each "
    "replay's bracket in its summary.json and hostspeed.csv",
)
@click.option(
    "--force",
    is_flag=True,
    help="replay even when the replay's estimated memory is above half this machine's memory",
)
@click.option("--quiet", is_flag=True)
def replay_cmd(
    scenarios,
    engine_name,
    endpoint,
    model_name,
    out_dir,
    requests,
    sets,
    timeout_s,
    device,
    meter,
    gpus,
    plot,
    hostspeed,
    force,
    quiet,
) -> None:
    """Replay each SCENARIO's request trace against a live engine and measure it.

    Several scenarios run one after the other in this process (the built-in engines build
    their model once). `--engine transformers` runs transformers-cb scenarios on the continuous
    batching manager, sequential ones on HF generate one request at a time, and static ones on
    HF generate in static batches (every row to the batch's longest output).
    """
    from llm_energy_sim.cli.options import check_out_dir, overrides
    from llm_energy_sim.config.estimate import check_replay_memory
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.results.output import SUMMARY_FILE
    from llm_energy_sim.results.provenance import provenance
    from llm_energy_sim.results.staging import check_replaceable

    if requests is not None and requests <= 0:
        raise UserError("--requests must be > 0")
    if endpoint is not None:
        from llm_energy_sim.live.protocol import check_endpoint

        check_endpoint(endpoint)
    gpu_list = parse_gpus(gpus)
    # every scenario is checked before the first run, so a bad one costs no GPU time
    scens = [load_scenario(s, overrides(requests, sets)) for s in scenarios]
    for scenario, scen in zip(scenarios, scens, strict=True):
        check_replay_memory(scen, force, str(scenario))
    for scen in scens:
        check_out_dir(_results_dir(out_dir, scen, len(scens)))
        check_replaceable(_results_dir(out_dir, scen, len(scens)), SUMMARY_FILE)
    builtin = engine_name in BUILTIN
    before_csv = None
    if hostspeed and builtin and _world_size() == 1:
        before_csv = _host_pass_before(device, meter)
    for i, (scenario, scen) in enumerate(zip(scenarios, scens, strict=True)):
        target = _results_dir(out_dir, scen, len(scens))
        if builtin and i > 0 and getattr(scen.server, "cold_start", False):
            click.echo(
                f"warning: {scenario} sets server.cold_start: true, but this process's engine "
                "already served the scenarios before it: the run will not pay the fresh "
                "engine's set-up that the prediction charges (replay it first, or alone)"
            )
        ok = _replay_one(
            scen,
            engine_name,
            endpoint,
            model_name,
            target,
            timeout_s,
            device,
            meter,
            gpu_list,
            plot,
            quiet,
            provenance("sim replay", scenario, sets, requests),
        )
        if not ok:
            click.echo("interrupted: the remaining scenarios are skipped")
            break
        if before_csv is not None and isinstance(ok, Path) and scen.hardware.gpus_per_replica == 1:
            # the pass after this scenario is the one before the next: each is bracketed
            record_host_speed(ok, scen, device, meter, before_csv=before_csv)
            before_csv = _as_next_before(ok / "hostspeed.csv")


def parse_gpus(text: str | None) -> list[int] | None:
    """--gpus '0,2' -> [0, 2] (None when not given); UserError (one line) unless it is
    distinct whole numbers >= 0."""
    if text is None:
        return None
    try:
        ids = [int(g) for g in text.split(",")]
    except ValueError:
        ids = []
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise UserError(f"--gpus '{text}': expected distinct GPU indices >= 0, e.g. 0,1")
    return ids


def _results_dir(out_dir: Path | None, scen, n_scenarios: int) -> Path:
    """Where a scenario's replay goes: --out, a subdirectory of it per scenario when there
    are several, or results/<name>-measured."""
    if out_dir is None:
        return Path("results") / f"{scen.name}-measured"
    return out_dir / scen.name if n_scenarios > 1 else out_dir


def _host_pass_before(device: str, meter_on: bool) -> Path:
    """The host-fit run before the first replay (into a temporary hostspeed.csv): a machine's
    host drifts (0.97 -> 1.47 in six minutes on one H200, measurements/live/h200-d), so every
    replay is bracketed by the run before it and the run after it."""
    import tempfile

    csv = Path(tempfile.mkdtemp(prefix="hostspeed-")) / "hostspeed.csv"
    measure_host_pass(csv, device, meter_on, "before")
    return csv


def _as_next_before(csv: Path) -> Path:
    """The last pass of a scenario's hostspeed.csv (its 'after' run), re-tagged 'before-' in a
    new temporary table: the bracket's first row for the next scenario."""
    import tempfile

    import pandas as pd

    last = pd.read_csv(csv).tail(1).copy()
    old_tag = str(last["tag"].iloc[0])
    new_tag = "before-" + old_tag.split("-", 1)[-1]
    last["tag"] = new_tag
    last["key"] = last["key"].astype(str).str.replace(old_tag, new_tag, regex=False)
    out = Path(tempfile.mkdtemp(prefix="hostspeed-")) / "hostspeed.csv"
    last.to_csv(out, index=False)
    return out


def _world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def measure_host_pass(csv: Path, device: str, meter_on: bool, when: str, shape=None) -> None:
    """One host-fit run (calibrate/hostspeed.py: a one-GPU HF generate) appended to csv."""
    from llm_energy_sim.calibrate.hostspeed import SHAPE, measure_host_speed
    from llm_energy_sim.meter.monitor import EnergyMonitor

    gpus = [0] if meter_on and device.startswith("cuda") else []  # none: timing only
    tag = f"{when}-{int(time.time())}"
    measure_host_speed(csv, EnergyMonitor(gpus), tag=tag, device=device, shape=shape or SHAPE)


def record_host_speed(
    out_dir: Path,
    scen,
    device: str,
    meter_on: bool,
    shape=None,
    before_csv: Path | None = None,
) -> float:
    """Measure the host-fit run after the replay in out_dir (so it does not warm its engine)
    and, with the run before it when there is one (before_csv), write this machine's
    host_time_factor to its summary.json ('host_speed'): the mean of the passes against the
    scenario's profile, each pass, and the mean against every shipped profile; hostspeed.csv
    (both passes) beside it. `sim replay --hostspeed` calls it after every replay, so each
    one is bracketed by the passes just before and just after it."""
    # the results dir is amended whole: a copy gets hostspeed.csv and the new summary.json,
    # then replaces it, so a failed or killed pass leaves the replay's results as they were
    from llm_energy_sim.results.marker import mark_complete
    from llm_energy_sim.results.output import SUMMARY_FILE
    from llm_energy_sim.results.staging import staged_dir

    with staged_dir(out_dir, SUMMARY_FILE, keep=True) as tmp:
        factor = _record_host_speed(tmp, out_dir, scen, device, meter_on, shape, before_csv)
        mark_complete(tmp)  # rewritten last, after the amendment
    return factor


def _record_host_speed(tmp, out_dir, scen, device, meter_on, shape, before_csv) -> float:
    """record_host_speed's work, in `tmp` (the copy of out_dir being amended)."""
    import shutil

    import pandas as pd

    from llm_energy_sim.calibrate.hostspeed import host_time_factor
    from llm_energy_sim.config.profile import (
        default_profile_name,
        load_profile,
        shipped_profile_names,
    )
    from llm_energy_sim.results.output import read_summary, write_summary

    csv = tmp / "hostspeed.csv"
    if before_csv is not None and before_csv.exists():
        shutil.copy(before_csv, csv)
    measure_host_pass(csv, device, meter_on, "after", shape)
    runs = pd.read_csv(csv)
    runs = runs[runs["tag"].astype(str).str.match(r"(before|after)-")]
    by_profile = {}
    for name in shipped_profile_names():
        f = host_time_factor(runs, load_profile(name)[0])
        if len(f):
            by_profile[name] = f
    name = scen.profile or default_profile_name(scen.hardware.gpu)
    f = by_profile.get(name)
    if f is None:
        f = host_time_factor(runs, load_profile(name)[0])
    if not len(f):
        return float("nan")
    factor = float(f.host_time_factor.mean())
    passes = {
        str(t).split("-")[0]: float(v) for t, v in zip(f.tag, f.host_time_factor, strict=True)
    }
    summary = read_summary(tmp)
    summary.host_speed = {
        "host_time_factor": factor,
        "profile": name,
        "passes": passes,
        "by_profile": {n: float(g.host_time_factor.mean()) for n, g in by_profile.items()},
        "measured_s_per_token": [float(x) for x in f.measured_s],
        "predicted_s_per_token": float(f.predicted_s.iloc[-1]),
        "utc": [str(u) for u in f.utc],
        "method": "calibrate/hostspeed.py just before and just after the replay (mean of "
        "the passes), hostspeed.csv",
    }
    write_summary(tmp, summary)
    each = ", ".join(f"{k} {v:.2f}" for k, v in passes.items())
    click.echo(f"{out_dir}: host_time_factor {factor:.2f} against profile {name} ({each})")
    return factor


def _tensor_parallel_engine(scen, card, engine_name):
    """Rank 0 of a torchrun job gets the TP engine of the scenario's server kind (HF generate for
    sequential, continuous batching for transformers-cb); other ranks follow and get None."""
    import os

    from llm_energy_sim.hf import distributed
    from llm_energy_sim.live import tp_engine

    tp = scen.hardware.gpus_per_replica
    kind = scen.server.kind
    if _builtin_engine(engine_name, kind) == "transformers-static":
        raise UserError("the live static engine runs on one GPU (hardware.gpus_per_replica 1)")
    if distributed.world_size() != tp:
        raise UserError(
            f"hardware.gpus_per_replica is {tp}: run under torchrun --nproc_per_node {tp} "
            f"-m llm_energy_sim.cli replay ... (this process sees {distributed.world_size()} rank(s))"
        )
    if scen.hardware.replicas != 1:
        raise UserError(
            f"tensor-parallel live runs drive one replica; the scenario has "
            f"hardware.replicas {scen.hardware.replicas}"
        )
    distributed.check_shardable(card, tp)
    distributed.init_distributed()
    root = Path(os.environ.get("SIM_TP_MODEL_DIR", "/tmp/sim-tp-models"))
    model_dir = root / f"{card.name}-{scen.dtype}-seed{scen.seed}"
    if kind == "transformers-cb":
        if distributed.rank() != 0:
            tp_engine.follow_cb(card, scen.dtype, scen.server, model_dir, scen.seed)
            return None
        return tp_engine.TensorParallelCbEngine(card, scen.dtype, scen.server, model_dir, scen.seed)
    if distributed.rank() != 0:
        tp_engine.follow(card, scen.dtype, model_dir, scen.seed)
        return None
    return tp_engine.TensorParallelGenerateEngine(card, scen.dtype, model_dir, scen.seed)


def _replay_one(
    scen,
    engine_name,
    endpoint,
    model_name,
    out_dir,
    timeout_s,
    device,
    meter,
    gpus,
    plot,
    quiet,
    prov,
) -> Path | bool:
    """One scenario against the live engine; its results dir when it completed, True on a
    follower rank (rank 0 writes), False when interrupted. `prov`: the summary's provenance."""
    from llm_energy_sim.config.scenario import scenario_card
    from llm_energy_sim.engine.workload import generate_trace
    from llm_energy_sim.live.base import RequestRecord
    from llm_energy_sim.live.driver import prompt_ids, replay

    card = scenario_card(scen)
    trace = generate_trace(scen.workload, scen.seed)
    records = [
        RequestRecord(i, float(a), int(p), int(o))
        for i, (a, p, o) in enumerate(
            zip(trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True)
        )
    ]
    if scen.hardware.gpus_per_replica > 1 and engine_name in BUILTIN:
        engine = _tensor_parallel_engine(scen, card, engine_name)
        if engine is None:  # a follower rank: it mirrored rank 0's requests
            return True
    else:
        engine = _make_engine(engine_name, scen, card, endpoint, model_name, device)
    n_gpus = scen.hardware.gpus_per_replica * scen.hardware.replicas
    gpu_ids = list(gpus) if gpus else list(range(n_gpus))

    def ids_of(rec):
        return prompt_ids(scen.seed, rec.request_id, rec.prompt_tokens, card.vocab_size)

    if hasattr(engine, "expect"):  # the static engine starts a partial batch once all arrived
        engine.expect(len(records))
    if hasattr(engine, "load"):
        if not quiet:
            click.echo(f"building {card.name} ({scen.dtype}, random weights) on {device} ...")
        engine.load()
    power = None
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    completed = False
    t0 = math.nan
    t_stop = math.nan
    warm = hasattr(engine, "warm_up") and not getattr(scen.server, "cold_start", True)
    try:
        if warm:  # the scenario's server is warmed up: so is the live one, before the meter
            if not quiet:
                click.echo("warming the engine up (server.cold_start is false) ...")
            engine.start()
            engine.warm_up()
        if meter:
            from llm_energy_sim.meter.sampler import start_meter

            power = start_meter(gpu_ids)
        if not warm:
            engine.start()
        t0 = time.perf_counter() + LEAD_S
        engine.t0 = t0
        if not quiet:
            click.echo(f"replaying {len(records)} requests ({engine_name}) ...")
        completed = replay(engine, records, ids_of, t0, timeout_s)
    except KeyboardInterrupt:
        completed = False
    finally:
        t_stop = time.perf_counter()
        try:
            engine.stop()
        finally:
            samples = power.stop(t0) if power is not None else None
    _write(
        scen,
        records,
        samples,
        engine,
        engine_name,
        endpoint,
        out_dir,
        t0,
        t_stop,
        started_at,
        completed,
        plot,
        prov,
    )
    if not quiet:
        from llm_energy_sim.results.output import print_summary, read_results

        summary, _, _ = read_results(out_dir)
        print_summary(summary)
        click.echo(f"results in {out_dir}" + ("" if completed else " (run interrupted: partial)"))
    return out_dir if completed else False


def _write(
    scen,
    records,
    samples,
    engine,
    engine_name,
    endpoint,
    out_dir,
    t0,
    t_stop,
    started_at,
    completed,
    plot,
    prov,
):
    """Build the frames from whatever was measured and write them (also after an interrupt):
    the results dir is written whole (results/staging.py), raw files included, so a rerun
    leaves nothing of the previous run."""
    import numpy as np

    from llm_energy_sim.config.profile import default_profile_name, load_profile
    from llm_energy_sim.results import measured as m
    from llm_energy_sim.results.marker import mark_complete
    from llm_energy_sim.results.output import SUMMARY_FILE, write_results
    from llm_energy_sim.results.staging import staged_dir

    df = m.base_requests_frame(records)
    finishes = df["finish_s"].dropna()
    t_end = float(finishes.max()) if len(finishes) else max(t_stop - t0, 0.0)
    if not completed:
        t_end = max(t_end, t_stop - t0)
    if samples is None:
        samples = m.EnergySamples(np.array([0.0, max(t_end, 1e-9)]), np.zeros((2, 0)))
    df, idle = m.attribute_energy(df, samples, t_end)
    try:
        deep_idle = load_profile(scen.profile or default_profile_name(scen.hardware.gpu))[
            0
        ].idle.deep_idle_w
    except UserError:
        deep_idle = None
    log = getattr(engine, "step_log", None)  # the built-in CB engine's (steplog.StepLog)
    logged = log is not None and log.attached and not math.isnan(t0)
    info = {
        "engine": engine_name,
        "endpoint": endpoint,
        "started_at_utc": started_at,
        "host": platform.node(),
        "gpus_metered": list(samples.gpu_names),
        "meter": "NVML total-energy counter (meter/nvml.py)" if samples.n_gpus else None,
        "completed": completed,
        "send_lag_s": m.send_lag_stats(df),
        "token_times_file": "token_times.csv",
    }
    if logged:
        info["steps_file"] = "steps.csv"
    summary = m.summarize_measured(
        scen, df, samples, t_end, idle, engine.info(), info, deep_idle, prov
    )
    tl = m.timeline(df, samples, t_end, scen.output.timeline_bin_s)
    with staged_dir(out_dir, SUMMARY_FILE) as tmp:
        write_results(tmp, summary, df, tl)
        _write_token_times(tmp, records)
        _write_energy_samples(tmp, samples)
        if logged:
            from llm_energy_sim.hf.steplog import write_steps

            write_steps(tmp, log.since(t0 - LEAD_S), t0)  # the warm-up's steps come before
        if plot:
            from llm_energy_sim.results.plots import plot_results

            plot_results(tmp, summary.to_dict(), df, tl)
        mark_complete(tmp)  # last: readers refuse a directory without it


def _write_token_times(out_dir: Path, records) -> None:
    """Raw per-token times (s since t0) of the engines that report them: request_id, index, t_s."""
    rows = [
        f"{r.request_id},{i},{t:.6f}"
        for r in records
        for i, t in enumerate(r.extra.get("token_times", []))
    ]
    (out_dir / "token_times.csv").write_text(
        "request_id,token_index,t_s\n" + "\n".join(rows) + "\n"
    )


def _write_energy_samples(out_dir: Path, samples) -> None:
    """The raw meter readings beside the results: t_s (since t0) and cumulative J per GPU."""
    import pandas as pd

    cols = {"t_s": samples.t_s}
    for g in range(samples.n_gpus):
        cols[f"energy_j_g{g}"] = samples.energy_j[:, g]
    pd.DataFrame(cols).to_csv(out_dir / "energy_samples.csv", index=False)
