"""Build and run one grid point's kernel with torch (CUDA, or CPU for tests: timing only)."""

from __future__ import annotations

from collections.abc import Callable

from llm_energy_sim.calibrate.grid import Point

TORCH_DTYPE = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _rand(shape, dtype, device):
    import torch

    return torch.randn(*shape, device=device, dtype=getattr(torch, dtype))


def _linear(p: Point, device: str) -> Callable[[], None]:
    import torch

    if p.dtype in TORCH_DTYPE:
        x, w = _rand((p.m, p.n_in), p.dtype, device), _rand((p.n_out, p.n_in), p.dtype, device)
        return lambda: torch.nn.functional.linear(x, w)
    if p.dtype in ("int8", "int4"):
        import bitsandbytes as bnb

        if p.dtype == "int8":  # LLM.int8 with fp16 activations (bnb's default path)
            layer = bnb.nn.Linear8bitLt(
                p.n_in, p.n_out, bias=False, has_fp16_weights=False, threshold=6.0
            )
            act = "float16"
        else:  # NF4, bf16 compute
            layer = bnb.nn.Linear4bit(
                p.n_in, p.n_out, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4"
            )
            act = "bfloat16"
        layer = layer.to(device)
        x = _rand((p.m, p.n_in), act, device)
        return lambda: layer(x)
    if p.dtype == "fp8":  # e4m3 weights and activations, per-tensor scales, bf16 out
        m = max(16, -(-p.m // 16) * 16)  # _scaled_mm needs multiples of 16
        x = _rand((m, p.n_in), "bfloat16", device).to(torch.float8_e4m3fn)
        w = _rand((p.n_out, p.n_in), "bfloat16", device).to(torch.float8_e4m3fn)
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(
            x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16
        )
    raise ValueError(p.dtype)


def _attention(p: Point, device: str) -> Callable[[], None]:
    import torch

    f = torch.nn.functional.scaled_dot_product_attention
    q_len, kv_len = (p.seq, p.seq) if p.kclass == "attn_prefill" else (1, p.kv_len)
    q = _rand((p.batch, p.heads, q_len, p.head_dim), p.dtype, device)
    k = _rand((p.batch, p.kv_heads, kv_len, p.head_dim), p.dtype, device)
    v = _rand((p.batch, p.kv_heads, kv_len, p.head_dim), p.dtype, device)
    causal = p.kclass == "attn_prefill"
    return lambda: f(q, k, v, is_causal=causal, enable_gqa=True)


def _masked_attention(p: Point, device: str) -> Callable[[], None]:
    """Attention of a left-padded HF generate batch as transformers 5.17 runs it under a
    padding mask (integrations/sdpa_attention.py: no native GQA when a mask is given):
    repeat_kv of K and V (expand + reshape: a copy to every query head), then SDPA with a
    boolean mask (batch, 1, queries, keys); row i of the batch has i * keys / (2 * batch)
    padding keys on the left, prefill masks are causal as well."""
    import torch

    prefill = p.kclass == "attn_prefill_masked"
    q_len, kv_len = (p.seq, p.seq) if prefill else (1, p.kv_len)
    b, h, kvh, d = p.batch, p.heads, p.kv_heads, p.head_dim
    q = _rand((b, h, q_len, d), p.dtype, device)
    k = _rand((b, kvh, kv_len, d), p.dtype, device)
    v = _rand((b, kvh, kv_len, d), p.dtype, device)
    pads = torch.tensor([i * kv_len // (2 * b) for i in range(b)], device=device)
    mask = (torch.arange(kv_len, device=device)[None, :] >= pads[:, None])[:, None, None, :]
    if prefill:
        causal = torch.ones((q_len, kv_len), dtype=torch.bool, device=device).tril()
        mask = mask & causal[None, None]
    rep = h // kvh
    f = torch.nn.functional.scaled_dot_product_attention

    def run() -> None:
        k2 = k[:, :, None].expand(b, kvh, rep, kv_len, d).reshape(b, h, kv_len, d)
        v2 = v[:, :, None].expand(b, kvh, rep, kv_len, d).reshape(b, h, kv_len, d)
        f(q, k2, v2, attn_mask=mask)

    return run


def _packed_attention(p: Point, device: str) -> Callable[[], None]:
    """One layer of transformers CB's paged|sdpa path (integrations/sdpa_paged.py and the
    cache's index_select read-back): gather K/V rows of the paged cache, repeat the KV heads,
    one dense SDPA under an additive mask that is a slice of a wider model-dtype buffer (as
    the engine's mask is), output transposed back. Values do not matter to the cost."""
    import torch

    dt = getattr(torch, p.dtype)
    block = 256
    slots = -(-p.kv_len // block) * block + block
    k_cache = _rand((slots, p.kv_heads, p.head_dim), p.dtype, device)
    v_cache = _rand((slots, p.kv_heads, p.head_dim), p.dtype, device)
    blocks = torch.randperm(slots // block, device=device)  # pages scattered over the cache
    read = (blocks[:, None] * block + torch.arange(block, device=device)).flatten()[: p.kv_len]
    q = _rand((1, p.heads, p.m, p.head_dim), p.dtype, device)
    width = -(-(p.kv_len + 8192) // block) * block
    mask = torch.zeros((1, 1, p.m, width), dtype=dt, device=device)[..., : p.kv_len]
    rep = p.heads // p.kv_heads
    f = torch.nn.functional.scaled_dot_product_attention

    def heads(x):
        x = x.transpose(0, 1).unsqueeze(0)
        if rep > 1:
            b, h, s, d = x.shape
            x = x[:, :, None].expand(b, h, rep, s, d).reshape(b, h * rep, s, d)
        return x.contiguous()

    def run() -> None:
        k = heads(torch.index_select(k_cache, 0, read))
        v = heads(torch.index_select(v_cache, 0, read))
        f(q.contiguous(), k, v, attn_mask=mask, is_causal=False).transpose(1, 2).contiguous()

    return run


def _elementwise(p: Point, device: str) -> Callable[[], None]:
    import torch

    a, b = _rand((p.elems,), p.dtype, device), _rand((p.elems,), p.dtype, device)
    out = torch.empty_like(a)
    return lambda: torch.add(a, b, out=out)


def _eager_chain(p: Point, device: str) -> Callable[[], None]:
    """One HF eager Llama/Qwen layer's small ops as transformers 5.17 runs them (the GEMMs and
    SDPA left out): float32 RMSNorm twice, rotary on the transposed q and k views (rotate_half
    by neg and cat), q made contiguous and an output-shaped transpose back, SiLU(gate) * up,
    two residual adds, K and V written into a paged cache by index_copy_."""
    import torch

    m, h, i, d = p.m, p.n_in, p.n_out, p.head_dim
    nh, nkv = p.heads, p.kv_heads
    x, res = _rand((1, m, h), p.dtype, device), _rand((1, m, h), p.dtype, device)
    w = _rand((h,), p.dtype, device)
    q = _rand((1, m, nh * d), p.dtype, device)
    k, v = _rand((1, m, nkv * d), p.dtype, device), _rand((1, m, nkv * d), p.dtype, device)
    gate, up = _rand((1, m, i), p.dtype, device), _rand((1, m, i), p.dtype, device)
    cos, sin = _rand((1, 1, m, d), p.dtype, device), _rand((1, 1, m, d), p.dtype, device)
    k_cache = torch.zeros((m + 256, nkv, d), dtype=getattr(torch, p.dtype), device=device)
    v_cache = torch.zeros_like(k_cache)
    slots = torch.randperm(m + 256, device=device)[:m]
    silu = torch.nn.functional.silu

    def rms(t):
        dtype = t.dtype
        t = t.to(torch.float32)
        var = t.pow(2).mean(-1, keepdim=True)
        t = t * torch.rsqrt(var + 1e-6)
        return w * t.to(dtype)

    def rot(t):
        t1, t2 = t[..., : d // 2], t[..., d // 2 :]
        return (t * cos) + (torch.cat((-t2, t1), dim=-1) * sin)

    def run() -> None:
        hs = rms(x)
        qr = rot(q.view(1, m, nh, d).transpose(1, 2))
        kr = rot(k.view(1, m, nkv, d).transpose(1, 2))
        k_cache.index_copy_(0, slots, kr[0].transpose(0, 1))
        v_cache.index_copy_(0, slots, v.view(m, nkv, d))
        qr.contiguous().transpose(1, 2).contiguous()
        h1 = res + hs
        hs2 = rms(h1)
        silu(gate) * up
        h1 + hs2

    return run


def make_kernel(p: Point, device: str) -> Callable[[], None]:
    if p.kclass == "linear":
        return _linear(p, device)
    if p.kclass in ("attn_prefill", "attn_decode"):
        return _attention(p, device)
    if p.kclass in ("attn_prefill_masked", "attn_decode_masked"):
        return _masked_attention(p, device)
    if p.kclass == "attn_packed":
        return _packed_attention(p, device)
    if p.kclass == "elementwise":
        return _elementwise(p, device)
    if p.kclass == "elementwise_eager":
        return _eager_chain(p, device)
    raise ValueError(p.kclass)


def supported(p: Point, device: str) -> bool:
    """bitsandbytes and fp8 need a CUDA GPU (fp8: compute capability >= 8.9)."""
    if p.dtype in ("int8", "int4", "fp8") and not device.startswith("cuda"):
        return False
    if p.dtype == "fp8":
        import torch

        return torch.cuda.get_device_capability() >= (8, 9)
    if p.dtype in ("int8", "int4"):
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            return False
    return True
