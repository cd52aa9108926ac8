"""Attention from the formula matches PyTorch, handles masks and edge cases, and fails clearly."""

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import minivideo
from minivideo import masks
from minivideo.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask_bottom_right,
    resolve_backend,
    scaled_dot_product_attention,
)

BACKENDS = ["naive", "sdpa"]
SHAPES = [(1, 1, 5, 5, 8), (2, 3, 7, 7, 16), (2, 2, 4, 9, 32), (3, 1, 16, 16, 4)]


def _qkv(b, h, length_q, length_k, d, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(b, h, n, d, generator=gen, dtype=dtype).requires_grad_()
        for n in (length_q, length_k, length_k)
    ]


def _compare(backend, q, k, v, ours_kwargs, torch_kwargs, atol=1e-5):
    out = scaled_dot_product_attention(q, k, v, backend=backend, **ours_kwargs)
    ref = F.scaled_dot_product_attention(q, k, v, **torch_kwargs)
    assert torch.allclose(out, ref, atol=atol), (out - ref).abs().max()
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(ref, (q, k, v), grad)
    for name, a, b in zip("qkv", ours, theirs, strict=True):
        assert torch.allclose(a, b, atol=atol), f"d{name} differs by {(a - b).abs().max()}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_pytorch_without_mask(backend, shape):
    q, k, v = _qkv(*shape)
    _compare(backend, q, k, v, {}, {})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[2] == s[3]])
def test_causal_matches_pytorch_when_square(backend, shape):
    q, k, v = _qkv(*shape)
    _compare(backend, q, k, v, {"is_causal": True}, {"is_causal": True})


@pytest.mark.parametrize("backend", BACKENDS)
def test_causal_is_bottom_right_aligned_when_lengths_differ(backend):
    q, k, v = _qkv(2, 2, 3, 8, 16)
    bottom_right = causal_mask_bottom_right(3, 8)
    assert bottom_right.tolist()[0] == [True] * 6 + [False] * 2
    _compare(backend, q, k, v, {"is_causal": True}, {"attn_mask": bottom_right})


MASK_BUILDERS = {
    "causal": lambda: masks.causal_mask(8),
    "prefix": lambda: masks.prefix_mask(3, 8),
    "axial": lambda: masks.axial_mask((2, 2, 2), "t"),
    "window": lambda: masks.local_window_mask((2, 2, 2), (1, 2, 1)),
    "shifted": lambda: masks.local_window_mask((2, 2, 2), (2, 2, 2), (1, 1, 1)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", MASK_BUILDERS)
@pytest.mark.parametrize("causal", [False, True])
def test_every_mask_kind_matches_pytorch(backend, kind, causal):
    q, k, v = _qkv(2, 2, 8, 8, 16, seed=1)
    mask = MASK_BUILDERS[kind]()
    expected = mask & masks.causal_mask(8) if causal else mask
    _compare(backend, q, k, v, {"mask": mask, "is_causal": causal}, {"attn_mask": expected})


@pytest.mark.parametrize("backend", BACKENDS)
def test_additive_and_broadcast_masks_match_pytorch(backend):
    q, k, v = _qkv(2, 3, 6, 6, 8, seed=2)
    bias = torch.randn(1, 3, 6, 6)
    _compare(backend, q, k, v, {"mask": bias}, {"attn_mask": bias})
    padding = masks.padding_mask(torch.tensor([6, 4]), 6)
    _compare(backend, q, k, v, {"mask": padding}, {"attn_mask": padding})


@pytest.mark.parametrize("backend", BACKENDS)
def test_fully_masked_rows_give_zeros_and_finite_gradients(backend):
    q, k, v = _qkv(2, 2, 5, 5, 8)
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[1] = False
    out = scaled_dot_product_attention(q, k, v, mask=mask, backend=backend)
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    out.sum().backward()
    for x in (q, k, v):
        assert torch.isfinite(x.grad).all()
    assert torch.equal(q.grad[:, :, 1], torch.zeros_like(q.grad[:, :, 1]))
    # the same with an additive mask of -inf
    bias = torch.zeros(5, 5).masked_fill(~mask, -math.inf)
    out = scaled_dot_product_attention(q, k, v, mask=bias, backend=backend)
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_logits_do_not_overflow(backend):
    q = torch.full((1, 1, 4, 2), 100.0)
    k = torch.tensor([[[[100.0, 0.0], [-100.0, 0.0], [100.0, 0.0], [0.0, 0.0]]]])  # logits ±1e4
    v = torch.eye(4)[None, None]
    out = scaled_dot_product_attention(q, k, v, scale=1.0, backend=backend)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.5, 0.0, 0.5, 0.0]))


