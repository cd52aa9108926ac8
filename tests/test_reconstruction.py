"""Reconstruction helpers: digit crops on hand-made frames, legibility bookkeeping, the pipeline."""

import pytest
import torch
from torch import nn

from minivideo.data import MovingMNIST, MovingMNISTConfig
from minivideo.metrics import reconstruction
from minivideo.metrics.image import MAX_PSNR
from minivideo.metrics.reconstruction import (
    digit_crops,
    evaluate_tokenizer,
    format_table,
    legibility,
)
from minivideo.pretrained import pretrained


def test_digit_crops_of_a_hand_made_frame():
    video = torch.zeros(1, 2, 64, 64)
    a = torch.arange(28 * 28, dtype=torch.float32).reshape(28, 28)
    b = -a
    video[0, 0, 3:31, 5:33] = a  # frame 0: digit 0 at (3, 5), digit 1 at (36, 20)
    video[0, 0, 36:64, 20:48] = b
    video[0, 1, 0:28, 36:64] = a  # frame 1: digit 0 in the top-right corner
    positions = torch.tensor([[[[3, 5], [36, 20]], [[0, 36], [10, 10]]]])
    crops = digit_crops(video, positions)
    assert crops.shape == (1, 2, 2, 28, 28)
    assert torch.equal(crops[0, 0, 0], a) and torch.equal(crops[0, 0, 1], b)
    assert torch.equal(crops[0, 1, 0], a)
    assert torch.equal(crops[0, 1, 1], video[0, 1, 10:38, 10:38])


def test_crops_of_generated_clips_contain_their_digits():
    data = MovingMNIST("test", num_clips=4, seed=3, config=MovingMNISTConfig(num_frames=5))
    images, _ = data.digits
    for i in range(4):
        clip = data.clip(i)
        video = torch.from_numpy(clip.videos)
        corners = torch.from_numpy(clip.trajectories.positions_int)
        crops = digit_crops(video, corners)[0]  # (t k 28 28)
        digits = torch.from_numpy(images[clip.digit_ids[0]])  # (k 28 28)
        # digits are pasted by maximum, so a crop is its digit, brightened where another overlaps
        assert torch.all(crops >= digits[None])
        assert (crops == digits[None]).float().mean() > 0.8


class _Always(nn.Module):
    """A 'classifier' that answers the same class for every crop."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(crops),), self.label), 10).float()


def test_legibility_counts_every_digit_in_every_frame():
    video = torch.zeros(2, 3, 64, 64)
    positions = torch.zeros(2, 3, 2, 2, dtype=torch.long)
    digits = torch.tensor([[7, 1], [7, 7]])  # three of the four digits are 7s
    assert legibility(_Always(7), video, digits, positions) == pytest.approx(0.75)
    assert legibility(_Always(1), video, digits, positions) == pytest.approx(0.25)


def test_the_shipped_classifier_reads_test_clips_and_not_blank_frames():
    classifier = pretrained("digit-classifier")
    clips = reconstruction.test_clips(32, num_frames=2)
    assert clips["video"].shape == (32, 2, 64, 64) and clips["positions"].dtype == torch.long
    original = legibility(classifier, clips["video"], clips["digits"], clips["positions"])
    blank = legibility(classifier, torch.zeros_like(clips["video"]), clips["digits"],
                       clips["positions"])
    # measured: 0.83 (crops also catch parts of an overlapping digit) and 0.16 (blank reads as
    # a "1": the share of 1s among these digits)
    assert original > 0.75 and blank < 0.25, (original, blank)


class _PixelTokenizer(nn.Module):
    """A perfect 'tokenizer': every pixel value is its own code (256 codes, 4096 per frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Config", (), {"num_codes": 256})()
        self.unused = nn.Parameter(torch.zeros(1))  # evaluate_tokenizer asks for the device

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video.long()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.float() / 255


def test_a_perfect_tokenizer_scores_perfectly():
    results = evaluate_tokenizer(_PixelTokenizer(), num_clips=3, num_frames=4, batch_size=2,
                                 classifier=_Always(3))
    assert results["psnr"] == MAX_PSNR and results["sse_per_frame"] < 1e-9  # float32 rounding
    assert results["ssim"] == pytest.approx(1.0)
    assert results["tokens_per_clip"] == 4 * 64 * 64
    assert results["legibility_gap_points"] == 0
    assert 1 < results["perplexity"] < 256 and 0 < results["codes_used"] <= 1
    table = format_table({"pixels": results})
    assert table.splitlines()[0].startswith("tokenizer | tokens_per_clip | psnr")
    assert "pixels | 1.638e+04 | 100" in table


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: digit_crops(torch.zeros(2, 64, 64), torch.zeros(2, 1, 1, 2, dtype=torch.long)), ValueError, r"video must be \(n, t, H, W\)"),
        (lambda: digit_crops(torch.zeros(1, 2, 64, 64), torch.zeros(1, 3, 1, 2, dtype=torch.long)), ValueError, "same n, t"),
        (lambda: digit_crops(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 1, 2)), TypeError, "integer pixel corners"),
        (lambda: digit_crops(torch.zeros(1, 1, 64, 64), torch.full((1, 1, 1, 2), 40)), ValueError, r"positions must lie in \[0, 36\]"),
        (lambda: digit_crops(torch.zeros(1, 1, 64, 64).numpy(), torch.zeros(1, 1, 1, 2)), TypeError, "video must be a torch.Tensor"),
        (lambda: reconstruction.test_clips(0), ValueError, "num_clips must be a positive int"),
    ],
)
def test_bad_input_gives_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
