"""Simulator speed benchmark: prints a table of wall time, CPU time and peak memory.

Every case is a fresh `sim` process (start-up included), `sim run` pinned to one core; the
best of --repeat runs is shown. Goals (issue 19, one core): poisson_1m.yaml (10^6 requests)
<= 15 s and 300 MB; fixed500ms.yaml (10^4) <= 0.5 s; `sim --help` <= 0.2 s; `sim plan
optimize` for Llama-3.1-70B (4 dtypes x TP 1/2/4/8 x auto replicas, 10^6 requests/day)
<= 60 s on 2 cores.

    python benchmarks/bench_sim.py [--skip-1m] [--plan] [--dask]
        [--baseline OLD_CHECKOUT/src] [--vidur VIDUR_CHECKOUT] [--repeat N] [--markdown]

--baseline runs every case also with another checkout's package (PYTHONPATH), interleaved
with ours (ours, theirs, ours, ...), and adds the ratio. --vidur runs Vidur
(`python -m vidur.main`, trace replay of the same requests: arrival, prompt and output
tokens of each shipped scenario's trace) from that directory and adds the ratio against it.
--dask measures `sim plan optimize` on a dask LocalCluster of 1 and of 2 workers, and beside
it the speed-up the machine itself allows 2 processes (a CPU-bound pure-Python burn): on a
shared machine whose other jobs hold a core, no cluster can beat that.
The `sim run` cases time the simulator alone (`--no-interval`; a checkout from before the
intervals has none). --intervals prints instead what the 80% prediction intervals cost: each
of INTERVAL_CASES with and without them, on all cores and pinned to one (docs/host-speed.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCEN = REPO / "scenarios"
#: the case run with an empty build cache (fastcore/build.py: the first TGI run on a machine
#: compiles the loop), and the variable naming that cache
FIRST_RUN = "fixed500ms, first run (builds the loop)"
CACHE_ENV = "LLM_ENERGY_SIM_CACHE"


@dataclass
class Measure:
    wall_s: float
    cpu_s: float
    peak_mb: float


def _one_core() -> None:
    """preexec_fn: pin the child to one core (the first this process may use)."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})


def measure(
    cmd: list[str],
    pythonpath: str | None = None,
    pin: bool = True,
    cwd: Path | None = None,
    env_extra: dict[str, str] | None = None,
) -> Measure:
    """Run cmd to completion; its wall time, user+system CPU time and peak RSS (of the process
    itself or of its largest waited-for child: the compiler of a first run)."""
    env = {**os.environ, **(env_extra or {})}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_one_core if pin else None,
    )
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()[-500:]}")
    return Measure(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0)


def sim(*args: str) -> list[str]:
    return [sys.executable, "-m", "llm_energy_sim.cli", *args]


