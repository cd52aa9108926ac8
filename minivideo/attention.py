"""Scaled dot-product attention from the formula, its fast backends, and multi-head attention.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V

Conventions shared by every backend:
- q (..., L, d), k (..., S, d), v (..., S, d_v); the leading dims (e.g. `b h`) must match.
- mask: bool (True = may attend) or float (added to the logits), broadcastable to (..., L, S).
- is_causal is *bottom-right* aligned: query i attends keys j <= S - L + i. With L == S this is the
  usual lower-triangular mask; with a KV cache (L new queries, S cached keys) it lets the new
  queries see everything before them. (PyTorch's own `is_causal` is top-left aligned when L != S.)
- A query row whose keys are all masked returns zeros, not NaN, in every backend.

Backends: `naive` (the formula), `sdpa` (PyTorch's fused kernels) and `flash` (the course's Triton
kernel, minivideo.kernels). `auto` is sdpa on every device, CUDA included: on an H100, sdpa was
faster than our flash kernel in every measured shape, forward and backward
(benchmarks/results/attention-h100-2026-11-25.txt), so flash is opt-in with backend="flash".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

AttentionFn = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- validation
def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _validate(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float,
    scale: float | None,
) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have shape (..., n, d) with rank >= 2; got {_shape(x)}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the head dim d: q is {_shape(q)} (d={q.shape[-1]}), "
            f"k is {_shape(k)} (d={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length S: k is {_shape(k)}, v is {_shape(v)}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            f"q, k, v must share their leading dims: {_shape(q)}, {_shape(k)}, {_shape(v)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if mask is not None:
        expected = (*q.shape[:-1], k.shape[-2])
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(
                f"mask must be bool (True = may attend) or floating (added to logits), "
                f"got {mask.dtype}"
            )
        try:
            broadcast = torch.broadcast_shapes(mask.shape, expected)
        except RuntimeError:
            broadcast = None
        if broadcast != torch.Size(expected):
            raise ValueError(
                f"mask of shape {_shape(mask)} does not broadcast to (..., L, S) = {expected}"
            )
    if not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"scale must be a positive number or None, got {scale!r}")


def causal_mask_bottom_right(length_q: int, length_k: int, device=None) -> torch.Tensor:
    """Bool (L, S) mask: query i may attend key j when j <= S - L + i."""
    query = torch.arange(length_q, device=device)[:, None]
    key = torch.arange(length_k, device=device)[None, :]
    return key <= query + (length_k - length_q)


def _merge_masks(
    mask: torch.Tensor | None, is_causal: bool, length_q: int, length_k: int, device
) -> torch.Tensor | None:
    """One mask (bool or additive) equal to `mask` with the causal constraint folded in."""
    if not is_causal:
        return mask
    causal = causal_mask_bottom_right(length_q, length_k, device)
    if mask is None:
        return causal
    if mask.dtype == torch.bool:
        return mask & causal
    return mask.masked_fill(~causal, -math.inf)


def _attended_rows(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Bool (..., L, 1): whether each query row can attend at least one key (None: all can)."""
    if mask is None:
        return None
    allowed = mask if mask.dtype == torch.bool else mask > -math.inf
    return allowed.any(dim=-1, keepdim=True)


# --------------------------------------------------------------------------- backends
def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """The formula written out: scores, mask, stable softmax, weighted sum of values."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = _merge_masks(mask, is_causal, q.shape[-2], k.shape[-2], q.device)
    scores = torch.einsum("...ld,...sd->...ls", q, k) * scale  # (..., L, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    # Subtracting the row max keeps exp() <= 1, so large logits cannot overflow. A fully masked
    # row has max -inf: use 0 there so the row becomes exp(-inf) = 0 instead of NaN.
    row_max = scores.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(scores - row_max)
    total = weights.sum(dim=-1, keepdim=True)
    weights = weights / torch.where(total > 0, total, torch.ones_like(total))
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return torch.einsum("...ls,...sd->...ld", weights, v)


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """PyTorch's fused kernel (FlashAttention / memory-efficient on CUDA), same conventions."""
    length_q, length_k = q.shape[-2], k.shape[-2]
    if mask is None and (not is_causal or length_q == length_k):
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
    mask = _merge_masks(mask, is_causal, length_q, length_k, q.device)
    # PyTorch's kernels disagree on rows with no key to attend (some give NaN, some zeros). Let
    # such rows attend everywhere (a finite, throw-away result), then zero them; the gradient
    # through the zeroing is zero too. Done unconditionally: testing first whether any row is
    # empty would force a GPU -> CPU sync on every call.
    attended = _attended_rows(mask)
    if mask.dtype == torch.bool:
        mask = mask | ~attended
    else:
        mask = torch.where(attended, mask, torch.zeros_like(mask))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    return out.masked_fill(~attended, 0.0)


def _load_flash() -> tuple[AttentionFn, Callable[..., str | None]]:
    """Import the Triton kernel on first use, so that attention works where Triton does not."""
    try:
        from minivideo.kernels import flash_attention, flash_unavailable_reason
    except ImportError as err:  # the kernel module (or Triton under it) is missing
        raise RuntimeError(
            f"the flash backend is unavailable: the Triton kernel could not be imported ({err}). "
            "Install Triton with pip install 'minivideo[gpu]' (Linux, NVIDIA GPU), "
            "or use backend='sdpa' or backend='naive'"
        ) from err
    return flash_attention, flash_unavailable_reason


