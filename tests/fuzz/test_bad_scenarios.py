"""Bad scenarios, bad --set overrides and bad --out paths: refused with exit code 2, one
line, no traceback, nothing written (`sim run`)."""

from __future__ import annotations

import copy

import pytest
import yaml
from badinput import SMALL, refused, sim, tree, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: every float field of a scenario that a fuzzed value can reach, with a setting that makes
#: it apply (the arrival / length / server kind it belongs to)
FLOAT_FIELDS = [
    ("workload.arrival", {"kind": "fixed", "interval_ms": "X"}),
    ("workload.arrival", {"kind": "uniform", "low_ms": "X", "high_ms": 10}),
    ("workload.arrival", {"kind": "uniform", "low_ms": 1, "high_ms": "X"}),
    ("workload.arrival", {"kind": "poisson", "rate": "X"}),
    ("workload.arrival", {"kind": "burst", "size": 2, "gap_ms": "X"}),
    ("workload.prompt_tokens", {"kind": "lognormal", "mean": "X", "max": 50}),
    ("workload.prompt_tokens", {"kind": "lognormal", "mean": 20, "sigma": "X", "max": 50}),
    ("hardware", {"host_time_factor": "X"}),
    ("output", {"timeline_bin_s": "X"}),
    ("server", {"kind": "static", "batch_size": 2, "max_wait_ms": "X"}),
    ("server", {"kind": "tgi", "waiting_served_ratio": "X"}),
    ("server", {"kind": "tgi", "cuda_memory_fraction": "X"}),
]
NON_FINITE = [".nan", ".inf", "-.inf", ".NaN", ".Inf"]


def _with(field: str, value: dict, x) -> dict:
    data = copy.deepcopy(SMALL)
    node = data
    *head, last = field.split(".")
    for k in head:
        node = node[k]
    node[last] = {k: (x if v == "X" else v) for k, v in value.items()}
    return data


@FUZZ
@given(st.sampled_from(FLOAT_FIELDS), st.sampled_from(NON_FINITE))
def test_non_finite_float_in_a_file(tmp_path_factory, field, token):
    root = tmp_path_factory.mktemp("nf")
    path = root / "s.yaml"
    data = _with(field[0], field[1], "__X__")
    path.write_text(
        yaml.safe_dump(data, sort_keys=False).replace("'__X__'", token).replace("__X__", token)
    )
    line = refused(["run", path, "--out", root / "out", "--quiet"], root)
    assert str(path) in line and "finite" in line


@FUZZ
@given(
    st.sampled_from(
        [
            "workload.arrival.interval_ms",
            "hardware.host_time_factor",
            "output.timeline_bin_s",
            "workload.requests",
            "hardware.replicas",
            "seed",
        ]
    ),
    st.sampled_from(["nan", ".inf", "-.inf", "-1", "1e400", "abc", "[1]", "{a: 1}", "true"]),
)
def test_bad_override_value(tmp_path_factory, key, value):
    root = tmp_path_factory.mktemp("ov")
    path = write_scenario(root / "s.yaml", SMALL)
    refused(["run", path, "--set", f"{key}={value}", "--out", root / "out", "--quiet"], root)


@pytest.mark.parametrize(
    "override",
    ["dtype=[", "dtype={", "=bfloat16", "workload..requests=3", "noequals", "a.=1", "x=: :"],
)
def test_malformed_override(tmp_path, override):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    refused(["run", path, "--set", override, "--out", tmp_path / "out", "--quiet"], tmp_path)


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70])
def test_seed_out_of_range(tmp_path, seed):
    path = write_scenario(tmp_path / "s.yaml", {**SMALL, "seed": seed})
    assert "seed" in refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)


@pytest.mark.parametrize(
    "name", ["../../x", "/tmp/abs", "a/b", ".", "..", ".hidden", "", "a\\b", "x\ny", "a" * 300]
)
def test_scenario_name_is_a_name(tmp_path, name):
    path = write_scenario(tmp_path / "s.yaml", {**SMALL, "name": name})
    line = refused(["run", path, "--quiet"], tmp_path)
    assert "name" in line


@pytest.mark.parametrize("model", ["../../x", "/etc/passwd", "a/b", "..", ""])
def test_model_is_a_name(tmp_path, model):
    (tmp_path / "x.yaml").write_text("name: x\n")
    path = write_scenario(tmp_path / "s.yaml", {**SMALL, "model": model})
    assert "model" in refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)


def _yaml_file(tmp_path, kind: str):
    p = tmp_path / "s.yaml"
    if kind == "not-utf8":
        p.write_bytes(b"name: \xff\xfe\x00bad\n")
    elif kind == "directory":
        p.mkdir()
    elif kind == "deep-flow":
        p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    elif kind == "deep-block":
        p.write_text("".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n")
    elif kind == "empty":
        p.write_text("")
    elif kind == "a-list":
        p.write_text("- 1\n- 2\n")
    elif kind == "a-scalar":
        p.write_text("42\n")
    elif kind == "bad-yaml":
        p.write_text("name: [unclosed\n")
    elif kind == "int-keys":
        p.write_text("1: 2\n")
    elif kind == "missing":
        pass
    return p


@pytest.mark.parametrize(
    "kind",
    [
        "not-utf8",
        "directory",
        "deep-flow",
        "deep-block",
        "empty",
        "a-list",
        "a-scalar",
        "bad-yaml",
        "int-keys",
        "missing",
    ],
)
def test_bad_yaml_file(tmp_path, kind):
    p = _yaml_file(tmp_path, kind)
    refused(["run", p, "--out", tmp_path / "o", "--quiet"], tmp_path)


@pytest.mark.parametrize(
    "sets",
    [
        ["workload.requests=100000000"],
        ["hardware.replicas=100000", "workload.requests=1000"],
        ["output.timeline_bin_s=1e-9"],
    ],
)
def test_memory_estimate_refuses_huge_runs(tmp_path, sets):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["run", path, "--out", tmp_path / "o", "--quiet"]
    for s in sets:
        args += ["--set", s]
    line = refused(args, tmp_path)
    assert "--force" in line and "GiB" in line


def test_out_that_is_a_file_or_under_one(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    (tmp_path / "f").write_text("x")
    refused(["run", path, "--out", tmp_path / "f", "--quiet"], tmp_path)
    refused(["run", path, "--out", tmp_path / "f" / "sub", "--quiet"], tmp_path)


def test_out_that_holds_something_else(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "precious.txt").write_text("keep me")
    refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)


def test_a_good_run_is_complete_and_names_stay_inside(tmp_path):
    """The control: the small scenario runs, writes results/<name> under cwd with its
    completion marker last, and nothing outside it."""
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    before = set(tree(tmp_path))
    r = sim(["run", path, "--quiet"], tmp_path)
    assert r.exit_code == 0, r.output
    new = set(tree(tmp_path)) - before
    assert all(p.startswith("results") for p in new)
    assert (tmp_path / "results" / "small" / ".complete").is_file()


@pytest.mark.parametrize(
    "option",
    [
        ["--grid-intensity", "nan"],
        ["--grid-intensity", "inf"],
        ["--grid-intensity", "-1"],
        ["--requests", "0"],
        ["--requests", "-5"],
        ["--requests", "x"],
        ["--profile", "/nonexistent.json"],
        ["--profile", "no-such-profile"],
        ["--host-speed", "/nonexistent"],
        ["--bogus-option"],
    ],
)
def test_bad_run_option(tmp_path, option):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    refused(["run", path, *option, "--out", tmp_path / "o", "--quiet"], tmp_path)