def has_no_interval(pythonpath: str) -> bool:
    """Whether the `sim run` of the package at `pythonpath` has --no-interval."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    p = subprocess.run(sim("run", "--help"), env=env, capture_output=True, text=True)
    return "--no-interval" in p.stdout


def run_case(args: list[str], out: Path, interval: bool = False) -> list[str]:
    """`sim run ARGS` quietly into out; without `interval`, with --no-interval."""
    return sim("run", *args, "--quiet", "--out", str(out), *([] if interval else ["--no-interval"]))


#: the cases of --intervals: a TGI run (no host term: no bound runs), HF generate, static
#: batches, transformers CB
INTERVAL_CASES = [
    ("`fixed500ms.yaml` (TGI, 10^4: no bound runs)", [str(SCEN / "fixed500ms.yaml")]),
    ("`sequential.yaml` (HF generate, 10^4)", [str(SCEN / "sequential.yaml")]),
    ("`static_b4.yaml` (10^4)", [str(SCEN / "static_b4.yaml")]),
    ("`validation/fixed500ms.yaml` (CB, 100)", [str(SCEN / "validation" / "fixed500ms.yaml")]),
    (
        "`validation/fixed50ms.yaml --requests 2000` (CB)",
        [str(SCEN / "validation" / "fixed50ms.yaml"), "--requests", "2000"],
    ),
]


def interval_table(repeat: int) -> str:
    """Best-of-`repeat` wall times of each INTERVAL_CASES run with its intervals and with
    --no-interval, on every core and pinned to one, interleaved; a markdown table."""
    head = (
        "| `sim run` | all cores: with / `--no-interval` (s) | ratio "
        "| 1 core: with / without (s) | ratio |\n| --- | --- | --- | --- | --- |"
    )
    lines = [head]
    with tempfile.TemporaryDirectory() as tmp:
        for label, argv in INTERVAL_CASES:
            got: dict[tuple[bool, bool], list[Measure]] = {}
            for _ in range(repeat):
                for pin in (False, True):
                    for interval in (True, False):
                        m = measure(run_case(argv, Path(tmp) / "o", interval), pin=pin)
                        got.setdefault((pin, interval), []).append(m)
            cells = [label]
            for pin in (False, True):
                a, b = best(got[(pin, True)]), best(got[(pin, False)])
                cells += [f"{a.wall_s:.2f} / {b.wall_s:.2f}", f"{a.wall_s / b.wall_s:.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def best(ms: list[Measure]) -> Measure:
    return Measure(min(m.wall_s for m in ms), min(m.cpu_s for m in ms), min(m.peak_mb for m in ms))


def vidur_trace(scenario: Path, requests: int | None, path: Path) -> None:
    """The scenario's requests as a Vidur trace-replay CSV (arrived_at, num_prefill_tokens,
    num_decode_tokens)."""
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.engine.workload import generate_trace

    over = {} if requests is None else {"workload.requests": requests}
    scen = load_scenario(scenario, over)
    t = generate_trace(scen.workload, scen.seed)
    import pandas as pd

    pd.DataFrame(
        {
            "arrived_at": t.arrival_s,
            "num_prefill_tokens": t.prompt_tokens,
            "num_decode_tokens": t.output_tokens,
        }
    ).to_csv(path, index=False)


def vidur_cmd(trace: Path, replicas: int) -> list[str]:
    """Vidur's simulator on a trace (Llama-3-8B on H100, vLLM scheduler)."""
    return [
        sys.executable,
        "-m",
        "vidur.main",
        "--replica_config_device",
        "h100",
        "--replica_config_model_name",
        "meta-llama/Meta-Llama-3-8B",
        "--cluster_config_num_replicas",
        str(replicas),
        "--request_generator_config_type",
        "trace_replay",
        "--trace_request_generator_config_trace_file",
        str(trace),
        "--replica_scheduler_config_type",
        "vllm",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-1m", action="store_true", help="leave out the 10^6-request run")
    ap.add_argument("--plan", action="store_true", help="also time sim plan optimize")
    ap.add_argument("--dask", action="store_true", help="plan optimize on 1 and 2 dask workers")
    ap.add_argument("--baseline", help="src/ of another checkout, timed interleaved with ours")
    ap.add_argument("--vidur", type=Path, help="a Vidur checkout, to time on the same traces")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--intervals", action="store_true", help="only: what sim run's intervals cost")
    args = ap.parse_args()
    if args.intervals:
        print(interval_table(max(args.repeat, 1)))
        return

    cases: list[tuple[str, list[str], float | None, float | None, Path | None, int | None]] = [
        # label, sim arguments, goal s, goal MB, scenario for Vidur, its requests
        ("sim --help", ["--help"], 0.2, None, None, None),
        ("fixed500ms (10^4)", ["run"], 0.5, None, SCEN / "fixed500ms.yaml", None),
        (FIRST_RUN, ["run"], None, None, SCEN / "fixed500ms.yaml", None),
        ("poisson_1m --requests 10^4", ["run"], None, None, SCEN / "poisson_1m.yaml", 10**4),
        ("poisson_1m --requests 10^5", ["run"], None, None, SCEN / "poisson_1m.yaml", 10**5),
        ("sequential (10^4)", ["run"], None, None, SCEN / "sequential.yaml", None),
        ("static_b4 (10^4)", ["run"], None, None, SCEN / "static_b4.yaml", None),
        (
            "llama70b_tp4_fixed500ms (10^4)",
            ["run"],
            None,
            None,
            SCEN / "llama70b_tp4_fixed500ms.yaml",
            None,
        ),
    ]
    if not args.skip_1m:
        cases.append(("poisson_1m (10^6)", ["run"], 15.0, 300.0, SCEN / "poisson_1m.yaml", None))

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; sim run pinned to one core; best of {args.repeat}"
    )
    rows = []
    # a baseline from before the intervals has no --no-interval (and runs none)
    base_interval = bool(args.baseline) and not has_no_interval(args.baseline)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "res"
        for label, sub, goal_s, goal_mb, scen, n in cases:
            if sub == ["run"]:
                argv = [str(scen)] + ([] if n is None else ["--requests", str(n)])
                cmd = run_case(argv, out)
                base_cmd = run_case(argv, out, interval=base_interval)
            else:
                cmd = base_cmd = sim(*sub)
            ours, theirs = [], []
            for _ in range(args.repeat):
                if label == FIRST_RUN:  # an empty cache: this run builds the compiled loop
                    with tempfile.TemporaryDirectory() as cache:
                        ours.append(measure(cmd, env_extra={CACHE_ENV: cache}))
                    continue
                ours.append(measure(cmd))
                if args.baseline:
                    theirs.append(measure(base_cmd, pythonpath=args.baseline))
            row = {"case": label, "ours": best(ours), "goal_s": goal_s, "goal_mb": goal_mb}
            if theirs:
                row["base"] = best(theirs)
            if args.vidur and scen is not None:
                trace = Path(tmp) / "trace.csv"
                vidur_trace(scen, n, trace)
                replicas = 2 if scen.stem == "poisson_1m" else 1
                row["vidur"] = measure(vidur_cmd(trace, replicas), cwd=args.vidur)
            rows.append(row)
            print(_line(row), flush=True)
        if args.plan:
            plan = sim(
                "plan",
                "optimize",
                str(SCEN / "llama70b_tp4_fixed500ms.yaml"),
                "--per-day",
                "1e6",
                "--workers",
                "2",
                "--out",
                str(Path(tmp) / "plan.csv"),
            )
            row = {"case": "plan optimize 70B, 2 workers", "goal_s": 60.0, "goal_mb": None}
            row["ours"] = measure(plan, pin=False)
            if args.baseline:
                row["base"] = measure(plan, pythonpath=args.baseline, pin=False)
            rows.append(row)
            print(_line(row), flush=True)
        if args.dask:
            for row in _dask_rows(Path(tmp)):
                rows.append(row)
                print(_line(row), flush=True)
    if args.markdown:
        print()
        print(markdown(rows))


