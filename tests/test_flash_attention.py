"""The Triton FlashAttention kernel and its plain-PyTorch twin agree with the formula.

Without a GPU the kernel runs in Triton's CPU interpreter (exact numpy arithmetic), so fp32
outputs and gradients must match an fp64 evaluation of softmax(q kᵀ · scale + mask) v to ~1e-5.
"""

import os

import torch

# Must happen before triton is first imported (tests/conftest.py does the same for the session).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib
import math
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install 'minivideo[gpu]')")

from minivideo import masks
from minivideo.attention import scaled_dot_product_attention
from minivideo.kernels import (
    flash_attention,
    flash_unavailable_reason,
    online_softmax,
    tiled_attention,
)
from minivideo.kernels.flash_attention import INTERPRETED, block_any_table

if not INTERPRETED and not torch.cuda.is_available():
    pytest.skip("triton was imported without TRITON_INTERPRET=1 and there is no GPU",
                allow_module_level=True)
DEVICE = "cpu" if INTERPRETED else "cuda"
B, H = 2, 2  # batch and heads; a mask may broadcast over either


def reference(q, k, v, mask=None, is_causal=False, scale=None):
    """The formula in fp64, rows with no key → zeros; independent of every backend under test."""
    q, k, v = q.double(), k.double(), v.double()
    length_q, length_k = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-1, -2) * scale
    allowed = torch.ones(length_q, length_k, dtype=torch.bool, device=q.device)
    if is_causal:
        allowed = torch.ones_like(allowed).tril(diagonal=length_k - length_q)  # bottom-right
    if mask is not None and mask.dtype == torch.bool:
        allowed = allowed & mask
    elif mask is not None:
        scores = scores + mask.double()
    scores = scores.masked_fill(~allowed, -math.inf)
    row_max = scores.amax(-1, keepdim=True).detach()
    weights = torch.exp(scores - torch.where(row_max.isfinite(), row_max, 0.0))
    return weights / weights.sum(-1, keepdim=True).clamp_min(1e-300) @ v


def make_qkv(length_q, length_k, d, dtype=torch.float32, seed=0):
    """Seeded q (B, H, L, d), k and v (B, H, S, d) that require grad."""
    gen = torch.Generator().manual_seed(seed)
    shapes = ((B, H, length_q, d), (B, H, length_k, d), (B, H, length_k, d))
    return [torch.randn(s, generator=gen).to(DEVICE, dtype).requires_grad_() for s in shapes]


def check_against_reference(length_q, length_k, d, mask=None, is_causal=False, atol=1e-5):
    """Outputs and dq, dk, dv of the kernel match the fp64 formula."""
    q, k, v = make_qkv(length_q, length_k, d)
    out = flash_attention(q, k, v, mask=mask, is_causal=is_causal)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    expected = reference(q64, k64, v64, mask, is_causal)
    expected_grads = torch.autograd.grad(expected, (q64, k64, v64), grad_out.double())
    torch.testing.assert_close(out.double(), expected, atol=atol, rtol=1e-4)
    for name, got, want in zip("qkv", grads, expected_grads, strict=True):
        torch.testing.assert_close(got.double(), want, atol=atol, rtol=1e-4, msg=f"d{name}")
    return out, grads


@pytest.mark.parametrize(
    "length_q, length_k, d, is_causal",
    [
        (1, 1, 32, False),
        (17, 17, 32, False),
        (33, 33, 64, True),  # L == S: the usual lower triangle
        (20, 50, 32, True),  # L < S: new queries see every earlier key (KV-cache layout)
        (50, 20, 32, True),  # L > S: the first 30 queries see no key at all → zeros
        (100, 100, 64, True),
        (17, 40, 128, False),
    ],
)
def test_matches_formula(length_q, length_k, d, is_causal):
    out, grads = check_against_reference(length_q, length_k, d, is_causal=is_causal)
    if length_q > length_k and is_causal:
        empty = slice(0, length_q - length_k)
        assert out[..., empty, :].abs().max() == 0
        assert grads[0][..., empty, :].abs().max() == 0


