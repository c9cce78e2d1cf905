"""Alias bombs ("billion laughs"), recursive aliases and huge documents in every YAML that
`sim` reads (scenarios of run / sweep / plan / replay / steps, model cards, --set values):
refused before anything is built from them, exit code 2, one line naming the file or the
option, nothing written. Anchors and aliases a scenario may really use still load."""

from __future__ import annotations

import copy

import pytest
import yaml
from badinput import SMALL, refused, sim, write_scenario
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import model_card_paths
from llm_energy_sim.config.yamlio import MAX_BYTES, MAX_NODES, load_yaml_text


def laughs(width: int, levels: int, key: str = "x-laughs") -> str:
    """A billion-laughs block: level i is a list of `width` aliases of level i-1, so the
    last level expands to width**levels strings (a few hundred bytes of text)."""
    lines = [f"{key}:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def merge_bomb(width: int, levels: int) -> str:
    """The same through merge keys: each level merges `width` aliases of the one before."""
    lines = ["x-merge:", "  m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
    for i in range(1, levels):
        lines.append(f"  m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}], k{i}: 1}}")
    return "\n".join(lines) + "\n"


def _small_yaml() -> str:
    return yaml.safe_dump(SMALL, sort_keys=False)


#: name -> a scenario document that must be refused before it is built, and what the
#: refusal says (so the YAML check refused it, not the schema's unknown-field check)
WHY = {
    "billion-laughs": "aliases expanded",
    "laughs-in-a-field": "aliases expanded",
    "merge-bomb": "aliases expanded",
    "recursive": "recursive",
    "recursive-mapping": "recursive",
    "alias-chain-deep": "deeper than",
    "many-nodes": f"more than {MAX_NODES} nodes",
    "huge-file": "larger than",
}
HOSTILE = {
    "billion-laughs": lambda: _small_yaml() + laughs(9, 9),
    "laughs-in-a-field": lambda: (
        _small_yaml()
        .replace("server:\n  kind: sequential\n", "server:\n  kind: sequential\n  x: *l8\n")
        .replace("name: small\n", "name: small\n" + laughs(9, 9))
    ),
    "merge-bomb": lambda: _small_yaml() + merge_bomb(9, 8),
    "recursive": lambda: _small_yaml() + "x-loop: &loop [1, *loop]\n",
    "recursive-mapping": lambda: _small_yaml() + "x-loop: &loop {a: *loop}\n",
    "alias-chain-deep": lambda: (
        _small_yaml()
        + "x-deep:\n  d0: &d0 [1]\n"
        + "".join(f"  d{i}: &d{i} [*d{i - 1}]\n" for i in range(1, 300))
    ),
    "many-nodes": lambda: _small_yaml() + "x-many: [" + ", ".join(["1"] * (MAX_NODES + 10)) + "]\n",
    "huge-file": lambda: _small_yaml() + "# " + "x" * (MAX_BYTES + 10) + "\n",
}


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("command", ["run", "sweep", "saturation", "optimize", "replay"])
def test_every_command_refuses_a_hostile_scenario(tmp_path, kind, command):
    path = tmp_path / "s.yaml"
    path.write_text(HOSTILE[kind]())
    args = {
        "run": ["run", path, "--out", tmp_path / "o", "--quiet"],
        "sweep": ["sweep", path, "--set", "seed=1,2", "--workers", "1", "--out", tmp_path / "o"],
        "saturation": ["plan", "saturation", path, "--slo-ttft-p90", "1", "--out", tmp_path / "p"],
        "optimize": ["plan", "optimize", path, "--rate", "1", "--out", tmp_path / "p.csv"],
        "replay": [
            "replay",
            path,
            "--engine",
            "openai",
            "--endpoint",
            "http://127.0.0.1:9",
            "--out",
            tmp_path / "o",
        ],
    }[command]
    line = refused(args, tmp_path)
    assert str(path) in line and WHY[kind] in line


@pytest.mark.parametrize("kind", ["billion-laughs", "recursive", "many-nodes", "huge-file"])
def test_steps_refuses_a_hostile_scenario(tmp_path, kind):
    good = write_scenario(tmp_path / "good.yaml", SMALL)
    assert sim(["run", good, "--out", tmp_path / "run", "--quiet"], tmp_path).exit_code == 0
    path = tmp_path / "s.yaml"
    path.write_text(HOSTILE[kind]())
    line = refused(["steps", path, tmp_path / "run", "--out", tmp_path / "st"], tmp_path)
    assert str(path) in line and WHY[kind] in line


@pytest.mark.parametrize("kind", ["billion-laughs", "merge-bomb", "recursive", "many-nodes"])
def test_a_hostile_model_card_is_refused(tmp_path, kind):
    cards = tmp_path / "cards"
    cards.mkdir()
    shipped = model_card_paths()["qwen2.5-0.5b"].read_text()
    card = HOSTILE[kind]().replace(_small_yaml(), shipped.replace("qwen2.5-0.5b", "bombcard"))
    (cards / "bombcard.yaml").write_text(card)
    path = write_scenario(tmp_path / "s.yaml", {**SMALL, "model": "bombcard"})
    line = refused(
        ["--models-dir", cards, "run", path, "--out", tmp_path / "o", "--quiet"], tmp_path
    )
    assert "bombcard.yaml" in line and WHY[kind] in line
    line = refused(["--models-dir", cards, "models"], tmp_path)
    assert "bombcard.yaml" in line and WHY[kind] in line


#: --set values holding a bomb (a list of lists of aliases in one flow value)
SET_BOMB = (
    "[&a [l,l,l,l,l,l,l,l,l], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
    + ", ".join(
        f"&{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("bcdefgh", "cdefghi", strict=True)
    )
    + "]"
)


def test_a_bomb_in_a_set_value_is_refused(tmp_path):
    """A swept value is parsed when the grid is built and written into the journal's point
    key (json.dumps would copy a bomb out whole): refused at parse, naming the option."""
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    set_value = f"server.kind=sequential,{SET_BOMB}"
    line = refused(
        ["sweep", path, "--set", set_value, "--workers", "1", "--out", tmp_path / "o"], tmp_path
    )
    assert "--set" in line and "nodes" in line
    line = refused(["run", path, "--set", f"seed={SET_BOMB}", "--quiet"], tmp_path)
    assert "override" in line and "nodes" in line
    args = ["plan", "optimize", path, "--rate", "1", "--set", f"seed=1,{SET_BOMB}"]
    refused([*args, "--out", tmp_path / "p.csv"], tmp_path)
    refused(["--models-dir", tmp_path, "run", path, "--set", "x=&a [*a]", "--quiet"], tmp_path)


def test_anchors_a_scenario_really_uses_still_load(tmp_path):
    """The control: a scenario sharing one length spec by an alias and a server block by a
    merge key runs as the same scenario written out."""
    text = _small_yaml().replace(
        "  prompt_tokens:\n    kind: fixed\n    value: 10\n  output_tokens:\n    kind: fixed\n"
        "    value: 5\n",
        "  prompt_tokens: &len {kind: fixed, value: 5}\n  output_tokens: *len\n",
    )
    text = text.replace("server:\n  kind: sequential\n", "server:\n  <<: {kind: sequential}\n")
    assert "*len" in text and "<<" in text
    path = tmp_path / "s.yaml"
    path.write_text(text)
    r = sim(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)
    assert r.exit_code == 0, r.output
    plain = copy.deepcopy(SMALL)
    plain["workload"]["prompt_tokens"] = {"kind": "fixed", "value": 5}
    assert yaml.safe_load(text) == plain == load_yaml_text(text, "s.yaml")


def _expanded(width: int, levels: int) -> int:
    """Nodes of laughs(width, levels) with every alias copied out (what json.dumps makes)."""
    per_level = [1 + width]  # l0: the list and its strings
    for _ in range(1, levels):
        per_level.append(1 + width * per_level[-1])
    keys = levels  # one key scalar per level
    return 1 + 1 + 1 + keys + sum(per_level)  # document mapping, its key, the inner mapping


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12))
def test_alias_expansion_is_counted_exactly(width, levels):
    """A document is refused exactly when its aliases expand past MAX_NODES nodes, however
    wide or deep the bomb; below that it loads as PyYAML loads it."""
    text = laughs(width, levels)
    if _expanded(width, levels) > MAX_NODES:
        with pytest.raises(UserError, match="aliases expanded"):
            load_yaml_text(text, "doc")
    else:
        assert load_yaml_text(text, "doc") == yaml.safe_load(text)
