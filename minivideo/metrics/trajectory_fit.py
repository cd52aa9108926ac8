"""Fit Moving MNIST's physics to a tracked digit: where it started, how it moved, when it bounced.

A network can say *where* a digit is in each frame to within a pixel or so, but a direction
read off a few frames by a learned head is coarse: the compass sectors are 45° wide, the
directions are uniform on the circle, so many digits move within a few degrees of a boundary
between two words. The generator's physics is known exactly (`minivideo.data.moving_mnist`):
each axis moves independently, p ← p + u per frame, and a coordinate that leaves the free canvas
[0, 1] is set back to the wall while that component of the velocity flips sign. So the sharpest
reading of a track is the *physically possible* trajectory closest to it:

    min over (p₀, u) of  Σₜ wₜ · (pos(p₀, u, t) − observedₜ)²,   per axis,

where pos simulates the bounces. With wall hits the objective is not smooth in (p₀, u), so it is
minimised by search: a coarse grid scored for every track at once (one matrix product — the
squared error expands into Σ w·s² − 2 Σ w·s·o + const), then a fine grid around the best coarse
candidates. The track's weights let a frame where the digit was hidden (an overlap) count less.
Fitting uses the whole clip, so a 16-frame track pins the velocity to a fraction of a pixel per
frame: a few tenths of a degree, where a per-frame difference would be off by several degrees.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch

from minivideo.data.moving_mnist import MovingMNISTConfig

MAX_SPEED = 1.25  # the search covers |u| ≤ 1.25 × the generator's step, per axis
COARSE_POSITIONS, COARSE_SPEEDS = 37, 101  # 1 px × 0.09 px/frame grid on the default canvas
REFINE = 6  # fine grid points per coarse step and side: 1/6 of a coarse step
CANDIDATES = 4  # coarse minima refined per track (a bounce can make two basins look alike)


class TrajectoryFit(NamedTuple):
    """The bouncing trajectory closest to each track (m tracks of t frames)."""

    start: torch.Tensor  # float (m, 2): top-left corner (y, x) at frame 0, in pixels
    velocity: torch.Tensor  # float (m, 2): (vy, vx) in px/frame carrying frame 0 to frame 1
    bounces: torch.Tensor  # bool (m, t): a wall was hit on the way into frame t
    error: torch.Tensor  # float (m,): weighted RMS distance (px) of the track from the fit


def _bounce_steps(start: torch.Tensor, step: torch.Tensor, num_frames: int):
    """Yield (position, hit) of one axis for frames 0 … num_frames − 1 under the clamp rule."""
    p, u = start, step
    yield p, torch.zeros_like(start, dtype=torch.bool)
    for _ in range(1, num_frames):
        p = p + u
        hit = (p < 0) | (p > 1)
        p, u = p.clamp(0, 1), torch.where(hit, -u, u)
        yield p, hit


def simulate_axis(start: torch.Tensor, step: torch.Tensor,
                  num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (..., t) in [0, 1] and wall hits (..., t) of one axis under the clamp rule."""
    positions, hits = zip(*_bounce_steps(start, step, num_frames), strict=True)
    return torch.stack(positions, -1), torch.stack(hits, -1)


@lru_cache(maxsize=8)
def _coarse_table(num_frames: int, step_length: float) -> tuple[torch.Tensor, ...]:
    """Every coarse (p₀, u) pair and its simulated positions (g, t), in canvas fractions."""
    limit = MAX_SPEED * step_length
    p0, u = torch.meshgrid(torch.linspace(0, 1, COARSE_POSITIONS, dtype=torch.float64),
                           torch.linspace(-limit, limit, COARSE_SPEEDS, dtype=torch.float64),
                           indexing="ij")
    p0, u = p0.reshape(-1), u.reshape(-1)
    positions, _ = simulate_axis(p0, u, num_frames)
    return p0, u, positions


def _fit_axis(observed: torch.Tensor, weights: torch.Tensor, step_length: float,
              chunk: int = 256) -> tuple[torch.Tensor, ...]:
    """Best (p₀, u), hits and weighted squared error per row of observed (r, t) fractions."""
    parts = [_fit_rows(observed[s : s + chunk], weights[s : s + chunk], step_length)
             for s in range(0, len(observed), chunk)]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


