"""The FlashAttention algorithm in plain PyTorch: the Triton kernel's loops, written readably.

Nothing here is fast: the point is that every line of the kernel has a line here you can step
through in a debugger, and that both agree with the formula (tests/test_flash_attention.py).
"""

from __future__ import annotations

import math

import torch


def online_softmax(x: torch.Tensor, block_size: int = 4) -> torch.Tensor:
    """softmax over the last dim of x, reading x in blocks of `block_size` with a running max.

    One pass keeps, per row, the max m seen so far and l = Σ exp(x - m). When a block raises the
    max from m to m', every term already in l was computed against the wrong max; multiplying l
    by exp(m - m') fixes all of them at once. A second pass then writes exp(x - m) / l.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    x = x.float()
    m = torch.full(x.shape[:-1], -math.inf, device=x.device)  # running max
    l = torch.zeros(x.shape[:-1], device=x.device)  # running sum of exp(x - m)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start : start + block_size]
        m_new = torch.maximum(m, block.amax(-1))
        l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(-1)
        m = m_new
    return torch.exp(x - m[..., None]) / l[..., None]


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    block_m: int = 16,
    block_n: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention by (block_m x block_n) tiles with the online softmax; returns (out, lse).

    q (..., L, d), k and v (..., S, d); mask bool (True = may attend) or additive float,
    broadcastable to (..., L, S); is_causal bottom-right aligned. Rows with no key give zeros
    and lse = -inf. Computes in fp32 and returns out in q's dtype, lse (..., L) in fp32.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"expected q (..., L, d), k (..., S, d), v (..., S, d_v); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if block_m < 1 or block_n < 1:
        raise ValueError(f"block_m and block_n must be positive, got {block_m}, {block_n}")
    length_q, length_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    lead = q.shape[:-2]
    if mask is not None:
        mask = mask.expand(*lead, length_q, length_k)
    rows = torch.arange(length_q, device=q.device)
    cols = torch.arange(length_k, device=q.device)
    out = torch.empty(*lead, length_q, v.shape[-1], device=q.device, dtype=q.dtype)
    lse = torch.empty(*lead, length_q, device=q.device, dtype=torch.float32)

    for i in range(0, length_q, block_m):  # the Triton grid's axis 0: one program per block
        q_tile = q[..., i : i + block_m, :].float()
        m = torch.full((*lead, q_tile.shape[-2]), -math.inf, device=q.device)
        l = torch.zeros_like(m)
        acc = torch.zeros(*lead, q_tile.shape[-2], v.shape[-1], device=q.device)
        for j in range(0, length_k, block_n):  # the kernel's loop over key/value blocks
            allowed = torch.ones(q_tile.shape[-2], min(block_n, length_k - j), dtype=torch.bool,
                                 device=q.device)
            if is_causal:  # bottom-right: query i sees key j when j <= i + S - L
                allowed = cols[None, j : j + block_n] <= rows[i : i + block_m, None] + (
                    length_k - length_q
                )
            s = q_tile @ k[..., j : j + block_n, :].float().transpose(-1, -2) * scale
            if mask is not None:
                tile = mask[..., i : i + block_m, j : j + block_n]
                if tile.dtype == torch.bool:
                    allowed = allowed & tile
                else:
                    s = s + tile.float()
            if not allowed.any():  # the kernel's block skipping: this tile changes nothing
                continue
            s = s.masked_fill(~allowed, -math.inf)
            m_new = torch.maximum(m, s.amax(-1))
            m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
            p = torch.exp(s - m_safe[..., None])
            alpha = torch.exp(m - m_safe)  # rescales everything summed against the old max
            l = l * alpha + p.sum(-1)
            acc = acc * alpha[..., None] + p @ v[..., j : j + block_n, :].float()
            m = m_new
        empty = l == 0
        out[..., i : i + block_m, :] = (acc / torch.where(empty, 1.0, l)[..., None]).to(q.dtype)
        lse[..., i : i + block_m] = torch.where(empty, -math.inf, m + torch.log(l))
    return out, lse
