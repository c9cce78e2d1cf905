"""The CUDA-graph stage on CPU: its plan, its raw table (resume, failures, budget) with the GPU
part replaced, and its fit (calibrate/graphfit.py) on synthetic tables built from known
roofline and power parameters: recovered, and bounded by the measured caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.calibrate.graphbench import (
    COLUMNS,
    GRAPH_CSV,
    CudaBroken,
    GPoint,
    build_plan,
    row_of,
    run_plan,
)
from llm_energy_sim.calibrate.graphfit import (
    HOST_KEY,
    fit_graph_host,
    fit_graph_kernels,
    fit_roofline,
    measured_caps,
    ok_rows,
)
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.cost.kernels import fp8_quant_kernel
from llm_energy_sim.meter.monitor import EnergyMonitor

DTYPES = ("bfloat16", "float16", "fp8")
COPY_BW, PEAK = 4.4e12, {"bfloat16": 7.5e14, "float16": 7.4e14, "fp8": 1.45e15}
# the "GPU" of the synthetic tables: per (class, key) C, M, t0 and power p_base, w_c, w_m
TRUE = {
    ("linear_graph", "bfloat16"): (6.5e14, 4.0e12, 3.0e-6, 120.0, 520.0, 300.0),
    ("linear_graph", "float16"): (6.4e14, 3.9e12, 3.2e-6, 120.0, 520.0, 300.0),
    ("linear_graph", "fp8"): (1.2e15, 3.5e12, 9.0e-6, 130.0, 500.0, 320.0),
    ("linear_graph", "fp8_static"): (1.3e15, 3.8e12, 3.5e-6, 130.0, 500.0, 320.0),
    ("linear_graph", "fp8_token"): (1.2e15, 3.4e12, 1.0e-5, 130.0, 500.0, 320.0),
    ("fp8_quant_graph", "fp8"): (1e18, 1.5e12, 6.0e-6, 110.0, 0.0, 350.0),
    ("fp8_quant_graph", "fp8_token"): (1e18, 1.4e12, 6.0e-6, 110.0, 0.0, 350.0),
    ("elementwise_graph", "bfloat16"): (1e18, 3.6e12, 1.8e-6, 115.0, 0.0, 380.0),
    ("elementwise_graph", "float16"): (1e18, 3.6e12, 1.8e-6, 115.0, 0.0, 380.0),
    ("rmsnorm_graph", "bfloat16"): (1e18, 3.0e12, 2.5e-6, 115.0, 0.0, 380.0),
    ("rmsnorm_graph", "float16"): (1e18, 3.0e12, 2.5e-6, 115.0, 0.0, 380.0),
    ("attn_varlen_graph", "bfloat16"): (4.5e14, 3.0e12, 5.0e-6, 125.0, 540.0, 0.0),
    ("attn_varlen_graph", "float16"): (4.4e14, 3.0e12, 5.0e-6, 125.0, 540.0, 0.0),
    ("attn_decode_graph", "bfloat16"): (5.0e13, 3.9e12, 4.0e-6, 118.0, 0.0, 420.0),
    ("attn_decode_graph", "float16"): (5.0e13, 3.9e12, 4.0e-6, 118.0, 0.0, 420.0),
    ("attn_packed_graph", "bfloat16"): (2.8e14, 1.1e12, 6.0e-6, 120.0, 0.0, 250.0),
    ("attn_masked_sdpa_graph", "bfloat16"): (3.0e14, 1.5e10, 5.0e-6, 120.0, 0.0, 250.0),
    ("attn_kv_copy_graph", "bfloat16"): (1e18, 1.2e12, 2.0e-6, 115.0, 0.0, 420.0),
}
HOST_A, HOST_B = 4.0e-6, 2.0e-9  # replay host time = a + b x kernels


def _synthetic(points: list[GPoint], scale_bw: float = 1.0, noise: float = 0.0) -> pd.DataFrame:
    """Rows as graphbench writes them, timed by TRUE (bandwidths x scale_bw), caps at COPY_BW
    and PEAK, power windows metered by TRUE's power model."""
    rng = np.random.default_rng(0)
    rows = []
    for p in points:
        F, B, n = p.work()
        meas: dict = {}
        if p.kind == "peak":
            meas["seconds"] = F / PEAK[p.dtype]
        elif p.kind == "copy":
            meas["seconds"] = B / COPY_BW
        elif p.kind == "host_replay":
            meas.update(
                seconds=1e-6, host_s=HOST_A + HOST_B * p.nodes * (1 + (p.gpu_state == "busy"))
            )
        elif (p.kclass, p.fit_key) in TRUE:
            C, M, t0, pb, wc, wm = TRUE[(p.kclass, p.fit_key)]
            M *= scale_bw
            t = max(F / C, B / M) + n * t0
            meas["seconds"] = t * (1 + noise * rng.standard_normal())
            if p.metered:
                meas["energy_j"] = pb * t + wc * F / C + wm * B / M
                meas["power_w"] = meas["energy_j"] / t
        else:  # SDPA comparison rows: recorded, not fitted
            meas["seconds"] = 1e-5
        rows.append(row_of(p, meas, {}))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_plan_covers_the_kinds_with_unique_keys_caps_first_and_fits_in_the_budget():
    plan = build_plan(("float32", *DTYPES, "int8"))
    assert len({p.key for p in plan}) == len(plan)
    assert [p.kind for p in plan[:4]] == ["peak"] * 3 + ["copy"]
    kinds = {p.kind for p in plan}
    assert kinds == {
        "peak", "copy", "host_replay", "linear", "fp8_quant", "elementwise", "rms_norm",
        "attn_varlen", "attn_decode", "attn_sdpa", "attn_packed", "attn_masked_sdpa", "attn_kv_copy",
        "sampler",
    }  # fmt: skip
    assert {p.dtype for p in plan} == set(DTYPES)  # float32 / int8 are not graph dtypes
    lin = {p.m for p in plan if p.kind == "linear" and p.dtype == "bfloat16"}
    assert lin == {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192}
    dec = [p for p in plan if p.kind == "attn_decode" and p.dtype == "bfloat16"]
    assert {p.kv_len for p in dec} >= {128, 16384} and {p.batch for p in dec} >= {1, 256}
    assert any(p.q_len < p.kv_len for p in plan if p.kind == "attn_varlen")  # chunked prefill
    assert {p.nodes for p in plan if p.kind == "host_replay"} == {1, 10, 100, 1000}
    metered = [p for p in plan if p.metered]
    assert {p.kclass for p in metered} >= {
        "linear_graph", "elementwise_graph", "attn_varlen_graph", "attn_decode_graph",
    }  # fmt: skip
    # a budget of ~5 GPU minutes: about 600 points at tens of ms, 1 s per power window
    assert len(plan) < 750 and len(metered) <= 33
    assert len(build_plan(("bfloat16",), quick=True)) < 100