def test_naive_and_sdpa_agree_in_float64():
    q, k, v = _qkv(2, 2, 9, 9, 8, dtype=torch.float64)
    mask = masks.local_window_mask((1, 3, 3), (1, 2, 2), (0, 1, 1))
    a = scaled_dot_product_attention(q, k, v, mask=mask, backend="naive")
    b = scaled_dot_product_attention(q, k, v, mask=mask, backend="sdpa")
    assert torch.allclose(a, b, atol=1e-12)


def test_auto_picks_sdpa_on_cpu():
    q, k, v = _qkv(1, 1, 4, 4, 8)
    assert resolve_backend("auto", q, k, v) == "sdpa"


def test_flash_says_the_kernel_is_missing_when_it_cannot_be_imported(monkeypatch):
    q, k, v = _qkv(1, 1, 4, 4, 8)
    # as if minivideo.kernels had been imported by another test, then became unimportable
    monkeypatch.setattr(minivideo, "kernels", types.ModuleType("stale"), raising=False)
    monkeypatch.setitem(sys.modules, "minivideo.kernels", None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"flash backend is unavailable.*Triton.*backend='sdpa'"):
        scaled_dot_product_attention(q, k, v, backend="flash")
    assert resolve_backend("auto", q, k, v) == "sdpa"  # auto falls back silently


def test_flash_dispatches_to_the_kernel_or_says_why_not(monkeypatch):
    q, k, v = _qkv(1, 1, 4, 4, 8)
    calls = []
    fake = types.ModuleType("minivideo.kernels")
    fake.flash_unavailable_reason = lambda q, k, v, mask=None: None
    fake.flash_attention = lambda q, k, v, mask=None, is_causal=False, scale=None: (
        calls.append((mask, is_causal, scale)) or torch.zeros_like(q)
    )
    monkeypatch.setitem(sys.modules, "minivideo.kernels", fake)
    scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.5, backend="flash")
    assert calls == [(None, True, 0.5)]
    fake.flash_unavailable_reason = lambda q, k, v, mask=None: "head dim 8 is too small"
    with pytest.raises(RuntimeError, match="cannot run here: head dim 8 is too small"):
        scaled_dot_product_attention(q, k, v, backend="flash")
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, k, v, dropout_p=0.1, backend="flash")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_only_when_asked_and_seeded_by_torch(backend):
    q, k, v = _qkv(2, 2, 6, 6, 8)
    plain = scaled_dot_product_attention(q, k, v, backend=backend)
    assert torch.equal(scaled_dot_product_attention(q, k, v, dropout_p=0.0, backend=backend), plain)
    torch.manual_seed(0)
    first = scaled_dot_product_attention(q, k, v, dropout_p=0.5, backend=backend)
    torch.manual_seed(0)
    again = scaled_dot_product_attention(q, k, v, dropout_p=0.5, backend=backend)
    assert torch.equal(first, again)
    assert not torch.allclose(first, plain, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_additive_mask_in_another_dtype_is_cast_to_the_query_dtype(backend):
    q, k, v = _qkv(1, 2, 5, 5, 8, dtype=torch.bfloat16)
    bias = torch.randn(5, 5)  # float32
    out = scaled_dot_product_attention(q, k, v, mask=bias, backend=backend)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=bias)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=3e-2)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.randn(4), torch.randn(4, 4), torch.randn(4, 4)), {}, ValueError, "q must have shape"),
        ((torch.randn(2, 4, 8), torch.randn(2, 4, 6), torch.randn(2, 4, 6)), {}, ValueError, "head dim"),
        ((torch.randn(2, 4, 8), torch.randn(2, 5, 8), torch.randn(2, 4, 8)), {}, ValueError, "same length S"),
        ((torch.randn(2, 4, 8),) * 3, {"mask": torch.ones(3, 4, dtype=torch.bool)}, ValueError, r"\(\.\.\., L, S\) = \(2, 4, 4\)"),
        ((torch.randn(2, 4, 8),) * 3, {"mask": torch.ones(4, 4, dtype=torch.long)}, TypeError, "mask must be bool"),
        ((torch.randn(2, 4, 8),) * 3, {"backend": "cuda"}, ValueError, "backend must be one of"),
        ((torch.randn(2, 4, 8),) * 3, {"dropout_p": 1.0}, ValueError, "dropout_p"),
        ((torch.ones(2, 4, 8, dtype=torch.long),) * 3, {}, TypeError, "floating-point"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        scaled_dot_product_attention(*args, **kwargs)


def _copy_from_torch(ours: MultiHeadAttention, theirs: torch.nn.MultiheadAttention) -> None:
    dim = ours.dim
    with torch.no_grad():
        if theirs._qkv_same_embed_dim:
            w_q, w_k, w_v = theirs.in_proj_weight.split(dim)
        else:
            w_q, w_k, w_v = theirs.q_proj_weight, theirs.k_proj_weight, theirs.v_proj_weight
        b_q, b_k, b_v = theirs.in_proj_bias.split(dim)
        for layer, w, b in (
            (ours.q_proj, w_q, b_q),
            (ours.k_proj, w_k, b_k),
            (ours.v_proj, w_v, b_v),
        ):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_head_self_attention_matches_torch(backend):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    ours = MultiHeadAttention(32, 4, backend=backend)
    _copy_from_torch(ours, theirs)
    x = torch.randn(2, 9, 32, requires_grad=True)
    mask = masks.prefix_mask(3, 9)
    expected, _ = theirs(x, x, x, attn_mask=~mask, need_weights=False)  # torch: True = blocked
    out = ours(x, mask=mask)
    assert torch.allclose(out, expected, atol=1e-5)
    g_ours = torch.autograd.grad(out.sum(), x)[0]
    g_theirs = torch.autograd.grad(expected.sum(), x)[0]
    assert torch.allclose(g_ours, g_theirs, atol=1e-5)


def test_multi_head_cross_attention_matches_torch():
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(32, 4, kdim=20, vdim=20, batch_first=True)
    ours = MultiHeadAttention(32, 4, context_dim=20)
    _copy_from_torch(ours, theirs)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 7, 20)
    expected, _ = theirs(x, context, context, need_weights=False)
    assert torch.allclose(ours(x, context=context), expected, atol=1e-5)


