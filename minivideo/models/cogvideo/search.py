"""Key frames by move search: the stage picks where each digit goes; the digit keeps its shape.

Drawn code by code, a later key frame redraws its digits: each cell decides on its own what to
draw (or, with the copy pointer, which cell to copy), so strokes break apart, and a digit that
should move 8 px is redrawn wherever the frozen image model likes to put it. On clips whose
digits move one cell per key frame (`CogVideoConfig(motion="compass", compass_step_px=2)`), the
next key frame *is* the last one with each digit shifted by a cell. So the choice can be made
at the level of the digit:

1. the first key frame is drawn as usual, code by code;
2. each later key frame: split the last one's ink (every code but the empty code 0) into its
   connected blobs, the digits, and propose every shift of each blob by one cell or none
   (9 per digit, 81 for two), dropping those that push ink off the grid or land two blobs
   on one cell (they would fuse for good);
3. score each proposal by the stage's own log-likelihood of that whole frame given the caption
   and the frames so far (with classifier-free guidance, the same arithmetic on log-likelihoods:
   log p_c + (w − 1)(log p_c − log p_u)), and draw one with probability ∝ exp(score / T_move).

The moves come from the trained stage (what its caption says and what the frames so far
imply), the shapes from the first key frame. It is CogView's *self-reranking* (Ding et al., 2021:
many candidates, scored by the model's own likelihood) applied per key frame to a small,
structured set of candidates. It only fits clips whose key frames are whole cells apart.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from minivideo.models.cogvideo.generation import (
    _generator,
    _sample_frames,
    _sampling_kwargs,
    caption_free,
    check_guidance,
    check_stage,
    interpolate,
)
from minivideo.models.cogvideo.layout import KEYFRAME_STRIDE, digit_free, video_sequence
from minivideo.models.cogvideo.model import CogVideo, DualCache

EMPTY = 0  # the frame tokenizer's reserved background code
MOVES = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def blobs(grid: np.ndarray, max_blobs: int = 2) -> np.ndarray:
    """Label the ink cells (code ≠ EMPTY) of a code grid (h, w) by 8-connected blob, largest
    first: 1..max_blobs, 0 for background. Smaller specks join the nearest kept blob."""
    ink = grid != EMPTY
    labels = np.zeros(grid.shape, dtype=np.int64)
    sizes, count = [], 0
    for start in zip(*np.nonzero(ink), strict=True):
        if labels[start]:
            continue
        count += 1
        stack, size = [start], 0
        labels[start] = count
        while stack:
            y, x = stack.pop()
            size += 1
            for dy, dx in itertools.product((-1, 0, 1), repeat=2):
                ny, nx = y + dy, x + dx
                if 0 <= ny < grid.shape[0] and 0 <= nx < grid.shape[1] and ink[ny, nx] \
                        and not labels[ny, nx]:
                    labels[ny, nx] = count
                    stack.append((ny, nx))
        sizes.append(size)
    if count == 0:
        return labels
    if count < max_blobs:  # digits that touch form one blob: split the largest in space
        largest = int(np.argmax(sizes)) + 1
        cells = np.argwhere(labels == largest)
        parts = split(cells, max_blobs - count + 1)
        for part in range(1, parts.max() + 1):
            count += 1
            labels[tuple(cells[parts == part].T)] = count
        sizes = [int((labels == k).sum()) for k in range(1, count + 1)]
    order = np.argsort(sizes)[::-1]  # blob ids by size, largest first
    rank = np.zeros(count + 1, dtype=np.int64)
    rank[order[:max_blobs] + 1] = np.arange(1, min(max_blobs, count) + 1)
    kept = rank[labels] * ink
    cells = {k: np.argwhere(kept == k) for k in range(1, min(max_blobs, count) + 1)}
    for y, x in np.argwhere(ink & (kept == 0)):  # a speck joins the nearest kept blob
        kept[y, x] = min(cells, key=lambda k: np.abs(cells[k] - (y, x)).max(1).min())
    return kept


def split(cells: np.ndarray, parts: int, iterations: int = 10) -> np.ndarray:
    """k-means of cell coordinates (n, 2) into `parts` groups (labels 0..parts-1), started from
    cells spread along the blob's long axis (deterministic)."""
    if len(cells) < parts:
        return np.arange(len(cells))
    centred = cells - cells.mean(0)
    axis = np.linalg.svd(centred.astype(float), full_matrices=False)[2][0]
    order = np.argsort(centred @ axis, kind="stable")
    centres = cells[order[np.linspace(0, len(cells) - 1, parts).round().astype(int)]].astype(float)
    for _ in range(iterations):
        labels = np.argmin(((cells[:, None] - centres[None]) ** 2).sum(-1), 1)
        centres = np.stack([cells[labels == k].mean(0) if (labels == k).any() else centres[k]
                            for k in range(parts)])
    return labels