def random_mask_with_empty_rows(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(B, 1, n, n, generator=gen) > 0.6  # a different mask per batch item
    mask[:, :, 3] = False  # a query that may attend nothing
    mask[1, :, 20:] = False  # a whole block of such queries in one batch item
    return mask


MASKS = {
    "causal": lambda: masks.causal_mask(36),
    "prefix": lambda: masks.prefix_mask(10, 36),
    "axial-t": lambda: masks.axial_mask((4, 3, 3), "t"),
    "shifted-window": lambda: masks.local_window_mask((4, 3, 3), (2, 2, 2), shift=(1, 1, 1)),
    "random+empty-rows": lambda: random_mask_with_empty_rows(36),
    "bias": lambda: torch.randn(1, H, 36, 36, generator=torch.Generator().manual_seed(2)),
    "bias-with-inf": lambda: masks.causal_mask(36).float().log(),  # 0 / -inf, as a float mask
}


@pytest.mark.parametrize("name", MASKS)
def test_masks(name):
    mask = MASKS[name]().to(DEVICE)
    check_against_reference(36, 36, 32, mask=mask)


def test_bool_mask_with_is_causal():
    check_against_reference(36, 36, 32, mask=masks.prefix_mask(8, 36).to(DEVICE).T, is_causal=True)


def test_skipped_tiles_are_never_read():
    """Block skipping is real: NaN values in tiles that masks rule out never reach the output."""
    n = 64  # four 16x16 tiles per side under the interpreter
    q, k, v = (x.detach() for x in make_qkv(n, n, 32))
    block = 16
    # Causal: the last key is seen only by the last query block; earlier blocks never load it.
    v_nan = v.clone()
    v_nan[..., -1, :] = float("nan")
    out = flash_attention(q, k, v_nan, is_causal=True, block_m=block, block_n=block)
    assert torch.isfinite(out[..., : n - block, :]).all()
    # Bool mask: block-diagonal windows of 16 tokens; poison every value of window 2 and check
    # that only its own queries are affected (a loaded tile would spread NaN through 0 · NaN).
    window = masks.local_window_mask((4, 4, 4), (1, 4, 4)).to(DEVICE)  # 16-token windows
    v_nan = v.clone()
    v_nan[..., 32:48, :] = float("nan")
    out = flash_attention(q, k, v_nan, mask=window, block_m=16, block_n=16)
    assert torch.isfinite(out[..., :32, :]).all() and torch.isfinite(out[..., 48:, :]).all()
    assert torch.isnan(out[..., 32:48, :]).all()


def test_block_any_table():
    table = block_any_table(masks.prefix_mask(10, 36), 16, 16)
    assert table.shape == (1, 1, 3, 3)
    assert table[0, 0].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def test_lse_and_determinism():
    q, k, v = make_qkv(33, 33, 32)
    out, lse = flash_attention(q, k, v, is_causal=True, return_lse=True)
    scores = (q @ k.transpose(-1, -2)).double() / math.sqrt(32)
    scores = scores.masked_fill(~masks.causal_mask(33).to(DEVICE), -math.inf)
    torch.testing.assert_close(lse.double(), scores.logsumexp(-1).detach(), atol=1e-5, rtol=0)
    grad_out = torch.randn_like(out)
    first = torch.autograd.grad(out, (q, k, v), grad_out, retain_graph=True)
    second = torch.autograd.grad(out, (q, k, v), grad_out)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # no atomics


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    q, k, v = make_qkv(40, 40, 64, dtype=dtype)
    reason = flash_unavailable_reason(q, k, v)
    if reason is not None:
        assert INTERPRETED and dtype == torch.bfloat16, reason
        pytest.skip(reason)
    out = flash_attention(q, k, v, is_causal=True)
    grads = torch.autograd.grad(out.float().sum(), (q, k, v))
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    expected = reference(q64, k64, v64, is_causal=True)
    expected_grads = torch.autograd.grad(expected.sum(), (q64, k64, v64))
    tol = 1e-2 if dtype == torch.float16 else 4e-2
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, atol=tol, rtol=tol)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got.double(), want, atol=2 * tol, rtol=2 * tol)


