"""tools/device/tp4_session.sh on CPU: the commands it runs on the 4-GPU node (DRY=1), and the
same pipeline run for real with two gloo ranks and a tiny card (DEVICE=cpu): the host-speed
passes, both TP host benchmarks before and after, the CB replays with their step logs; then
tools/tp4_import.py imports what came back, refits the TP entries from it and tabulates."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tools import tp4_import

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "tools/device/tp4_session.sh"


def _run(tmp_path: Path, env: dict) -> tuple[int, str]:
    """The script with env added, its output to a file (results.sh's tar loop sleeps in a
    child that outlives the script and would hold a pipe open)."""
    bindir = str(Path(sys.executable).parent)  # python3 and torchrun of this interpreter
    full = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "OUT": str(tmp_path / "out")}
    log = tmp_path / "script.log"
    with log.open("w") as f:
        rc = subprocess.run(
            ["bash", SCRIPT],
            cwd=REPO,
            env={**full, **env},
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=600,
        ).returncode
    return rc, log.read_text()


def _steps(commands: str) -> dict[str, str]:
    """commands.txt: step name -> its logged line."""
    out = {}
    for line in commands.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and " exit " not in line:
            out[parts[1]] = parts[2]
    return out


def test_dry_run_lists_the_node_commands_in_order(tmp_path):
    name = f"tp4-dry-{os.getpid()}"
    try:
        rc, out = _run(tmp_path, {"DRY": "1", "NAME": name, "NPROC": "4"})
        assert rc == 0, out
        res = Path("/tmp") / name
        steps = _steps((res / "commands.txt").read_text())
        order = ["hs-before", "tphost-before", "tpcb-before", "replay-gen", "replay-cb"]
        order += ["tphost-after", "tpcb-after", "hs-after"]
        assert list(steps) == order
        for step in order[1:-1]:
            assert "torchrun --standalone --nproc_per_node 4" in steps[step], step
        assert "--misses" in steps["tphost-before"] and "--misses" in steps["tpcb-before"]
        assert "--misses" not in steps["tphost-after"] + steps["tpcb-after"]
        assert (
            "tp4_70b8l_sequential.yaml scenarios/validation/tp4_70b8l_fixed2s"
            in (steps["replay-gen"])
        )
        cb = steps["replay-cb"]
        assert "tp4_70b8l_cb_burst.yaml scenarios/validation/tp4_70b8l_cb_burst_graphs" in cb
        assert "NCCL_GRAPH_MIXING_SUPPORT=0" in cb
        assert "NCCL_GRAPH_MIXING_SUPPORT" not in steps["replay-gen"]
        assert "--device" not in cb and "--no-meter" not in cb  # on the node: every GPU metered
        # the budgets: the replays' the largest; each step keeps the estimates of the steps
        # after it in reserve, so the reserves fall to 0 and the first leaves it its budget
        budgets = {s: int(v.split("budget ")[1].split(" s")[0]) for s, v in steps.items()}
        reserves = [int(v.split("reserve ")[1].split(" s")[0]) for v in steps.values()]
        assert budgets["replay-gen"] == max(budgets.values())
        assert reserves == sorted(reserves, reverse=True) and reserves[-1] == 0
        assert reserves[0] + budgets["hs-before"] < 585
        call = (res / "call.txt").read_text()
        assert "command: bash tools/device/tp4_session.sh" in call and "start_utc" in call
        assert (tmp_path / "out" / f"{name}.tgz").is_file()
    finally:
        shutil.rmtree(Path("/tmp") / name, ignore_errors=True)


@pytest.mark.slow  # five torchrun / python processes importing transformers: ~45 s here
def test_cpu_session_imports_refits_and_tabulates(tiny_models, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    name = f"tp4-cpu-{os.getpid()}"
    env = {
        "DEVICE": "cpu",
        "CPU_MODEL": "tiny-llama",
        "NAME": name,
        # time: HF generate under TP on CPU is tests/live/test_tp_engine.py's; one benchmark
        # pass after the replays (HF generate's) shows the before/after pair
        "SKIP": "replay-gen tpcb-after hs-after",
    }
    try:
        rc, out = _run(tmp_path, env)
        assert rc == 0, out
        commands = (Path("/tmp") / name / "commands.txt").read_text()
        for step in ("hs-before", "tphost-before", "tpcb-before", "replay-cb", "tphost-after"):
            assert f"{step} exit 0 after" in commands, commands
        assert "replay-gen skipped (SKIP)" in commands
        tgz = tmp_path / "out" / f"{name}.tgz"
        live = tmp_path / "live"
        rc = tp4_import.main(
            [str(tgz), "--lease", "tp4-cpu", "--measurements", str(live), "--tp", "2",
             "--out", str(tmp_path / "pred"), "--write", "--profile-out", str(tmp_path / "p.json")]
        )  # fmt: skip
        assert rc == 0
    finally:
        shutil.rmtree(Path("/tmp") / name, ignore_errors=True)
        shutil.rmtree(Path("/tmp") / f"{name}-models", ignore_errors=True)
    lease = live / "tp4-cpu"
    host = lease / "host"
    # where the refit expects them, as Parquet
    for stem in ("tphost-before", "tphost-after", "tpcbhost-before", "hostspeed"):
        assert (host / f"{stem}.parquet").is_file(), stem
    for stem in ("tphost-before-shapemiss", "tpcbhost-before-shapemiss"):
        assert (host / f"{stem}.parquet").is_file(), stem
    assert not list(lease.rglob("*.csv"))
    passes = pd.read_parquet(host / "hostspeed.parquet")
    assert [t.split("-")[0] for t in passes["tag"]] == ["before"]
    assert (passes["decode_s_per_token"] > 0).all()
    assert set(pd.read_parquet(host / "tphost-after.parquet")["tp"]) == {2}
    for f in ("environment.txt", "call.txt", "commands.txt", "logs/replay-cb.log"):
        assert (lease / f).is_file(), f
    assert json.loads((host / "provenance.json").read_text())["measured_utc"]
    cases = {p.name for p in lease.iterdir() if (p / "summary.json").is_file()}
    assert cases == {"val-tp4-70b8l-cb-burst", "val-tp4-70b8l-cb-burst-graphs"}
    for case in cases:
        assert (lease / case / "steps.parquet").is_file()  # the engine's step log
    graphs = json.loads((lease / "val-tp4-70b8l-cb-burst-graphs" / "summary.json").read_text())
    assert graphs["server_limits"]["tensor_parallel"] == 2
    assert graphs["server_limits"]["use_cuda_graph"] == [False, False]  # CPU: turned off

    rows = {r["case"]: r for r in json.loads((tmp_path / "pred" / "tp_session.json").read_text())}
    assert set(rows) == cases
    assert rows["val-tp4-70b8l-cb-burst"]["factor_from"] == "TP tpcbhost benchmark"
    assert rows["val-tp4-70b8l-cb-burst-graphs"]["factor_from"] == "host-speed passes (one GPU)"
    for r in rows.values():
        measured = json.loads((lease / r["case"] / "summary.json").read_text())
        assert measured["energy"]["per_request_wh"] is None  # no meter on CPU
        assert math.isnan(r["energy_wh_measured"]) and math.isnan(r["energy"])
        assert r["ttft_p50_measured"] == pytest.approx(measured["latency_s"]["ttft"]["p50"])
        assert r["tpot_p50_measured"] == pytest.approx(measured["latency_s"]["tpot"]["p50"])
        assert not r["meets_targets"]  # an unmetered run meets no energy target
        steps = len(pd.read_parquet(lease / r["case"] / "steps.parquet"))
        assert r["schedule"].endswith(f" of {steps}")
        assert r["host_time_factor"] > 0
    # the refit went into --profile-out: both engines' TP 2 entries from this call's tables
    prof = json.loads((tmp_path / "p.json").read_text())
    for key, table in (("hf_eager_tp2", "tphost"), ("transformers_cb_tp2", "tpcbhost")):
        src = prof["host"][key]["source"]
        assert f"tp4-cpu/host/{table}-before.parquet" in src, key
        assert f"tp4-cpu/host/{table}-before-shapemiss.parquet" in src, key
    assert "tp2_note" in prof["provenance"]


def test_node_step_keeps_the_reserve_and_logs_each_step(tmp_path):
    """node.sh node_step: a step gets at most its budget and never the reserve before the
    deadline; one left with under 10 s is skipped; SKIP names skip; each is logged."""
    script = f"""
        set -u
        RES={tmp_path}
        . tools/device/node.sh
        node_deadline 60
        node_step quick 30 0 true
        node_step slow 2 0 sleep 5
        node_step squeezed 100 55 true
        SKIP="named" node_step named 30 0 true
    """
    subprocess.run(["bash", "-c", script], cwd=REPO, check=True, timeout=60)
    log = (tmp_path / "commands.txt").read_text()
    assert "quick (timeout 30 s): true" in log and "quick exit 0 after" in log
    assert "slow (timeout 2 s): sleep 5" in log and "slow exit 124 after" in log
    assert "squeezed skipped" in log and "named skipped (SKIP)" in log
    assert (tmp_path / "slow.log").read_text().startswith("slow exit 124")


def test_hostspeed_pass_refuses_bad_arguments(tmp_path, capsys):
    from tools.device import hostspeed_pass

    for bad in (
        ["during"],
        ["before", "--shape", "qwen2.5-1.5b:8"],
        ["after", "--shape", "x:0:bf16"],
    ):
        with pytest.raises(SystemExit) as exc:
            hostspeed_pass.main([str(tmp_path / "hs.csv"), *bad])
        assert exc.value.code == 2, bad
        assert "usage:" in capsys.readouterr().err
    assert not (tmp_path / "hs.csv").exists()