def proposals(grid: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """Every way to shift each blob of `grid` by one of MOVES without losing ink off the grid
    or landing two blobs on one cell: frames (p, h, w) and the moves (one (dy, dx) per blob)
    that made each."""
    h, w = grid.shape
    ids = [k for k in range(1, labels.max() + 1)]
    frames, moves = [], []
    for combo in itertools.product(MOVES, repeat=len(ids)):
        frame = np.full_like(grid, EMPTY)
        claimed = np.zeros(grid.shape, dtype=bool)
        ok = True
        for k, (dy, dx) in zip(ids, combo, strict=True):
            ys, xs = np.nonzero(labels == k)
            if ys.min() + dy < 0 or ys.max() + dy >= h or xs.min() + dx < 0 or xs.max() + dx >= w:
                ok = False
                break
            # two blobs landing on one cell would fuse into one blob for good: not proposed
            if claimed[ys + dy, xs + dx].any():
                ok = False
                break
            frame[ys + dy, xs + dx] = grid[ys, xs]
            claimed[ys + dy, xs + dx] = True
        if ok:
            frames.append(frame)
            moves.append(combo)
    if not frames:  # nothing can move (one blob filling the grid): keep the frame
        return grid[None].copy(), [tuple((0, 0) for _ in ids)]
    return np.stack(frames), moves


@torch.no_grad()
def frame_log_likelihood(model: CogVideo, captions: torch.Tensor, frames: torch.Tensor, *,
                         stride: int = KEYFRAME_STRIDE, guidance: float = 1.0,
                         batch_size: int = 128) -> torch.Tensor:
    """Guided log-likelihood (nats) of each sequence's last frame: frames (b, f, h, w) under
    captions (b, 26); guidance w gives log p_c + (w − 1)(log p_c − log p_u). The plain path,
    whole sequences; `candidate_log_likelihood` is the fast one the search uses."""
    config = model.config
    grid = config.base.grid
    out = []
    for start in range(0, len(frames), batch_size):
        ids, clip = captions[start : start + batch_size], frames[start : start + batch_size]
        sequence = video_sequence(config, ids, stride, clip)
        variants = [sequence] + ([caption_free(sequence, config.base)] if guidance != 1.0 else [])
        scores = []
        for tokens in variants:
            logits, _ = model(tokens[:, :-1])
            logp = F.log_softmax(logits.float(), -1)[:, -grid * grid :]
            target = tokens[:, -grid * grid :]
            scores.append(logp.gather(-1, target[..., None])[..., 0].sum(-1))
        out.append(scores[0] if len(scores) == 1 else _guided(torch.stack(scores), guidance))
    return torch.cat(out)


def _guided(scores: torch.Tensor, guidance: float) -> torch.Tensor:
    """(2, n) conditional and caption-free log-likelihoods → guided ones (n)."""
    return scores[0] + (guidance - 1) * (scores[0] - scores[1])


def _select(cache: DualCache, owner: torch.Tensor) -> DualCache:
    """A cache holding cached sequence owner[i] as sequence i (one per candidate)."""
    out = DualCache(len(cache.layers))
    for (spatial, temporal), (new_spatial, new_temporal) in zip(cache.layers, out.layers,
                                                                strict=True):
        for kv, new in ((spatial, new_spatial), (temporal, new_temporal)):
            if kv.k is not None:
                new.k, new.v = kv.k[owner], kv.v[owner]
    if cache.motion is not None:  # (layers, b, heads, offsets)
        out.motion = cache.motion[:, owner]
    if cache.tokens is not None:
        out.tokens, out.pointer_table = cache.tokens[owner], cache.pointer_table[owner]
    if cache.hidden is not None:  # a bound pointer's
        out.hidden, out.pointer_digits = cache.hidden[owner], cache.pointer_digits[owner]
    return out


@torch.no_grad()
def candidate_log_likelihood(model: CogVideo, captions: torch.Tensor, history: torch.Tensor,
                             candidates: torch.Tensor, owner: torch.Tensor, *,
                             stride: int = KEYFRAME_STRIDE, guidance: float = 1.0,
                             batch_size: int = 128, per_cell: bool = False) -> torch.Tensor:
    """`frame_log_likelihood` of many candidate frames (n, h, w) after shared histories: the
    caption (b, 26) and frames so far (b, f, h, w) of candidate i are those of owner[i]. The
    shared prefix runs once and its KV cache is copied to each candidate (the fast path).
    per_cell=True: each code's own (guided) log-likelihood, (n, h · w), instead of their sum."""
    config = model.config
    prefix = video_sequence(config, captions, stride, history)
    bof = torch.full((len(prefix), 1), config.base.boi, dtype=torch.long, device=prefix.device)
    prefix = torch.cat([prefix, bof], 1)
    sides = [prefix] + ([caption_free(prefix, config.base)] if guidance != 1.0 else [])
    codes = rearrange(candidates, "n h w -> n (h w)")
    scores = []
    for side in sides:
        cache = model.new_cache()
        first, _ = model(side, cache=cache)  # its last position predicts every candidate's c0
        total = []
        for start in range(0, len(codes), batch_size):  # a copied cache per chunk: bounded memory
            part = slice(start, start + batch_size)
            rest, _ = model(codes[part, :-1], cache=_select(cache, owner[part]))
            logits = torch.cat([first[owner[part], -1:], rest], 1).float()
            logp = F.log_softmax(logits, -1).gather(-1, codes[part, :, None])[..., 0]
            total.append(logp if per_cell else logp.sum(-1))
        scores.append(torch.cat(total))
    return scores[0] if len(scores) == 1 else _guided(torch.stack(scores), guidance)


@torch.no_grad()
def search_keyframes(model: CogVideo, captions: torch.Tensor, *, guidance: float = 1.0,
                     seed: int = 0, temperature: float = 1.0, move_temperature: float = 1.0,
                     max_blobs: int = 2, given: torch.Tensor | None = None,
                     rerank: int = 1) -> tuple[torch.Tensor, list[list]]:
    """Key frames (b, 5, h, w) by move search (see the module's docstring), and the moves chosen
    (per clip, per later key frame: one (dy, dx) per blob). `given` (b, 1, h, w): the first key
    frame, instead of drawing it. `rerank` K > 1: K chains per caption, each from a first key
    frame of its own, and the one the stage scores highest (`chain_scores`) is kept."""
    if not isinstance(rerank, int) or isinstance(rerank, bool) or rerank < 1:
        raise ValueError(f"rerank must be a positive int (chains per caption), got {rerank!r}")
    many = captions.repeat_interleave(rerank, 0)  # rerank 1: the captions themselves
    given = None if given is None else given.repeat_interleave(rerank, 0)
    frames, chosen, scores = chain_scores(model, many, guidance=guidance, seed=seed,
                                          temperature=temperature, max_blobs=max_blobs,
                                          move_temperature=move_temperature, given=given)
    best = scores.view(len(captions), rerank).argmax(1).cpu()
    keep = torch.arange(len(captions)) * rerank + best
    return frames[keep.to(frames.device)], [chosen[int(i)] for i in keep]


@torch.no_grad()
def chain_scores(model: CogVideo, captions: torch.Tensor, *, guidance: float = 1.0,
                 seed: int = 0, temperature: float = 1.0, move_temperature: float = 1.0,
                 max_blobs: int = 2, given: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, list[list], torch.Tensor]:
    """`search_keyframes` once per caption, with each chain's score: the stage's guided
    log-likelihood of its first key frame plus those of the moves it chose (b,). A chain whose
    first key frame leaves no room for the caption's motion scores low: reranking by it is
    CogView's self-reranking, at the level of whole key-frame chains."""
    config = check_stage(model, "keyframes")
    guidance = check_guidance(guidance)
    if not move_temperature > 0:
        raise ValueError(f"move_temperature must be > 0, got {move_temperature!r}")
    if not isinstance(max_blobs, int) or isinstance(max_blobs, bool) or max_blobs < 1:
        raise ValueError(f"max_blobs must be a positive int (digits per clip), got {max_blobs!r}")
    grid = config.base.grid
    if given is not None and (given.dim() != 4 or len(given) != len(captions)
                              or given.shape[1] < 1 or tuple(given.shape[2:]) != (grid, grid)):
        raise ValueError(f"given must be first key frames (b, f, h, w) with b = {len(captions)}, "
                         f"f >= 1 and h = w = {grid}; got {tuple(given.shape)}")
    device = next(model.parameters()).device
    captions = captions.to(device)
    generator = _generator(seed, device)
    if given is None:
        prefix = video_sequence(config, captions, KEYFRAME_STRIDE,
                                torch.empty(len(captions), 0, grid, grid, dtype=torch.long))
        frames = _sample_frames(model, prefix, 1, guidance=guidance, generator=generator,
                                temperature=temperature, top_k=None, top_p=None, greedy=False)
    else:
        frames = given[:, :1].to(device=device, dtype=torch.long)
    total = frame_log_likelihood(model, captions, frames, guidance=guidance)
    chosen: list[list] = [[] for _ in captions]
    # a stage that learned directions without digit words scores its moves so (the digit's
    # shape is already drawn): the direction it reads is then the one it learned for every digit
    movers = digit_free(captions) if config.digit_dropout > 0 else captions
    for _ in range(len(config.frame_times) - 1):
        last = frames[:, -1].cpu().numpy()
        options = [proposals(codes, blobs(codes, max_blobs)) for codes in last]
        counts = [len(p[0]) for p in options]
        candidates = torch.from_numpy(np.concatenate([p[0] for p in options])).to(device)
        owner = torch.repeat_interleave(torch.arange(len(counts), device=device),
                                        torch.tensor(counts, device=device))
        scores = candidate_log_likelihood(model, movers, frames, candidates.long(), owner,
                                          guidance=guidance)
        picked, start = [], 0
        for i, n in enumerate(counts):
            probs = torch.softmax(scores[start : start + n] / move_temperature, 0)
            j = int(torch.multinomial(probs, 1, generator=generator))
            picked.append(candidates[start + j])
            chosen[i].append(options[i][1][j])
            total[i] += scores[start + j]
            start += n
        frames = torch.cat([frames, torch.stack(picked)[:, None]], 1)
    return frames, chosen, total


def search_text_to_video(keyframes_model: CogVideo, interp_model: CogVideo,
                         captions: torch.Tensor, *, guidance: float = 1.0, seed: int = 0,
                         temperature: float = 1.0, given: torch.Tensor | None = None,
                         max_blobs: int = 2, move_temperature: float = 1.0,
                         rerank: int = 1) -> torch.Tensor:
    """`text_to_video` with key frames by move search: caption word ids (b, 26) → codes
    (b, 17, h, w); the interpolation stage fills the middles as usual. `max_blobs`: digits a
    clip (1 for a layer, `layers.py`)."""
    keys, _ = search_keyframes(keyframes_model, captions, guidance=guidance, seed=seed,
                               temperature=temperature, given=given, max_blobs=max_blobs,
                               move_temperature=move_temperature, rerank=rerank)
    return interpolate(interp_model, captions, keys, guidance=guidance, seed=seed + 1,
                       **_sampling_kwargs(temperature, None, None, False))
