"""Refit the generate() prefill terms of the shipped profiles (HostOverhead.setup_s, the
bitsandbytes prefill_serial_fraction, IdlePower.host_wait_w and step_standby_fraction) on
their raw host tables, with the cost model as it now prices a batched prefill (one attention
call per layer, its t0 once). Every other field is kept.

    python tools/refit_prefill_terms.py            # rewrite the shipped profiles
    python tools/refit_prefill_terms.py --check    # exit 1 if a shipped profile is stale
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.fit import fit_prefill, host_runs
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
# shipped profile: the raw host table its hf_eager entries were fitted on
RAW_HOST = {
    "h100-sxm": ROOT / "measurements/calibration/h100-v2/host.csv",
    "h200": ROOT / "measurements/calibration/h200/host.csv",
}
NOTE = "prefill terms refit with one attention t0 per batched prefill call (tools/refit_prefill_terms.py)"


def refit(name: str) -> dict:
    prof, path = load_profile(name)
    base, _ = load_profile("h100-sxm-bootstrap")
    base = base.model_copy(update={"kernels": prof.kernels})
    pre = fit_prefill(host_runs(pd.read_csv(RAW_HOST[name])), base, prof.host)
    data = json.loads(Path(path).read_text())
    old_setup = prof.host["hf_eager"].setup_s
    for key, entry in data["host"].items():
        if not key.startswith("hf_eager"):
            continue
        if math.isclose(entry.get("setup_s", 0.0), old_setup, rel_tol=1e-9):
            entry["setup_s"] = pre.setup_s  # the shared generate() set-up
        if key in pre.serial:
            entry["prefill_serial_fraction"] = pre.serial[key]
    data["idle"]["host_wait_w"] = pre.host_wait_w
    data["idle"]["step_standby_fraction"] = pre.step_standby_fraction
    data["provenance"]["prefill_refit_note"] = NOTE
    # the host entries' wait powers are fitted given those idle terms: as `sim calibrate`
    # fits them on the same tables
    for key, wait in calibrated_wait_powers(name).items():
        if key in data["host"]:
            data["host"][key]["wait_w"] = wait
    return data


#: the other raw directories `sim calibrate --fit-only` takes beside a profile's own (--with):
#: the multi-GPU nodes' TP host and interconnect tables, and for the H100 the H200's eager
#: small-op chain (tests/calibrate/test_calibrate.py runs the same command)
WITH = {
    "h100-sxm": ("h200x4", "h200x2", "h200x2-b", "h200x2-cb", "h200"),
    "h200": ("h200x4", "h200x2", "h200x2-b", "h200x2-cb"),
}


def calibrated_wait_powers(name: str) -> dict[str, float | None]:
    """wait_w of every host entry `sim calibrate --fit-only` fits on the profile's raw tables
    (with the current cost model and the refit idle terms), by engine key."""
    import shutil
    import subprocess
    import tempfile

    raw = RAW_HOST[name].parent
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / raw.name
        shutil.copytree(raw, work)
        cmd = [sys.executable, "-m", "llm_energy_sim.cli", "calibrate", "--fit-only", str(work)]
        cmd += ["--out", str(work)]
        for d in WITH[name]:
            cmd += ["--with", str(raw.parent / d)]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        fitted = json.loads(_profile_json(work))
    return {k: v.get("wait_w") for k, v in fitted["host"].items()}


def _profile_json(work: Path) -> str:
    """The profile file `sim calibrate` wrote into `work` (not provenance.json)."""
    found = [p for p in work.glob("*.json") if p.name != "provenance.json"]
    if len(found) != 1:
        raise SystemExit(f"{work}: expected one fitted profile, found {[p.name for p in found]}")
    return found[0].read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    stale = []
    for name in RAW_HOST:
        path = PROFILES_DIR / f"{name}.json"
        text = json.dumps(refit(name), indent=2) + "\n"
        if path.read_text() != text:
            stale.append(name)
            if not args.check:
                path.write_text(text)
    if stale:
        print(("stale: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
