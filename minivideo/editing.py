"""Video editing with an autoregressive prior: re-sample some codes of a clip, keep the rest.

A tokenizer turns a clip into a grid of codes (the 3D clip tokenizer: (t, h, w) = (4, 16, 16),
one code per 4 frames × 4×4 pixels; the frame tokenizer: 8×8 codes per frame). To change part of
a clip, pick the codes that cover that part (`region_mask`, `trajectory_mask`), draw new ones
from the prior, and decode. The codes we keep are *forced*: `generate` is told, position by
position, that only the kept token may appear there (`forcing_allowed`), so one KV-cached pass
in raster order produces the edited sequence.

**The limitation.** What we want is p(edited | kept): every kept code, before *and after* the
region, should inform the new ones. A left-to-right prior draws position i from
p(x_i | x_<i): it sees the kept codes *before* i only. The codes after the region (the end of a
digit's path, the right-hand half of a row) are then forced whether or not they agree with what
was just drawn, and a seam can appear. Two ways out, in order of cost:

* `rounds > 0` (used here): the left-to-right pass is a proposal q(x_R) and the true conditional
  is p(x_R | x_K) ∝ p(x_R, x_K), the likelihood of the *whole* sequence. An independence
  Metropolis–Hastings chain corrects q towards it: draw a fresh proposal x'_R, accept it with
  probability min(1, w(x') / w(x)) where w = p(x_R, x_K) / q(x_R). The factors of the codes
  before each edited one cancel between p and q, so w is "how well the kept future fits the new
  region" (times, per edited position, the probability mass of `allowed_ids`: 1 when every id
  may be drawn) — scored by one full forward pass. Each round costs one proposal and one forward.
* A bidirectional model (MaskGIT, or an infilling objective such as FIM) learns p(x_R | x_K)
  directly; it needs different training, which is beyond this course's priors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange, repeat

from minivideo.sampling import generate, sequence_nll


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor | np.ndarray):
        return f"{x.dtype} array of shape {tuple(x.shape)}"
    return type(x).__name__


def _grid_steps(grid: Sequence[int], num_frames: int, image_size: int) -> tuple[int, int]:
    """Frames per code step and pixels per code cell of a (t, h, w) grid; clear errors."""
    if len(grid) != 3 or not all(isinstance(g, int) and g >= 1 for g in grid):
        raise ValueError(f"grid must be (t, h, w) of positive ints, got {tuple(grid)!r}")
    t, h, w = grid
    if not isinstance(num_frames, int) or num_frames < 1 or num_frames % t:
        raise ValueError(f"num_frames must be a positive multiple of grid t={t}, got "
                         f"{num_frames!r}")
    if h != w or not isinstance(image_size, int) or image_size % h:
        raise ValueError(f"grid h, w ({h}, {w}) must be equal and divide image_size="
                         f"{image_size!r}")
    return num_frames // t, image_size // h


# --------------------------------------------------------------------------- code-space masks
def region_mask(
    grid: Sequence[int],
    *,
    num_frames: int,
    frames: tuple[int, int] | None = None,
    box: tuple[int, int, int, int] | None = None,
    image_size: int = 64,
) -> torch.Tensor:
    """Bool (t, h, w): the code cells covering frames first..last (inclusive) inside a pixel box.

    box = (top, left, bottom, right) in pixels, bottom and right exclusive; None = whole frame.
    frames = None: every frame. A cell is in the mask if it covers any pixel of the region, so
    the mask is the smallest set of codes that can repaint the whole region.
    """
    time_down, space_down = _grid_steps(grid, num_frames, image_size)
    t, h, w = grid
    first, last = (0, num_frames - 1) if frames is None else frames
    if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last < num_frames):
        raise ValueError(f"frames must be (first, last) with 0 <= first <= last < {num_frames}, "
                         f"got {frames!r}")
    top, left, bottom, right = (0, 0, image_size, image_size) if box is None else box
    if not (0 <= top < bottom <= image_size and 0 <= left < right <= image_size):
        raise ValueError(f"box must be (top, left, bottom, right) pixels with 0 <= top < bottom "
                         f"<= {image_size} and 0 <= left < right <= {image_size}, got {box!r}")
    mask = torch.zeros(t, h, w, dtype=torch.bool)
    mask[first // time_down : last // time_down + 1,
         top // space_down : (bottom - 1) // space_down + 1,
         left // space_down : (right - 1) // space_down + 1] = True  # fmt: skip
    return mask


def trajectory_mask(
    grid: Sequence[int],
    positions: np.ndarray | torch.Tensor,
    *,
    digit_size: int = 28,
    margin: int = 0,
    image_size: int = 64,
) -> torch.Tensor:
    """Bool (t, h, w): the code cells one digit's box covers, frame by frame, over the clip.

    positions: (T, 2) top-left (y, x) pixel corners of the digit in each of the clip's T frames
    (Moving MNIST's `trajectories.positions[i, :, slot]`; floats are floored, as the renderer
    pastes them). margin widens the box by that many pixels on every side: the decoder's
    convolutions spread a code's influence a few pixels past its cell.
    """
    positions = torch.as_tensor(np.asarray(positions))
    if positions.dim() != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must have shape (T, 2) of top-left (y, x) corners, got "
                         f"{tuple(positions.shape)}")
    if not isinstance(margin, int) or margin < 0:
        raise ValueError(f"margin must be an int >= 0, got {margin!r}")
    num_frames = positions.shape[0]
    time_down, space_down = _grid_steps(grid, num_frames, image_size)
    corners = positions.floor().long()
    if corners.min() < 0 or corners.max() > image_size - digit_size:
        raise ValueError(f"positions must lie in [0, {image_size - digit_size}] so the digit "
                         f"stays inside the {image_size}×{image_size} frame")
    mask = torch.zeros(*grid, dtype=torch.bool)
    for frame, (y, x) in enumerate(corners.tolist()):
        top, left = max(y - margin, 0), max(x - margin, 0)
        bottom = min(y + digit_size + margin, image_size)
        right = min(x + digit_size + margin, image_size)
        mask[frame // time_down,
             top // space_down : (bottom - 1) // space_down + 1,
             left // space_down : (right - 1) // space_down + 1] = True  # fmt: skip
    return mask


def sequence_mask(code_mask: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """A code mask (..., t, h, w) as a mask over the prior's sequence (..., prefix + t·h·w).

    Codes are read in raster order over (t, h, w), after `prefix_len` conditioning tokens
    (BOS or class tokens), which are never edited.
    """
    if not isinstance(code_mask, torch.Tensor) or code_mask.dtype != torch.bool:
        raise TypeError(f"code_mask must be a bool tensor (..., t, h, w), got "
                        f"{_describe(code_mask)}")
    if code_mask.dim() < 3:
        raise ValueError(f"code_mask must have shape (..., t, h, w), got "
                         f"{tuple(code_mask.shape)}")
    if not isinstance(prefix_len, int) or prefix_len < 1:
        raise ValueError(f"prefix_len must be an int >= 1 (the first token is never drawn), "
                         f"got {prefix_len!r}")
    flat = rearrange(code_mask, "... t h w -> ... (t h w)")
    keep = torch.zeros(*flat.shape[:-1], prefix_len, dtype=torch.bool, device=flat.device)
    return torch.cat([keep, flat], dim=-1)


# --------------------------------------------------------------------------- in-filling
def forcing_allowed(
    tokens: torch.Tensor, edit_mask: torch.Tensor, allowed_ids: torch.Tensor
) -> Callable[[int], torch.Tensor]:
    """`generate`'s `allowed` for in-filling: kept positions admit only their own token.

    tokens (b, n) int64, edit_mask (b, n) bool, allowed_ids (V,) bool (the ids an edited
    position may take). Returns position -> bool (b, V).
    """
    vocab = allowed_ids.shape[-1]
    forced = torch.zeros(*tokens.shape, vocab, dtype=torch.bool, device=tokens.device)
    forced.scatter_(-1, tokens[..., None], True)  # (b, n, V): one-hot of every token

    def allowed(position: int) -> torch.Tensor:
        free = repeat(allowed_ids, "v -> b v", b=tokens.shape[0])
        return torch.where(edit_mask[:, position, None], free, forced[:, position])

    return allowed


@dataclass
class Infill:
    """What `infill` returns."""

    tokens: torch.Tensor  # (b, n) int64: kept tokens unchanged, edited ones re-sampled
    log_weight: torch.Tensor  # (b,) log p(x) − log q(x_R): how well the kept future fits
    accepted: torch.Tensor  # (b,) int64: proposals accepted over the `rounds` (0 if none)


def _check_infill(model, tokens, edit_mask, allowed_ids) -> tuple[torch.Tensor, torch.Tensor]:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "vocab_size") or not hasattr(config, "block_size"):
        raise TypeError(f"model must be a GPT prior (with .config.vocab_size and "
                        f".config.block_size), got {type(model).__name__}")
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.dim() != 2:
        raise TypeError(f"tokens must be an int64 tensor (b, n), got {_describe(tokens)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= config.vocab_size):
        raise ValueError(f"tokens must lie in [0, {config.vocab_size}) (the prior's vocabulary)")
    if tokens.shape[1] > config.block_size:
        raise ValueError(f"tokens has {tokens.shape[1]} positions, more than the prior's "
                         f"block_size={config.block_size}")
    if not isinstance(edit_mask, torch.Tensor) or edit_mask.dtype != torch.bool:
        raise TypeError(f"edit_mask must be a bool tensor (n,) or (b, n) with True = re-sample, "
                        f"got {_describe(edit_mask)}")
    if edit_mask.shape not in {tokens.shape[1:], tokens.shape}:
        raise ValueError(f"edit_mask must have shape ({tokens.shape[1]},) or "
                         f"{tuple(tokens.shape)} like tokens, got {tuple(edit_mask.shape)}")
    edit = edit_mask.to(tokens.device).expand_as(tokens)
    if edit[:, 0].any():
        raise ValueError("edit_mask must be False at position 0: the first token (BOS or a "
                         "class token) has nothing before it to be sampled from")
    vocab = config.vocab_size
    if allowed_ids is None:
        allowed_ids = torch.ones(vocab, dtype=torch.bool)
    if (not isinstance(allowed_ids, torch.Tensor) or allowed_ids.dtype != torch.bool
            or allowed_ids.shape != (vocab,)):
        raise TypeError(f"allowed_ids must be a bool tensor ({vocab},) (the ids an edited "
                        f"position may take), got {_describe(allowed_ids)}")
    if not allowed_ids.any():
        raise ValueError("allowed_ids leaves no token for the edited positions")
    return edit, allowed_ids.to(tokens.device)


@torch.no_grad()
def infill(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    edit_mask: torch.Tensor,
    *,
    allowed_ids: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
    rounds: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Infill:
    """Re-sample tokens (b, n) where edit_mask is True with a left-to-right prior; keep the rest.

    edit_mask: bool (n,) or (b, n). allowed_ids: bool (V,), the ids an edited position may take
    (e.g. codes only, never BOS); default all. context: the prior's cross-attention input.
    rounds: independence Metropolis–Hastings steps towards p(edited | all kept tokens), each a
    fresh left-to-right proposal scored by the whole sequence's likelihood (module docstring);
    the correction is exact at temperature 1 without truncation (otherwise it targets the
    truncated model). Positions before the first edited one are the prefix of one KV-cached
    `generate`; the kept tokens after the last edited one are appended as they are.
    """
    edit, allowed_ids = _check_infill(model, tokens, edit_mask, allowed_ids)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise ValueError(f"rounds must be an int >= 0, got {rounds!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    batch = tokens.shape[0]
    zeros = torch.zeros(batch, device=tokens.device)
    edited_columns = edit.any(dim=0).nonzero()
    if len(edited_columns) == 0:  # nothing to edit: the clip as it is
        return Infill(tokens.clone(), zeros, zeros.long())
    first, last = int(edited_columns[0]), int(edited_columns[-1])
    allowed = forcing_allowed(tokens, edit, allowed_ids)
    generator = torch.Generator(device=tokens.device).manual_seed(seed)

    def propose() -> tuple[torch.Tensor, torch.Tensor]:
        out = generate(model, tokens[:, :first], last + 1 - first, allowed=allowed,
                       context=context, temperature=temperature, top_k=top_k, top_p=top_p,
                       seed=None, generator=generator, return_logprobs=True,
                       progress=progress)  # fmt: skip
        proposal = torch.cat([out.tokens, tokens[:, last + 1 :]], dim=1)
        # forced positions have probability 1 after masking (log 0), so this is log q(x_R)
        log_q = out.logprobs.sum(dim=1)
        log_p = -sequence_nll(model, proposal, start=first, context=context)
        return proposal, log_p - log_q

    current, log_w = propose()
    accepted = torch.zeros(batch, dtype=torch.long, device=tokens.device)
    for _ in range(rounds):
        proposal, log_w_new = propose()
        # accept with probability min(1, w'/w); log u < log w' − log w
        u = torch.rand(batch, generator=generator, device=tokens.device)
        accept = u.log() < log_w_new - log_w
        current = torch.where(accept[:, None], proposal, current)
        log_w = torch.where(accept, log_w_new, log_w)
        accepted += accept.long()
    return Infill(current, log_w, accepted)


def changed_fraction(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor) -> float:
    """Fraction of the masked positions whose token differs between two sequences."""
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must "
                         f"have the same shape")
    mask = mask.expand_as(before)
    if not mask.any():
        return math.nan
    return float((before != after)[mask].float().mean())


__all__ = [
    "Infill",
    "changed_fraction",
    "forcing_allowed",
    "infill",
    "region_mask",
    "sequence_mask",
    "trajectory_mask",
]
