"""The one HF `generate()` call every measured run makes: greedy, exactly N new tokens.

Used by the live engines (`transformers_engine`, `static_engine`, `tp_engine`, the TP host
benchmark through it) and the host-overhead benchmark (`calibrate/hostbench.py`), so all of
them run the same decode: no sampling, EOS off and min_new_tokens = max_new_tokens (random
weights would otherwise stop at a random EOS), pad id 0, and a full attention mask (no padding)
unless the caller passes one: a static batch's left-padded prompts (`left_pad`).
torch / transformers are imported lazily.
"""

from __future__ import annotations

from typing import Any

PAD_ID = 0


def generate(
    model: Any,
    input_ids: Any,
    max_new_tokens: int,
    streamer: Any = None,
    stopping_criteria: Any = None,
    attention_mask: Any = None,
) -> Any:
    """model.generate() under no_grad for exactly `max_new_tokens` greedy tokens per row;
    returns its output (prompt + new tokens). streamer: a generate() streamer (put/end);
    stopping_criteria: a StoppingCriteriaList, or a single StoppingCriteria (wrapped in one),
    e.g. a per-step clock that never stops generation; attention_mask: 1 for real tokens, 0 for
    padding (default: all ones, an unpadded batch)."""
    import torch

    if stopping_criteria is not None:
        from transformers import StoppingCriteriaList

        if not isinstance(stopping_criteria, StoppingCriteriaList):
            stopping_criteria = StoppingCriteriaList([stopping_criteria])
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        return model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=PAD_ID,
            streamer=streamer,
            stopping_criteria=stopping_criteria,
        )


def left_pad(prompts: list[list[int]], device: str = "cpu") -> tuple[Any, Any]:
    """A batch of prompts left-padded with PAD_ID to the longest: (input_ids, attention_mask),
    each batch x longest, the mask 0 on the padding. Left padding is what HF generate needs for
    a decoder-only batch (new tokens follow every row's last real token)."""
    import torch

    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, longest - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, longest - len(p) :] = 1
    return ids.to(device), mask.to(device)