def _dask_rows(tmp: Path) -> list[dict]:
    """plan optimize against a LocalCluster of 1 worker and of 2 (one thread each)."""
    from dask.distributed import LocalCluster

    rows = []
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster:
            cmd = sim(
                "plan",
                "optimize",
                str(SCEN / "llama70b_tp4_fixed500ms.yaml"),
                "--per-day",
                "1e6",
                "--dask",
                cluster.scheduler_address,
                "--out",
                str(tmp / "plan.csv"),
            )
            rows.append(
                {
                    "case": f"plan optimize 70B, dask {workers} worker(s)",
                    "ours": measure(cmd, pin=False),
                    "goal_s": None,
                    "goal_mb": None,
                }
            )
    rows[1]["note"] = (
        f"speed-up {rows[0]['ours'].wall_s / rows[1]['ours'].wall_s:.2f}x "
        f"(a pure-Python burn on this machine: {parallel_headroom():.2f}x)"
    )
    return rows


def _burn(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s


def parallel_headroom(n: int = 4, loops: int = 5_000_000) -> float:
    """Wall-time speed-up of n CPU-bound pure-Python tasks on 2 processes over 1: what the
    machine leaves for a 2-worker cluster (2.0 on two idle cores; about 1.0 when other jobs
    hold one of them)."""
    from concurrent.futures import ProcessPoolExecutor

    walls = []
    for workers in (1, 2):
        t0 = time.perf_counter()
        with ProcessPoolExecutor(workers) as ex:
            list(ex.map(_burn, [loops] * n))
        walls.append(time.perf_counter() - t0)
    return walls[0] / walls[1]


def _fmt(m: Measure) -> str:
    return f"{m.wall_s:8.2f} {m.cpu_s:8.2f} {m.peak_mb:8.0f}"


def _line(row: dict) -> str:
    s = f"{row['case']:36s} {_fmt(row['ours'])}"
    if "base" in row:
        b = row["base"]
        s += f" | base {_fmt(b)} | x{b.cpu_s / row['ours'].cpu_s:5.2f} cpu"
    if "vidur" in row:
        s += f" | vidur {row['vidur'].wall_s:8.2f} x{row['vidur'].wall_s / row['ours'].wall_s:5.1f}"
    if row.get("goal_s"):
        s += f" | goal {row['goal_s']} s" + (f", {row['goal_mb']} MB" if row.get("goal_mb") else "")
    if row.get("note"):
        s += f" | {row['note']}"
    return s


def markdown(rows: list[dict]) -> str:
    """The rows as the README's speed table."""
    base = any("base" in r for r in rows)
    vidur = any("vidur" in r for r in rows)
    head = ["case", "wall s", "CPU s", "peak MB"]
    if base:
        head += ["before: wall s", "CPU s", "peak MB", "CPU speed-up"]
    if vidur:
        head += ["Vidur wall s", "ratio"]
    head += ["goal"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        o = r["ours"]
        cells = [r["case"], f"{o.wall_s:.2f}", f"{o.cpu_s:.2f}", f"{o.peak_mb:.0f}"]
        if base:
            b = r.get("base")
            cells += (
                [
                    f"{b.wall_s:.2f}",
                    f"{b.cpu_s:.2f}",
                    f"{b.peak_mb:.0f}",
                    f"{b.cpu_s / o.cpu_s:.1f}x",
                ]
                if b
                else ["-"] * 4
            )
        if vidur:
            v = r.get("vidur")
            cells += [f"{v.wall_s:.2f}", f"{v.wall_s / o.wall_s:.1f}x"] if v else ["-", "-"]
        goal = []
        if r.get("goal_s"):
            goal.append(f"<= {r['goal_s']:g} s")
        if r.get("goal_mb"):
            goal.append(f"<= {r['goal_mb']:g} MB")
        if r.get("note"):
            goal.append(r["note"])
        cells.append(", ".join(goal) or "-")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
