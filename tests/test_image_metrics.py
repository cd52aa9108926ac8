"""PSNR, SSIM and SSE per frame: values checked by hand, identical images, shapes, bad input."""

import math

import pytest
import torch

from minivideo.metrics.image import MAX_PSNR, gaussian_window, psnr, sse_per_frame, ssim


def test_psnr_of_hand_checked_images():
    black = torch.zeros(64, 64)
    # MSE 0.01 → 10·log10(1 / 0.01) = 20 dB
    assert float(psnr(black, torch.full((64, 64), 0.1))) == pytest.approx(20.0, abs=1e-4)
    # half the pixels off by 0.5: MSE 0.125 → 10·log10(8) = 9.03 dB
    half = black.clone()
    half[:32] = 0.5
    assert float(psnr(half, black)) == pytest.approx(10 * math.log10(8), abs=1e-4)
    # uint8 is read as value / 255: white against black is MSE 1 → 0 dB
    white = torch.full((8, 8), 255, dtype=torch.uint8)
    assert float(psnr(white, torch.zeros(8, 8, dtype=torch.uint8))) == pytest.approx(0.0)


def test_psnr_of_identical_images_is_capped_and_finite():
    video = torch.rand(2, 3, 16, 16)
    values = psnr(video, video.clone())
    assert values.shape == (2, 3) and torch.all(values == MAX_PSNR)


def test_sse_per_frame_by_hand():
    pred, target = torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)
    pred[0, 1, 2] = 0.5  # one pixel off by 0.5 in image 0: 0.25
    pred[1] = 0.25  # every pixel off by 0.25 in image 1: 16 · 0.0625 = 1
    assert sse_per_frame(pred, target).tolist() == pytest.approx([0.25, 1.0])
    uint8 = torch.zeros(1, 5, 5, dtype=torch.uint8)
    uint8[0, 0, 0] = 255
    assert sse_per_frame(uint8, torch.zeros_like(uint8)).tolist() == pytest.approx([1.0])


def test_metrics_keep_the_leading_axes():
    pred, target = torch.rand(3, 5, 16, 16), torch.rand(3, 5, 16, 16)
    for metric in (psnr, sse_per_frame, ssim):
        assert metric(pred, target).shape == (3, 5)
    # per-image values: frame (1, 2) alone gives the same number as inside the batch
    assert float(ssim(pred[1, 2], target[1, 2])) == pytest.approx(float(ssim(pred, target)[1, 2]))


def test_ssim_of_constant_images_matches_the_formula():
    # constant images: σx = σy = σxy = 0, so SSIM = (2ab + C1) / (a² + b² + C1) · C2 / C2
    a, b, c1 = 0.5, 0.25, 0.01**2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    value = ssim(torch.full((20, 20), a), torch.full((20, 20), b))
    assert float(value) == pytest.approx(expected, abs=1e-6)


def test_ssim_is_one_for_identical_images_symmetric_and_drops_with_noise():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(32, 32, generator=g)
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-6)
    noisy = (image + 0.1 * torch.randn(32, 32, generator=g)).clamp(0, 1)
    noisier = (image + 0.3 * torch.randn(32, 32, generator=g)).clamp(0, 1)
    assert float(ssim(image, noisy)) == pytest.approx(float(ssim(noisy, image)), abs=1e-6)
    assert 1 > float(ssim(image, noisy)) > float(ssim(image, noisier))
    assert float(ssim(image, 1 - image)) < 0  # inverted structure: negative correlation


def test_gaussian_window_is_normalised_and_symmetric():
    window = gaussian_window(11, 1.5)
    assert window.shape == (11, 11)
    assert float(window.sum()) == pytest.approx(1.0)
    assert torch.allclose(window, window.t()) and torch.allclose(window, window.flip(0))
    assert window.argmax() == 5 * 11 + 5  # peak at the centre


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: psnr(torch.zeros(4, 4), torch.zeros(4, 5)), ValueError, "same shape"),
        (lambda: psnr(torch.zeros(4), torch.zeros(4)), ValueError, r"pred must have shape \(\.\.\., H, W\)"),
        (lambda: sse_per_frame(torch.zeros(4, 4, dtype=torch.int32), torch.zeros(4, 4)), TypeError, "pred must be uint8 or float"),
        (lambda: ssim(torch.zeros(4, 4), torch.zeros(4, 4).numpy()), TypeError, "target must be a torch.Tensor"),
        (lambda: ssim(torch.zeros(8, 8), torch.zeros(8, 8)), ValueError, "at least 11×11"),
        (lambda: gaussian_window(4), ValueError, "positive odd int"),
    ],
)
def test_bad_input_gives_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
