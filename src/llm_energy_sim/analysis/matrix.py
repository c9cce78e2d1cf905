"""The live validation matrix (issue 17): each measured case beside its prediction.

A matrix directory is what tools/device/matrix.sh writes: one `sim replay` results directory
per case (`<model>-<dtype>-<scenario>/`, with the host-speed passes that bracketed it in its
hostspeed table) and the exact scenario each replayed (`scenarios/<case>.yaml`). The CLI
(`sim validate matrix`) sets each case's hardware.host_time_factor from that case's own passes
and predicts it here; the table sets the errors (predicted / measured - 1, analysis/compare.py)
of every case side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.output import SUMMARY_FILE, read_summary
from llm_energy_sim.results.tables import table_path

SCENARIOS_DIR = "scenarios"

#: the table's latency columns: compare.metric_rows' metric names
LATENCIES = {"ttft_p50": "TTFT p50", "tpot_p50": "TPOT p50", "e2e_p50": "E2E p50"}


@dataclass(frozen=True)
class MatrixCase:
    """One measured case: its results directory and the scenario it replayed."""

    name: str
    measured: Path
    scenario: Path

    @property
    def has_host_speed(self) -> bool:
        return table_path(self.measured, "hostspeed") is not None

    @property
    def key(self) -> str:
        """The case's name in a profile's model residuals: its matrix directory's name and
        its own (config/profile.ModelResidual.case)."""
        return case_key(self.measured)


def case_key(measured: Path) -> str:
    """'<matrix directory>/<case directory>' of a case's results directory."""
    p = Path(measured).resolve()
    return f"{p.parent.name}/{p.name}"


