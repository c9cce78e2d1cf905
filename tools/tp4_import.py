"""Import a TP session with the host measured in the same call (tools/device/tp4_session.sh),
refit the profile's TP host entries from it, predict every case at the host speed measured in
that call and print the error table against issue 20's targets.

    python tools/tp4_import.py SRC --lease tp4-b [--write] [--markdown FILE]
    python tools/tp4_import.py measurements/live/tp4-b --check     # exit 1: profile stale
    python tools/tp4_import.py measurements/live/tp2-b --tp 2      # the TP 2 sessions

SRC is what came back ($OUT/tp4s.tgz, or the folder /tmp/tp4s), imported into
measurements/live/LEASE/ (every CSV once to Parquet as tools/import_live.py converts them: the
cases as `sim replay` wrote them; host/hostspeed, host/tphost-{before,after},
host/tpcbhost-{before,after} and their -shapemiss tables; environment.txt, call.txt,
commands.txt, logs/), or an imported lease folder (measurements/live/LEASE, TP 2's too).

The refit: `hf_eager_tp{N}` from the lease's host/tphost* tables and `transformers_cb_tp{N}`
from host/tpcbhost* (calibrate/fit.fit_tp_host_tables: every pass of the call averaged, the
same fit as `sim calibrate --fit-only --with`), with their attention-shape-miss and cold-start
terms kept from the entry the degree used before (the TP misses are a pooled fit over the
multi-GPU nodes, calibrate/fit._measured_misses); the engine's `_tp` entry (degrees not
measured) follows when N is the highest degree measured. --write puts them into the profile
(default the shipped h200.json; --profile-out PATH elsewhere) and, for the shipped profile,
reruns tools/host_speed_samples.py --write (the call's host-speed passes are serving-host
samples). Without --write the refit goes to a temporary file, used for the predictions.

The predictions: each case's scenario (scenarios/validation/, with the --set / --requests its
summary.json recorded) at hardware.host_time_factor from the same call (calibrate/hostspeed
factor_from_tables against the refitted profile): HF generate cases from the TP HF generate
benchmark (tphost, before and after), eager CB from the TP CB benchmark (tpcbhost), CB with
CUDA graphs from the one-GPU host-speed passes (no CB-with-graphs benchmark exists under TP);
1.0, said so, where the call measured none. Errors are predicted / measured - 1
(analysis/compare.py); targets: energy per request and p50 TPOT within 15%, p50 TTFT within
20%. Beside them: the factor the engine's own steps saw (`sim steps`), the simulated CB
schedule against the step log, and the same case predicted with the profile before the refit.
Predictions go to results/validation/LEASE/ (--out), which git ignores.

Bad input (a missing source, an existing lease, no cases, a table without the TP degree) is a
one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llm_energy_sim.config.errors import UserError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIVE = REPO / "measurements" / "live"
SCENARIOS = REPO / "scenarios" / "validation"
#: issue 20's targets: |predicted / measured - 1| at most
TARGETS = {"energy": 0.15, "tpot_p50": 0.15, "ttft_p50": 0.20}
#: cost-model engine -> the stem its TP host benchmark tables start with
BENCH = {"hf_eager": "tphost", "transformers_cb": "tpcbhost"}
#: what the session script writes under host/ -> its name in the imported lease's host/
HOST_TABLES = {
    "hostspeed.csv": "hostspeed",
    "tphost-before/tphost.csv": "tphost-before",
    "tphost-before/shapemiss.csv": "tphost-before-shapemiss",
    "tphost-after/tphost.csv": "tphost-after",
    "tphost-after/shapemiss.csv": "tphost-after-shapemiss",
    "tpcb-before/tpcbhost.csv": "tpcbhost-before",
    "tpcb-before/shapemiss.csv": "tpcbhost-before-shapemiss",
    "tpcb-after/tpcbhost.csv": "tpcbhost-after",
    "tpcb-after/shapemiss.csv": "tpcbhost-after-shapemiss",
}
TEXT_FILES = ("environment.txt", "call.txt", "commands.txt")


# ---- import ------------------------------------------------------------------------------
def session_root(src: Path, scratch: Path) -> Path:
    """The session folder of SRC: a .tgz extracted into scratch (its one top folder), or the
    folder itself. UserError unless it holds replay/ and host/ (tp4_session.sh's layout)."""
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    root = src
    if src.is_file():
        try:
            with tarfile.open(src) as tar:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: no links out, no devices
                    tar.extractall(scratch, filter="data")
                else:
                    tar.extractall(scratch)
        except (tarfile.TarError, OSError) as exc:
            raise UserError(f"{src}: not a readable tar archive ({exc})") from None
        tops = [p for p in scratch.iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise UserError(
                f"{src}: expected one top folder (tp4_session.sh's NAME/), found {len(tops)}"
            )
        root = tops[0]
    if not ((root / "replay").is_dir() and (root / "host").is_dir()):
        raise UserError(
            f"{root}: no replay/ and host/ folders (tools/device/tp4_session.sh's results)"
        )
    if not any((root / "host" / rel).is_file() for rel in HOST_TABLES if "/tp" in rel):
        raise UserError(
            f"{root}/host: no TP host benchmark tables (tphost-*/, tpcb-*/): nothing to refit"
        )
    return root


def import_session(root: Path, dest: Path) -> int:
    """Copy a session folder into the lease folder dest (which must not exist): the cases of
    replay/ at its top and the host tables under host/ as Parquet, the text files, the step
    logs under logs/. Returns the files written."""
    from tools.import_live import import_tree, to_parquet

    if dest.exists():
        raise UserError(f"{dest}: exists; give another --lease or remove it")
    try:
        return _copy_session(root, dest, import_tree, to_parquet)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # no half-imported lease left behind
        raise


def _copy_session(root: Path, dest: Path, import_tree, to_parquet) -> int:
    """import_session's copying, into dest."""
    n = import_tree(root / "replay", dest)
    (dest / "host").mkdir(parents=True, exist_ok=True)
    for rel, stem in HOST_TABLES.items():
        f = root / "host" / rel
        if f.is_file() and f.stat().st_size > 0:
            to_parquet(f, dest / "host" / f"{stem}.parquet")
            n += 1
    if (root / "host" / "provenance.json").is_file():
        shutil.copy2(root / "host" / "provenance.json", dest / "host" / "provenance.json")
        n += 1
    for name in TEXT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
            n += 1
    logs = sorted(root.glob("*.log"))
    if logs:
        (dest / "logs").mkdir(exist_ok=True)
        for f in logs:
            shutil.copy2(f, dest / "logs" / f.name)
            n += 1
    return n


# ---- the host tables of a lease ----------------------------------------------------------
def bench_tables(host: Path, stem: str) -> list[Path]:
    """The lease's TP benchmark tables of one engine (stem tphost or tpcbhost: before, after,
    or TP 2's single table), not their shape-miss tables."""
    return sorted(
        p
        for p in host.glob(f"{stem}*.parquet")
        if "shapemiss" not in p.stem and re.fullmatch(rf"{stem}(-\w+)?", p.stem)
    )


def _read(path: Path) -> pd.DataFrame:
    from llm_energy_sim.results.readcheck import read_any_table

    return read_any_table(path)


def tp_degree(host: Path, tp: int | None) -> int:
    """The TP degree of the lease's benchmark tables (all rows one degree), checked against
    --tp when given."""
    found: set[int] = set()
    for stem in BENCH.values():
        for p in bench_tables(host, stem):
            t = _read(p)
            if "tp" not in t.columns:
                raise UserError(f"{p}: no tp column (not a TP host benchmark table)")
            found |= {int(x) for x in t["tp"].dropna()}
    if not found:
        raise UserError(f"{host}: no TP host benchmark tables (tphost*.parquet, tpcbhost*.parquet)")
    if len(found) > 1 or (tp is not None and found != {tp}):
        want = f" (--tp {tp})" if tp is not None else ""
        raise UserError(f"{host}: tables of TP degree {sorted(found)}{want}: expected one degree")
    return found.pop()


# ---- refit -------------------------------------------------------------------------------
FITTED = ("per_step_s", "per_layer_s", "per_sequence_s", "wait_w", "setup_s", "fit_error")
KEPT_NOTE = "attention shape misses:"


def call_misses(host: Path, stem: str, engine: str, lease: str) -> tuple[tuple, str] | None:
    """The attention shape misses the call measured beside one engine's benchmark (its
    -shapemiss tables: fresh vs cached steps under TP, calibrate/fit.fit_shape_misses), with
    their source; None when it measured none."""
    from llm_energy_sim.calibrate.fit import fit_shape_misses

    tables = sorted(host.glob(f"{stem}*shapemiss*.parquet"))
    if not tables:
        return None
    fit = fit_shape_misses(pd.concat([_read(p) for p in tables], ignore_index=True))
    if f"{engine}_tp" not in fit:
        return None
    names = ", ".join(f"{lease}/host/{p.name}" for p in tables)
    return fit[f"{engine}_tp"], f"fresh vs cached steps of this call under TP, {names}"


def refit_entry(base: dict, fitted, misses: tuple[tuple, str] | None) -> dict:
    """An entry's JSON (`base`: the one this TP degree used before) with the host terms of
    `fitted` and, where the call measured them, its attention shape misses (the dtypes it
    measured; others, and the cold start, as in `base`)."""
    dumped = json.loads(fitted.model_dump_json())
    entry = {**base, **{k: dumped[k] for k in FITTED}}
    tail = base["source"].split(KEPT_NOTE, 1)
    kept = f"{KEPT_NOTE}{tail[1]}" if len(tail) == 2 else "none"
    note = f"{fitted.source}; refitted from this call alone (tools/tp4_import.py)"
    if misses is not None:
        (per_step, per_layer, power), src = misses
        entry["attn_shape_miss_s"] = {**base["attn_shape_miss_s"], **per_step}
        entry["attn_shape_miss_per_layer_s"] = {
            **base["attn_shape_miss_per_layer_s"],
            **per_layer,
        }
        entry["attn_shape_miss_w"] = power if power is not None else base["attn_shape_miss_w"]
        note += f"; attention shape misses ({', '.join(sorted(per_step))}): {src}"
        kept = f"other dtypes' misses and the cold start as before: {kept}"
    else:
        kept = f"the call measured no misses: misses and cold start as before: {kept}"
    entry["source"] = f"{note}; {kept}"
    return entry


def refit_profile(data: dict, host: Path, lease: str, tp: int) -> tuple[dict, dict]:
    """The profile JSON `data` with `{engine}_tp{tp}` (and `{engine}_tp` when tp is the highest
    degree measured) refitted from the lease's host tables, each engine with tables; every
    other field as it was. Returns (new JSON, {entry: (old JSON or None, new JSON)})."""
    from llm_energy_sim.calibrate.fit import _where, fit_tp_host_tables
    from llm_energy_sim.config.profile import Profile

    prof = Profile.model_validate(data)
    new = json.loads(json.dumps(data))
    changed: dict[str, tuple[dict | None, dict]] = {}
    for engine, stem in BENCH.items():
        tables = bench_tables(host, stem)
        if not tables:
            continue
        where = _where(host)
        parts = [(_read(p), f"{lease}/host/{p.name} ({where})") for p in tables]
        key = f"{engine}_tp{tp}"
        fitted = fit_tp_host_tables(parts, prof, engine)[key]
        old = data["host"].get(key)
        base = json.loads(json.dumps(old or data["host"][f"{engine}_tp"]))
        entry = refit_entry(base, fitted, call_misses(host, stem, engine, lease))
        new["host"][key] = entry
        changed[key] = (old, entry)
        degrees = [
            int(m.group(1)) for k in data["host"] if (m := re.fullmatch(rf"{engine}_tp(\d+)", k))
        ]
        if tp >= max(degrees, default=tp):
            top = {
                **entry,
                "source": "TP degrees not measured: the entry of the highest measured, "
                f"{tp}; {entry['source']}",
            }
            changed[f"{engine}_tp"] = (data["host"].get(f"{engine}_tp"), top)
            new["host"][f"{engine}_tp"] = top
    if not changed:
        raise UserError(f"{host}: no TP host benchmark tables to refit from")
    new.setdefault("provenance", {})[f"tp{tp}_note"] = (
        f"host {', '.join(sorted(changed))}: refitted from measurements/live/{lease}/host/ "
        "(the TP host benchmarks of one call, before and after its live runs, and the shape "
        "misses measured beside them) by tools/tp4_import.py; cold start as before"
    )
    Profile.model_validate(new)  # it still validates
    return new, changed


# ---- cases and predictions ---------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A replayed case: its results folder, the scenario file and the overrides it ran with."""

    name: str
    measured: Path
    scenario: Path
    overrides: dict
    started: str


def _scenario_file(summary: dict, where: Path) -> Path:
    """The validation scenario a case replayed: its recorded file's name under
    scenarios/validation/, else the one whose `name` is the case's scenario name."""
    from llm_energy_sim.config.yamlio import read_yaml

    prov = summary.get("provenance") or {}
    path = prov.get("scenario_path")
    if path and (SCENARIOS / Path(path).name).is_file():
        return SCENARIOS / Path(path).name
    for f in sorted(SCENARIOS.glob("*.yaml")):
        if (read_yaml(f) or {}).get("name") == summary.get("scenario"):
            return f
    raise UserError(f"{where}: no scenario file for '{summary.get('scenario')}' in {SCENARIOS}")


def find_cases(lease: Path) -> list[Case]:
    """Every case folder of a lease (a subfolder with summary.json), in the order measured."""
    from llm_energy_sim.cli.options import overrides

    cases = []
    for d in sorted(p for p in lease.iterdir() if (p / "summary.json").is_file()):
        s = json.loads((d / "summary.json").read_text())
        ov = (s.get("provenance") or {}).get("overrides") or {}
        cases.append(
            Case(
                d.name,
                d,
                _scenario_file(s, d),
                overrides(ov.get("requests"), ov.get("set") or ()),
                str((s.get("measured") or {}).get("started_at_utc") or ""),
            )
        )
    if not cases:
        raise UserError(f"{lease}: no case folders (subfolders with summary.json)")
    return sorted(cases, key=lambda c: (c.started, c.name))


def factor_tables(scen, host: Path) -> tuple[list[Path], str]:
    """The call's host tables a case's host factor comes from, and what they are."""
    from llm_energy_sim.config.servers import server_kind

    engine = server_kind(scen.server.kind).cost_engine_of(scen.server)
    if engine.endswith("_graphs"):
        return sorted(host.glob("hostspeed*.parquet")), "host-speed passes (one GPU)"
    stem = BENCH.get(engine)
    if stem is None:
        raise UserError(f"{scen.name}: engine {engine} has no TP host benchmark")
    return bench_tables(host, stem), f"TP {stem} benchmark"


def _simulate(scen, path: Path, out: Path, profile: str, step_log: bool) -> Path:
    """Simulate into a results folder as `sim run` writes one (with --step-log's steps)."""
    from llm_energy_sim.results.accounting import build_summary, requests_frame, timeline_frame
    from llm_energy_sim.results.marker import mark_complete
    from llm_energy_sim.results.output import SUMMARY_FILE, write_results
    from llm_energy_sim.results.provenance import provenance
    from llm_energy_sim.results.staging import staged_dir
    from llm_energy_sim.results.steptable import write_steps
    from llm_energy_sim.simulation import simulate

    res = simulate(scen, profile_override=profile, step_log=step_log)
    df = requests_frame(res)
    summary = build_summary(res, df, None, provenance("tools/tp4_import.py", path))
    with staged_dir(out, SUMMARY_FILE) as tmp:
        write_results(tmp, summary, df, timeline_frame(res))
        if step_log:
            write_steps(tmp, sorted(row for r in res.replicas for row in r.step_log))
        mark_complete(tmp)
    return out


def _errors(pred: Path, meas: Path) -> dict:
    from llm_energy_sim.analysis.compare import compare_dirs

    table, _, _ = compare_dirs(pred, meas)
    by = table.set_index("metric")
    e = by.loc["energy per request (total)"]
    out = {
        "energy_wh_measured": float(e["measured"]),
        "energy_wh_predicted": float(e["predicted"]),
        "energy": float(e["error"]),
    }
    for key, metric in (("ttft_p50", "TTFT p50"), ("tpot_p50", "TPOT p50"), ("e2e_p50", "E2E p50")):
        out[f"{key}_measured"] = float(by.loc[metric, "measured"])
        out[f"{key}_predicted"] = float(by.loc[metric, "predicted"])
        out[key] = float(by.loc[metric, "error"])
    return out


def engine_saw(scen, measured: Path, profile: str) -> float | None:
    """The host factor the live engine's own host-bound decode steps ran at (`sim steps`);
    None for a run whose steps cannot be rebuilt (batched, without a step log)."""
    from llm_energy_sim.analysis.stepcheck import cost_steps, load_steps, summarize
    from llm_energy_sim.simulation import profile_for, scenario_cost_model

    try:
        steps, source = load_steps(measured)
    except UserError:
        return None
    prof, _ = profile_for(scen, profile)
    hw = scen.hardware
    cost = scenario_cost_model(scen, prof)
    df = cost_steps(steps, cost, bool(getattr(scen.server, "cold_start", False)))
    return summarize(df, hw.host_time_factor, source).get("host_time_factor_seen_by_engine")


def predict_case(case: Case, host: Path, profile: str, before: str, out: Path) -> dict:
    """One case beside its predictions with the refitted profile and the one before it."""
    from llm_energy_sim.analysis.stepcheck import compare_schedules, load_steps
    from llm_energy_sim.calibrate.hostspeed import factor_from_tables
    from llm_energy_sim.config.profile import load_profile
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.results.steptable import read_steps
    from llm_energy_sim.results.tables import has_table

    scen = load_scenario(case.scenario, case.overrides)
    tables, what = factor_tables(scen, host)
    row: dict = {"case": case.name, "scenario": case.scenario.name, "factor_from": what}
    cb_log = has_table(case.measured, "steps")
    for label, prof in (("", profile), ("before_", before)):
        if tables:
            factor, runs = factor_from_tables(tables, load_profile(prof)[0])
            src = f"{what}: {len(runs)} runs"
        else:
            factor, src = 1.0, f"no {what} in this call: 1.0"
        s = load_scenario(case.scenario, {**case.overrides, "hardware.host_time_factor": factor})
        pred = _simulate(s, case.scenario, out / f"{label}predicted-{case.name}", prof, cb_log)
        errs = _errors(pred, case.measured)
        row.update({f"{label}{k}": v for k, v in errs.items()})
        row[f"{label}host_time_factor"] = factor
        if not label:
            row["factor_source"] = src
            row["engine_saw"] = engine_saw(s, case.measured, prof)
            if cb_log:
                sched = compare_schedules(read_steps(pred), load_steps(case.measured)[0])
                row["schedule"] = f"{sched['identical_steps']} of {sched['steps']['measured']}"
    row["meets_targets"] = all(
        math.isfinite(row[k]) and abs(row[k]) <= t for k, t in TARGETS.items()
    )
    return row


def host_diagnostics(host: Path, before: str) -> list[str]:
    """Each host table's per-run factors against the profile before the refit: the one-GPU
    passes say how slow the host was, the TP benchmarks what TP costs beyond it."""
    from llm_energy_sim.calibrate.hostspeed import engine_of_table, host_time_factor
    from llm_energy_sim.config.profile import load_profile

    prof = load_profile(before)[0]
    lines = []
    tables = sorted(host.glob("hostspeed*.parquet"))
    for stem in BENCH.values():
        tables += bench_tables(host, stem)
    for p in tables:
        f = host_time_factor(_read(p), prof, engine_of_table(p))
        vals = ", ".join(f"{x:.2f}" for x in f["host_time_factor"])
        lines.append(
            f"{p.name}: {len(f)} runs, host_time_factor {vals} against {prof.name} before the refit"
        )
    return lines


def _pct(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:+.0f}%"


def markdown(rows: list[dict], changed: dict, diag: list[str], lease: str, tp: int) -> str:
    """The error table, the refitted entries and the call's host factors, as Markdown."""
    out = [
        f"**TP {tp}** (`measurements/live/{lease}/`), each case at the host factor measured in "
        "the same call against the refitted profile (last column: the same cases predicted with "
        "the profile as it was before the refit, at the call's factors against it):",
        "",
        "| case | host factor (from) | Wh/req measured -> predicted | energy | TTFT p50 (s) | "
        "TPOT p50 (s) | E2E p50 | engine saw | CB schedule | targets | before the refit: "
        "energy / TTFT / TPOT |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        saw = "-" if r["engine_saw"] is None else f"{r['engine_saw']:.2f}"
        out.append(
            f"| {r['case']} | {r['host_time_factor']:.2f} ({r['factor_from']}) "
            f"| {r['energy_wh_measured']:.4g} -> {r['energy_wh_predicted']:.4g} | {_pct(r['energy'])} "
            f"| {r['ttft_p50_measured']:.4g} -> {r['ttft_p50_predicted']:.4g} ({_pct(r['ttft_p50'])}) "
            f"| {r['tpot_p50_measured']:.4g} -> {r['tpot_p50_predicted']:.4g} ({_pct(r['tpot_p50'])}) "
            f"| {_pct(r['e2e_p50'])} | {saw} | {r.get('schedule', '-')} "
            f"| {'met' if r['meets_targets'] else 'not met'} "
            f"| {_pct(r['before_energy'])} / {_pct(r['before_ttft_p50'])} / {_pct(r['before_tpot_p50'])} |"
        )
    met = sum(r["meets_targets"] for r in rows)
    out += [
        "",
        f"{met} of {len(rows)} cases meet every target (energy per request and p50 TPOT within "
        "15%, p50 TTFT within 20%).",
        "",
        "Refitted host entries (ms: per step, per layer; us: per sequence):",
        "",
    ]
    for key, (old, new) in changed.items():

        def terms(e):
            if e is None:
                return "none"
            return f"{e['per_step_s'] * 1e3:.3f} / {e['per_layer_s'] * 1e3:.3f} / {e['per_sequence_s'] * 1e6:.1f}"

        out.append(f"- `{key}`: {terms(old)} -> {terms(new)}")
    out += ["", "Host factors measured in the call:", ""] + [f"- {line}" for line in diag]
    return "\n".join(out) + "\n"


# ---- command line -------------------------------------------------------------------------
def run(a: argparse.Namespace) -> int:
    from llm_energy_sim.config.paths import PROFILES_DIR
    from llm_energy_sim.config.profile import load_profile

    with tempfile.TemporaryDirectory(prefix="tp4-import-") as scratch:
        scratch = Path(scratch)
        src = Path(a.src)
        if (src / "host").is_dir() and not (src / "replay").is_dir():  # an imported lease
            lease_dir = src
            lease = a.lease or src.name
        else:
            if not a.lease:
                raise UserError("--lease NAME: the folder under measurements/live/ to import into")
            lease, lease_dir = a.lease, Path(a.measurements) / a.lease
            n = import_session(session_root(src, scratch / "src"), lease_dir)
            print(f"imported {n} files into {lease_dir}")
        host = lease_dir / "host"
        tp = tp_degree(host, a.tp)
        before_path = Path(load_profile(a.profile)[1])
        data = json.loads(before_path.read_text())
        new, changed = refit_profile(data, host, lease, tp)
        text = json.dumps(new, indent=2) + "\n"
        target = Path(a.profile_out) if a.profile_out else before_path
        if a.check:
            stale = target.read_text() != text
            print(("stale: " if stale else "up to date: ") + str(target))
            return 1 if stale else 0
        refit_path = scratch / f"{new['name']}.json"
        refit_path.write_text(text)
        out = Path(a.out) if a.out else REPO / "results" / "validation" / lease
        before = str(scratch / "before.json")
        shutil.copy2(before_path, before)
        rows = [predict_case(c, host, str(refit_path), before, out) for c in find_cases(lease_dir)]
        md = markdown(rows, changed, host_diagnostics(host, before), lease, tp)
        print(md)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tp_session.json").write_text(json.dumps(rows, indent=1) + "\n")
        if a.markdown:
            Path(a.markdown).write_text(md)
        if a.write:
            target.write_text(text)
            print(f"wrote {', '.join(sorted(changed))} into {target}")
            if target.resolve().parent == PROFILES_DIR.resolve():
                from tools import host_speed_samples

                host_speed_samples.main(["--write"])  # the call's passes are samples too
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="the returned .tgz or folder, or an imported lease folder")
    ap.add_argument("--lease", help="measurements/live/LEASE to import into (e.g. tp4-b)")
    ap.add_argument("--tp", type=int, help="the TP degree (default: the tables')")
    ap.add_argument("--profile", default="h200", help="profile name or JSON (default h200)")
    ap.add_argument("--profile-out", help="write the refit here instead of over --profile")
    ap.add_argument("--write", action="store_true", help="write the refitted profile")
    ap.add_argument("--check", action="store_true", help="exit 1 when the profile is not the refit")
    ap.add_argument(
        "--measurements", default=str(LIVE), help="where leases go (default measurements/live)"
    )
    ap.add_argument("--out", help="predictions (default results/validation/LEASE)")
    ap.add_argument("--markdown", help="also write the table to this file")
    a = ap.parse_args(argv)
    try:
        return run(a)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
