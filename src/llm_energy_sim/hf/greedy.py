"""The one HF `generate()` call every measured run makes: greedy, exactly N new tokens.

Used by the live engines (`transformers_engine`, `tp_engine`, the TP host benchmark through
it) and the host-overhead benchmark (`calibrate/hostbench.py`), so all of them run the same
decode: no sampling, EOS off and min_new_tokens = max_new_tokens (random weights would
otherwise stop at a random EOS), a full attention mask (no padding), pad id 0.
torch / transformers are imported lazily.
"""

from __future__ import annotations

from typing import Any


def generate(
    model: Any,
    input_ids: Any,
    max_new_tokens: int,
    streamer: Any = None,
    stopping_criteria: Any = None,
) -> Any:
    """model.generate() under no_grad for exactly `max_new_tokens` greedy tokens; returns its
    output (prompt + new tokens). streamer: a generate() streamer (put/end); stopping_criteria:
    a StoppingCriteriaList, or a single StoppingCriteria (wrapped in one), e.g. a per-step clock
    that never stops generation."""
    import torch

    if stopping_criteria is not None:
        from transformers import StoppingCriteriaList

        if not isinstance(stopping_criteria, StoppingCriteriaList):
            stopping_criteria = StoppingCriteriaList([stopping_criteria])
    with torch.no_grad():
        return model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
            streamer=streamer,
            stopping_criteria=stopping_criteria,
        )