def test_kv_cache_incremental_equals_full():
    torch.manual_seed(2)
    layer = MultiHeadAttention(16, 2).eval()
    x = torch.randn(3, 10, 16)
    full = layer(x, is_causal=True)
    cache = KVCache()
    pieces = [layer(x[:, :4], is_causal=True, cache=cache)]
    pieces += [layer(x[:, i : i + 1], is_causal=True, cache=cache) for i in range(4, 10)]
    assert len(cache) == 10
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)
    cache.reset()
    assert len(cache) == 0


def test_cross_attention_cache_reuses_the_context():
    torch.manual_seed(3)
    layer = MultiHeadAttention(16, 2, context_dim=8).eval()
    x, context = torch.randn(2, 6, 16), torch.randn(2, 4, 8)
    cache = KVCache()
    first = layer(x[:, :3], context=context, cache=cache)
    second = layer(x[:, 3:], context=context, cache=cache)
    assert len(cache) == 4  # the context's keys, computed once
    assert torch.allclose(torch.cat([first, second], 1), layer(x, context=context), atol=1e-6)


def test_kv_cache_rejects_mismatched_shapes():
    cache = KVCache()
    with pytest.raises(ValueError, match=r"\(b, h, n, d\)"):
        cache.append(torch.randn(2, 5, 8), torch.randn(2, 5, 8))
    cache.append(torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8))
    with pytest.raises(ValueError, match="reset"):
        cache.append(torch.randn(1, 4, 1, 8), torch.randn(1, 4, 1, 8))  # another batch size


def test_multi_head_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(32, 0)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(32, 4, dropout=1.5)
    layer = MultiHeadAttention(16, 2, context_dim=8)
    with pytest.raises(ValueError, match="cross-attention layer"):
        layer(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match=r"context must have shape \(b, m, 8\)"):
        layer(torch.randn(1, 3, 16), context=torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match=r"x must have shape \(b, n, 16\)"):
        layer(torch.randn(3, 16), context=torch.randn(1, 3, 8))
