"""Write the study notebooks (committed without outputs; tests/test_notebooks.py executes them).

    python notebooks/build_notebooks.py

Each notebook reproduces one part of Delavande et al. (2026) with the simulator and the
shipped default H100 profile, and ends with a table: the paper's figure/claim, its value,
our prediction, and whether they agree (decided in code, with the criterion stated).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from llm_energy_sim.config.paths import SCENARIOS_DIR as SCENARIOS
from llm_energy_sim.config.profile import default_profile_name, load_profile

PROFILE, PROFILE_PATH = load_profile(default_profile_name("h100-sxm"))
pd.set_option("display.width", 160)
print(f"profile: {PROFILE.name} ({PROFILE_PATH.name}); {PROFILE.description[:160]}")"""

VERDICT = """\
def verdict(ok: bool, partly: bool = False) -> str:
    return "yes" if ok else ("partly" if partly else "no")"""


# ---- which cells of Figures 1 and 2 the live H200 matrix validated (issue 17 item 4) ------
MATRIX_DIR = HERE.parent / "measurements" / "live" / "h200-matrix"
#: the figures' configurations: Figure 1 is HF generate one request at a time (the matrix's
#: "sequential" server), Figure 2 HF static batching of Llama-3.1-8B in float32
FIG1_MODELS = [
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "mistral-7b",
    "llama-3.1-8b",
    "qwen2.5-14b",
]
FIG1_DTYPES = ["float32", "bfloat16", "float16", "int8", "int4"]
FIG2_MODEL, FIG2_DTYPE = "llama-3.1-8b", "float32"
FIG2_BATCHES = [1, 2, 4, 8, 16, 32, 64]

LIVE_INTRO = """\
### Which cells were validated live

A cell is *validated live* when the H200 validation matrix (issue 17,
`measurements/live/h200-matrix`, `sim validate matrix`) has a live case of the same model,
dtype, server and batch size; its error is that case's energy per request, predicted / measured
- 1, each case predicted at the host speed measured in its own engine process. The matrix ran
on the H200 with the `h200` profile, this notebook predicts the H100 with `h100-sxm`: a
validated cell says the cost model got that configuration right on the H200, not that this
H100 number was measured. The matrix measures whole requests, not the prefill / decode split."""


def live_validation_markdown(fig: str, rows: list[dict]) -> str:
    """The markdown cell stating, per configuration of Figure `fig` ("fig1" or "fig2"),
    whether the matrix (its validate.json rows) validated it live, and its measured error."""
    from llm_energy_sim.analysis.matrix import live_cell, live_status

    if fig == "fig1":
        configs = [(m, d, "sequential") for m in FIG1_MODELS for d in FIG1_DTYPES]
    else:
        configs = [(FIG2_MODEL, FIG2_DTYPE, f"static b{b}") for b in FIG2_BATCHES]
    status = [live_status(rows, *c) for c in configs]
    n = sum(s["validated"] for s in status)
    lines = [
        LIVE_INTRO,
        "",
        f"As of the last `python notebooks/build_notebooks.py` ({len(rows)} matrix cases): "
        f"**{n} of {len(configs)} configurations validated live**; the code cell below "
        "recomputes the table with the current cost model.",
        "",
    ]
    if fig == "fig1":
        lines += ["| model (HF generate, batch 1) | " + " | ".join(FIG1_DTYPES) + " |"]
        lines += ["| --- |" + " --- |" * len(FIG1_DTYPES)]
        by = {(s["model"], s["dtype"]): live_cell(s) for s in status}
        lines += [
            f"| {m} | " + " | ".join(by[m, d] for d in FIG1_DTYPES) + " |" for m in FIG1_MODELS
        ]
    else:
        lines += [
            f"| batch ({FIG2_MODEL} {FIG2_DTYPE}, static) | validated live | nearest live cases "
            "(not this configuration): energy error |",
            "| ---: | --- | --- |",
        ]
        for b, s in zip(FIG2_BATCHES, status, strict=True):
            near = "; ".join(f"{c['case']} {_pct(c['energy_error'])}" for c in s["nearest"])
            lines.append(f"| {b} | {live_cell(s)} | {near or '-'} |")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


