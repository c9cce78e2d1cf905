"""llm_energy_sim.hf.greedy.generate: the one greedy, no-EOS generate() call of hostbench and the
live engines, on a tiny random model on CPU."""

from __future__ import annotations

import pytest
from conftest import tiny_card

CARD = tiny_card()


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("transformers")
    from llm_energy_sim.hf.build import build_model

    m = build_model(CARD, "float32", "cpu")
    # an EOS in the model's own config must not end the run early
    m.generation_config.eos_token_id = 7
    return m


def test_exactly_n_tokens_same_as_the_explicit_call(model):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from llm_energy_sim.hf import greedy

    x = torch.arange(100, 112).unsqueeze(0)

    class Clock(StoppingCriteria):
        calls = 0

        def __call__(self, input_ids, scores, **kwargs):
            Clock.calls += 1
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    class Stream:
        puts = 0

        def put(self, value):
            Stream.puts += 1

        def end(self):
            pass

    out = greedy.generate(model, x, 5, streamer=Stream(), stopping_criteria=Clock())
    assert out.shape == (1, 12 + 5)
    assert Clock.calls == 5 and Stream.puts == 1 + 5  # prompt, then one put per new token
    with torch.no_grad():
        ref = model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=5,
            min_new_tokens=5,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
            stopping_criteria=StoppingCriteriaList([Clock()]),
        )
    assert torch.equal(out, ref)
    assert torch.equal(greedy.generate(model, x, 5), ref)  # deterministic, no criteria needed