def test_work_uses_the_simulators_formulas():
    dt = dtype_info("fp8")
    p = GPoint("fp8_quant", "quant", "fp8", m=64, n_in=4096)
    assert p.work() == (0.0, fp8_quant_kernel(64, 4096, dt).bytes, 1)
    assert fp8_quant_kernel(64, 4096, dt).bytes == 64 * 4096 * 5 + 4 * 64
    copy = GPoint("copy", "copy", "bfloat16", elems=1000)
    assert copy.work() == (0.0, 4000.0, 1)  # read + write, as every kernel formula counts
    lin = GPoint("linear", "quant+mm", "fp8", m=16, n_in=4096, n_out=4096)
    assert lin.kclass == "linear_graph" and lin.fit_key == "fp8"
    assert GPoint("linear", "mm", "fp8").fit_key == "fp8_static"


def _fake(p: GPoint, monitor) -> dict:
    if p.kind == "attn_sdpa":
        raise RuntimeError("No available kernel.\nAborting execution.")
    return {"seconds": 1e-5, "repeats": 10, "backend": "fake"}


def test_run_plan_appends_rows_records_failures_and_resumes(tmp_path: Path):
    plan = build_plan(("bfloat16",), quick=True)
    out = tmp_path / GRAPH_CSV
    mon = EnergyMonitor.timing_only()
    quiet = dict(echo=lambda s: None, cleanup=lambda: None, healthy=lambda: True)
    c = run_plan(plan, out, mon, measure=_fake, **quiet)
    n_sdpa = sum(p.kind == "attn_sdpa" for p in plan)
    assert c == {"measured": len(plan) - n_sdpa, "failed": n_sdpa, "skipped": 0, "left": 0}
    d = pd.read_csv(out)
    assert tuple(d.columns) == COLUMNS and len(d) == len(plan)
    failed = d[d["error"].notna()]
    assert len(failed) == n_sdpa and (failed["kind"] == "attn_sdpa").all()
    assert "\n" not in failed["error"].iloc[0] and failed["seconds"].isna().all()
    # a rerun measures nothing again
    again = run_plan(plan, out, mon, measure=_fake, **quiet)
    assert again["skipped"] == len(plan) and again["measured"] == again["failed"] == 0
    assert len(pd.read_csv(out)) == len(plan)


