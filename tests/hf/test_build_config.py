"""hf/build.hf_config: the transformers config built from a card follows the card's source."""

from __future__ import annotations

import pytest

from llm_energy_sim.config.modelcard import load_model_card

pytest.importorskip("transformers")


def test_mistral_has_no_sliding_window_as_its_config_json():
    """Mistral-7B v0.3's config.json has "sliding_window": null; MistralConfig's default
    (4096) would make transformers CB page every layer as sliding-window attention."""
    from llm_energy_sim.hf.build import hf_config

    cfg = hf_config(load_model_card("mistral-7b"), "bfloat16")
    assert cfg.model_type == "mistral" and cfg.sliding_window is None
    assert cfg.num_hidden_layers == 32 and cfg.num_key_value_heads == 8