def live_validation_code(fig: str) -> str:
    """The code cell that recomputes the validation table from the matrix when run."""
    if fig == "fig1":
        configs = f"[(m, d, 'sequential') for m in {FIG1_MODELS!r} for d in {FIG1_DTYPES!r}]"
    else:
        configs = f"[({FIG2_MODEL!r}, {FIG2_DTYPE!r}, f'static b{{b}}') for b in {FIG2_BATCHES!r}]"
    return f"""\
from pathlib import Path

from llm_energy_sim.analysis.matrix import live_cell, live_status
from llm_energy_sim.cli.validate import load_matrix

MATRIX = load_matrix(Path("..") / "measurements" / "live" / "h200-matrix")  # sim validate matrix
live = pd.DataFrame([live_status(MATRIX["rows"], *c) for c in {configs}])
live["live energy error"] = [live_cell(s) for s in live.to_dict("records")]
print(f"{{int(live.validated.sum())}} of {{len(live)}} configurations validated live "
      f"(matrix: {{len(MATRIX['rows'])}} cases, profile {{MATRIX['profile']}})")
live[["model", "dtype", "server", "validated", "live energy error"]]"""


# ---- Figure 1 -------------------------------------------------------------------------------
FIG1 = [
    (
        "md",
        """# Figure 1: prefill energy and decode energy per token, by model size and dtype

The paper (Delavande et al., Section 3, Figure 1) ran each model with HF `transformers`
at batch 1 on one H100 SXM and split each request into *prefill* (generate one token) and
*decode* (the rest). Its findings:

* (a) prefill: up to **4x** less GPU energy going from `float32` to 16-bit or `int8` for
  the larger models (Llama-3.1-8B, Qwen-14B: compute-bound, tensor cores); little or no gain
  for Qwen-0.5B/1.5B, sometimes a slight increase for `float16`/`bfloat16`;
* (b) decode: energy per token **largely invariant** across `float32`/`float16`/`bfloat16`
  (memory-bound, the GPU idles between small kernels at ~120 W); `int8` **2-3x more** than
  `float32`; `int4` about equal to `float32` (as read from the paper's Figure 1).

Here the same quantities come straight from the cost model (`llm_energy_sim.cost.costmodel.CostModel` with the
HF-eager engine, batch 1): prefill energy of each prompt, and decode energy per token from the
closed-form decode segment of each request, averaged over 200 requests of the paper's length
distribution (prompts lognormal, mean ~1200, 200-4000 tokens; outputs 10-300). Runs in ~2 s.""",
    ),
    ("code", SETUP),
    (
        "code",
        """import numpy as np

from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.engine.workload import generate_trace

MODELS = """
        + repr(FIG1_MODELS)
        + """
DTYPES = """
        + repr(FIG1_DTYPES)
        + """
trace = generate_trace(
    load_scenario(SCENARIOS / "sequential.yaml", {"workload.requests": 200}).workload, seed=0
)

rows = []
for m in MODELS:
    card = load_model_card(m)
    for d in DTYPES:
        cm = CostModel(card, d, PROFILE, engine="hf_eager")
        pre = [cm.step_cost(StepWork(prefill=((int(p), 0),))) for p in trace.prompt_tokens]
        dec_j = dec_tokens = 0.0
        for p, o in zip(trace.prompt_tokens, trace.output_tokens, strict=True):
            k = int(o) - 1  # the first output token comes out of the prefill step
            if k > 0:
                dec_j += cm.decode_segment(1, int(p) + 1).energy(k)
                dec_tokens += k
        rows.append({"model": m, "dtype": d,
                     "prefill_J": np.mean([c.energy_j for c in pre]),
                     "prefill_s": np.mean([c.wall_s for c in pre]),
                     "decode_J_per_token": dec_j / dec_tokens})
fig1 = pd.DataFrame(rows)
prefill = fig1.pivot(index="model", columns="dtype", values="prefill_J").loc[MODELS, DTYPES]
decode = fig1.pivot(index="model", columns="dtype", values="decode_J_per_token").loc[MODELS, DTYPES]

fig, ax = plt.subplots(1, 2, figsize=(13, 4.2))
prefill.plot.bar(ax=ax[0], logy=True, title="(a) prefill energy per request (J), batch 1")
decode.plot.bar(ax=ax[1], title="(b) decode energy per output token (J), batch 1")
for a in ax:
    a.set_xlabel("")
    a.tick_params(axis="x", rotation=30)
plt.tight_layout()
prefill.round(1)""",
    ),
    ("code", "decode.round(2)"),
    (
        "md",
        """### Ratios the paper talks about

`fp32 / best of (bf16, fp16, int8)` for prefill; `dtype / fp32` for decode per token.""",
    ),
    (
        "code",
        """ratios = pd.DataFrame({
    "prefill fp32 / best low-precision": prefill["float32"]
        / prefill[["bfloat16", "float16", "int8"]].min(axis=1),
    "decode bf16 / fp32": decode["bfloat16"] / decode["float32"],
    "decode int8 / fp32": decode["int8"] / decode["float32"],
    "decode int4 / fp32": decode["int4"] / decode["float32"],
})
ratios.round(2)""",
    ),
    (
        "md",
        """### Why the cost model disagrees where it does

* Prefill `float32`: the profile's `float32` linear fit comes from GEMMs measured without TF32
  (51.6 TFLOP/s vs ~680 for `bfloat16`, docs/cost-model.md), so a compute-bound `float32` prefill takes
  ~13x longer at similar power. The paper's "up to 4x" would need `float32` matmuls running at
  roughly 3x that rate (TF32 enabled somewhere in its stack) or a large fixed cost per request
  that the cost model does not have; the small models' "no gain" likewise needs a fixed cost.
* Decode 16-bit vs `float32`: the model moves half the weight bytes per token in 16-bit and
  the measured host overhead is shared by all 16/32-bit dtypes, so it predicts a clear saving
  where the paper saw none. The measured whole-model check in docs/calibration.md is the place
  to look for which of the two is right on this stack.
* `int8`: the measured bitsandbytes host overhead makes `int8` decode cost more than `float32`,
  as in the paper; the ratio table shows by how much per model: the host overhead weighs
  most on the small models, whose GPU work per token is smallest.""",
    ),
    ("live-md", "fig1"),
    ("code", live_validation_code("fig1")),
    ("code", VERDICT),
    (
        "code",
        """big, small = ["llama-3.1-8b", "qwen2.5-14b"], ["qwen2.5-0.5b", "qwen2.5-1.5b"]
r = ratios
int8_range = (r["decode int8 / fp32"].min(), r["decode int8 / fp32"].max())
summary = pd.DataFrame([
    {"paper (Fig. 1)": "(a) prefill fp32 -> low precision, large models",
     "paper": "up to 4x less",
     "ours": f"{r.loc[big, 'prefill fp32 / best low-precision'].min():.1f}-"
             f"{r.loc[big, 'prefill fp32 / best low-precision'].max():.1f}x less",
     "agreement": verdict(r.loc[big, "prefill fp32 / best low-precision"].max() <= 4.5,
                          partly=True),
     "criterion": "direction right = partly; <= 4.5x = yes"},
    {"paper (Fig. 1)": "(a) prefill, Qwen-0.5B/1.5B",
     "paper": "little or no gain",
     "ours": f"{r.loc[small, 'prefill fp32 / best low-precision'].min():.1f}-"
             f"{r.loc[small, 'prefill fp32 / best low-precision'].max():.1f}x less",
     "agreement": verdict(r.loc[small, "prefill fp32 / best low-precision"].max() < 1.3),
     "criterion": "< 1.3x"},
    {"paper (Fig. 1)": "(b) decode/token fp32 vs bf16/fp16",
     "paper": "largely invariant",
     "ours": f"bf16 = {r['decode bf16 / fp32'].min():.2f}-{r['decode bf16 / fp32'].max():.2f}"
             " x fp32",
     "agreement": verdict(r["decode bf16 / fp32"].between(0.85, 1.15).all()),
     "criterion": "within +-15%"},
    {"paper (Fig. 1)": "(b) decode/token int8 vs fp32",
     "paper": "2-3x more",
     "ours": f"{int8_range[0]:.2f}-{int8_range[1]:.2f}x more",
     "agreement": verdict(r["decode int8 / fp32"].between(2, 3).all(),
                          partly=r["decode int8 / fp32"].min() > 1),
     "criterion": "all in [2, 3] = yes; all > 1 = partly"},
    {"paper (Fig. 1)": "(b) decode/token int4 vs fp32",
     "paper": "about equal",
     "ours": f"{r['decode int4 / fp32'].min():.2f}-{r['decode int4 / fp32'].max():.2f}x",
     "agreement": verdict(r["decode int4 / fp32"].between(0.8, 1.25).all(),
                          partly=r.loc[big, "decode int4 / fp32"].between(0.8, 1.25).all()),
     "criterion": "within 0.8-1.25x (partly: large models only)"},
])
summary""",
    ),
]


