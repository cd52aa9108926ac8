"""FlashAttention-2 from scratch in Triton: forward, backward, masks, and block skipping.

Attention softmax(Q Kᵀ · scale + M) V, computed tile by tile so that the (L, S) matrix of scores
never exists in GPU memory (Dao 2023, "FlashAttention-2").

Forward (one program per (query block, batch·head)):
    load a (BLOCK_M, d) block of Q once, then stream (BLOCK_N, d) blocks of K and V past it,
    keeping for every query row a running max m, a running sum l and an un-normalised output
    acc. This "online softmax" rescales acc by exp(m_old - m_new) whenever the max grows.
    At the end O = acc / l, and we save LSE = m + log l (one float per row) for the backward.
Backward (FlashAttention-2 style, no atomics, deterministic):
    1. preprocess: D_i = Σ_d dO_id · O_id, so that dS = P ∘ (dP - D) needs no row reduction;
    2. one program per key block: loop over query blocks, rebuild P = exp(S - LSE), add
       Pᵀ dO into dV and dSᵀ Q into dK;
    3. one program per query block: loop over key blocks again and add dS K into dQ.

Conventions (shared with minivideo.attention): q (b, h, L, d), k and v (b, h, S, d);
mask is bool (True = may attend) or a float bias added to the logits, broadcastable to
(b, h, L, S); `is_causal` is bottom-right aligned (query i sees keys j <= S - L + i); a query
row with no key to attend returns zeros and receives zero gradient. A float bias receives no
gradient (it is treated as a constant, like a mask).

Everything is exact in fp32 under TRITON_INTERPRET=1, which is how the tests run on a CPU.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from einops import rearrange

# Triton's `jit` decides when this module is imported whether kernels compile for the GPU or
# run in the numpy interpreter; remember which, so CPU tensors are accepted only in the latter.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
HEAD_DIMS = (32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
LOG2E = 1.4426950408889634  # exp(x) = exp2(x · log2 e); exp2 is the GPU's native instruction
LN2 = tl.constexpr(0.6931471805599453)  # a constexpr: kernels may read only constexpr globals

# The mask argument of the kernels: a constexpr, so each kind compiles its own specialised code.
NO_MASK, BOOL_MASK, BIAS_MASK = 0, 1, 2


# ============================================================================ shared by all passes
@triton.jit
def _logits(
    q, k, offs_m, offs_n, off_b, off_h, Mask,
    stride_mb, stride_mh, stride_ml, stride_ms, L, S, qk_scale,
    IS_CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, PRECISION: tl.constexpr,
):
    """A tile's logits (BLOCK_M, BLOCK_N) in base 2, bias added, and where attending is allowed.

    One definition for the forward pass and `_probabilities`, so the backward rebuilds exactly
    the tile the forward saw. A `triton.jit` helper is inlined into its caller: it costs nothing.
    """
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    row_ok = offs_m < L
    col_ok = offs_n < S
    allowed = row_ok[:, None] & col_ok[None, :]  # boundary: keys past S do not exist
    if IS_CAUSAL:
        allowed = allowed & (offs_n[None, :] <= offs_m[:, None] + S - L)
    if MASK_KIND != 0:
        mask_ptrs = (Mask + off_b * stride_mb + off_h * stride_mh
                     + offs_m[:, None] * stride_ml + offs_n[None, :] * stride_ms)
        # entries already disallowed are not read: their value could not change the result
        tile_mask = tl.load(mask_ptrs, mask=allowed, other=0)
        if MASK_KIND == 1:
            allowed = allowed & (tile_mask != 0)
        else:  # additive bias, converted to base 2 like the logits
            s = s + tile_mask.to(tl.float32) * 1.4426950408889634
    return s, allowed


# ============================================================================ forward kernel
@triton.jit
def attention_forward_kernel(
    Q, K, V, Out, Lse,  # pointers; q/out (b, h, L, d), k/v (b, h, S, d), lse (b, h, L) fp32
    Mask, BlockAny,  # optional: mask/bias (b, h, L, S) and "tile has any key" table (b, h, nM, nN)
    stride_qb, stride_qh, stride_qn,  # strides of q, shared by out (last dim contiguous)
    stride_kb, stride_kh, stride_kn,  # strides of k, shared by v
    stride_mb, stride_mh, stride_ml, stride_ms,  # mask strides (0 along broadcast dims)
    stride_tb, stride_th, stride_tm,  # block-table strides (last dim contiguous)
    H, L, S,  # heads, query length, key length
    qk_scale,  # softmax scale · log2(e): logits are kept in base 2 so we can use exp2
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, HAS_BLOCK_TABLE: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # ---- 1. Which tile is ours? Axis 0 walks query blocks, axis 1 walks (batch, head) pairs.
    block_m = tl.program_id(0)
    bh = tl.program_id(1)
    off_b = (bh // H).to(tl.int64)  # int64: b·h·n·d can exceed 2³¹ for long videos
    off_h = (bh % H).to(tl.int64)
    offs_m = block_m * BLOCK_M + tl.arange(0, BLOCK_M)  # the query rows of this program
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < L  # the last block may hang over the end of the sequence

    # ---- 2. Load our Q block once; it stays in registers/SRAM for the whole loop.
    q_base = Q + off_b * stride_qb + off_h * stride_qh
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_kb + off_h * stride_kh
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :], mask=row_ok[:, None],
                other=0.0)

    # ---- 3. Online-softmax state, one entry per query row, all in fp32.
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)  # running max of the logits
    l_i = tl.zeros((BLOCK_M,), tl.float32)  # running Σ exp(logit - m_i)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), tl.float32)  # running Σ exp(logit - m_i) · v

    # ---- 4. Which key blocks can matter? With a causal mask, query i sees keys j <= i + S - L,
    # so the last row of our block sees nothing beyond (block_m + 1)·BLOCK_M - 1 + S - L:
    # stop the loop at the diagonal and skip the upper triangle entirely (~2x less work).
    hi = S
    if IS_CAUSAL:
        hi = tl.minimum(S, (block_m + 1) * BLOCK_M + S - L)
    for start_n in range(0, hi, BLOCK_N):
        # A bool mask comes with a precomputed table saying whether tile (block_m, block_n)
        # has any True; tiles with none are skipped without loading K or V. This is what makes
        # local-window, axial and prefix masks cost (almost) only the pairs they allow.
        run_tile = True
        if HAS_BLOCK_TABLE:
            table = BlockAny + off_b * stride_tb + off_h * stride_th + block_m * stride_tm
            run_tile = tl.load(table + start_n // BLOCK_N) != 0
        if run_tile:
            offs_n = start_n + tl.arange(0, BLOCK_N)
            col_ok = offs_n < S
            k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :],
                        mask=col_ok[:, None], other=0.0)
            v = tl.load(v_base + offs_n[:, None] * stride_kn + offs_d[None, :],
                        mask=col_ok[:, None], other=0.0)

            # -- 4a. Logits of this tile, (BLOCK_M, BLOCK_N), in base 2; -inf where masked.
            s, allowed = _logits(q, k, offs_m, offs_n, off_b, off_h, Mask,
                                 stride_mb, stride_mh, stride_ml, stride_ms, L, S, qk_scale,
                                 IS_CAUSAL, MASK_KIND, PRECISION)
            s = tl.where(allowed, s, float("-inf"))

            # -- 4b. The online-softmax recurrence. A row that has seen only -inf so far keeps
            # m = -inf; subtract 0 for it instead, so exp2(-inf - 0) = 0 rather than NaN.
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.math.exp2(s - m_safe[:, None])  # this tile's un-normalised probabilities
            alpha = tl.math.exp2(m_i - m_safe)  # <= 1: re-bases old sums from m_i to m_new
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None]
            acc += tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            m_i = m_new

    # ---- 5. Normalise, write O and the log-sum-exp (natural log) for the backward pass.
    # Rows that attended nothing have l = 0: output zeros, and LSE = -inf (log of an empty sum).
    empty = l_i == 0.0
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("-inf"), (m_i + tl.math.log2(tl.where(empty, 1.0, l_i))) * LN2)
    o_base = Out + off_b * stride_qb + off_h * stride_qh
    tl.store(o_base + offs_m[:, None] * stride_qn + offs_d[None, :], out.to(Out.dtype.element_ty),
             mask=row_ok[:, None])
    tl.store(Lse + bh.to(tl.int64) * L + offs_m, lse, mask=row_ok)


# ============================================================================ backward kernels
@triton.jit
def attention_backward_preprocess_kernel(
    Out, DOut, Delta, stride_b, stride_h, stride_n, H, L,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
):
    # D_i = Σ_d dO_id · O_id = Σ_j P_ij dP_ij: the row term of the softmax Jacobian, computed
    # once here instead of inside every tile of the two loops below.
    block_m = tl.program_id(0)
    bh = tl.program_id(1)
    base = (bh // H).to(tl.int64) * stride_b + (bh % H).to(tl.int64) * stride_h
    offs_m = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    ptrs = base + offs_m[:, None] * stride_n + offs_d[None, :]
    row_ok = offs_m < L
    o = tl.load(Out + ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DOut + ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    tl.store(Delta + bh.to(tl.int64) * L + offs_m, tl.sum(o * do, 1), mask=row_ok)


@triton.jit
def _probabilities(
    q, k, lse, offs_m, offs_n, off_b, off_h, Mask,
    stride_mb, stride_mh, stride_ml, stride_ms, L, S, qk_scale,
    IS_CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, PRECISION: tl.constexpr,
):
    """Rebuild the tile P = exp(S - LSE) exactly as the forward pass saw it (zeros where masked)."""
    s, allowed = _logits(q, k, offs_m, offs_n, off_b, off_h, Mask,
                         stride_mb, stride_mh, stride_ml, stride_ms, L, S, qk_scale,
                         IS_CAUSAL, MASK_KIND, PRECISION)
    # A row that attended nothing has LSE = -inf; treat it as +inf so its P is exp2(-inf) = 0.
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
    p = tl.math.exp2(s - lse2[:, None])
    return tl.where(allowed, p, 0.0)


@triton.jit
def attention_backward_dkdv_kernel(
    Q, K, V, DOut, Lse, Delta, DK, DV, Mask, BlockAny,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
    stride_mb, stride_mh, stride_ml, stride_ms, stride_tb, stride_th, stride_tm,
    H, L, S, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, HAS_BLOCK_TABLE: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # One program owns one key block: its dK and dV are sums over all query rows, so it can
    # accumulate them in registers and write them once, with no atomics.
    block_n = tl.program_id(0)
    bh = tl.program_id(1)
    off_b = (bh // H).to(tl.int64)
    off_h = (bh % H).to(tl.int64)
    offs_n = block_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    col_ok = offs_n < S
    q_base = Q + off_b * stride_qb + off_h * stride_qh
    do_base = DOut + off_b * stride_qb + off_h * stride_qh
    kv_offset = (off_b * stride_kb + off_h * stride_kh
                 + offs_n[:, None] * stride_kn + offs_d[None, :])
    k = tl.load(K + kv_offset, mask=col_ok[:, None], other=0.0)
    v = tl.load(V + kv_offset, mask=col_ok[:, None], other=0.0)
    dk = tl.zeros((BLOCK_N, HEAD_DIM), tl.float32)
    dv = tl.zeros((BLOCK_N, HEAD_DIM), tl.float32)

    # Causal: key j is seen only by queries i >= j - (S - L); start at the first such block.
    lo = 0
    if IS_CAUSAL:
        lo = tl.maximum(0, block_n * BLOCK_N - (S - L)) // BLOCK_M * BLOCK_M
    for start_m in range(lo, L, BLOCK_M):
        run_tile = True
        if HAS_BLOCK_TABLE:
            table = (BlockAny + off_b * stride_tb + off_h * stride_th
                     + (start_m // BLOCK_M) * stride_tm)
            run_tile = tl.load(table + block_n) != 0
        if run_tile:
            offs_m = start_m + tl.arange(0, BLOCK_M)
            row_ok = offs_m < L
            q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :],
                        mask=row_ok[:, None], other=0.0)
            do = tl.load(do_base + offs_m[:, None] * stride_qn + offs_d[None, :],
                         mask=row_ok[:, None], other=0.0)
            lse = tl.load(Lse + bh.to(tl.int64) * L + offs_m, mask=row_ok, other=0.0)
            delta = tl.load(Delta + bh.to(tl.int64) * L + offs_m, mask=row_ok, other=0.0)
            p = _probabilities(q, k, lse, offs_m, offs_n, off_b, off_h, Mask,
                               stride_mb, stride_mh, stride_ml, stride_ms, L, S, qk_scale,
                               IS_CAUSAL, MASK_KIND, PRECISION)  # (BLOCK_M, BLOCK_N)
            # O = P V  =>  dV = Pᵀ dO
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
            # dP = dO Vᵀ, and the softmax Jacobian gives dS = P ∘ (dP - D)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            ds = p * (dp - delta[:, None])
            # S = scale · Q Kᵀ  =>  dK = scale · dSᵀ Q
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    tl.store(DK + kv_offset, (dk * sm_scale).to(DK.dtype.element_ty), mask=col_ok[:, None])
    tl.store(DV + kv_offset, dv.to(DV.dtype.element_ty), mask=col_ok[:, None])


@triton.jit
def attention_backward_dq_kernel(
    Q, K, V, DOut, Lse, Delta, DQ, Mask, BlockAny,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
    stride_mb, stride_mh, stride_ml, stride_ms, stride_tb, stride_th, stride_tm,
    H, L, S, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, HAS_BLOCK_TABLE: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # One program owns one query block and walks the key blocks, like the forward pass:
    # dQ = scale · dS K. (FlashAttention-2 can fuse this into the dK/dV loop with atomic adds;
    # a second pass costs one more read of K and V but is deterministic.)
    block_m = tl.program_id(0)
    bh = tl.program_id(1)
    off_b = (bh // H).to(tl.int64)
    off_h = (bh % H).to(tl.int64)
    offs_m = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < L
    q_offset = off_b * stride_qb + off_h * stride_qh + offs_m[:, None] * stride_qn + offs_d[None, :]
    q = tl.load(Q + q_offset, mask=row_ok[:, None], other=0.0)
    do = tl.load(DOut + q_offset, mask=row_ok[:, None], other=0.0)
    lse = tl.load(Lse + bh.to(tl.int64) * L + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(Delta + bh.to(tl.int64) * L + offs_m, mask=row_ok, other=0.0)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_kb + off_h * stride_kh
    dq = tl.zeros((BLOCK_M, HEAD_DIM), tl.float32)

    hi = S
    if IS_CAUSAL:
        hi = tl.minimum(S, (block_m + 1) * BLOCK_M + S - L)
    for start_n in range(0, hi, BLOCK_N):
        run_tile = True
        if HAS_BLOCK_TABLE:
            table = BlockAny + off_b * stride_tb + off_h * stride_th + block_m * stride_tm
            run_tile = tl.load(table + start_n // BLOCK_N) != 0
        if run_tile:
            offs_n = start_n + tl.arange(0, BLOCK_N)
            col_ok = offs_n < S
            k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :],
                        mask=col_ok[:, None], other=0.0)
            v = tl.load(v_base + offs_n[:, None] * stride_kn + offs_d[None, :],
                        mask=col_ok[:, None], other=0.0)
            p = _probabilities(q, k, lse, offs_m, offs_n, off_b, off_h, Mask,
                               stride_mb, stride_mh, stride_ml, stride_ms, L, S, qk_scale,
                               IS_CAUSAL, MASK_KIND, PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    tl.store(DQ + q_offset, (dq * sm_scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])


# ============================================================================ host side
def flash_unavailable_reason(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> str | None:
    """None if `flash_attention` can run on these inputs, else a sentence saying why not."""
    tensors = {"q": q, "k": k, "v": v}
    for name, x in tensors.items():
        if not isinstance(x, torch.Tensor):
            return f"{name} must be a torch.Tensor, got {type(x).__name__}"
        if x.dim() != 4:
            return (f"flash needs {name} shaped (b, h, n, d); got {tuple(x.shape)}; "
                    "use backend='sdpa'")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in DTYPES:
        return (f"flash supports float16, bfloat16 and float32 q/k/v of one dtype; "
                f"got {q.dtype}, {k.dtype}, {v.dtype}")
    if mask is not None and not isinstance(mask, torch.Tensor):
        return f"mask must be a torch.Tensor or None, got {type(mask).__name__}"
    devices = {x.device for x in tensors.values()} | ({mask.device} if mask is not None else set())
    if len(devices) != 1:
        return f"q, k, v and mask must be on one device; got {sorted(map(str, devices))}"
    if q.device.type != "cuda" and not INTERPRETED:
        return (f"flash needs a CUDA tensor (got {q.device.type}; or set TRITON_INTERPRET=1 before "
                "importing triton, for CPU testing); use backend='sdpa'")
    if INTERPRETED and q.dtype == torch.bfloat16:
        return ("bfloat16 tl.dot is wrong in the Triton CPU interpreter; use float16/float32 "
                "there, or backend='sdpa'")
    if q.device.type == "cuda" and q.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return "this GPU has no bfloat16 support; use float16 or backend='sdpa'"
    d = q.shape[-1]
    if d not in HEAD_DIMS:
        return f"head dim {d} not supported: use 32, 64 or 128, or backend='sdpa'"
    if v.shape[-1] != d:
        return f"v's head dim {v.shape[-1]} must equal q's ({d}) for flash; use backend='sdpa'"
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or k.shape[-1] != d:
        return (f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
                "do not match as (b, h, L, d), (b, h, S, d), (b, h, S, d)")
    if mask is not None:
        if mask.dtype != torch.bool and not mask.is_floating_point():
            return f"mask must be bool or floating, got {mask.dtype}"
        expected = (*q.shape[:3], k.shape[2])
        try:
            fits = torch.broadcast_shapes(mask.shape, expected) == torch.Size(expected)
        except RuntimeError:
            fits = False
        if not fits:
            return (f"mask of shape {tuple(mask.shape)} does not broadcast to "
                    f"(b, h, L, S) = {expected}")
    return None


def _block_sizes(
    head_dim: int, dtype: torch.dtype, device: torch.device, backward: bool = False
) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages): tiles that fit in SRAM and registers."""
    if device.type != "cuda":
        return 16, 16, 1, 1  # the interpreter: small tiles so tiny tests still cross block edges
    if dtype == torch.float32:  # twice the bytes per element: smaller tiles
        return (32, 32, 4, 1) if backward else (64, 32, 4, 2)
    if backward:  # each program keeps two fp32 accumulators (dK and dV) and reloads Q and dO
        return (64, 64, 4, 2) if head_dim <= 64 else (64, 64, 8, 2)
    return (128, 64, 4, 3) if head_dim <= 64 else (128, 64, 8, 2)


