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

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tiny models: one thread is fastest


BACKENDS = ["naive", "sdpa"]
SHAPES = [(1, 1, 5, 5, 8), (2, 3, 7, 7, 16), (2, 2, 4, 9, 32), (3, 1, 16, 16, 4)]


def _qkv(b, h, length_q, length_k, d, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(b, h, n, d, generator=gen, dtype=dtype).requires_grad_()
        for n in (length_q, length_k, length_k)
    ]


def _close(actual, expected, atol=1e-5, what="output"):
    """Absolute tolerance only (rtol=0): torch.allclose's default rtol would loosen the bound."""
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=lambda m: f"{what}: {m}")


def _compare(backend, q, k, v, ours_kwargs, torch_kwargs, atol=1e-5):
    out = scaled_dot_product_attention(q, k, v, backend=backend, **ours_kwargs)
    ref = F.scaled_dot_product_attention(q, k, v, **torch_kwargs)
    _close(out, ref, atol)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(ref, (q, k, v), grad)
    for name, a, b in zip("qkv", ours, theirs, strict=True):
        _close(a, b, atol, f"d{name}")


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


def _lengths(b, n):
    """Key lengths for a padding mask: the first sample is full, the others shorter, none empty."""
    return torch.tensor([n - (i * n) // (b + 1) for i in range(b)])


def _window(grid):
    """A (wt, 2, 2) window smaller than the grid along t (when t > 1), h and w."""
    return (max(1, grid[0] - 1), 2, 2)


# Every mask kind of minivideo.masks on a (t, h, w) grid of n = t*h*w tokens, for a batch of b.
MASK_KINDS = {
    "none": lambda grid, b: None,
    "causal": lambda grid, b: masks.causal_mask(math.prod(grid)),
    "padding": lambda grid, b: masks.padding_mask(_lengths(b, math.prod(grid)), math.prod(grid)),
    "prefix": lambda grid, b: masks.prefix_mask(math.prod(grid) // 3, math.prod(grid)),
    "axial_t": lambda grid, b: masks.axial_mask(grid, "t"),
    "axial_w": lambda grid, b: masks.axial_mask(grid, "w"),
    "window": lambda grid, b: masks.local_window_mask(grid, _window(grid)),
    "shifted": lambda grid, b: masks.local_window_mask(
        grid, _window(grid), (_window(grid)[0] // 2, 1, 1)
    ),
}
GRIDS = [(2, 2, 2), (1, 3, 4), (3, 2, 3)]
SDPA_CASES = [(1, 1, 8, GRIDS[0]), (2, 3, 16, GRIDS[1]), (3, 2, 32, GRIDS[2])]  # b, h, d, grid


def test_mask_kinds_restrict_attention_and_leave_no_row_empty():
    for grid in GRIDS:
        n = math.prod(grid)
        for kind, build in MASK_KINDS.items():
            mask = build(grid, 3)
            if mask is None:
                continue
            assert mask.dtype == torch.bool and mask.shape[-1] == n, kind
            assert not mask.all(), f"{kind} on {grid} masks nothing: the test would prove little"
            assert mask.any(-1).all(), f"{kind} on {grid} has a row with no key"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", SDPA_CASES, ids=str)
def test_every_mask_kind_matches_pytorch(backend, kind, causal, case):
    b, h, d, grid = case
    n = math.prod(grid)
    q, k, v = _qkv(b, h, n, n, d, seed=1)
    mask = MASK_KINDS[kind](grid, b)
    expected = mask
    if causal:
        expected = masks.causal_mask(n) if mask is None else mask & masks.causal_mask(n)
    kwargs = {} if expected is None else {"attn_mask": expected}
    _compare(backend, q, k, v, {"mask": mask, "is_causal": causal}, kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["none", "padding"])
# (L, S, causal): fewer or more queries than keys. Not (9, 4, causal): bottom-right alignment
# leaves its first queries no key (see test_fully_masked_rows_give_zeros_and_finite_gradients).
@pytest.mark.parametrize(
    ("length_q", "length_k", "causal"), [(5, 12, False), (5, 12, True), (9, 4, False)]
)
def test_unequal_lengths_match_pytorch(backend, kind, length_q, length_k, causal):
    q, k, v = _qkv(2, 3, length_q, length_k, 8, seed=4)
    mask = None if kind == "none" else masks.padding_mask(_lengths(2, length_k), length_k)
    allowed = mask
    if causal:  # bottom-right; give torch the explicit mask (its is_causal is top-left)
        bottom_right = causal_mask_bottom_right(length_q, length_k)
        allowed = bottom_right if mask is None else mask & bottom_right
    kwargs = {} if allowed is None else {"attn_mask": allowed}
    _compare(backend, q, k, v, {"mask": mask, "is_causal": causal}, kwargs)


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
    _close(out[0, 0, 0], torch.tensor([0.5, 0.0, 0.5, 0.0]), atol=1e-6)


def test_naive_and_sdpa_agree_in_float64():
    q, k, v = _qkv(2, 2, 9, 9, 8, dtype=torch.float64)
    mask = masks.local_window_mask((1, 3, 3), (1, 2, 2), (0, 1, 1))
    a = scaled_dot_product_attention(q, k, v, mask=mask, backend="naive")
    b = scaled_dot_product_attention(q, k, v, mask=mask, backend="sdpa")
    _close(a, b, atol=1e-12)


def test_auto_picks_sdpa_on_cpu():
    q, k, v = _qkv(1, 1, 4, 4, 8)
    assert resolve_backend("auto", q, k, v) == "sdpa"
    assert resolve_backend("naive", q, k, v) == "naive"
    assert resolve_backend("flash", q, k, v) == "flash"  # opt-in: asked for, so given


def test_auto_picks_sdpa_on_cuda_even_where_flash_could_run(monkeypatch):
    """sdpa beat our kernel in every row of benchmarks/results/attention-h100-2026-11-25.txt."""
    fake = types.ModuleType("minivideo.kernels")
    fake.flash_unavailable_reason = lambda q, k, v, mask=None: None  # "flash can run"
    fake.flash_attention = lambda *args, **kwargs: pytest.fail("auto must not run flash")
    monkeypatch.setitem(sys.modules, "minivideo.kernels", fake)
    cuda_like = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda"))
    assert resolve_backend("auto", cuda_like, cuda_like, cuda_like) == "sdpa"
    assert resolve_backend("flash", cuda_like, cuda_like, cuda_like) == "flash"
    if torch.cuda.is_available():
        q, k, v = (x.detach().cuda() for x in _qkv(1, 2, 64, 64, 64))
        out = scaled_dot_product_attention(q, k, v, is_causal=True)  # auto
        _close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=0)


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
    _close(out.float(), ref, atol=3e-2)


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


def _their_params(theirs: torch.nn.MultiheadAttention) -> list[torch.Tensor]:
    if theirs._qkv_same_embed_dim:
        weights = [theirs.in_proj_weight]
    else:
        weights = [theirs.q_proj_weight, theirs.k_proj_weight, theirs.v_proj_weight]
    return [*weights, theirs.in_proj_bias, theirs.out_proj.weight, theirs.out_proj.bias]


def _their_grads_as_ours(theirs, grads, dim) -> dict[str, torch.Tensor]:
    """torch's gradients, named like our layer's parameters (its fused in_proj split in three)."""
    grads = list(grads)
    out_b, out_w = grads.pop(), grads.pop()
    in_b = grads.pop()
    in_w = grads[0].split(dim) if len(grads) == 1 else grads
    named = {"out_proj.weight": out_w, "out_proj.bias": out_b}
    for i, proj in enumerate("qkv"):
        named[f"{proj}_proj.weight"] = in_w[i]
        named[f"{proj}_proj.bias"] = in_b.split(dim)[i]
    return named


def _check_against_torch(ours, theirs, x, context, mask, is_causal):
    """Outputs and input/weight gradients of ours(x, context, mask) equal torch's, within 1e-5."""
    source = x if context is None else context
    allowed, key_padding = None, None
    if mask is not None and mask.dim() == 4:  # (b, 1, 1, S) padding: torch's key_padding_mask
        key_padding = ~mask[:, 0, 0, :]
    else:
        allowed = mask
    if is_causal:
        bottom_right = causal_mask_bottom_right(x.shape[1], source.shape[1])
        allowed = bottom_right if allowed is None else allowed & bottom_right
    expected, _ = theirs(
        x,
        source,
        source,
        attn_mask=None if allowed is None else ~allowed,  # torch: True = blocked
        key_padding_mask=key_padding,
        need_weights=False,
    )
    out = ours(x, context=context, mask=mask, is_causal=is_causal)
    _close(out, expected)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    inputs = [x] if context is None else [x, context]
    names = [name for name, _ in ours.named_parameters()]
    ours_grads = torch.autograd.grad(out, [*inputs, *ours.parameters()], grad)
    their_grads = torch.autograd.grad(expected, [*inputs, *_their_params(theirs)], grad)
    for name, a, b in zip(["x", "context"], ours_grads, their_grads[: len(inputs)], strict=False):
        _close(a, b, what=f"d{name}")
    theirs_named = _their_grads_as_ours(theirs, their_grads[len(inputs) :], ours.dim)
    assert set(theirs_named) == set(names)
    for name, a in zip(names, ours_grads[len(inputs) :], strict=True):
        _close(a, theirs_named[name], what=f"d{name}")


# b, dim, heads, grid, backend: each backend meets every mask kind, at a third of the cost of all
# combinations (the backends already match each other and F.scaled_dot_product_attention above).
MHA_CASES = [
    (1, 16, 1, GRIDS[0], "naive"),
    (2, 32, 4, GRIDS[1], "sdpa"),
    (3, 24, 3, GRIDS[2], "naive"),
    (2, 16, 2, GRIDS[2], "sdpa"),
]


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", MHA_CASES, ids=str)
def test_multi_head_self_attention_matches_torch(kind, causal, case):
    b, dim, heads, grid, backend = case
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
    ours = MultiHeadAttention(dim, heads, backend=backend)
    _copy_from_torch(ours, theirs)
    x = torch.randn(b, math.prod(grid), dim, requires_grad=True)
    _check_against_torch(ours, theirs, x, None, MASK_KINDS[kind](grid, b), causal)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", MHA_CASES, ids=str)
def test_multi_head_cross_attention_on_a_grid_matches_torch(kind, causal, case):
    """Queries and a context of another width on the same (t, h, w) grid, so every mask applies."""
    b, dim, heads, grid, backend = case
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(dim, heads, kdim=20, vdim=20, batch_first=True)
    ours = MultiHeadAttention(dim, heads, context_dim=20, backend=backend)
    _copy_from_torch(ours, theirs)
    n = math.prod(grid)
    x = torch.randn(b, n, dim, requires_grad=True)
    context = torch.randn(b, n, 20, requires_grad=True)
    _check_against_torch(ours, theirs, x, context, MASK_KINDS[kind](grid, b), causal)


@pytest.mark.parametrize("kind", ["none", "padding"])
@pytest.mark.parametrize(
    ("length_q", "length_k", "causal"), [(5, 7, False), (5, 7, True), (9, 4, False)]
)
@pytest.mark.parametrize(("context_dim", "backend"), [(20, "naive"), (20, "sdpa"), (32, "sdpa")])
def test_multi_head_cross_attention_of_other_lengths_matches_torch(
    kind, length_q, length_k, causal, context_dim, backend
):
    """context_dim=32 is the model width: torch then fuses q, k, v into one in_proj weight."""
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(
        32, 4, kdim=context_dim, vdim=context_dim, batch_first=True
    )
    ours = MultiHeadAttention(32, 4, context_dim=context_dim, backend=backend)
    _copy_from_torch(ours, theirs)
    assert theirs._qkv_same_embed_dim == (context_dim == 32)
    x = torch.randn(2, length_q, 32, requires_grad=True)
    context = torch.randn(2, length_k, context_dim, requires_grad=True)
    mask = None if kind == "none" else masks.padding_mask(_lengths(2, length_k), length_k)
    _check_against_torch(ours, theirs, x, context, mask, causal)


def test_kv_cache_incremental_equals_full():
    torch.manual_seed(2)
    layer = MultiHeadAttention(16, 2).eval()
    x = torch.randn(3, 10, 16)
    full = layer(x, is_causal=True)
    cache = KVCache()
    pieces = [layer(x[:, :4], is_causal=True, cache=cache)]
    pieces += [layer(x[:, i : i + 1], is_causal=True, cache=cache) for i in range(4, 10)]
    assert len(cache) == 10
    _close(torch.cat(pieces, dim=1), full, atol=1e-5)
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
    _close(torch.cat([first, second], 1), layer(x, context=context), atol=1e-6)


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
