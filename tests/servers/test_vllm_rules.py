"""The vllm kind on simulated runs: its KV rules hold over whole runs (every block back, the
budget and max_num_seqs kept, preempted requests finish), closed-form decode runs equal the
step path, the summary reports what the scheduler resolved and the prefix-cache hits, the
schema refuses what vLLM would not take, and the shipped scenario runs through `sim run`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, run, scenario

from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.engine.workload import Trace
from llm_energy_sim.results.accounting import requests_frame, summarize
from llm_energy_sim.simulation import simulate

WL = {
    "requests": 120,
    "arrival": {"kind": "poisson", "rate": 40},
    "prompt_tokens": {"kind": "lognormal", "mean": 1200, "min": 200, "max": 4000},
    "output_tokens": {"kind": "uniform", "min": 10, "max": 300},
}


def vllm(server=None, **over):
    return scenario(server={"kind": "vllm", **(server or {})}, **over)


@pytest.mark.parametrize(
    "server",
    [
        {},
        {"num_gpu_blocks_override": 700, "max_num_seqs": 64},  # preemptions
        {"num_gpu_blocks_override": 700, "enable_chunked_prefill": False},
        {"max_num_batched_tokens": 512, "max_num_seqs": 32, "enable_prefix_caching": False},
    ],
    ids=["default", "tight-kv", "tight-kv-nochunk", "small-budget"],
)
def test_kv_budget_and_seat_rules_hold_over_a_run(server):
    res, df, summary = run(vllm(server, workload=WL))
    sched = res.servers[0].scheduler
    lim = sched.limits
    assert (df.status == "ok").all() and (df.generated_tokens == df.output_tokens).all()
    assert sched.pool.free_blocks == sched.pool.num_blocks  # every block back
    assert sched.pool.min_free_blocks >= 0
    assert sched.max_step_tokens <= lim.max_num_batched_tokens
    assert sched.max_running <= lim.max_num_seqs
    # the peak of the blocks held is reported; a pool that forced preemptions was filled
    peak = summary["server_limits"]["kv_peak_blocks"]
    assert peak == sched.pool.num_blocks - sched.pool.min_free_blocks and peak > 0
    if "num_gpu_blocks_override" in server:
        assert peak >= 0.9 * sched.pool.num_blocks
        assert sched.preemptions > 0 and summary["server_limits"]["preemptions"] > 0
        # a preempted request recomputed its prompt (and what it had generated)
        assert (df.computed_prompt_tokens >= df.prompt_tokens).all()
        assert (df.computed_prompt_tokens > df.prompt_tokens).any()


def test_closed_form_decode_runs_equal_the_step_path():
    """max_num_seqs 8: batches of 8, 4, 2 or 1 decodes are captured sizes, unpadded, and run
    in closed form; the others step one by one either way."""
    wl = {**WL, "requests": 60, "arrival": {"kind": "poisson", "rate": 4}}
    server = {"max_num_seqs": 8}
    res_f, fast, sf = run(vllm(server, workload=wl, fast_forward=True))
    res_s, slow, ss = run(vllm(server, workload=wl, fast_forward=False))
    assert (fast.status == slow.status).all()
    for col in ("start_s", "first_token_s", "finish_s", "energy_j"):
        np.testing.assert_allclose(fast[col], slow[col], rtol=1e-6, atol=1e-9, err_msg=col)
    assert sf["energy"]["total_j"] == pytest.approx(ss["energy"]["total_j"], rel=1e-6)
    assert len(res_f.replicas[0].ledger.starts) < len(res_s.replicas[0].ledger.starts)


def test_summary_reports_the_resolved_limits_and_the_prefix_cache_hits():
    # two conversations (prefix ids 0 and 1) and a stranger: each later turn of a stream
    # finds the earlier turn's full prompt blocks cached; at most prompt - 1 tokens hit
    trace = Trace(
        arrival_s=np.array([0.0, 5.0, 5.0, 10.0, 10.0]),
        prompt_tokens=np.array([320, 500, 320, 800, 100]),
        output_tokens=np.array([20, 20, 20, 20, 20]),
        prefix_id=np.array([0, 0, 1, 0, -1]),
    )
    res = simulate(vllm(), trace=trace)
    summary = summarize(res, requests_frame(res))
    lim = summary["server_limits"]
    assert lim["block_size"] == 16 and lim["max_num_batched_tokens"] == 8192
    assert lim["max_num_seqs"] == 1024 and lim["max_cudagraph_capture_size"] == 512
    assert lim["num_gpu_blocks"] > 0 and lim["kv_cache_tokens"] == 16 * lim["num_gpu_blocks"]
    assert lim["async_scheduling"] is False and lim["enable_prefix_caching"] is True
    # request 1 hits request 0's 20 full blocks (320 tokens); request 3 hits 500 // 16 = 31
    # blocks of stream 0 (496 tokens); request 2 (stream 1) and 4 (unique) miss
    assert lim["prefix_cache_hit_tokens"] == 320 + 496
    assert lim["prefix_cache_queried_tokens"] == 320 + 500 + 320 + 800 + 100
    assert lim["preemptions"] == 0
    df = requests_frame(res)
    assert list(df.computed_prompt_tokens) == [320, 500 - 320, 320, 800 - 496, 100]


def test_summary_sums_the_run_counts_over_replicas():
    trace = Trace(
        arrival_s=np.array([0.0, 0.0, 5.0, 5.0]),
        prompt_tokens=np.array([320, 320, 320, 320]),
        output_tokens=np.array([5, 5, 5, 5]),
        prefix_id=np.array([0, 1, 0, 1]),
    )
    res = simulate(vllm(hardware={"replicas": 2}), trace=trace)  # round robin: 0,2 / 1,3
    lim = summarize(res, requests_frame(res))["server_limits"]
    assert lim["prefix_cache_hit_tokens"] == 2 * 304  # (320 - 1) // 16 = 19 blocks each


def test_schema_refuses_an_unknown_field_and_a_dtype_vllm_does_not_run():
    with pytest.raises(UserError, match="max_num_sequences"):
        vllm({"max_num_sequences": 8})
    with pytest.raises(UserError) as e:
        vllm(dtype="int8")
    assert str(e.value) == (
        "<test>: field 'dtype': server kind 'vllm' does not run int8; "
        "it runs bfloat16, float16, fp8"
    )
    with pytest.raises(UserError):
        vllm({"gpu_memory_utilization": 1.5})


def test_tensor_parallel_runs_with_the_kv_pool_of_each_gpu():
    res1, _, s1 = run(vllm(workload={**WL, "requests": 20}))
    res2, df2, s2 = run(vllm(hardware={"gpus_per_replica": 2}, workload={**WL, "requests": 20}))
    assert (df2.status == "ok").all() and s2["gpus"] == 2
    assert s2["server_limits"]["num_gpu_blocks"] > 2 * s1["server_limits"]["num_gpu_blocks"]


def test_the_shipped_scenario_runs_through_sim_run(tmp_path: Path):
    path = REPO / "scenarios" / "vllm_burst.yaml"
    out = tmp_path / "res"
    args = ["run", str(path), "--requests", "64", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["server"] == "vllm" and summary["requests"]["completed"] == 64
    lim = summary["server_limits"]
    assert lim["max_num_seqs"] == 256 and lim["max_num_batched_tokens"] == 8192
    assert lim["cudagraph_capture_sizes"][-1] == 512