def find_cases(root: Path) -> list[MatrixCase]:
    """Every case under a matrix directory (a subdirectory with summary.json), in the order
    they were measured; UserError when there is none or a case's scenario file is missing."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory (a tools/device/matrix.sh results dir)")
    cases = []
    for d in sorted(p for p in root.iterdir() if (p / SUMMARY_FILE).is_file()):
        scen = root / SCENARIOS_DIR / f"{d.name}.yaml"
        if not scen.is_file():
            raise UserError(f"{d}: no scenario file {scen} (the one matrix.sh replayed)")
        cases.append(MatrixCase(d.name, d, scen))
    if not cases:
        raise UserError(f"{root}: no case directories (subdirectories with {SUMMARY_FILE})")

    def started(c: MatrixCase) -> str:
        return str((read_summary(c.measured).measured or {}).get("started_at_utc") or "")

    return sorted(cases, key=lambda c: (started(c), c.name))


MACHINE_FILE = "machine.yaml"


def cold_cache_cases(cases: list[MatrixCase], root: Path) -> dict[str, str]:
    """The cases that ran on a cold CUDA JIT cache, with why. Only where the matrix says its
    machine started with one (root/machine.yaml `kernel_cache_at_start: cold`): then, in run
    order, the first case per activation dtype whose attention runs under a padding mask in
    16 bit (an HF static batch, config/servers.py masked_attention_of), since the machine's
    cache keeps what a case compiled for the cases after it (measurements/calibration/
    h200-jitprobe: per machine, not per process)."""
    from llm_energy_sim.config.dtypes import dtype_info
    from llm_energy_sim.config.scenario import load_scenario
    from llm_energy_sim.config.servers import server_kind
    from llm_energy_sim.config.yamlio import read_yaml

    machine = Path(root) / MACHINE_FILE
    if not machine.is_file():
        return {}
    start = (read_yaml(machine) or {}).get("kernel_cache_at_start", "warm")
    if start not in ("warm", "cold"):
        raise UserError(f"{machine}: kernel_cache_at_start '{start}': expected warm or cold")
    if start == "warm":
        return {}
    out: dict[str, str] = {}
    compiled: set[str] = set()
    for case in cases:
        scen = load_scenario(case.scenario)
        act = dtype_info(scen.dtype).act_dtype
        masked = server_kind(scen.server.kind).masked_attention_of(scen)
        if masked and act != "float32" and act not in compiled:
            compiled.add(act)
            out[case.name] = f"the matrix's first padded static batch in {act}"
    return out


def on_cold_cache(scen):
    """The scenario on a cold kernel cache (hardware.kernel_cache: cold)."""
    return scen.model_copy(
        update={"hardware": scen.hardware.model_copy(update={"kernel_cache": "cold"})}
    )


def predict(scen, scenario_path: Path, out_dir: Path, profile: str | None, host_runs) -> Path:
    """Simulate `scen` (its host_time_factor already set) into a results directory, as
    `sim run` writes one; returns out_dir."""
    from llm_energy_sim.results.accounting import build_summary, requests_frame, timeline_frame
    from llm_energy_sim.results.marker import mark_complete
    from llm_energy_sim.results.output import write_results
    from llm_energy_sim.results.provenance import provenance
    from llm_energy_sim.results.staging import staged_dir
    from llm_energy_sim.simulation import simulate

    res = simulate(scen, profile_override=profile)
    df = requests_frame(res)
    summary = build_summary(res, df, None, provenance("sim validate matrix", scenario_path))
    if host_runs is not None:
        summary.host_time_factor_runs = host_runs
    with staged_dir(out_dir, SUMMARY_FILE) as tmp:
        write_results(tmp, summary, df, timeline_frame(res))
        mark_complete(tmp)  # last: readers refuse a directory without it
    return out_dir


def server_label(server) -> str:
    """A scenario's server as the table names it: the kind, and a static batch's size."""
    if server.kind == "static":
        return f"static b{server.batch_size}"
    return server.kind


def case_row(
    case: MatrixCase, scen, measured: dict, table: pd.DataFrame, factor: float | None
) -> dict:
    """One line of the matrix: the case (scen: its scenario), energy per request measured /
    predicted / error and the p50 latency errors, from `sim compare`'s table
    (analysis/compare.metric_rows)."""
    by = table.set_index("metric")
    energy = by.loc["energy per request (total)"]
    row = {
        "case": case.name,
        "model": scen.model,
        "dtype": scen.dtype,
        "server": server_label(scen.server),
        "scenario": case.name.removeprefix(f"{scen.model}-{scen.dtype}-"),
        "requests": measured["requests"]["total"],
        "completed": measured["requests"]["completed"],
        "host_time_factor": factor,
        "energy_wh_measured": float(energy["measured"]),
        "energy_wh_predicted": float(energy["predicted"]),
        "energy_error": float(energy["error"]),
    }
    for key, metric in LATENCIES.items():
        row[f"{key}_error"] = float(by.loc[metric, "error"])
    return row


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:+.1f}%"


def summary_stats(rows: list[dict]) -> dict:
    """Median and worst |energy error| over the cases (NaN ignored), and the worst case."""
    errs = [(abs(r["energy_error"]), r["case"]) for r in rows if math.isfinite(r["energy_error"])]
    if not errs:
        return {"cases": len(rows), "median_abs_energy_error": None, "worst": None}
    errs.sort()
    vals = [e for e, _ in errs]
    n = len(vals)
    median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {
        "cases": len(rows),
        "median_abs_energy_error": median,
        "worst_abs_energy_error": vals[-1],
        "worst": errs[-1][1],
    }


def markdown(rows: list[dict], profile: str) -> str:
    """The matrix as a Markdown table, then the median and worst |energy error|."""
    head = (
        "| model | dtype | server | scenario | requests | host factor | Wh/request measured "
        "| predicted | error | TTFT p50 | TPOT p50 | E2E p50 |\n"
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in rows:
        hf = "-" if r["host_time_factor"] is None else f"{r['host_time_factor']:.2f}"
        done = r["completed"]
        n = str(r["requests"]) if done == r["requests"] else f"{done} of {r['requests']}"
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['server']} | {r['scenario']} | {n} | {hf} "
            f"| {r['energy_wh_measured']:.4g} | {r['energy_wh_predicted']:.4g} "
            f"| {_pct(r['energy_error'])} | {_pct(r['ttft_p50_error'])} "
            f"| {_pct(r['tpot_p50_error'])} | {_pct(r['e2e_p50_error'])} |"
        )
    s = summary_stats(rows)
    tail = (
        f"\n{s['cases']} cases, profile {profile}; errors are predicted / measured - 1. "
        f"|energy error|: median {_pct(s['median_abs_energy_error']).lstrip('+')}, worst "
        f"{_pct(s.get('worst_abs_energy_error')).lstrip('+')} ({s['worst']}).\n"
        if s["median_abs_energy_error"] is not None
        else f"\n{s['cases']} cases, profile {profile}: no energy errors (nothing metered).\n"
    )
    return head + "\n".join(lines) + "\n" + tail


# ---- coverage of the 80% prediction intervals (analysis/intervals.py) ---------------------
#: the figures whose interval the coverage check tests against the measured value
COVERAGE_FIGURES = {
    "energy_per_request_wh": "energy / request",
    "ttft_p50_s": "TTFT p50",
    "tpot_p50_s": "TPOT p50",
}
#: the matrix row's error column of each figure (the prediction at the case's own factor)
OWN_ERROR = {
    "energy_per_request_wh": "energy_error",
    "ttft_p50_s": "ttft_p50_error",
    "tpot_p50_s": "tpot_p50_error",
}
#: the accuracy targets (docs/accuracy.md): energy per request 15%, p50 TTFT and TPOT 20%;
#: they split the coverage by whether the model is right at the case's own host speed
TARGETS = {"energy_per_request_wh": 0.15, "ttft_p50_s": 0.20, "tpot_p50_s": 0.20}


def coverage_row(
    case: MatrixCase, scen, measured: dict, intervals: dict | None, own: dict | None = None
) -> dict:
    """One case's coverage line: per figure the measured value, the interval (predicted
    from the profile's host-speed distribution, not the case's own factor), whether it holds
    the measured value, its width relative to the central value, and (own: the case's
    matrix row) the error of the prediction at the case's own measured host factor."""
    from llm_energy_sim.analysis.intervals import figures

    meas = figures(measured)
    figs = (intervals or {}).get("figures") or {}
    row: dict = {
        "case": case.name,
        "model": scen.model,
        "dtype": scen.dtype,
        "server": server_label(scen.server),
        "host_time_factor": (intervals or {}).get("host_time_factor"),
    }
    for fig in COVERAGE_FIGURES:
        e, m = figs.get(fig), meas.get(fig)
        ok = e is not None and m is not None
        row[f"{fig}_measured"] = m
        row[f"{fig}_value"] = e["value"] if e else None
        row[f"{fig}_lower"] = e["lower"] if e else None
        row[f"{fig}_upper"] = e["upper"] if e else None
        row[f"{fig}_inside"] = bool(e["lower"] <= m <= e["upper"]) if ok else None
        row[f"{fig}_width"] = (e["upper"] - e["lower"]) / e["value"] if e else None
        err = (own or {}).get(OWN_ERROR[fig])
        row[f"{fig}_error_at_own_factor"] = (
            float(err) if err is not None and math.isfinite(err) else None
        )
    return row


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def coverage_stats(rows: list[dict]) -> dict:
    """Per figure and over all (case, figure) pairs: how many intervals hold the measured
    value, of how many, the fraction, and the median relative width (upper - lower) / value."""
    out: dict = {}
    every_inside, every_width = [], []
    for fig in COVERAGE_FIGURES:
        inside = [r[f"{fig}_inside"] for r in rows if r[f"{fig}_inside"] is not None]
        widths = [r[f"{fig}_width"] for r in rows if r[f"{fig}_width"] is not None]
        every_inside += inside
        every_width += widths
        out[fig] = {
            "covered": sum(inside),
            "cases": len(inside),
            "fraction": sum(inside) / len(inside) if inside else None,
            "median_width": _median(widths),
        }
    out["all"] = {
        "covered": sum(every_inside),
        "cases": len(every_inside),
        "fraction": sum(every_inside) / len(every_inside) if every_inside else None,
        "median_width": _median(every_width),
    }
    # the pairs whose prediction at the case's own measured factor meets the target: where
    # what is left is the host speed (and run-to-run), which is what the interval covers
    right = [
        r[f"{fig}_inside"]
        for r in rows
        for fig in COVERAGE_FIGURES
        if r[f"{fig}_inside"] is not None
        and r.get(f"{fig}_error_at_own_factor") is not None
        and abs(r[f"{fig}_error_at_own_factor"]) <= TARGETS[fig]
    ]
    out["within_target_at_own_factor"] = {
        "covered": sum(right),
        "cases": len(right),
        "fraction": sum(right) / len(right) if right else None,
    }
    return out


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _frac(s: dict) -> str:
    if s["fraction"] is None:
        return "-"
    return (
        f"{s['covered']}/{s['cases']} ({s['fraction']:.0%}), median width {s['median_width']:.1%}"
    )


