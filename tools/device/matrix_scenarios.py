"""The validation matrix's cases (tools/device/matrix_cases.txt) as scenario files.

A case line is `model dtype server scenario requests` (whitespace separated; `#` starts a
comment): the validation scenario scenarios/validation/<scenario>.yaml with that model card,
dtype and request count, on hardware.gpu h200, named `<model>-<dtype>-<scenario>` (its results
directory). `server` must be the scenario's server.kind (a check that the line says what it
runs). Every case is loaded with the package's own scenario loader, so a bad line fails here,
on any CPU, before any GPU time.

    python3 tools/device/matrix_scenarios.py CASES_FILE OUT_DIR [--only REGEX]
        writes OUT_DIR/<case>.yaml per case and prints their paths, one a line
    python3 tools/device/matrix_scenarios.py CASES_FILE --estimate [--host-factor F]
        prints each case's replay time: simulated (makespan at host_time_factor F), or for
        bitsandbytes its decode steps at the step time measured on the H200 (BNB_STEP_S)
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VALIDATION = REPO / "scenarios" / "validation"

# Measured TPOT p50 of the H200 bitsandbytes sequential runs (measurements/live/h200-bnb,
# llama-3.1-8b, 32 layers, host_time_factor 1.75 / 2.05, 2026-12-02): s per decode step, used
# only to estimate how long a bitsandbytes case runs (the simulator predicted those runs 1.45x
# / 2.3x too fast, and CB's host entry knows no bitsandbytes launches).
BNB_STEP_S = {"int8": 0.192, "int4": 0.137}


@dataclass(frozen=True)
class Case:
    """One line of the cases file."""

    model: str
    dtype: str
    server: str
    scenario: str
    requests: int
    line: int

    @property
    def name(self) -> str:
        """The case's scenario name and results directory."""
        return f"{self.model}-{self.dtype}-{self.scenario}"


def parse_cases(text: str, only: str | None = None) -> list[Case]:
    """The cases of a cases file, in order; `only`: keep the lines this regex finds."""
    cases = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or (only and not re.search(only, line)):
            continue
        parts = line.split()
        if len(parts) != 5 or not parts[4].isdigit() or int(parts[4]) <= 0:
            raise ValueError(f"line {i}: want 'model dtype server scenario requests': {raw!r}")
        cases.append(Case(*parts[:4], int(parts[4]), i))
    names = [c.name for c in cases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"cases repeated (same model, dtype, scenario): {', '.join(dup)}")
    return cases


def case_scenario(case: Case) -> dict:
    """The case's scenario document: its validation scenario with the case's fields."""
    doc = yaml.safe_load((VALIDATION / f"{case.scenario}.yaml").read_text())
    doc["name"] = case.name
    doc["model"] = case.model
    doc["dtype"] = case.dtype
    doc["hardware"] = {**doc.get("hardware", {}), "gpu": "h200"}
    doc["workload"]["requests"] = case.requests
    return doc


def check(case: Case, path: Path):
    """Load the written scenario with the package (card, dtype, server kind checks)."""
    from llm_energy_sim.config.scenario import load_scenario, scenario_card

    scen = load_scenario(path)
    scenario_card(scen)
    if scen.server.kind != case.server:
        raise ValueError(
            f"line {case.line}: {case.scenario}.yaml runs server.kind {scen.server.kind}, "
            f"the line says {case.server}"
        )
    return scen


def write_scenarios(cases: list[Case], out_dir: Path) -> list[Path]:
    """OUT_DIR/<case>.yaml for every case, each checked; returns the paths in case order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in cases:
        p = out_dir / f"{c.name}.yaml"
        head = (
            f"# validation matrix case (tools/device/matrix_cases.txt line {c.line}): "
            f"{c.model} {c.dtype} {c.server} {c.scenario} {c.requests}\n"
            f"# = scenarios/validation/{c.scenario}.yaml with model, dtype, workload.requests "
            "and hardware.gpu h200 set\n"
        )
        p.write_text(head + yaml.safe_dump(case_scenario(c), sort_keys=False))
        check(c, p)
        paths.append(p)
    return paths


def decode_steps(scen) -> int:
    """Decode steps the case's engine runs for its trace: the sum of outputs one at a time,
    each batch's longest in static batches, the longest (+2 for prefills) under CB."""
    from llm_energy_sim.engine.workload import generate_trace

    out = [int(x) for x in generate_trace(scen.workload, scen.seed).output_tokens]
    if scen.server.kind == "sequential":
        return sum(out)
    if scen.server.kind == "static":
        b = scen.server.batch_size
        return sum(max(out[i : i + b]) for i in range(0, len(out), b))
    return max(out) + 2


def estimate(cases: list[Case], host_factor: float) -> list[tuple[Case, float]]:
    """Each case's replay time (s), without builds or host passes: the simulated makespan at
    host_factor, or for bitsandbytes dtypes its decode steps at BNB_STEP_S (scaled by the
    model's layers over the 32 measured)."""
    import tempfile

    from llm_energy_sim.config.scenario import load_scenario, scenario_card
    from llm_energy_sim.simulation import simulate

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for c, p in zip(cases, write_scenarios(cases, Path(tmp)), strict=True):
            scen = load_scenario(p, {"hardware.host_time_factor": host_factor})
            if c.dtype in BNB_STEP_S:
                layers = scenario_card(scen).num_hidden_layers
                t = decode_steps(scen) * BNB_STEP_S[c.dtype] * layers / 32
            else:
                t = simulate(scen).t_end
            out.append((c, t))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases_file", type=Path)
    ap.add_argument("out_dir", type=Path, nargs="?")
    ap.add_argument("--only", help="keep the case lines this regex finds")
    ap.add_argument("--estimate", action="store_true")
    ap.add_argument("--host-factor", type=float, default=1.5)
    a = ap.parse_args(argv)
    cases = parse_cases(a.cases_file.read_text(), a.only)
    if not cases:
        print("no cases", file=sys.stderr)
        return 1
    if a.estimate:
        total = 0.0
        for c, t in estimate(cases, a.host_factor):
            total += t
            print(f"{c.name:45s} {c.requests:3d} requests  {t:6.1f} s")
        print(f"replays alone: {total:.0f} s at host_time_factor {a.host_factor}")
        return 0
    if a.out_dir is None:
        ap.error("OUT_DIR is needed (or --estimate)")
    for p in write_scenarios(cases, a.out_dir):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