def test_run_plan_stops_on_the_budget_and_on_a_broken_context(tmp_path: Path):
    plan = build_plan(("bfloat16",), quick=True)
    out, mon = tmp_path / GRAPH_CSV, EnergyMonitor.timing_only()
    ticks = iter(range(1000))
    c = run_plan(
        plan, out, mon, budget_s=4.5, measure=_fake, echo=lambda s: None,
        cleanup=lambda: None, healthy=lambda: True, clock=lambda: float(next(ticks)),
    )  # fmt: skip
    assert c["measured"] + c["failed"] == 4 and c["left"] == len(plan) - 4  # start 0, 1..4
    # the rest resumes; a point that breaks the CUDA context is recorded, then the stage stops
    with pytest.raises(CudaBroken):
        run_plan(plan, out, mon, measure=_fake, echo=lambda s: None, cleanup=lambda: None,
                 healthy=lambda: False)  # fmt: skip
    d = pd.read_csv(out)
    assert len(d) < len(plan) and d["error"].notna().sum() == 1
    assert d["error"].dropna().iloc[0].startswith("CUDA context broken: RuntimeError")


def test_every_kernel_builds_and_runs_on_cpu_torch_where_torch_has_the_op(monkeypatch):
    """The kernels of every (kind, op, dtype), shrunk, called once on CPU (catches shape and
    argument mistakes without a GPU; FA2 varlen exists only on CUDA)."""
    import dataclasses

    pytest.importorskip("torch")
    import llm_energy_sim.calibrate.graphbench as gb

    monkeypatch.setattr(gb, "DEVICE", "cpu")
    seen = set()
    for p in build_plan(DTYPES):
        k = (p.kind, p.op, p.dtype, p.q_len > 1)
        if p.kind in ("host_replay", "peak", "copy") or k in seen:
            continue
        seen.add(k)
        small = dataclasses.replace(
            p, m=min(p.m, 16), elems=min(p.elems, 16 * 64), n_in=min(p.n_in, 256),
            n_out=min(p.n_out, 256), batch=min(p.batch, 2), q_len=min(p.q_len, 32),
            kv_len=min(p.kv_len, 64),
        )  # fmt: skip
        make, _ = gb.make_point(small)
        if p.op == "flash_varlen":
            with pytest.raises(NotImplementedError):
                make()()
        else:
            make()()
    assert len(seen) >= 12


