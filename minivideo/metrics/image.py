"""Image quality of reconstructions: PSNR, SSIM and the per-frame sum of squared errors.

Every function takes pred and target of the same shape (..., H, W), uint8 or float in [0, 1],
and returns one value per image (shape `...`), so `psnr(recon, video)` is (b, t): average it
yourself over whichever axes you mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

MAX_PSNR = 100.0  # dB reported for identical images (their MSE is 0)


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert both to float [0, 1] tensors of one shape (..., H, W)."""
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have shape (..., H, W), got {tuple(x.shape)}")
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise TypeError(f"{name} must be uint8 or float in [0, 1], got {x.dtype}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")

    def as_float(x: torch.Tensor) -> torch.Tensor:
        return x.double() / 255.0 if x.dtype == torch.uint8 else x.double()

    return as_float(pred), as_float(target)


def sse_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ over H×W of (pred − target)², values in [0, 1]: (..., H, W) → (...)."""
    pred, target = _pair(pred, target)
    return (pred - target).pow(2).sum(dim=(-2, -1)).float()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio 10·log10(1 / MSE) in dB, per image: (..., H, W) → (...)."""
    pred, target = _pair(pred, target)
    mse = (pred - target).pow(2).mean(dim=(-2, -1))
    # MSE 0 would be +inf; cap it so that averages over frames stay finite.
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-MAX_PSNR / 10)))).float()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 2D Gaussian window (size, size) of Wang et al. (2004)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size}")
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Gaussian 11×11, σ 1.5, K1 0.01, K2 0.03), mean per image.

    SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), from local Gaussian-
    weighted means, variances and covariance, averaged over the valid (unpadded) positions.
    """
    pred, target = _pair(pred, target)
    if min(pred.shape[-2:]) < window_size:
        raise ValueError(f"images must be at least {window_size}×{window_size} for SSIM, got "
                         f"{tuple(pred.shape[-2:])}")
    lead = pred.shape[:-2]
    x = rearrange(pred, "... h w -> (...) 1 h w")
    y = rearrange(target, "... h w -> (...) 1 h w")
    # The Gaussian window is separable: a column pass then a row pass costs 2·11 instead of
    # 11² multiplications per pixel, with the same result.
    g = gaussian_window(window_size, sigma).sum(dim=1).to(x)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(z, g[None, None, :, None]), g[None, None, None, :])

    c1, c2 = 0.01**2, 0.03**2  # (K·L)² with data range L = 1
    # One pass over the five maps at once: x, y, x², y², xy.
    n = x.shape[0]
    mu_x, mu_y, xx, yy, xy = blur(torch.cat([x, y, x * x, y * y, x * y])).split(n)
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov = xy - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return s.mean(dim=(-3, -2, -1)).reshape(lead).float()