def _fit_rows(observed: torch.Tensor, weights: torch.Tensor,
              step_length: float) -> tuple[torch.Tensor, ...]:
    """`_fit_axis` on one chunk of rows: coarse scores by a matrix product, then a fine search."""
    r, t = observed.shape
    p0_grid, u_grid, table = _coarse_table(t, step_length)
    # Σ w (s − o)² = Σ w s² − 2 Σ w s o + Σ w o²; the last term is the same for every pair
    score = table.square() @ weights.T - 2 * table @ (weights * observed).T  # (g, r)
    best = score.topk(CANDIDATES, dim=0, largest=False).indices.T  # (r, c)
    # a fine grid spanning one coarse step either side of each candidate
    dp = 1.0 / (COARSE_POSITIONS - 1)
    du = 2 * MAX_SPEED * step_length / (COARSE_SPEEDS - 1)
    offsets = torch.linspace(-1, 1, 2 * REFINE + 1, dtype=torch.float64)
    fine_p = (p0_grid[best][..., None, None] + dp * offsets[:, None]).clamp(0, 1)  # r c f 1
    fine_u = u_grid[best][..., None, None] + du * offsets[None, :]  # r c 1 f
    fine_p, fine_u = (x.reshape(r, -1) for x in torch.broadcast_tensors(fine_p, fine_u))
    # score the fine pairs frame by frame (no (r, g, t) tensor), then replay the winner
    error = torch.zeros_like(fine_p)
    for frame, (p, _) in enumerate(_bounce_steps(fine_p, fine_u, t)):
        error += (p - observed[:, frame, None]).square() * weights[:, frame, None]
    pick = error.argmin(dim=1, keepdim=True)
    start, step = fine_p.gather(1, pick)[:, 0], fine_u.gather(1, pick)[:, 0]
    _, hits = simulate_axis(start, step, t)
    return start, step, hits, error.gather(1, pick)[:, 0]


def fit_trajectories(tracks: torch.Tensor, weights: torch.Tensor | None = None,
                     config: MovingMNISTConfig | None = None) -> TrajectoryFit:
    """The bouncing trajectory nearest each track (m, t, 2) of top-left corners (y, x) in px.

    ``weights`` (m, t) ≥ 0 say how much each frame counts (0: not seen); the track's corners
    are continuous pixel coordinates (a digit pasted at integer corner c is best described as
    c + 0.5). ``config`` gives the canvas and the step of the generator (the default's).
    """
    config = MovingMNISTConfig() if config is None else config
    if not isinstance(tracks, torch.Tensor) or tracks.ndim != 3 or tracks.shape[-1] != 2:
        shape = tuple(tracks.shape) if isinstance(tracks, torch.Tensor) else type(tracks).__name__
        raise ValueError(f"tracks must be a tensor of shape (m, t, 2) as (y, x); got {shape}")
    m, t, _ = tracks.shape
    if t < 2:
        raise ValueError(f"tracks must have at least 2 frames to show motion; got {t}")
    if weights is None:
        weights = torch.ones(m, t)
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (m, t):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else weights
        raise ValueError(f"weights must be a tensor of shape ({m}, {t}); got {shape}")
    if not torch.isfinite(tracks).all() or (weights < 0).any() or not torch.isfinite(weights).all():
        raise ValueError("tracks must be finite and weights finite and non-negative")
    free = float(config.free_size)
    # both axes as independent rows: (m 2) t, in fractions of the free canvas
    observed = tracks.double().permute(0, 2, 1).reshape(2 * m, t) / free
    w = weights.double().clamp_min(0).repeat_interleave(2, dim=0)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    p0, u, hits, error = _fit_axis(observed, w, config.step_length)
    start = (p0 * free).reshape(m, 2).float()
    velocity = (u * free).reshape(m, 2).float()
    bounces = hits.reshape(m, 2, t).any(dim=1)
    rms = (error.reshape(m, 2).sum(-1)).sqrt() * free
    return TrajectoryFit(start, velocity, bounces, rms.float())
