"""Prediction error of video continuation: MSE, SSIM and PSNR against the true future.

A continuation task shows a model the first frames of a clip and asks for the rest. With one
true future, the natural score is a distance per future frame, reported frame by frame (error
grows with the horizon) and averaged:

* MSE — the per-frame *sum* over the 64×64 pixels of squared errors, values in [0, 1] (the
  convention of the Moving MNIST literature, e.g. Srivastava et al. 2015: "per-frame MSE");
* SSIM — structural similarity, higher is better, 1 for a perfect frame;
* PSNR — 10·log10(1 / mean squared error) in dB, higher is better.

A *stochastic* model (several plausible futures) is unfairly punished by a single sample: the
true future is one of many. The usual protocol (Denton & Fergus, 2018) draws k samples per clip
and reports the best one per clip — chosen by each metric's average over the future frames —
which measures whether the truth is among what the model can produce, not how often. The mean
over the k samples is reported beside it: the gap between the two is the model's spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from minivideo.metrics.image import psnr, sse_per_frame, ssim

METRICS = ("mse", "ssim", "psnr")
HIGHER_IS_BETTER = {"mse": False, "ssim": True, "psnr": True}


@dataclass
class PredictionError:
    """Scores of predicted futures: per future frame (t,) and averaged over frames and clips."""

    per_frame: dict[str, torch.Tensor]  # metric -> (t,), mean over clips (best sample if k > 1)
    mean: dict[str, float]  # metric -> average over frames and clips (best sample if k > 1)
    num_samples: int  # k: 1 for a deterministic model
    mean_of_samples: dict[str, float] | None = None  # k > 1: the average over all k samples

    def rows(self) -> list[tuple[str, float, float | None]]:
        """(metric, best-of-k or single value, mean over samples or None) for a table."""
        extra = self.mean_of_samples or {}
        return [(m, self.mean[m], extra.get(m)) for m in METRICS]


def split_context(videos: np.ndarray | torch.Tensor, context_frames: int,
                  name: str = "videos") -> tuple[torch.Tensor, torch.Tensor]:
    """Split clips (..., t, h, w) into the shown context (..., K, h, w) and the future."""
    if not isinstance(context_frames, int) or context_frames < 1:
        raise ValueError(f"context_frames must be a positive int, got {context_frames!r}")
    x = _as_float_video(videos, name)
    if x.ndim < 3 or x.shape[-3] <= context_frames:
        raise ValueError(f"{name} must have more than context_frames={context_frames} frames "
                         f"on axis -3; got shape {tuple(x.shape)}")
    return x[..., :context_frames, :, :], x[..., context_frames:, :, :]


def _as_float_video(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """uint8 or float [0, 1] numpy/torch array -> float64 tensor in [0, 1]."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "uif":
            raise TypeError(f"{name} must be uint8 or float in [0, 1]; got {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.double() / 255
    if not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 or float in [0, 1]; got {x.dtype}")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"float {name} must hold finite values in [0, 1]; got range "
                         f"[{x.min().item():.3g}, {x.max().item():.3g}]")
    return x.double()


def prediction_error(predictions: np.ndarray | torch.Tensor,
                     target: np.ndarray | torch.Tensor) -> PredictionError:
    """Per-frame MSE (pixel sum), SSIM, PSNR of predicted futures against the true ones.

    predictions: (n, t, h, w) for one future per clip, or (n, k, t, h, w) for k samples per clip
    (best-of-k per clip and metric); target: (n, t, h, w). uint8, or float in [0, 1].
    """
    pred = _as_float_video(predictions, "predictions")
    true = _as_float_video(target, "target")
    if true.ndim != 4:
        raise ValueError(f"target must have shape (n, t, h, w); got {tuple(true.shape)}")
    if pred.ndim == 4:
        pred = pred[:, None]  # one sample: k = 1
    if pred.ndim != 5 or pred.shape[:1] + pred.shape[2:] != true.shape:
        n, t, h, w = true.shape
        raise ValueError(f"predictions must have shape ({n}, {t}, {h}, {w}) or ({n}, k, {t}, "
                         f"{h}, {w}) to match target; got {tuple(pred.shape)}")
    if true.shape[0] == 0 or true.shape[1] == 0:
        raise ValueError(f"need at least one clip and one frame; got target {tuple(true.shape)}")
    if min(true.shape[2:]) < 11:
        raise ValueError(f"frames must be at least 11×11 (the SSIM window); got {true.shape[2:]}")
    k = pred.shape[1]
    truth = true[:, None].expand_as(pred)  # n k t h w
    scores = {"mse": sse_per_frame(pred, truth), "ssim": ssim(pred, truth),
              "psnr": psnr(pred, truth)}  # metric -> (n, k, t)
    per_frame, mean = {}, {}
    for name, score in scores.items():
        per_clip = score.mean(dim=2)  # (n, k): each sample's average over the future frames
        pick = per_clip.argmax(1) if HIGHER_IS_BETTER[name] else per_clip.argmin(1)
        best = score[torch.arange(len(score)), pick]  # (n, t): the chosen sample of each clip
        per_frame[name] = best.mean(dim=0)
        mean[name] = float(best.mean())
    mean_of_samples = {name: float(s.mean()) for name, s in scores.items()} if k > 1 else None
    return PredictionError(per_frame, mean, k, mean_of_samples)
