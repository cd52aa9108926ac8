"""Measuring the judge: its accuracies and tracking error on held-out clips of test digits."""

from __future__ import annotations

import torch
from torch import nn

from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import MovingMNISTBatch, MovingMNISTConfig, generate_clips
from minivideo.metrics.judge.model import IGNORE, TEST_SEED, Judge
from minivideo.metrics.judge.training import batch_targets


# --------------------------------------------------------------------------- accuracy
def judge_accuracy(judge: Judge, batch: MovingMNISTBatch) -> dict[str, float]:
    """The judge's accuracies on labelled clips (fractions in [0, 1]; track error in px).

    * ``digits``: per digit shown, its class is among the judge's m most likely classes, where m
      is the number of distinct classes in the clip (identity, with the count given);
    * ``digit_sets``: per clip, the set of classes with presence > 0.5 equals the true set exactly
      (identity *and* count, what caption accuracy needs);
    * ``directions``: per (clip, present class with one unambiguous label), the predicted initial
      compass direction is right — read from the fitted trajectory; ``directions_heads`` the
      same read by the learned direction head, for comparison;
    * ``bounces`` / ``bounces_heads``: the same for the bounce class (0, 1, 2+);
    * ``track_px``: median distance (px) between the tracked and the true digit corners, over
      the frames of each present class that appears once.
    """
    heads, fitted = judge._readings(batch.videos, 256, fit=True)  # both from one trunk pass
    target = batch_targets(batch)
    truth = target["presence"].bool()
    count = truth.sum(dim=1, keepdim=True)  # m per clip
    rank = fitted.presence.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = most likely
    found = (rank < count) & truth
    scores = {"digits": float(found.sum() / truth.sum()),
              "digit_sets": float((fitted.present == truth).all(dim=1).float().mean())}
    for key in ("directions", "bounces"):
        valid = target[key] != IGNORE
        for name, pred in ((key, fitted), (f"{key}_heads", heads)):
            scores[name] = float((getattr(pred, key)[valid] == target[key][valid]).float().mean())
    scores["track_px"] = tracking_error(judge, batch)
    return scores


def tracking_error(judge: Judge, batch: MovingMNISTBatch, max_clips: int = 256) -> float:
    """Median distance (px) between tracked and true corners of classes shown exactly once."""
    clips = min(len(batch), max_clips)
    corners, _ = judge.track(batch.videos[:clips])  # n 10 t 2
    truth = torch.from_numpy(batch.trajectories.positions_int[:clips]).float()  # n t k 2
    digits = torch.from_numpy(batch.digits[:clips])
    errors = []
    for slot in range(digits.shape[1]):
        d = digits[:, slot]
        once = (digits == d[:, None]).sum(dim=1) == 1
        tracked = corners[torch.arange(clips), d]  # n t 2
        errors.append((tracked - truth[:, :, slot]).norm(dim=-1)[once].reshape(-1))
    return float(torch.cat(errors).median())


def held_out_clips(num_clips: int = 2000, num_frames: int = 16, seed: int = TEST_SEED,
                   config: MovingMNISTConfig | None = None) -> MovingMNISTBatch:
    """Held-out clips of TEST digits (never seen in training) for measuring the judge."""
    config = MovingMNISTConfig(num_frames=num_frames) if config is None else config
    return generate_clips(num_clips, load_digits("test"), config, seed=seed)


def evaluate_judge(model: nn.Module, num_clips: int = 2000) -> dict[str, float]:
    """The manifest's figures: accuracies on held-out clips of test digits, 16 and 20 frames."""
    judge = model.cpu().eval()
    metrics: dict[str, float] = {}
    for frames in (16, 20, 8):
        scores = judge_accuracy(judge, held_out_clips(num_clips, frames))
        keys = scores if frames == 16 else ("digits", "directions", "directions_heads")
        metrics.update({f"test{frames}_{key}": round(scores[key], 4) for key in keys})
    return metrics
