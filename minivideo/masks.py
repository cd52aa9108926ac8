"""Attention masks used throughout the course. Boolean, True = may attend, shaped (L, S).

Video tokens are laid out in raster order over a `(t, h, w)` grid: token index
`i = (t_i * h + y_i) * w + x_i`. Every mask below is built from the coordinates of query and key
tokens, so each one reads like its definition.
"""

from __future__ import annotations

import torch

Grid = tuple[int, int, int]
AXES = ("t", "h", "w")


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_grid(grid: object) -> Grid:
    if not (isinstance(grid, (tuple, list)) and len(grid) == 3):
        raise ValueError(f"grid must be a (t, h, w) tuple of 3 positive ints, got {grid!r}")
    return tuple(_check_positive_int(f"grid[{i}]", g) for i, g in enumerate(grid))  # type: ignore[return-value]


def grid_coordinates(grid: Grid, device=None) -> torch.Tensor:
    """The (t, y, x) coordinate of each token of a raster-ordered grid, shape (t*h*w, 3)."""
    t, h, w = _check_grid(grid)
    axes = [torch.arange(n, device=device) for n in (t, h, w)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def causal_mask(n: int, *, device=None) -> torch.Tensor:
    """Token i attends to tokens 0..i: the autoregressive mask."""
    n = _check_positive_int("n", n)
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """Key-padding mask (b, 1, 1, n): sample b attends to its first lengths[b] keys only."""
    if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1 or lengths.is_floating_point():
        raise ValueError(f"lengths must be a 1-D integer tensor (b,), got {lengths!r}")
    n = _check_positive_int("n", n)
    if (lengths < 0).any() or (lengths > n).any():
        raise ValueError(f"lengths must lie in [0, n={n}], got {lengths.tolist()}")
    keys = torch.arange(n, device=lengths.device)
    return (keys[None, :] < lengths[:, None])[:, None, None, :]


def prefix_mask(prefix_len: int, n: int, *, device=None) -> torch.Tensor:
    """CogVideo's layout: the prefix (text) attends bidirectionally within itself; the rest
    (video) attends to the whole prefix and causally to earlier video tokens."""
    n = _check_positive_int("n", n)
    if not isinstance(prefix_len, int) or not 0 <= prefix_len <= n:
        raise ValueError(f"prefix_len must be an int in [0, n={n}], got {prefix_len!r}")
    mask = causal_mask(n, device=device)
    mask[:prefix_len, :prefix_len] = True
    return mask


def axial_mask(grid: Grid, axis: str, *, causal: bool = False, device=None) -> torch.Tensor:
    """Attend only along one axis of the grid: to tokens sharing the other two coordinates."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    coords = grid_coordinates(grid, device)
    others = [i for i in range(3) if i != AXES.index(axis)]
    same_line = (coords[:, None, others] == coords[None, :, others]).all(-1)
    return same_line & causal_mask(len(coords), device=device) if causal else same_line


def local_window_mask(
    grid: Grid,
    window: Grid,
    shift: Grid = (0, 0, 0),
    *,
    causal: bool = False,
    device=None,
) -> torch.Tensor:
    """Attend within non-overlapping (wt, wh, ww) windows that tile the grid.

    With a shift the tiling starts at -shift along each axis (token c is in window
    floor((c + shift) / window)), so the windows straddle the previous layer's window borders and
    edge windows are smaller. Swin gets the same masks with a cyclic roll plus a mask between
    wrapped-around regions: its roll by s equals our shift (window - s) % window, so for its usual
    half-window shift the two coincide (tests/test_masks.py checks this against Swin's recipe).
    """
    grid = _check_grid(grid)
    if not (isinstance(window, (tuple, list)) and len(window) == 3):
        raise ValueError(f"window must be a (wt, wh, ww) tuple of 3 positive ints, got {window!r}")
    if not (isinstance(shift, (tuple, list)) and len(shift) == 3):
        raise ValueError(f"shift must be a (st, sh, sw) tuple of 3 ints, got {shift!r}")
    for i, (size, offset) in enumerate(zip(window, shift, strict=True)):
        _check_positive_int(f"window[{i}]", size)
        if not isinstance(offset, int) or not 0 <= offset < size:
            raise ValueError(
                f"shift[{i}] must be an int in [0, window[{i}]={size}), got {offset!r}"
            )
    coords = grid_coordinates(grid, device)
    size = torch.tensor(window, device=coords.device)
    offset = torch.tensor(shift, device=coords.device)
    window_id = torch.div(coords + offset, size, rounding_mode="floor")  # (n, 3)
    same_window = (window_id[:, None, :] == window_id[None, :, :]).all(-1)
    return same_window & causal_mask(len(coords), device=device) if causal else same_window


def combine_masks(*masks: torch.Tensor) -> torch.Tensor:
    """Logical and of masks (a pair may be attended only if every mask allows it)."""
    if not masks:
        raise ValueError("combine_masks needs at least one mask")
    out = masks[0]
    for mask in masks[1:]:
        out = out & mask
    return out


def mask_density(mask: torch.Tensor) -> float:
    """Fraction of (query, key) pairs a mask lets through: the cost relative to full attention."""
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    return float(mask.float().mean())