# ---- Figure 2 -------------------------------------------------------------------------------
FIG2 = [
    (
        "md",
        """# Figure 2: static batching, Llama-3.1-8B `float32`, batch 1 to 64

The paper (Section 4, Figure 2) batched requests with HF `transformers` static batching
(prompts left-padded to the longest of the batch, one `generate()` per batch) and
normalised each phase's energy three ways: per **effective** input token (real prompt tokens),
per **computed** input token (with padding) and per **output** token. Its findings:

* prefill per effective input token **rises steadily** with batch size (padding);
* decode per effective input token is **U-shaped with its optimum at b = 4**; the whole
  generate phase is lowest at **b = 2** and **~25% higher at b = 16**;
* per computed input token prefill is **constant**; decode falls and **plateaus around b = 4**;
  generate reaches **~65% of b = 1**;
* per output token every phase **falls with batch size, roughly logarithmically**.

Here: the `static` server of the simulator on `scenarios/static_b4.yaml` (all requests
available at once) with HF `generate()`'s rule for finished sequences (every row decodes,
padded, until the batch's longest output: `server.finished: stay`, the default) in `float32`, with **256 requests per batch size instead of 10,000** (four
batches even at b = 64), which is enough for per-token averages; ~3 s in all. Energies are the
attributed step energies (prefill steps, decode steps) of the requests; with all requests
queued from t = 0 there is no idle time between batches.

The `static` server checks GPU memory: the 8B weights in `float32` (~30 GiB) plus the KV cache
of a padded batch (256 KiB per token; at b = 64 about 64 x 4300 tokens = 67 GiB) must fit in
the H100's 79.6 GiB. A batch size that does not fit is listed and left out of the comparison
(with these prompt lengths HF `generate()` would run out of memory there too).""",
    ),
    ("code", SETUP),
    (
        "code",
        """from llm_energy_sim.results.accounting import requests_frame
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.simulation import simulate

rows, misfits = [], {}
for b in """
        + repr(FIG2_BATCHES)
        + f""":
    scen = load_scenario(SCENARIOS / "static_b4.yaml",
                         {{"model": {FIG2_MODEL!r}, "dtype": {FIG2_DTYPE!r}, "server.batch_size": b,
                          "workload.requests": 256}})
"""
        + """    try:
        df = requests_frame(simulate(scen))
    except UserError as exc:  # the padded batch does not fit the GPU memory
        misfits[b] = str(exc)
        continue
    ok = df[df.status == "ok"]
    e = {"prefill": ok.energy_prefill_j.sum(), "decode": ok.energy_decode_j.sum()}
    e["generate"] = e["prefill"] + e["decode"]
    for phase, joules in e.items():
        rows.append({"batch": b, "phase": phase,
                     "J / effective input token": joules / ok.prompt_tokens.sum(),
                     "J / computed input token": joules / ok.computed_prompt_tokens.sum(),
                     "J / output token": joules / ok.generated_tokens.sum(),
                     "padding share": 1 - ok.prompt_tokens.sum() / ok.computed_prompt_tokens.sum()})
fig2 = pd.DataFrame(rows)
BATCHES = sorted(int(b) for b in fig2.batch.unique())
B_MAX = BATCHES[-1]
for b, msg in misfits.items():
    print(f"b = {b} left out: {msg}")
NORMS = ["J / effective input token", "J / computed input token", "J / output token"]
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for ax, norm in zip(axes, NORMS, strict=True):
    fig2.pivot(index="batch", columns="phase", values=norm).plot(ax=ax, logx=True, marker="o",
                                                                 title=norm)
    ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
plt.tight_layout()
fig2.pivot(index="batch", columns="phase", values=NORMS).round(3)""",
    ),
    ("live-md", "fig2"),
    ("code", live_validation_code("fig2")),
    ("code", VERDICT),
    (
        "code",
        """eff = fig2.pivot(index="batch", columns="phase", values="J / effective input token")
comp = fig2.pivot(index="batch", columns="phase", values="J / computed input token")
out = fig2.pivot(index="batch", columns="phase", values="J / output token")
dec_opt, gen_opt = int(eff["decode"].idxmin()), int(eff["generate"].idxmin())
gen16 = eff.loc[16, "generate"] / eff["generate"].min() - 1
pre_spread = comp["prefill"].max() / comp["prefill"].min() - 1
gen_ratio = comp["generate"].min() / comp.loc[1, "generate"]
# first batch size after which decode per computed token improves by < 20% per doubling
plateau = next((b for b, nxt in zip(BATCHES, BATCHES[1:], strict=False)
                if comp.loc[nxt, "decode"] > 0.8 * comp.loc[b, "decode"]), BATCHES[-1])
summary = pd.DataFrame([
    {"paper (Fig. 2)": "prefill / effective input token vs b", "paper": "rises steadily",
     "ours": f"{eff.loc[1, 'prefill']:.3f} -> {eff.loc[B_MAX, 'prefill']:.3f} J (b = {B_MAX})",
     "agreement": verdict(eff["prefill"].is_monotonic_increasing)},
    {"paper (Fig. 2)": "decode / effective input token: optimum b", "paper": "b = 4 (U-shape)",
     "ours": f"b = {dec_opt}", "agreement": verdict(dec_opt == 4, partly=dec_opt < B_MAX)},
    {"paper (Fig. 2)": "generate / effective input token: optimum b", "paper": "b = 2",
     "ours": f"b = {gen_opt}", "agreement": verdict(gen_opt == 2, partly=gen_opt <= 8)},
    {"paper (Fig. 2)": "generate at b = 16 vs optimum", "paper": "+25%",
     "ours": f"{gen16:+.0%}", "agreement": verdict(0.15 <= gen16 <= 0.35, partly=gen16 > 0.05)},
    {"paper (Fig. 2)": "prefill / computed input token vs b", "paper": "constant",
     "ours": f"spread {pre_spread:.0%} over b = 1..{B_MAX}",
     "agreement": verdict(pre_spread < 0.15, partly=pre_spread < 0.3)},
    {"paper (Fig. 2)": "decode / computed input token plateau", "paper": "around b = 4",
     "ours": f"around b = {plateau}", "agreement": verdict(plateau <= 8, partly=plateau <= 16)},
    {"paper (Fig. 2)": "generate / computed input token, best vs b = 1", "paper": "~65%",
     "ours": f"{gen_ratio:.0%}", "agreement": verdict(0.55 <= gen_ratio <= 0.75,
                                                      partly=gen_ratio < 1)},
    {"paper (Fig. 2)": "decode / output token vs b", "paper": "falls ~logarithmically",
     "ours": f"{out.loc[1, 'decode']:.2f} -> {out['decode'].min():.2f} J (min at b = "
             f"{int(out['decode'].idxmin())})",
     "agreement": verdict(out["decode"].iloc[:5].is_monotonic_decreasing)},
])
summary""",
    ),
]