def flash_attention_backend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """The course's from-scratch Triton kernel (minivideo.kernels), for (b, h, n, d) inputs."""
    if dropout_p > 0:
        raise ValueError("the flash backend has no dropout; use backend='sdpa' when dropout_p > 0")
    flash_attention, flash_unavailable_reason = _load_flash()
    reason = flash_unavailable_reason(q, k, v, mask)
    if reason is not None:
        raise RuntimeError(f"the flash backend cannot run here: {reason}")
    return flash_attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)


BACKENDS: dict[str, AttentionFn] = {
    "naive": naive_attention,
    "sdpa": sdpa_attention,
    "flash": flash_attention_backend,
}


def flash_available(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> bool:
    """Whether the Triton flash kernel can run on these inputs (never raises)."""
    try:
        _, flash_unavailable_reason = _load_flash()
    except RuntimeError:
        return False
    return flash_unavailable_reason(q, k, v, mask) is None


def resolve_backend(
    backend: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> str:
    """The backend to run: `auto` means sdpa on every device; the Triton `flash` is opt-in."""
    # Why not flash on CUDA: on an H100 (bf16, d = 64 and 128, causal or not, 512 to 16k tokens,
    # forward and backward) PyTorch's sdpa beat our kernel in every measured row, by 1.2x to 3.1x
    # (benchmarks/results/attention-h100-2026-11-25.txt). Pass backend="flash" to run the kernel;
    # re-measure with benchmarks/attention.py before making it the default anywhere.
    # q, k, v, mask and dropout_p stay in the signature so that a choice by device or shape can
    # come back (once measured) without changing the callers.
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    return "sdpa" if backend == "auto" else backend


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """softmax(q kᵀ · scale + mask) v, with the conventions in this module's docstring."""
    _validate(q, k, v, mask, dropout_p, scale)
    if mask is not None and mask.is_floating_point() and mask.dtype != q.dtype:
        mask = mask.to(q.dtype)  # PyTorch's kernels want an additive mask in the query's dtype
    name = resolve_backend(backend, q, k, v, mask, dropout_p)
    return BACKENDS[name](q, k, v, mask, is_causal, dropout_p, scale)


# --------------------------------------------------------------------------- multi-head attention
class KVCache:
    """Keys and values (b h n d) of the tokens seen so far, for incremental decoding."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add new keys/values along the sequence axis and return everything cached."""
        if k.dim() != 4 or v.dim() != 4 or k.shape[:2] != v.shape[:2] or k.shape[2] != v.shape[2]:
            raise ValueError(
                f"k and v must have shapes (b, h, n, d) and (b, h, n, d_v); "
                f"got {_shape(k)} and {_shape(v)}"
            )
        if self.k is not None and (
            k.shape[:2] != self.k.shape[:2]
            or k.shape[3] != self.k.shape[3]
            or v.shape[3] != self.v.shape[3]
        ):
            raise ValueError(
                f"new k {_shape(k)} / v {_shape(v)} do not match the cached "
                f"k {_shape(self.k)} / v {_shape(self.v)} in (b, h, ·, d); call reset() "
                "before starting a new sequence"
            )
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def reset(self) -> None:
        """Forget everything (start a new sequence)."""
        self.k = self.v = None


class MultiHeadAttention(nn.Module):
    """Multi-head self- or cross-attention on top of `scaled_dot_product_attention`."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        context_dim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not (isinstance(num_heads, int) and num_heads >= 1):
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dim, self.num_heads, self.dropout, self.backend = dim, num_heads, dropout, backend
        self.context_dim = context_dim
        source_dim = dim if context_dim is None else context_dim
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(source_dim, dim, bias=bias)
        self.v_proj = nn.Linear(source_dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x (b n c) attends to itself, or to `context` (b m c_ctx); returns (b n c)."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (b, n, {self.dim}), got {_shape(x)}")
        if self.context_dim is not None and context is None:
            raise ValueError("this is a cross-attention layer: pass context (b, m, context_dim)")
        source = x if context is None else context
        if source.dim() != 3 or source.shape[-1] != self.k_proj.in_features:
            raise ValueError(
                f"context must have shape (b, m, {self.k_proj.in_features}), got {_shape(source)}"
            )
        heads = self.num_heads
        q = rearrange(self.q_proj(x), "b n (h d) -> b h n d", h=heads)
        if cache is not None and context is not None and len(cache) > 0:
            k, v = cache.k, cache.v  # the context does not change while decoding
        else:
            k = rearrange(self.k_proj(source), "b m (h d) -> b h m d", h=heads)
            v = rearrange(self.v_proj(source), "b m (h d) -> b h m d", h=heads)
            if cache is not None:
                k, v = cache.append(k, v)
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
            backend=self.backend,
        )
        return self.out_proj(rearrange(out, "b h n d -> b n (h d)"))
