"""Fréchet distance: zero on identical sets, exact on known Gaussians, stable when singular."""

import pytest
import torch

from minivideo.metrics.frechet import frechet_distance, frechet_distance_from_stats, sqrtm_psd


def test_a_set_against_itself_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_matches_the_closed_form_for_diagonal_gaussians():
    # d² = |μ1-μ2|² + Σ (σ1 - σ2)² for diagonal covariances
    mu1, mu2 = (
        torch.zeros(3, dtype=torch.float64),
        torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64),
    )
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    d = frechet_distance_from_stats(mu1, torch.diag(s1).double(), mu2, torch.diag(s2).double())
    expected = 5.0 + ((s1.sqrt() - s2.sqrt()) ** 2).sum().item()
    assert d == pytest.approx(expected, rel=1e-10)


def test_grows_monotonically_with_a_controlled_degradation():
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(2000, 8, generator=gen)
    noise = torch.randn(2000, 8, generator=gen)
    distances = [
        frechet_distance(real, real + level * noise) for level in (0.0, 0.25, 0.5, 1.0, 2.0)
    ]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


def test_matrix_square_root_is_stable_on_near_singular_covariances():
    gen = torch.Generator().manual_seed(2)
    low_rank = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    covariance = low_rank @ low_rank.T  # 64 x 64, rank 3
    root = sqrtm_psd(covariance)
    assert torch.isfinite(root).all()
    assert torch.allclose(root @ root, covariance, atol=1e-8)
    # fewer samples than features: covariances are singular, the distance stays finite and ~0
    few = torch.randn(10, 64, generator=gen)
    d = frechet_distance(few, few.clone())
    assert d == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (torch.randn(10), torch.randn(10, 2), "2-D tensor"),
        (torch.randn(1, 4), torch.randn(10, 4), "at least 2 samples"),
        (torch.randn(10, 4), torch.randn(10, 5), "feature sizes differ"),
        (torch.full((10, 4), float("nan")), torch.randn(10, 4), "finite"),
    ],
)
def test_bad_features_are_rejected_clearly(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)