def coverage_markdown(rows: list[dict], stats: dict, title: str) -> str:
    """The coverage table (one line per case: measured and [lower, upper] per figure, a
    check mark when inside) and its per-figure coverage and median relative width."""
    figs = list(COVERAGE_FIGURES)
    head = "| model | dtype | server | " + " | ".join(
        f"{COVERAGE_FIGURES[f]} measured [80% interval]" for f in figs
    )
    head += " |\n| --- | --- | --- |" + " --- |" * len(figs) + "\n"
    lines = []
    for r in rows:
        cells = []
        for f in figs:
            mark = {True: "in", False: "**out**", None: "-"}[r[f"{f}_inside"]]
            cells.append(
                f"{_g(r[f'{f}_measured'])} [{_g(r[f'{f}_lower'])}, {_g(r[f'{f}_upper'])}] {mark}"
            )
        lines.append(f"| {r['model']} | {r['dtype']} | {r['server']} | " + " | ".join(cells) + " |")
    tail = f"\n{title}: " + "; ".join(f"{COVERAGE_FIGURES[f]} {_frac(stats[f])}" for f in figs)
    tail += f"; all {_frac(stats['all'])}."
    w = stats.get("within_target_at_own_factor") or {}
    if w.get("fraction") is not None:
        tail += (
            f" Of the {w['cases']} (case, figure) pairs whose prediction at the case's own "
            "measured host factor meets the target (energy 15%, p50 latencies 20%), the "
            f"interval holds {w['covered']} ({w['fraction']:.0%})."
        )
    return head + "\n".join(lines) + "\n" + tail + "\n"