# ---- Figure 3 -------------------------------------------------------------------------------
FIG3 = [
    (
        "md",
        """# Figure 3: arrival shaping with TGI, Llama-3.1-8B and 70B

The paper (Section 5, Figure 3) sent 10,000 requests to TGI v3.3.4 (`bfloat16`) with
different inter-arrival patterns and divided the GPU energy by the number of requests:

* 8B, HF `transformers` one request at a time (naive baseline): **1.2e-1 Wh/request**;
* 8B, TGI burst: **9.6e-3 Wh** (12.5x better); 8B, TGI fixed 500 ms spacing: **1.1e-3 Wh**,
  "a **100x** reduction";
* 70B on 4 H100s (tensor parallel 4) with TGI: **as low as 2.4e-2 Wh/request**.

Here: the shipped scenarios (`sequential`, `burst`, `random_uniform`, `fixed50ms`,
`fixed300ms`, `fixed500ms`), each with **256 requests instead of 10,000** (~2 s for all 12
runs); 70B runs with `hardware.gpus_per_replica: 4`. Three accountings per run:

* **total**: every GPU over the whole run, idle included, divided by completed requests -
  what a meter sees and what the paper's method measures;
* **active** (attributed): only the energy of forward steps (incl. host waits inside them),
  shared by the requests in each step;
* **above deep idle**: total minus the deep-idle floor (71 W per GPU for the whole run).""",
    ),
    ("code", SETUP),
    (
        "code",
        """from llm_energy_sim.results.accounting import requests_frame, summarize
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.simulation import simulate

CASES = {"sequential (HF generate)": "sequential.yaml", "TGI burst (128 every 30 s)": "burst.yaml",
         "TGI random U(50,500) ms": "random_uniform.yaml", "TGI fixed 50 ms": "fixed50ms.yaml",
         "TGI fixed 300 ms": "fixed300ms.yaml", "TGI fixed 500 ms": "fixed500ms.yaml"}
rows = []
for model, tp in (("llama-3.1-8b", 1), ("llama-3.1-70b", 4)):
    for pattern, f in CASES.items():
        scen = load_scenario(SCENARIOS / f, {"model": model, "hardware.gpus_per_replica": tp,
                                             "workload.requests": 256})
        res = simulate(scen)
        s = summarize(res, requests_frame(res))
        e, n = s["energy"], s["requests"]["completed"]
        rows.append({"model": model, "pattern": pattern,
                     "total Wh/req": e["per_request_wh"],
                     "active Wh/req": e["per_request_active_wh"],
                     "above deep idle Wh/req": (e["total_j"] - e["deep_idle_floor_j"]) / n / 3600,
                     "idle share": e["idle_fraction"],
                     "W per GPU": e["mean_power_per_gpu_w"],
                     "mean batch": s["batch"]["mean_size_when_busy"],
                     "TTFT p90 s": s["latency_s"]["ttft"]["p90"],
                     "refused (429)": s["requests"]["rejected_429"]})
fig3 = pd.DataFrame(rows)
fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), sharey=True)
for ax, (model, d) in zip(axes, fig3.groupby("model", sort=False), strict=True):
    d.set_index("pattern")[["total Wh/req", "active Wh/req", "above deep idle Wh/req"]].plot.bar(
        ax=ax, logy=True, title=model)
    ax.axhline(1.1e-3, color="k", ls="--", lw=1)
    ax.text(0, 1.25e-3, "paper: 1.1e-3 Wh (8B, fixed 500 ms)", fontsize=8)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=35)
plt.tight_layout()
fig3.round(4)""",
    ),
    (
        "md",
        """### Where the paper's 1.1e-3 Wh per request sits against the idle floor

At a fixed 500 ms spacing each request owns 0.5 s of the GPU's wall time. Even a GPU doing
nothing draws its idle power in that time, so a total-energy accounting can never go below
idle power x 0.5 s per request:""",
    ),
    (
        "code",
        """idle = PROFILE.idle
floors = pd.DataFrame([
    {"state": "deep idle (no work for minutes)", "W": idle.deep_idle_w},
    {"state": "active idle (model loaded, idle for seconds)", "W": idle.active_idle_w},
])
floors["Wh per 0.5 s request"] = floors["W"] * 0.5 / 3600
floors["x paper's 1.1e-3 Wh"] = floors["Wh per 0.5 s request"] / 1.1e-3
print(f"paper's 1.1e-3 Wh = {1.1e-3 * 3600:.1f} J per request = "
      f"{1.1e-3 * 3600 / 0.5:.1f} W average over each 0.5 s")
floors.round(4)""",
    ),
    (
        "md",
        """So the paper's 1.1e-3 Wh is an average draw of a few watts over each request's 0.5 s, several
times below the H100's deep-idle power (printed above): it cannot be a total (meter) energy
divided by requests. It can only be an attributed or marginal quantity (for example the
energy of the request's own kernels, or a meter window shorter than the run). Our *active*
and *above deep idle* columns are the closest such quantities, and in the simulation they
are still far above it, because at 2 requests/s TGI keeps decoding almost all the time
(see the mean batch and W per GPU columns: small memory-bound batches back to back), so the
GPU never gets to idle. The densest pattern (fixed 50 ms) is the simulator's cheapest per
request, not 500 ms: per-request energy falls with load while the server keeps up, as qMeter
also finds (its energy-QPS curve is convex and decreasing).""",
    ),
    ("code", VERDICT),
    (
        "code",
        """t = fig3.set_index(["model", "pattern"])
e8, e70 = t.loc["llama-3.1-8b"], t.loc["llama-3.1-70b"]
seq8 = e8.loc["sequential (HF generate)", "total Wh/req"]
tgi8 = e8.drop("sequential (HF generate)")
tgi70 = e70.drop("sequential (HF generate)")
best70 = tgi70[tgi70["refused (429)"] == 0]["total Wh/req"].min()  # only runs serving all
best8 = tgi8["total Wh/req"].min()
f500 = e8.loc["TGI fixed 500 ms"]
ratio = seq8 / best8
floor = idle.deep_idle_w * 0.5 / 3600


def within(x, ref, k):
    return ref / k <= x <= ref * k


summary = pd.DataFrame([
    {"paper (Fig. 3 / Sec. 5)": "8B HF sequential, Wh/request", "paper": "1.2e-1",
     "ours": f"{seq8:.2e}", "agreement": verdict(within(seq8, 0.12, 1.5), within(seq8, 0.12, 3)),
     "criterion": "within 1.5x (partly: 3x)"},
    {"paper (Fig. 3 / Sec. 5)": "8B TGI burst, Wh/request", "paper": "9.6e-3",
     "ours": f"{e8.loc['TGI burst (128 every 30 s)', 'total Wh/req']:.2e}",
     "agreement": verdict(within(e8.loc["TGI burst (128 every 30 s)", "total Wh/req"], 9.6e-3,
                                 1.5)), "criterion": "within 1.5x"},
    {"paper (Fig. 3 / Sec. 5)": "8B TGI fixed 500 ms, Wh/request", "paper": "1.1e-3",
     "ours": f"total {f500['total Wh/req']:.1e}, active {f500['active Wh/req']:.1e}; "
             f"deep-idle floor alone {floor:.1e}",
     "agreement": verdict(within(f500["active Wh/req"], 1.1e-3, 3)),
     "criterion": "active within 3x (the total cannot be: floor)"},
    {"paper (Fig. 3 / Sec. 5)": "sequential / best shaped TGI (8B)", "paper": "up to 100x",
     "ours": f"{ratio:.0f}x (best: {tgi8['total Wh/req'].idxmin()})",
     "agreement": verdict(ratio >= 50, partly=ratio >= 10), "criterion": ">= 50x (partly: 10x)"},
    {"paper (Fig. 3 / Sec. 5)": "70B TP4 TGI, lowest Wh/request", "paper": "2.4e-2",
     "ours": f"{best70:.2e} ({tgi70[tgi70['refused (429)'] == 0]['total Wh/req'].idxmin()})",
     "agreement": verdict(within(best70, 2.4e-2, 1.5), within(best70, 2.4e-2, 4)),
     "criterion": "within 1.5x (partly: 4x)"},
    {"paper (Fig. 3 / Sec. 5)": "best 70B TGI below 8B naive baseline", "paper": "yes",
     "ours": f"{best70:.2e} vs {seq8:.2e}", "agreement": verdict(best70 < seq8)},
])
summary""",
    ),
]


