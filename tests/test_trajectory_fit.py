"""Fitting Moving MNIST's bouncing physics to tracks: exact on clean tracks, robust to noise."""

import numpy as np
import pytest
import torch

from minivideo.data.moving_mnist import MovingMNISTConfig, compass_direction, sample_trajectories
from minivideo.metrics.trajectory_fit import fit_trajectories, simulate_axis


def _tracks(num_clips: int, frames: int = 16, seed: int = 0):
    config = MovingMNISTConfig(num_frames=frames)
    t = sample_trajectories(num_clips, config, np.random.default_rng(seed))
    # what a perfect tracker sees: the pasted (integer) corner, read as its pixel's middle
    tracks = torch.from_numpy(t.positions_int + 0.5).permute(0, 2, 1, 3).reshape(-1, frames, 2)
    directions = t.directions[:, 0].reshape(-1)
    bounces = torch.from_numpy(t.bounces).permute(0, 2, 1).reshape(-1, frames)
    return tracks.float(), directions, bounces, t


def test_simulation_is_the_generators_clamp_rule():
    config = MovingMNISTConfig(num_frames=20)
    t = sample_trajectories(64, config, np.random.default_rng(3))
    unit = config.step_length * config.free_size
    start = torch.from_numpy(t.positions[:, 0] / config.free_size)  # (n, k, 2) fractions
    step = torch.from_numpy(t.velocities[:, 0] / unit * config.step_length)
    positions, hits = simulate_axis(start, step, 20)  # (n, k, 2, t)
    expected = torch.from_numpy(t.positions / config.free_size).permute(0, 2, 3, 1)
    torch.testing.assert_close(positions, expected, atol=1e-9, rtol=0)
    assert torch.equal(hits.any(dim=2), torch.from_numpy(t.bounces).permute(0, 2, 1))


def test_clean_tracks_give_the_true_directions_and_bounces():
    tracks, directions, bounces, _ = _tracks(300)
    fit = fit_trajectories(tracks)
    found = compass_direction(fit.velocity.numpy())
    # only directions within a fraction of a degree of a sector boundary may flip
    assert (found == directions).mean() >= 0.985
    assert (fit.bounces.sum(-1).clamp(max=2) == bounces.sum(-1).clamp(max=2)).float().mean() >= 0.97
    assert fit.error.median() < 0.5  # px: the fit passes through the pixel centres


def test_speed_and_start_are_recovered_to_a_fraction_of_a_pixel():
    tracks, _, _, t = _tracks(100)
    fit = fit_trajectories(tracks)
    true_velocity = torch.from_numpy(t.velocities[:, 0]).reshape(-1, 2).float()
    true_start = torch.from_numpy(t.positions[:, 0]).reshape(-1, 2).float()
    assert (fit.velocity - true_velocity).norm(dim=-1).median() < 0.05  # px per frame
    assert (fit.start - true_start).norm(dim=-1).median() < 0.5  # px


def test_noise_and_hidden_frames_are_tolerated():
    tracks, directions, _, _ = _tracks(300, seed=1)
    noisy = tracks + 0.5 * torch.randn(tracks.shape, generator=torch.Generator().manual_seed(0))
    weights = torch.ones(tracks.shape[:2])
    # a quarter of the frames are hidden (an overlap) and their corners are garbage
    hidden = torch.rand(tracks.shape[:2], generator=torch.Generator().manual_seed(1)) < 0.25
    hidden[:, 0] = False
    noisy[hidden] = 0.0
    weights[hidden] = 0.0
    fit = fit_trajectories(noisy, weights)
    assert (compass_direction(fit.velocity.numpy()) == directions).mean() >= 0.95
    # the same garbage without the weights that hide it does much worse
    blind = fit_trajectories(noisy)
    assert (compass_direction(blind.velocity.numpy()) == directions).mean() < 0.9


@pytest.mark.parametrize(("tracks", "weights", "match"), [
    (torch.zeros(3, 16), None, r"shape \(m, t, 2\)"),
    (np.zeros((3, 16, 2)), None, r"shape \(m, t, 2\)"),
    (torch.zeros(3, 1, 2), None, "at least 2 frames"),
    (torch.zeros(3, 16, 2), torch.ones(3, 15), r"weights must be a tensor of shape \(3, 16\)"),
    (torch.zeros(3, 16, 2), -torch.ones(3, 16), "non-negative"),
    (torch.full((3, 16, 2), float("nan")), None, "finite"),
])
def test_bad_tracks_are_rejected_clearly(tracks, weights, match):
    with pytest.raises(ValueError, match=match):
        fit_trajectories(tracks, weights)