def _under(source: str, root: Path) -> bool:
    """Whether a sample's source directory (repository-relative, or absolute) lies under the
    matrix directory `root`: the last three parts of root's path run through source's."""
    tail = Path(root).resolve().parts[-3:]
    parts = Path(source).parts
    return any(parts[i : i + len(tail)] == tail for i in range(len(parts) - len(tail) + 1))


def held_out(profile, root: Path):
    """The profile with the host-speed samples measured in the matrix directory `root` left
    out (None when it has none there, or none would remain)."""
    hs = profile.host_speed
    if hs is None:
        return None
    kept = [s for s in hs.samples if not _under(s.source, root)]
    if len(kept) == len(hs.samples) or not kept:
        return None
    left = len(hs.samples) - len(kept)
    new = hs.model_copy(
        update={"samples": kept, "source": f"{hs.source}; {left} samples from {root} held out"}
    )
    return profile.model_copy(update={"name": f"{profile.name}-without-matrix", "host_speed": new})


# ---- the ordering of cases by energy per request (issue 17 item 4) ------------------------
#: the kinds of pair the ordering check sets side by side, in the order it reports them:
#: what the two cases' scenarios differ in (config/scenario.py fields, the case name aside)
PAIR_KINDS = {
    "dtype": "differ only in dtype (same model, server, batch and workload)",
    "dtype+": "same model and server kind, differ in dtype and also in workload or batch",
    "model": "differ only in model (same dtype, server, batch and workload)",
    "model+dtype": "differ in model and dtype only (same server, batch and workload)",
    "repeat": "the same scenario measured twice (its difference is run to run: not ordered)",
}