# ---- macro estimate ---------------------------------------------------------------------------
MACRO = [
    (
        "md",
        """# The macro estimate: 10^6 requests per day of Llama-3.1-8B, in kWh/day

The paper (Section 6) multiplies a per-request energy by 10^6 requests/day:

* baseline (HF `transformers`, no batching): 1.2e-1 Wh x 10^6 = **120 kWh/day**;
* optimised (`bfloat16`, TGI, regular arrivals): 1.1e-3 Wh x 10^6 = **1.1 kWh/day**, ">100x".

Two things this arithmetic leaves out: 10^6 requests/day is **11.6 requests/s** on average,
while the per-request figures were measured at 2 requests/s (500 ms spacing) - the load
decides both the per-request energy and how many GPUs are needed; and every GPU kept for the
service draws idle power all day (71 W deep idle = 1.7 kWh/day per GPU).

Here the simulator sizes the fleet for the real rate, per dtype and serving setup, with
`llm_energy_sim.analysis.capacity.optimize` (qMeter's case study 8.2: one replica's saturation rate under the
SLOs by bisection, then ceil(rate / saturation) replicas, checked by simulating the fleet):
Poisson arrivals at 10^6/86400 req/s, the paper's length distribution, SLOs **p90 TTFT <= 2 s**
and **p90 TPOT <= 0.2 s** (qMeter's chat TPOT bound). kWh/day = Wh/request (total accounting,
idle included) x 10^6 / 1000. Traces are shortened to **800 requests** per run (~70 s of
traffic at the target rate); ~30 s in all on 2 cores.""",
    ),
    ("code", SETUP),
    (
        "code",
        """from llm_energy_sim.analysis.capacity import Slo, optimize

PER_DAY = 1e6
RATE = PER_DAY / 86400
SLO = Slo(ttft_p90_s=2.0, tpot_p90_s=0.2)
DTYPES = ["float32", "bfloat16", "float16", "int8", "int4"]
SETUPS = {"HF generate, one at a time": {"kind": "sequential"}, "TGI": {"kind": "tgi"}}
plan = optimize(SCENARIOS / "fixed500ms.yaml", RATE, SLO, DTYPES, [1], "auto", requests=800,
                axes=[("server", list(SETUPS.values()))], workers=2, max_replicas=2048)
plan["setup"] = plan["server"].map(lambda s: {v["kind"]: k for k, v in SETUPS.items()}[s["kind"]])
plan["idle floor kWh/day"] = plan["gpus"] * PROFILE.idle.deep_idle_w * 24 / 1000
macro = plan[["setup", "dtype", "status", "gpus", "wh_per_request", "kwh_per_day",
              "idle floor kWh/day", "mean_power_per_gpu_w", "ttft_p90_s", "tpot_p90_s",
              "saturation_rps_per_replica", "note"]]
macro.round(4)""",
    ),
    (
        "code",
        """ok = macro[macro.status == "ok"]
fig, ax = plt.subplots(figsize=(9, 4))
ok.pivot(index="dtype", columns="setup", values="kwh_per_day").loc[
    [d for d in DTYPES if d in set(ok.dtype)]].plot.bar(ax=ax, logy=True)
ax.axhline(120, color="r", ls="--", lw=1, label="paper baseline 120 kWh/day")
ax.axhline(1.1, color="g", ls="--", lw=1, label="paper optimised 1.1 kWh/day")
ax.axhline(PROFILE.idle.deep_idle_w * 24 / 1000, color="k", ls=":", lw=1,
           label="one H100 at deep idle all day")
ax.set_ylabel("kWh/day at 1e6 requests/day")
ax.legend(fontsize=8)
plt.tight_layout()""",
    ),
    (
        "md",
        """### How much of the naive fleet is the SLO?

One request at a time with seconds of service each: a p90 TTFT of 2 s is only met at low
utilisation (queueing), so the SLO-sized fleet idles most of the day. An offline service that
accepts a p90 TTFT of 60 s packs the same GPUs much fuller:""",
    ),
    (
        "code",
        """loose = optimize(SCENARIOS / "sequential.yaml", RATE, Slo(ttft_p90_s=60.0, tpot_p90_s=0.2),
                 ["bfloat16"], [1], "auto", requests=800, max_replicas=2048)
loose[["dtype", "status", "gpus", "wh_per_request", "kwh_per_day", "mean_power_per_gpu_w",
       "ttft_p90_s"]].round(4)""",
    ),
    (
        "md",
        """### The paper's arithmetic with our per-request energies

For comparison, the paper's own method (per-request energy at its measurement setting x 10^6),
with the simulator's per-request energies at those settings (256-request traces):""",
    ),
    (
        "code",
        """from llm_energy_sim.results.accounting import requests_frame, summarize
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.simulation import simulate


def wh_per_request(path, overrides):
    res = simulate(load_scenario(SCENARIOS / path, {"workload.requests": 256, **overrides}))
    return summarize(res, requests_frame(res))["energy"]["per_request_wh"]


naive = {d: wh_per_request("sequential.yaml", {"dtype": d}) for d in ("float32", "bfloat16")}
tgi500 = wh_per_request("fixed500ms.yaml", {})
arith = pd.DataFrame([
    {"setting": "HF sequential float32 (paper's Sec. 6 baseline)", "paper kWh/day": 120,
     "ours kWh/day": naive["float32"] * PER_DAY / 1000},
    {"setting": "HF sequential bfloat16 (paper's Sec. 5 baseline)", "paper kWh/day": 120,
     "ours kWh/day": naive["bfloat16"] * PER_DAY / 1000},
    {"setting": "TGI bfloat16, fixed 500 ms", "paper kWh/day": 1.1,
     "ours kWh/day": tgi500 * PER_DAY / 1000},
])
arith.round(2)""",
    ),
    ("code", VERDICT),
    (
        "code",
        """best = ok.sort_values("kwh_per_day").iloc[0].to_dict()
seq_bf16 = ok[(ok.setup == "HF generate, one at a time") & (ok.dtype == "bfloat16")]
seq_kwh = float(seq_bf16.kwh_per_day.iloc[0]) if len(seq_bf16) else float("nan")
one_gpu_floor = PROFILE.idle.deep_idle_w * 24 / 1000
gain = seq_kwh / best["kwh_per_day"]
summary = pd.DataFrame([
    {"paper (Sec. 6)": "naive baseline at 1e6 req/day", "paper": "120 kWh/day",
     "ours": f"{seq_kwh:.0f} kWh/day on {int(seq_bf16.gpus.iloc[0])} GPUs (bf16, SLO-sized); "
             f"paper's arithmetic: {arith['ours kWh/day'][0]:.0f} (fp32)",
     "agreement": verdict(60 <= arith["ours kWh/day"][0] <= 240, partly=True),
     "criterion": "paper's arithmetic within 2x = yes; the fleet needs far more"},
    {"paper (Sec. 6)": "optimised (bf16, TGI) at 1e6 req/day", "paper": "1.1 kWh/day",
     "ours": f"{best['kwh_per_day']:.1f} kWh/day ({best['setup']} {best['dtype']}, "
             f"{int(best['gpus'])} GPU); "
             f"one GPU idling all day: {one_gpu_floor:.1f}",
     "agreement": verdict(best["kwh_per_day"] <= 2.2),
     "criterion": "within 2x; 1.1 is below one GPU's idle floor"},
    {"paper (Sec. 6)": "system-level gain", "paper": "> 100x", "ours": f"{gain:.0f}x",
     "agreement": verdict(gain >= 100, partly=gain >= 10), "criterion": ">= 100x (partly: 10x)"},
])
summary""",
    ),
]