def test_backend_dispatch():
    """minivideo.attention's backend='flash' is this kernel."""
    q, k, v = (x.detach() for x in make_qkv(20, 30, 32))
    mask = masks.prefix_mask(5, 30)[-20:].to(DEVICE)
    out = scaled_dot_product_attention(q, k, v, mask=mask, backend="flash")
    torch.testing.assert_close(out.double(), reference(q, k, v, mask), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- the plain-PyTorch tiled twin
@pytest.mark.parametrize("mask_name", [None, "prefix", "random+empty-rows", "bias-with-inf"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_tiled_reference(mask_name, is_causal):
    q, k, v = (x.detach() for x in make_qkv(36, 36, 32))
    mask = None if mask_name is None else MASKS[mask_name]().to(DEVICE)
    out, lse = tiled_attention(q, k, v, mask=mask, is_causal=is_causal, block_m=16, block_n=8)
    torch.testing.assert_close(out.double(), reference(q, k, v, mask, is_causal), atol=1e-5,
                               rtol=1e-4)
    flash_out, flash_lse = flash_attention(q, k, v, mask, is_causal, return_lse=True)
    torch.testing.assert_close(lse, flash_lse, atol=1e-5, rtol=0)  # -inf where rows are empty


def test_tiled_reference_cross_attention_causal():
    q, k, v = (x.detach() for x in make_qkv(13, 29, 32))
    out, _ = tiled_attention(q, k, v, is_causal=True, block_m=4, block_n=8)
    torch.testing.assert_close(out.double(), reference(q, k, v, is_causal=True), atol=1e-5,
                               rtol=1e-4)


def test_online_softmax():
    x = torch.randn(3, 37, generator=torch.Generator().manual_seed(0)) * 20
    torch.testing.assert_close(online_softmax(x, block_size=5), torch.softmax(x, -1))


# ---------------------------------------------------------------- availability messages
def test_unsupported_head_dim_and_dtype():
    q, k, v = (x.detach() for x in make_qkv(8, 8, 48))
    assert "head dim 48 not supported" in flash_unavailable_reason(q, k, v)
    with pytest.raises(ValueError, match="head dim 48"):
        flash_attention(q, k, v)
    q, k, v = (x.detach() for x in make_qkv(8, 8, 32))
    assert "float16" in flash_unavailable_reason(q.double(), k.double(), v.double())
    assert "(b, h, n, d)" in flash_unavailable_reason(q[0], k[0], v[0])
    assert "broadcast" in flash_unavailable_reason(q, k, v, torch.ones(3, 8, 8, dtype=torch.bool, device=DEVICE))
    assert flash_unavailable_reason(q, k, v, masks.causal_mask(8).to(DEVICE)) is None


def test_cpu_tensor_without_interpreter(monkeypatch):
    # importlib, not `import ... as`: the package re-exports a function of the module's name.
    module = importlib.import_module("minivideo.kernels.flash_attention")
    monkeypatch.setattr(module, "INTERPRETED", False)
    q = torch.randn(1, 1, 8, 32)
    assert "needs a CUDA tensor" in flash_unavailable_reason(q, q, q)


def test_without_triton():
    """With triton unimportable the package still imports and says how to fix it."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "from minivideo.kernels import flash_attention, flash_unavailable_reason\n"
        "q = torch.randn(1, 1, 4, 32)\n"
        "print(flash_unavailable_reason(q, q, q))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert "triton is not installed" in result.stdout
    assert "backend='sdpa'" in result.stdout
