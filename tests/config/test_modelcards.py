"""Model cards: derived parameter counts match the published sizes within 2%."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import load_model_card, load_model_card_file

CARDS = sorted((Path(__file__).resolve().parents[2] / "models").glob("*.yaml"))
EXPECTED = {
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "mistral-7b",
    "llama-3.1-8b",
    "llama-3.1-70b",
}


def test_all_studied_models_have_cards():
    assert {p.stem for p in CARDS} >= EXPECTED


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.stem)
def test_parameter_count_matches_published(path: Path):
    card = load_model_card_file(path)
    assert card.name == path.stem
    assert card.source.startswith("https://huggingface.co/")
    assert "config.json" in card.source
    if card.derived_from:
        # a derived card keeps every field of its parent but the layer count
        parent = load_model_card(card.derived_from).model_dump()
        mine = card.model_dump()
        differs = {k for k in parent if parent[k] != mine[k]}
        assert differs <= {
            "name",
            "source",
            "num_hidden_layers",
            "published_params_b",
            "derived_from",
        }
        assert card.num_hidden_layers < parent["num_hidden_layers"]
        return
    assert card.published_params_b is not None
    assert card.num_params() == pytest.approx(card.published_params_b * 1e9, rel=0.02)


def test_unknown_card_lists_available():
    with pytest.raises(UserError) as excinfo:
        load_model_card("no-such-model")
    message = str(excinfo.value)
    assert "no-such-model" in message
    assert "available:" in message
    for name in EXPECTED:
        assert name in message