def scenario_fields(scen) -> dict[str, object]:
    """A scenario's settings as dotted keys ("workload.requests"), its name left out."""

    def flat(d: dict, pre: str) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{pre}{k}."))
            else:
                out[f"{pre}{k}"] = v
        return out

    fields = flat(scen.model_dump(mode="json"), "")
    fields.pop("name", None)
    return fields


def differences(a, b) -> dict[str, tuple[object, object]]:
    """The dotted scenario keys whose values differ between scenarios a and b, with both
    values (a key only one of them has counts, with None for the other)."""
    fa, fb = scenario_fields(a), scenario_fields(b)
    return {
        k: (fa.get(k), fb.get(k)) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)
    }


def pair_kind(a, b) -> str | None:
    """Which of PAIR_KINDS two scenarios form, or None when they are not comparable here
    (different model and server kind, or a different workload across models)."""
    diff = set(differences(a, b))
    if not diff:
        return "repeat"
    if diff == {"dtype"}:
        return "dtype"
    if "dtype" in diff and a.model == b.model and a.server.kind == b.server.kind:
        return "dtype+"
    if diff == {"model"}:
        return "model"
    if diff == {"model", "dtype"}:
        return "model+dtype"
    return None


def _order(x: float, y: float, tie: float) -> str:
    """'>' or '<' when ln(x / y) is beyond +-tie, else '='."""
    r = math.log(x / y)
    return "=" if abs(r) <= tie else (">" if r > 0 else "<")


def ordering_pairs(
    rows: list[dict],
    scenarios: dict,
    tie: dict[str, float],
    at_default: dict[str, float] | None = None,
) -> list[dict]:
    """Every pair of matrix cases of one of PAIR_KINDS (scenarios: each case's scenario as
    it replayed, before any host factor), with the order of their measured and predicted
    energy per request. tie: per case, the relative run-to-run spread of a measured energy
    (t(0.9, dof) x sigma_log of its profile); a measured order counts only when
    |ln(a / b)| exceeds the two cases' spreads combined (sqrt(tie_a^2 + tie_b^2)), else the
    pair is a tie and compares nothing. at_default: each case's prediction at the profile's
    default host factor (the coverage's central value), checked the same way."""
    out = []
    for i, ra in enumerate(rows):
        for rb in rows[i + 1 :]:
            a, b = ra["case"], rb["case"]
            kind = pair_kind(scenarios[a], scenarios[b])
            values = (ra["energy_wh_measured"], rb["energy_wh_measured"])
            preds = (ra["energy_wh_predicted"], rb["energy_wh_predicted"])
            if kind is None or not all(math.isfinite(v) and v > 0 for v in (*values, *preds)):
                continue
            noise = math.hypot(tie.get(a, 0.0), tie.get(b, 0.0))
            measured = _order(*values, noise)
            predicted = _order(*preds, 0.0)
            diff = differences(scenarios[a], scenarios[b])
            pair = {
                "kind": kind,
                "a": a,
                "b": b,
                "label_a": _label(ra, kind),
                "label_b": _label(rb, kind),
                "also_differ": {k: list(v) for k, v in diff.items() if k not in ("model", "dtype")},
                "measured_wh": list(values),
                "predicted_wh": list(preds),
                "tie_rel": noise,
                "measured_order": measured,
                "predicted_order": predicted,
                "agree": None if measured == "=" or kind == "repeat" else predicted == measured,
            }
            if at_default is not None and a in at_default and b in at_default:
                dflt = _order(at_default[a], at_default[b], 0.0)
                pair["predicted_at_default_wh"] = [at_default[a], at_default[b]]
                pair["predicted_at_default_order"] = dflt
                pair["agree_at_default"] = None if pair["agree"] is None else dflt == measured
            out.append(pair)
    order = list(PAIR_KINDS)
    return sorted(out, key=lambda p: order.index(p["kind"]))


