"""The judge: shapes, labels, bad input, that it learns, the shipped checkpoint, and FJD."""

import json

import numpy as np
import pytest
import torch

from minivideo.data.moving_mnist import MovingMNISTConfig
from minivideo.metrics.judge import (
    IGNORE,
    MIN_FRAMES,
    TARGET,
    JudgeDataset,
    build_judge,
    collate_clips,
    judge_accuracy,
    judge_features,
    judge_loss,
    judge_targets,
    offset_loss,
    test_clips,
)
from minivideo.metrics.reference import degrade, frechet_judge_distance, reference_points
from minivideo.pretrained import available_pretrained, checkpoints_dir, pretrained
from minivideo.train import fit

SHIPPED = "judge" in available_pretrained()
needs_shipped = pytest.mark.skipif(
    not SHIPPED, reason="checkpoints/judge.pt not shipped: python -m minivideo train judge "
                        "--config small --out checkpoints/judge.pt --threads 1")


@pytest.fixture(scope="module")
def shipped():
    return pretrained("judge")


@pytest.fixture(scope="module")
def manifest():
    return json.loads((checkpoints_dir() / "judge.json").read_text())


@pytest.mark.parametrize("frames", [MIN_FRAMES, 16, 20])
def test_outputs_have_one_row_per_digit_class_for_any_length(frames):
    judge = build_judge("tiny").eval()
    out = judge(torch.rand(3, frames, 64, 64))
    assert out["presence"].shape == (3, 10) and out["directions"].shape == (3, 10, 8)
    assert out["bounces"].shape == (3, 10, 3) and out["velocity"].shape == (3, 10, 2)
    corners, confidence = judge.track(torch.rand(3, frames, 64, 64))
    assert corners.shape == (3, 10, frames, 2) and confidence.shape == (3, 10, frames)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert judge_features(judge, torch.rand(5, frames, 64, 64), batch_size=2).shape == (5, 90)


@pytest.mark.parametrize(("videos", "error", "match"), [
    (torch.rand(2, 7, 64, 64), ValueError, "at least 8 frames"),
    (torch.rand(2, 16, 32, 32), ValueError, r"shape \(n, t, 64, 64\)"),
    (torch.rand(16, 64, 64), ValueError, r"shape \(n, t, 64, 64\)"),
    (torch.ones(2, 16, 64, 64, dtype=torch.int64), TypeError, "uint8 or floating point"),
    (torch.full((2, 16, 64, 64), 255.0), ValueError, r"finite values in \[0, 1\]"),
    (np.zeros((2, 16, 64, 64), dtype=bool), TypeError, "uint8 or floating point"),
    ("clips.npz", TypeError, "numpy array or torch tensor"),
])
def test_bad_videos_are_rejected_clearly(videos, error, match):
    judge = build_judge("tiny")
    with pytest.raises(error, match=match):
        judge_features(judge, videos)
    with pytest.raises(error, match=match):
        judge.predict(videos)
    with pytest.raises(error, match=match):
        judge.track(videos)


def test_predict_rejects_an_unknown_motion_reading():
    with pytest.raises(ValueError, match="motion must be 'fit' or 'heads'"):
        build_judge("tiny").predict(torch.rand(2, 8, 64, 64), motion="guess")


def test_offset_targets_point_from_the_cell_middle_to_the_digit_centre():
    item = JudgeDataset("train", seed=5)[0]  # a clip whose two digits never share a cell
    centre, cell = item["centres"], item["cells"]  # (t, k, 2) px and cell indices
    offset = centre / 8 - (cell.float() + 0.5)
    assert ((offset >= -0.5) & (offset < 0.5)).all()
    # a perfect offset head would make the loss zero
    n, t = 1, item["video"].shape[0]
    perfect = torch.zeros(n, 2, t, 8, 8)
    for k in range(cell.shape[1]):
        perfect[0, :, torch.arange(t), cell[:, k, 0], cell[:, k, 1]] = offset[:, k].T
    assert offset_loss(perfect, cell[None], centre[None], frame_stride=1) < 1e-6
    assert offset_loss(torch.zeros_like(perfect), cell[None], centre[None], 1) > 0.05


def test_labels_are_per_digit_class_and_ambiguous_repeats_are_ignored():
    digits = np.array([[3, 7], [5, 5], [2, 2]])
    directions = np.array([[4, 0], [1, 2], [6, 6]])  # clip 1: two 5s disagree; clip 2: agree
    bounces = np.array([[0, 3], [1, 1], [0, 1]])
    t = judge_targets(digits, directions, bounces)
    assert t["presence"][0].nonzero().flatten().tolist() == [3, 7]
    assert t["directions"][0, 3] == 4 and t["directions"][0, 7] == 0
    assert t["bounces"][0, 7] == 2  # 3 bounces -> the "2 or more" class
    assert t["directions"][1, 5] == IGNORE and t["bounces"][1, 5] == 1
    assert t["directions"][2, 2] == 6 and t["bounces"][2, 2] == IGNORE
    assert (t["directions"][0, [0, 1, 2, 4, 5, 6, 8, 9]] == IGNORE).all()  # absent classes


