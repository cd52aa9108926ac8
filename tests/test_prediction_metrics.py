"""Prediction error: exact values on known errors, best-of-k, and clear errors on bad input."""

import numpy as np
import pytest
import torch

from minivideo.metrics.prediction import prediction_error, split_context


def clips(n=3, t=5, seed=0):
    return torch.rand(n, t, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_a_perfect_prediction_scores_zero_error_and_perfect_similarity():
    truth = clips()
    error = prediction_error(truth.clone(), truth)
    assert error.mean["mse"] == 0 and error.mean["ssim"] == pytest.approx(1.0)
    assert error.mean["psnr"] == pytest.approx(100.0)  # the cap for identical frames
    assert error.per_frame["mse"].shape == (5,) and error.num_samples == 1


def test_mse_is_the_per_frame_sum_over_pixels():
    truth = torch.full((2, 4, 64, 64), 0.5)
    error = prediction_error(truth + 0.1, truth)
    # 64 × 64 pixels × 0.1² = 40.96 per frame: the Moving MNIST literature's convention
    assert error.mean["mse"] == pytest.approx(40.96, rel=1e-5)
    assert error.mean["psnr"] == pytest.approx(20.0, rel=1e-5)  # 10·log10(1 / 0.01)
    torch.testing.assert_close(error.per_frame["mse"], torch.full((4,), 40.96))


def test_uint8_and_float_inputs_agree():
    truth = (clips() * 255).round().to(torch.uint8)
    pred = (clips(seed=1) * 255).round().to(torch.uint8)
    a = prediction_error(pred, truth)
    b = prediction_error(pred.numpy().astype(np.float32) / 255, truth.float() / 255)
    for name in ("mse", "ssim", "psnr"):
        assert a.mean[name] == pytest.approx(b.mean[name], rel=1e-5)


def test_best_of_k_picks_the_closest_sample_per_clip():
    truth = clips(n=2)
    good, bad = truth.clone(), clips(n=2, seed=5)
    # clip 0: the good sample comes second; clip 1: first
    samples = torch.stack([torch.stack([bad[0], good[0]]), torch.stack([good[1], bad[1]])])
    error = prediction_error(samples, truth)
    assert error.num_samples == 2
    assert error.mean["mse"] == 0 and error.mean["ssim"] == pytest.approx(1.0)
    assert error.mean_of_samples["mse"] > 100  # the average over samples sees the bad ones
    rows = {name: (best, mean) for name, best, mean in error.rows()}
    assert rows["mse"][0] < rows["mse"][1]


def test_split_context_returns_the_shown_and_the_future_frames():
    video = clips(t=6)
    context, future = split_context(video, 2)
    assert context.shape == (3, 2, 64, 64) and future.shape == (3, 4, 64, 64)
    torch.testing.assert_close(future, video[:, 2:].double())
    with pytest.raises(ValueError, match="more than context_frames=6"):
        split_context(video, 6)
    with pytest.raises(ValueError, match="context_frames must be a positive int"):
        split_context(video, 0)


@pytest.mark.parametrize(("pred", "target", "error", "match"), [
    (torch.rand(2, 3, 64, 64), torch.rand(2, 4, 64, 64), ValueError, r"predictions must have shape \(2, 4, 64, 64\)"),
    (torch.rand(2, 3, 64, 64), torch.rand(3, 64, 64), ValueError, r"target must have shape \(n, t, h, w\)"),
    (torch.rand(2, 3, 64, 64) * 2, torch.rand(2, 3, 64, 64), ValueError, r"float predictions must hold finite values in \[0, 1\]"),
    (torch.ones(2, 3, 64, 64, dtype=torch.int32), torch.rand(2, 3, 64, 64), TypeError, "predictions must be uint8 or float"),
    (np.zeros((2, 3, 64, 64), dtype=object), torch.rand(2, 3, 64, 64), TypeError, "predictions must be uint8 or float"),
    ([[0.5]], torch.rand(2, 3, 64, 64), TypeError, "predictions must be a numpy array or torch tensor"),
    (torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8), ValueError, "at least 11×11"),
])
def test_bad_input_is_rejected_clearly(pred, target, error, match):
    with pytest.raises(error, match=match):
        prediction_error(pred, target)