def _prepare_mask(
    mask: torch.Tensor | None, shape: tuple[int, int, int, int]
) -> tuple[torch.Tensor | None, int, tuple[int, int, int, int]]:
    """The mask as a broadcast (b, h, L, S) view (no copy) with its kind and strides."""
    if mask is None:
        return None, NO_MASK, (0, 0, 0, 0)
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    if mask.dtype == torch.bool:
        kind = BOOL_MASK
        mask = mask.view(torch.uint8)  # same bytes; Triton loads uint8 more portably than bool
    else:
        kind = BIAS_MASK
        mask = mask.detach()
    mask = mask.expand(shape)  # stride 0 along broadcast dims: a (L, S) mask is read, not copied
    return mask, kind, tuple(mask.stride())


def block_any_table(
    mask: torch.Tensor, block_m: int, block_n: int
) -> torch.Tensor:
    """Bool (b', h', ceil(L/block_m), ceil(S/block_n)): does tile (i, j) contain any True?"""
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    length_q, length_k = mask.shape[-2:]
    pad_q, pad_k = -length_q % block_m, -length_k % block_n
    padded = F.pad(mask.to(torch.uint8), (0, pad_k, 0, pad_q))  # padding is False
    tiles = rearrange(padded, "b h (i bm) (j bn) -> b h i j (bm bn)", bm=block_m, bn=block_n)
    return tiles.amax(-1).contiguous()


