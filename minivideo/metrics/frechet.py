"""Fréchet distance between two sets of feature vectors (the formula behind FID and FVD).

Fit a Gaussian to each set, N(μ₁, Σ₁) and N(μ₂, Σ₂); their Fréchet (2-Wasserstein) distance is

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)

FVD computes it on features of an I3D network trained on Kinetics; this course computes it on the
features of its own Moving MNIST judge, so the number is *not* FVD and is not comparable with it.
"""

from __future__ import annotations

import torch


def _check_features(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(
            f"{name} must be a 2-D tensor (num_samples, num_features), "
            f"got {getattr(x, 'shape', type(x))}"
        )
    if x.shape[0] < 2:
        raise ValueError(
            f"{name} needs at least 2 samples to estimate a covariance, got {x.shape[0]}"
        )
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite floating-point features")
    return x.double()


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition.

    Rounding can leave tiny negative eigenvalues on near-singular covariances (fewer samples than
    features); clamping them to zero keeps the root real and stable.
    """
    symmetric = (matrix + matrix.T) / 2
    eigenvalues, eigenvectors = torch.linalg.eigh(symmetric)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (f,) and unbiased covariance (f, f) of features (n, f), in float64."""
    x = _check_features("features", features)
    return x.mean(dim=0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def frechet_distance_from_stats(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """d² between N(mu1, sigma1) and N(mu2, sigma2)."""
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    root1 = sqrtm_psd(sigma1)
    # Tr((Σ₁^½ Σ₂ Σ₁^½)^½) uses a symmetric PSD argument, unlike the common sqrtm(Σ₁ Σ₂), which
    # can go complex on nearly singular inputs.
    cross = sqrtm_psd(root1 @ sigma2 @ root1)
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross.trace()
    return float(distance.clamp(min=0))


def frechet_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (n1, f) and (n2, f)."""
    a = _check_features("features1", features1)
    b = _check_features("features2", features2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))
