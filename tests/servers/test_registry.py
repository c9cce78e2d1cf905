"""The server registry: each kind is declared once (config/servers.py) and resolves to its
settings schema, scheduler class, cost-model engine and dtypes; what a kind's engine cannot
run is refused when the scenario loads."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from conftest import run, scenario

import llm_energy_sim
from llm_energy_sim.config.dtypes import DTYPES
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.config.scenario import Server, load_scenario
from llm_energy_sim.config.servers import SERVER_KINDS, server_kind
from llm_energy_sim.cost.costmodel import ENGINE_SHAPES, CostModel
from llm_energy_sim.servers.base import Scheduler
from llm_energy_sim.servers.registry import scheduler_class

KINDS = sorted(SERVER_KINDS)
SHIPPED = sorted((Path(llm_energy_sim.__file__).parent / "data" / "scenarios").rglob("*.yaml"))
MINIMAL = {"static": {"batch_size": 2}}  # the fields a kind requires


@pytest.mark.parametrize("name", KINDS)
def test_every_entry_resolves(name):
    kind = server_kind(name)
    assert typing.get_args(kind.settings.model_fields["kind"].annotation) == (name,)
    cls = scheduler_class(name)
    assert issubclass(cls, Scheduler) and cls.__module__.startswith("llm_energy_sim.servers.")
    assert kind.cost_engine in ENGINE_SHAPES
    assert kind.dtypes and set(kind.dtypes) <= set(DTYPES)
    # the shipped profiles cost every dtype the kind runs on its engine
    card = load_model_card("llama-3.1-8b")
    for profile in ("h100-sxm", "h200"):
        prof, _ = load_profile(profile)
        assert kind.cost_engine in prof.host
        for dtype in kind.dtypes:
            CostModel(card, dtype, prof, kind.cost_engine)


def test_the_scenario_union_is_the_registry():
    union, _info = typing.get_args(Server)
    assert set(typing.get_args(union)) == {k.settings for k in SERVER_KINDS.values()}


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_simulates_through_its_scheduler(name):
    wl = {
        "requests": 6,
        "arrival": {"kind": "fixed", "interval_ms": 100},
        "prompt_tokens": {"kind": "fixed", "value": 300},
        "output_tokens": {"kind": "fixed", "value": 20},
    }
    res, df, summary = run(scenario(server={"kind": name, **MINIMAL.get(name, {})}, workload=wl))
    assert type(res.servers[0].scheduler) is scheduler_class(name)
    assert (df.status == "ok").all() and (df.generated_tokens == 20).all()
    assert summary["requests"]["completed"] == 6


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_scenario_loads(path):
    scen = load_scenario(path)
    assert scen.dtype in server_kind(scen.server.kind).dtypes


@pytest.mark.parametrize(
    "kind,dtype",
    [
        ("tgi", "float32"),
        ("transformers-cb", "fp8"),
        ("vllm", "float32"),
        ("vllm", "int4"),
    ],
)
def test_a_dtype_the_engine_does_not_run_is_a_one_line_error(kind, dtype):
    with pytest.raises(UserError) as e:
        scenario(server={"kind": kind}, dtype=dtype)
    msg = str(e.value)
    allowed = ", ".join(server_kind(kind).dtypes)
    assert "\n" not in msg
    assert msg == (
        f"<test>: field 'dtype': server kind '{kind}' does not run {dtype}; it runs {allowed}"
    )


def test_hf_generate_kinds_run_every_dtype():
    for name in ("sequential", "static"):
        assert server_kind(name).dtypes == DTYPES
    for dtype in DTYPES:  # loads, with the default TGI server swapped for HF generate
        scenario(server={"kind": "sequential"}, dtype=dtype)


def test_transformers_cb_runs_bitsandbytes_int8_and_nf4():
    """The CB engine builds LLM.int8 / NF4 models as HF generate does (hf/build.py): such a
    scenario loads and is costed on the transformers_cb engine with the dtype's kernels."""
    kind = server_kind("transformers-cb")
    assert {"int8", "int4"} <= set(kind.dtypes) and "fp8" not in kind.dtypes
    for dtype in ("int8", "int4"):
        scen = scenario(server={"kind": "transformers-cb"}, dtype=dtype)
        assert scen.dtype == dtype


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(UserError, match="unknown server kind 'sglang' .*tgi.*vllm"):
        server_kind("sglang")