def _table_args(mask: torch.Tensor | None, shape, block_m: int, block_n: int, dummy):
    """The block table (a broadcast view) and its strides; a dummy pointer when unused."""
    if mask is None or mask.dtype != torch.bool:
        return dummy, (0, 0, 0), False
    table = block_any_table(mask, block_m, block_n)
    b, h = shape[:2]
    table = table.expand(b, h, *table.shape[-2:])
    return table, tuple(table.stride()[:3]), True


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: forward and backward both run the Triton kernels above."""

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale, block_m, block_n):
        """Launch the forward kernel; save what the backward pass needs (not the scores)."""
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        b, h, length_q, d = q.shape
        length_k = k.shape[2]
        bm, bn, warps, stages = _block_sizes(d, q.dtype, q.device)
        bm, bn = block_m or bm, block_n or bn
        shape = (b, h, length_q, length_k)
        mask_arg, kind, mstrides = _prepare_mask(mask, shape)
        table, tstrides, has_table = _table_args(mask, shape, bm, bn, q)
        out = torch.empty_like(q)
        lse = torch.empty((b, h, length_q), device=q.device, dtype=torch.float32)
        precision = _precision(q.dtype)
        grid = (triton.cdiv(length_q, bm), b * h)
        attention_forward_kernel[grid](
            q, k, v, out, lse, q if mask_arg is None else mask_arg, table,
            *q.stride()[:3], *k.stride()[:3], *mstrides, *tstrides,
            h, length_q, length_k, scale * LOG2E,
            HEAD_DIM=d, BLOCK_M=bm, BLOCK_N=bn, IS_CAUSAL=is_causal, MASK_KIND=kind,
            HAS_BLOCK_TABLE=has_table, PRECISION=precision, num_warps=warps, num_stages=stages,
        )
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.mark_non_differentiable(lse)  # LSE is returned for inspection, not for training
        bm, bn, warps, stages = _block_sizes(d, q.dtype, q.device, backward=True)
        ctx.config = (is_causal, scale, block_m or bm, block_n or bn, warps, stages)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        """dq, dk, dv from the saved LSE: P is recomputed tile by tile, never stored."""
        q, k, v, out, lse, mask = ctx.saved_tensors
        is_causal, scale, bm, bn, warps, stages = ctx.config
        grad_out = grad_out.contiguous()
        b, h, length_q, d = q.shape
        length_k = k.shape[2]
        shape = (b, h, length_q, length_k)
        mask_arg, kind, mstrides = _prepare_mask(mask, shape)
        mask_arg = q if mask_arg is None else mask_arg
        table, tstrides, has_table = _table_args(mask, shape, bm, bn, q)
        precision = _precision(q.dtype)
        delta = torch.empty_like(lse)
        attention_backward_preprocess_kernel[(triton.cdiv(length_q, bm), b * h)](
            out, grad_out, delta, *q.stride()[:3], h, length_q, HEAD_DIM=d, BLOCK_M=bm,
        )
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        common = dict(
            HEAD_DIM=d, BLOCK_M=bm, BLOCK_N=bn, IS_CAUSAL=is_causal, MASK_KIND=kind,
            HAS_BLOCK_TABLE=has_table, PRECISION=precision, num_warps=warps, num_stages=stages,
        )
        strides = (*q.stride()[:3], *k.stride()[:3], *mstrides, *tstrides)
        attention_backward_dkdv_kernel[(triton.cdiv(length_k, bn), b * h)](
            q, k, v, grad_out, lse, delta, dk, dv, mask_arg, table, *strides,
            h, length_q, length_k, scale * LOG2E, scale, **common,
        )
        attention_backward_dq_kernel[(triton.cdiv(length_q, bm), b * h)](
            q, k, v, grad_out, lse, delta, dq, mask_arg, table, *strides,
            h, length_q, length_k, scale * LOG2E, scale, **common,
        )
        return dq, dk, dv, None, None, None, None, None


def _precision(dtype: torch.dtype) -> str:
    """fp32 inputs get true fp32 dot products (unless the user allowed TF32, as in matmul)."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale + mask) v with the Triton kernels; q (b h L d), k/v (b h S d).

    `block_m`/`block_n` override the tile sizes (powers of two >= 16) for experiments;
    `return_lse` also returns the per-row log-sum-exp (b, h, L), in fp32.
    """
    reason = flash_unavailable_reason(q, k, v, mask)
    if reason is not None:
        raise ValueError(f"flash_attention cannot run on these inputs: {reason}")
    for name, size in (("block_m", block_m), ("block_n", block_n)):
        if size is not None and (size < 16 or size & (size - 1)):
            raise ValueError(f"{name} must be a power of two >= 16, got {size}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    out, lse = FlashAttentionFunction.apply(q, k, v, mask, bool(is_causal), scale, block_m, block_n)
    return (out, lse) if return_lse else out