NOTEBOOKS = {
    "fig1_precision.ipynb": FIG1,
    "fig2_batching.ipynb": FIG2,
    "fig3_arrival_shaping.ipynb": FIG3,
    "macro_1e6_requests_per_day.ipynb": MACRO,
}


def build(cells: list[tuple[str, str]], matrix_rows: list[dict], stem: str) -> nbf.NotebookNode:
    """A notebook of (kind, text) cells: "md", "code", or "live-md" (text: the figure), the
    validation table computed from the matrix rows now. Cell ids are `stem-<index>`, so a
    rebuild changes only what changed."""
    nb = nbf.v4.new_notebook()
    nb.cells = [
        nbf.v4.new_code_cell(t)
        if kind == "code"
        else nbf.v4.new_markdown_cell(
            live_validation_markdown(t, matrix_rows) if kind == "live-md" else t
        )
        for kind, t in cells
    ]
    for i, cell in enumerate(nb.cells):
        cell.id = f"{stem}-{i}"
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    from llm_energy_sim.cli.validate import load_matrix

    rows = load_matrix(MATRIX_DIR)["rows"]  # sim validate matrix on the committed matrix
    paths = []
    for name, cells in NOTEBOOKS.items():
        nbf.write(build(cells, rows, Path(name).stem), HERE / name)
        paths.append(str(HERE / name))
        print(f"wrote {HERE / name}")
    # the repo's lint/format rules apply to notebooks too (ruff reads .ipynb)
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "-q", *paths], check=True)
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", *paths], check=True)


if __name__ == "__main__":
    main()