def _label(row: dict, kind: str) -> str:
    """What tells the two cases of a pair apart: the dtype, or the model (and dtype)."""
    if kind.startswith("dtype"):
        return row["dtype"]
    return row["model"] if kind == "model" else f"{row['model']} {row['dtype']}"


def ordering_stats(pairs: list[dict]) -> dict:
    """Per pair kind: how many pairs, how many of them have a measured order (not a tie),
    and of those how many the prediction orders the same (at the cases' own host factors,
    and at the profile's default where the pairs carry it); under "measured", the smallest
    measured difference (larger / smaller - 1) of the ordered pairs and the largest tie
    threshold, as the same relative difference."""
    out: dict = {}
    ordered = [p for p in pairs if p["kind"] != "repeat"]
    out["measured"] = {
        "smallest_difference": min(
            (math.expm1(abs(math.log(p["measured_wh"][0] / p["measured_wh"][1]))) for p in ordered),
            default=None,
        ),
        "largest_tie": max((math.expm1(p["tie_rel"]) for p in ordered), default=None),
    }
    for kind in PAIR_KINDS:
        ps = [p for p in pairs if p["kind"] == kind]
        settled = [p for p in ps if p["agree"] is not None]
        s = {
            "pairs": len(ps),
            "comparable": len(settled),
            "agree": sum(p["agree"] for p in settled),
        }
        dflt = [p for p in settled if p.get("agree_at_default") is not None]
        if dflt:
            s["agree_at_default"] = sum(p["agree_at_default"] for p in dflt)
            s["comparable_at_default"] = len(dflt)
        out[kind] = s
    return out


def _agree_text(s: dict) -> str:
    text = f"{s['agree']} of {s['comparable']} comparable pairs agree"
    if "agree_at_default" in s:
        text += (
            f" ({s['agree_at_default']} of {s['comparable_at_default']} at the profile's "
            "default host speed)"
        )
    ties = s["pairs"] - s["comparable"]
    if ties:
        text += f"; {ties} measured tie{'s' if ties > 1 else ''} within run-to-run spread"
    return text


def ordering_summary(stats: dict) -> list[str]:
    """The printed summary lines: the dtype ordering first (pairs that differ only in dtype,
    or the statement that none does), then the looser dtype pairs and the pairs across
    models, each saying how many pairs there are to compare."""
    dt, loose = stats["dtype"], stats["dtype+"]
    if dt["pairs"]:
        first = f"dtype ordering: {_agree_text(dt)}"
    else:
        first = "dtype ordering: no pair of cases differs only in dtype"
    first += (
        f"; same model and server kind, also differing in workload or batch: {_agree_text(loose)}"
        if loose["pairs"]
        else "; no pair of the same model and server kind differs in dtype at all"
    )
    lines = [first + "."]
    names = {"model": "same dtype, only the model differs", "model+dtype": "model and dtype differ"}
    across = [
        f"{names[k]}: {_agree_text(stats[k])}" if stats[k]["pairs"] else f"{names[k]}: no pair"
        for k in names
    ]
    lines.append("ordering across models on one workload: " + "; ".join(across) + ".")
    rep, m = stats["repeat"]["pairs"], stats["measured"]
    third = (
        f"measured orders: {rep} pair{'s' if rep != 1 else ''} of cases repeat one scenario"
        if rep
        else "measured orders: no case of the matrix was measured twice, so no order is repeated"
    )
    if m["largest_tie"] is not None:
        third += (
            f"; an order counts beyond the run-to-run spread of repeated live runs (profile "
            f"run_to_run, at most {m['largest_tie']:.1%} here), the smallest difference of a "
            f"pair {m['smallest_difference']:.1%}"
        )
    lines.append(third + ".")
    return lines