def test_batches_are_cropped_to_one_reproducible_length_with_matching_labels():
    data = JudgeDataset("train", seed=3)
    items = [data[i] for i in range(6)]
    batch, again = collate_clips(items), collate_clips([data[i] for i in range(6)])
    length = batch["video"].shape[1]
    assert MIN_FRAMES <= length <= 20 and torch.equal(batch["video"], again["video"])
    flags = torch.stack([item["bounce_flags"] for item in items])[:, :length]
    expected = judge_targets(np.stack([i["digits"] for i in items]),
                             np.stack([i["directions"] for i in items]),
                             flags.sum(1).numpy())
    assert torch.equal(batch["bounces"], expected["bounces"])


def test_a_tiny_judge_learns_on_a_fixed_seed(one_thread):
    torch.manual_seed(0)
    judge = build_judge("tiny")
    # 80 steps on a fixed set of 64 clips: the loss must fall well below its starting value
    data = JudgeDataset("train", num_clips=64, seed=0, augment=False)
    config = TARGET.train_config("tiny", steps=80, progress=False, device="cpu")
    result = fit(judge, judge_loss, data, config, collate_fn=collate_clips)
    first = np.mean([r["loss"] for r in result.history[:5]])
    last = np.mean([r["loss"] for r in result.history[-5:]])
    assert last < 0.75 * first, (first, last)


@needs_shipped
def test_shipped_judge_reaches_its_published_accuracy(shipped, manifest):
    scores = judge_accuracy(shipped, test_clips(600, num_frames=16, seed=99))
    metrics = manifest["metrics"]
    assert metrics["test16_digits"] >= 0.97  # the goals: digit identity
    assert metrics["test16_directions"] >= 0.95  # and direction
    # reading motion off the fitted trajectory beats the learned head by a wide margin
    assert metrics["test16_directions"] > metrics["test16_directions_heads"] + 0.05
    assert metrics["test16_bounces"] > metrics["test16_bounces_heads"] + 0.05
    # 600 fresh clips (~1,100 digits, standard error ~0.7 points for directions): close to the
    # 2,000-clip figures of the manifest
    assert scores["digits"] >= metrics["test16_digits"] - 0.02, scores
    assert scores["directions"] >= metrics["test16_directions"] - 0.03, scores
    assert scores["track_px"] < 1.5, scores  # median corner error, in pixels


@needs_shipped
def test_fjd_of_a_set_against_itself_is_zero_and_grows_with_blur(shipped):
    real = test_clips(128, num_frames=16, seed=5).videos
    other = test_clips(128, num_frames=16, seed=6).videos
    assert frechet_judge_distance(shipped, real, real) == pytest.approx(0.0, abs=1e-6)
    distances = [frechet_judge_distance(shipped, degrade(other, "blur", sigma), real)
                 for sigma in (0.0, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


@needs_shipped
def test_degraded_sets_sit_above_the_real_floor(shipped):
    reference = test_clips(128, num_frames=16, seed=7).videos
    other = test_clips(128, num_frames=16, seed=8).videos  # independent real clips
    points = reference_points(shipped, reference, other)
    floor = points.pop("real (floor)")
    assert all(value > 1.25 * floor for value in points.values()), (floor, points)


def test_degradations_do_what_they_say():
    videos = test_clips(4, num_frames=8, seed=1).videos
    static = degrade(videos, "static")
    assert (static == static[:, :1]).all() and torch.equal(static[:, 0], torch.from_numpy(videos[:, 0]))
    shuffled = degrade(videos, "shuffled", seed=2).numpy()
    for clip, original in zip(shuffled, videos, strict=True):  # same frames, another order
        assert sorted(f.tobytes() for f in clip) == sorted(f.tobytes() for f in original)
    blurred = degrade(videos, "blur", 2.0).float()
    assert blurred.max() < videos.max() and abs(blurred.mean() - videos.mean()) < 1.0
    noisy = degrade(videos, "noise", 0.1, seed=0).float() / 255
    assert 0.04 < (noisy - torch.from_numpy(videos) / 255).abs().mean() < 0.1
    assert torch.equal(degrade(videos, "noise", 0.1, seed=0), degrade(videos, "noise", 0.1, seed=0))
    with pytest.raises(ValueError, match="kind must be one of"):
        degrade(videos, "jpeg")
    with pytest.raises(ValueError, match="level must be >= 0"):
        degrade(videos, "blur", -1.0)


def test_fjd_needs_two_clips_per_set():
    judge = build_judge("tiny")
    with pytest.raises(ValueError, match="reference needs at least 2 clips"):
        frechet_judge_distance(judge, torch.rand(4, 8, 64, 64), torch.rand(1, 8, 64, 64))


def test_test_clips_use_unseen_digits_and_the_asked_length():
    batch = test_clips(5, num_frames=12, seed=0)
    assert batch.videos.shape == (5, 12, 64, 64) and batch.config == MovingMNISTConfig(num_frames=12)
