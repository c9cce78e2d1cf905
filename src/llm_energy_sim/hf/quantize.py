"""bitsandbytes quantization of a built HF model: LLM.int8 (int8) and NF4 (int4) linears.

Every decoder nn.Linear (not the LM head) is swapped for its bitsandbytes layer, quantised on
the GPU from the 16-bit weights (random, never zeros). The activation dtype of each
(BUILD_DTYPE) is bitsandbytes' default: fp16 for LLM.int8, bf16 compute for NF4.
bitsandbytes and torch are imported inside the functions.
"""

from __future__ import annotations

from llm_energy_sim.config.errors import UserError

#: the dtypes this module quantizes to
QUANTIZED = ("int8", "int4")

BUILD_DTYPE = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
    "int8": "float16",  # LLM.int8 runs fp16 activations
    "int4": "bfloat16",  # NF4 with bf16 compute
}


def bnb_linear(child, dtype: str):
    """The bitsandbytes replacement of one nn.Linear, quantised from its weights on its device."""
    import bitsandbytes as bnb
    import torch

    w = child.weight.data
    with torch.device("meta"):  # no CPU init of a throw-away fp32 weight
        if dtype == "int8":
            new = bnb.nn.Linear8bitLt(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                has_fp16_weights=False,
                threshold=6.0,
            )
        else:
            new = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=torch.bfloat16,
                quant_type="nf4",
            )
    if dtype == "int8":
        param = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
        new.weight = param._quantize(w.device)  # row-wise int8 codes + fp32 scales
    else:
        param = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4", module=new)
        new.weight = param.to(w.device)  # NF4 codes + double-quantised absmax
    if child.bias is not None:
        new.bias = torch.nn.Parameter(child.bias.data.clone(), requires_grad=False)
    return new


def quantize_linears(model, dtype: str) -> int:
    """Swap every decoder nn.Linear (not the LM head) for LLM.int8 or NF4; returns the count."""
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError(
            f"dtype {dtype} needs bitsandbytes (pip install 'llm-energy-sim[gpu]')"
        ) from None

    n = 0
    for _name, mod in list(model.model.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(mod, child_name, bnb_linear(child, dtype))
                n += 1
                del child
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return n
