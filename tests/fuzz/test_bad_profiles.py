"""Bad calibration profiles given to `sim run --profile`: not JSON, not an object, a
non-finite number anywhere, and numbers without physical sense (deep idle above active
idle, a power above the GPU's limit, a non-positive rate): refused with exit code 2, one
line naming the file, nothing written."""

from __future__ import annotations

import copy
import json

import pytest
from badinput import SMALL, refused, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_energy_sim.config.paths import PROFILES_DIR

FUZZ = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SHIPPED = json.loads((PROFILES_DIR / "h100-sxm-bootstrap.json").read_text())


def _number_paths(node, prefix=()):
    """Every path to a float in the profile (ints and bools excluded)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _number_paths(v, (*prefix, k))
    elif isinstance(node, float):
        yield prefix


NUMBERS = sorted(_number_paths(SHIPPED))


def _set(data, path, value):
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _run_with(tmp_path, text: str) -> str:
    (tmp_path / "p.json").write_text(text)
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    return refused(
        ["run", scen, "--profile", tmp_path / "p.json", "--out", tmp_path / "o", "--quiet"],
        tmp_path,
    )


@FUZZ
@given(st.sampled_from(NUMBERS), st.sampled_from(["NaN", "Infinity", "-Infinity"]))
def test_non_finite_number_anywhere(tmp_path_factory, path, token):
    root = tmp_path_factory.mktemp("prof")
    data = copy.deepcopy(SHIPPED)
    _set(data, path, "__X__")
    line = _run_with(root, json.dumps(data).replace('"__X__"', token))
    assert "p.json" in line


@pytest.mark.parametrize(
    "change",
    [
        {("idle", "deep_idle_w"): 200.0},  # above active idle (125 W)
        {("idle", "active_idle_w"): 800.0, ("idle", "deep_idle_w"): 70.0},  # above the limit
        {("idle", "host_wait_w"): 900.0},
        {("gpu", "power_limit_w"): 100.0},  # below active idle
        {("gpu", "power_limit_w"): 0.0},
        {("gpu", "memory_bytes"): -1.0},
        {("kernels", "linear", "bfloat16", "bandwidth"): 0.0},
        {("kernels", "linear", "bfloat16", "peak_flops"): -5.0},
        {("idle", "standby_tau_s"): 0.0},
        {("gpu", "memory_bandwidth"): 1e9},  # below the links' bus bandwidth
    ],
)
def test_profile_without_physical_sense(tmp_path, change):
    data = copy.deepcopy(SHIPPED)
    for path, value in change.items():
        _set(data, path, value)
    assert "p.json" in _run_with(tmp_path, json.dumps(data))


@pytest.mark.parametrize(
    "text", ["[]", "[1, 2]", "42", '"x"', "null", "{", "", "[" * 100000, '{"name": 1}']
)
def test_profile_not_an_object(tmp_path, text):
    assert "p.json" in _run_with(tmp_path, text)


def test_profile_not_utf8_or_a_directory(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    (tmp_path / "p.json").write_bytes(b'{"name": "\xff"}')
    args = ["run", scen, "--profile", tmp_path / "p.json", "--out", tmp_path / "o", "--quiet"]
    refused(args, tmp_path)
    (tmp_path / "p.json").unlink()
    (tmp_path / "p.json").mkdir()
    refused(args, tmp_path)