def _ord_text(p: dict, order_key: str) -> str:
    o = p[order_key]
    return f"{p['label_a']} = {p['label_b']}" if o == "=" else f"{p['label_a']} {o} {p['label_b']}"


def ordering_markdown(pairs: list[dict], stats: dict) -> str:
    """The ordering check as Markdown: its summary lines, then one table line per pair (both
    cases, what else differs, measured and predicted Wh/request and both orders)."""
    lines = ["### Ordering by energy per request", ""]
    lines += [f"- {s}" for s in ordering_summary(stats)]
    lines += [
        "",
        "A measured order counts only beyond the run-to-run spread of the two measurements "
        "(t(0.9, dof) x sigma_log of each profile, combined). Predicted: at each case's own "
        "measured host factor (the matrix table's), and, with the coverage check, both cases "
        "at the profile's default host speed; the measured cases ran at their own host "
        "speeds, so a close pair can flip at one common speed.",
        "",
    ]
    if not pairs:
        return "\n".join([*lines, "No pair of cases is comparable.", ""])
    dflt = any("predicted_at_default_order" in p for p in pairs)
    head = (
        "| pair | case a | case b | also differ | Wh/request measured a, b | predicted a, b "
        "| measured order | predicted order | agree |"
    )
    sep = "| --- | --- | --- | --- | ---: | ---: | --- | --- | --- |"
    if dflt:
        head += " at default host speed |"
        sep += " --- |"
    lines += [head, sep]
    mark = {True: "yes", False: "**no**", None: "tie"}
    for p in pairs:
        also = ", ".join(f"{k} {v[0]} vs {v[1]}" for k, v in p["also_differ"].items()) or "-"
        (ma, mb), (pa, pb) = p["measured_wh"], p["predicted_wh"]
        line = (
            f"| {p['kind']} | {p['a']} | {p['b']} | {also} | {ma:.4g}, {mb:.4g} "
            f"| {pa:.4g}, {pb:.4g} | {_ord_text(p, 'measured_order')} "
            f"| {_ord_text(p, 'predicted_order')} | {mark[p['agree']]} |"
        )
        if dflt:
            d = p.get("predicted_at_default_order")
            line += (
                " - |"
                if d is None
                else f" {_ord_text(p, 'predicted_at_default_order')}: "
                f"{mark[p['agree_at_default']]} |"
            )
        lines.append(line)
    kinds = "; ".join(f"{k}: {v}" for k, v in PAIR_KINDS.items())
    return "\n".join([*lines, "", f"Pair kinds: {kinds}.", ""])


# ---- which configurations of a figure the matrix validated live ---------------------------
def live_status(rows: list[dict], model: str, dtype: str, server: str) -> dict:
    """Whether the matrix has a live case of exactly this model, dtype and server (a table
    server label: "sequential", "static b8", "transformers-cb") and its errors; otherwise
    the nearest live cases (same model and dtype on another server, or same server with
    another model or dtype), so a reader sees what was measured around it."""
    same = [r for r in rows if (r["model"], r["dtype"], r["server"]) == (model, dtype, server)]
    out: dict = {"model": model, "dtype": dtype, "server": server, "validated": bool(same)}
    out["cases"] = [
        {k: r[k] for k in ("case", "requests", "energy_error", "ttft_p50_error", "tpot_p50_error")}
        for r in same
    ]
    out["nearest"] = (
        []
        if same
        else [
            {"case": r["case"], "energy_error": r["energy_error"]}
            for r in rows
            if (r["model"], r["dtype"]) == (model, dtype)
            or (r["server"] == server and (r["model"] == model or r["dtype"] == dtype))
        ]
    )
    return out


def live_cell(status: dict) -> str:
    """A status as a short table cell: "live: -7.2% (mistral-7b-int4-sequential)" per case,
    or "unvalidated"."""
    if not status["validated"]:
        return "unvalidated"
    return "; ".join(f"live: {_pct(c['energy_error'])} ({c['case']})" for c in status["cases"])