def test_fit_recovers_the_parameters_of_a_synthetic_gpu():
    raw = _synthetic(build_plan(DTYPES))
    fits = fit_graph_kernels(raw, 700.0, "synthetic")
    for (kc, key), (C, M, t0, *_) in TRUE.items():
        f = fits[kc][key]
        assert f.bandwidth == pytest.approx(M, rel=0.02), (kc, key)
        assert f.t0_s == pytest.approx(t0, rel=0.05), (kc, key)
        # decode and the masked packed attention never reach their compute roofs
        if C < 1e18 and kc not in (
            "attn_decode_graph",
            "attn_packed_graph",
            "attn_masked_sdpa_graph",
        ):
            assert f.peak_flops == pytest.approx(C, rel=0.02), (kc, key)
        assert f.fit_error.time_median_ape < 1.0
    # power from each class's own windows (or its nearest measured class's), recovered
    for kc, key in (("linear_graph", "bfloat16"), ("linear_graph", "fp8")):
        f, (*_, pb, wc, wm) = fits[kc][key], TRUE[(kc, key)]
        assert (f.p_base_w, f.w_compute, f.w_memory) == pytest.approx((pb, wc, wm), rel=0.03)
    f = fits["elementwise_graph"]["bfloat16"]
    assert (f.p_base_w, f.w_memory) == pytest.approx((115.0, 380.0), rel=0.03)
    assert "fp8_quant_graph:fp8" in fits["fp8_quant_graph"]["fp8_token"].source


def test_fit_never_exceeds_the_measured_copy_bandwidth_or_gemm_peak():
    # kernels "measured" 40% above the copy bandwidth (an L2-resident table would look so)
    raw = _synthetic(build_plan(DTYPES), scale_bw=1.4)
    caps = measured_caps(ok_rows(raw))
    assert caps.copy_bw == pytest.approx(COPY_BW) and caps.peak["fp8"] == pytest.approx(PEAK["fp8"])
    fits = fit_graph_kernels(raw, 700.0, "synthetic")
    for kc, by in fits.items():
        for key, f in by.items():
            assert f.bandwidth <= COPY_BW * (1 + 1e-9), (kc, key)
            if f.peak_flops < 1e18:
                cap = PEAK["fp8" if key.startswith("fp8") else key]
                assert f.peak_flops <= cap * (1 + 1e-9), (kc, key)
    assert fits["elementwise_graph"]["bfloat16"].bandwidth == pytest.approx(COPY_BW, rel=1e-3)
    # and a compute roof the data would put above the peak is held at it
    F = np.array([1e12, 2e12, 4e12, 1e9])
    C, M, _ = fit_roofline(F, np.full(4, 1e6), np.ones(4), F / 2e15 + 1e-6, 1e15, 4e12)
    assert pytest.approx(1e15) == C
    assert M <= 4e12


def test_host_replay_fit_is_constant_plus_per_kernel():
    raw = _synthetic(build_plan(("bfloat16",)))
    ho = fit_graph_host(raw, "synthetic")
    assert ho.per_step_s == pytest.approx(HOST_A, rel=1e-3)
    assert ho.per_layer_s == 0.0 and ho.per_sequence_s == 0.0
    assert "2.00 ns per captured kernel" in ho.source and "GPU busy" in ho.source


def test_fit_only_adds_the_graph_classes_to_the_named_profile(tmp_path: Path):
    raw_dir, out = tmp_path / "raw", tmp_path / "refit"
    raw_dir.mkdir()
    _synthetic(build_plan(DTYPES)).to_csv(raw_dir / GRAPH_CSV, index=False)
    r = CliRunner().invoke(
        main, ["calibrate", "--fit-only", str(raw_dir), "--name", "h200", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    from llm_energy_sim.config.profile import load_profile

    prof, _ = load_profile(str(out / "h200.json"))
    shipped, _ = load_profile("h200")
    assert prof.kernel("linear_graph", "fp8").bandwidth <= COPY_BW
    assert prof.kernel("attn_decode_graph", "bfloat16").t0_s == pytest.approx(4e-6, rel=0.05)
    assert HOST_KEY in prof.host
    assert prof.kernels["linear"] == shipped.kernels["linear"]  # the eager classes are kept
