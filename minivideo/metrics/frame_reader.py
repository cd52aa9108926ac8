"""The frame reader: which digits a *still* frame shows, and in which quadrant.

The judge reads clips: it pools over frames and fits trajectories, and it was trained on moving
digits. Shown one frame held still it reads only about two thirds of *real* frames (overlapping
digits and stillness cost it), so it cannot tell whether an image model such as CogView draws
what its caption asks ("digit 3 up-left and digit 7 down-right"). The digit classifier reads one
28×28 crop, and needs to be told where the digit is. This reader is built for the question:

* **Detect, per cell.** A 2D CNN shrinks the 64×64 frame to an 8×8 grid (a cell covers 8×8 px,
  like the judge's) and gives every cell ten sigmoids: "a digit of class d is centred here".
  Sigmoids, not one softmax per cell: two digits whose centres share a cell are both allowed.
  Trained on the cell of each digit's centre, on fresh frames of *training* digits warped by a
  random affine map (the judge's augmentation), one or two digits anywhere on the canvas.
* **Count, per quadrant.** A digit near a cell border splits its probability between two cells,
  so the reader sums probabilities instead of thresholding them: the expected number of digits
  of class d in a quadrant (4×4 cells) is the sum of its sixteen sigmoids, rounded. A quadrant
  border is a cell border (32 px = 4 cells), so the quadrant of a cell is exact.
* **Read a caption.** A frame shows its caption when every (digit, quadrant) count is exactly
  the caption's (`reads_frame_captions`): no digit missing, none extra, none in the wrong
  quadrant. `digits_only=True` sums over quadrants (the digits, wherever they are).

    python -m minivideo train frame-reader --config small --threads 1 \
        --out checkpoints/frame-reader.pt
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import nn
from torch.utils.data import Dataset

from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import MovingMNISTConfig, render
from minivideo.metrics.judge.training import random_affine
from minivideo.train import Target
from minivideo.utils import FromConfig

NUM_CLASSES = 10
CELL = 8  # px per side of a cell: 64 px → 8×8 cells
QUADRANTS = ("up-left", "up-right", "down-left", "down-right")  # the captions' words, in order
TEST_SEED = 4321  # the held-out frames of the manifest's figures


@dataclass(frozen=True)
class FrameReaderConfig:
    """Widths of the three strided convs (64² → 32² → 16² → 8²) and the residual blocks."""

    channels: tuple[int, int, int] = (32, 48, 64)
    num_blocks: int = 2  # residual 3×3 blocks on the 8×8 map: each cell sees its neighbours

    def __post_init__(self) -> None:
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be three positive ints, got {self.channels!r}")
        if not isinstance(self.num_blocks, int) or self.num_blocks < 0:
            raise ValueError(f"num_blocks must be a non-negative int, got {self.num_blocks!r}")
        object.__setattr__(self, "channels", tuple(self.channels))


class _Block(nn.Module):
    """conv-norm-ReLU-conv-norm plus the input: a residual 3×3 block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class FrameReader(FromConfig, nn.Module):
    """Still frames (b 64 64) → per-cell logits (b 10 8 8): is a digit of class d centred here?"""

    config_class = FrameReaderConfig

    def __init__(self, config: FrameReaderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FrameReaderConfig()
        c1, c2, c3 = config.channels
        self.stem = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.GroupNorm(8, c1), nn.ReLU(),  # 32²
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.GroupNorm(8, c2), nn.ReLU(),  # 16²
            nn.Conv2d(c2, c3, 4, stride=2, padding=1), nn.GroupNorm(8, c3), nn.ReLU(),  # 8²
            *[_Block(c3) for _ in range(config.num_blocks)],
        )  # fmt: skip
        self.head = nn.Conv2d(c3, NUM_CLASSES, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 or float [0, 1] (b 64 64) → logits (b 10 8 8)."""
        return self.head(self.stem(as_frames(frames)[:, None]))

    @torch.no_grad()
    def counts(self, frames: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """Expected digits per quadrant and class, float (b, 4, 10) (QUADRANTS order), eval mode."""
        was_training = self.training
        self.eval()
        frames = as_frames(frames)
        parts = [quadrant_counts(torch.sigmoid(self(frames[s : s + batch_size])))
                 for s in range(0, len(frames), batch_size)]
        self.train(was_training)
        return torch.cat(parts)


def as_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Check still frames (b, 64, 64), uint8 or float in [0, 1]; float32 in [0, 1]."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor or np.ndarray, got "
                        f"{type(frames).__name__}")
    if frames.dim() != 3 or tuple(frames.shape[1:]) != (64, 64):
        raise ValueError(f"frames must have shape (b, 64, 64), got {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    if not frames.is_floating_point():
        raise TypeError(f"frames must be uint8 or float in [0, 1], got {frames.dtype}")
    return frames.float()


def quadrant_counts(probabilities: torch.Tensor) -> torch.Tensor:
    """Per-cell probabilities (b, 10, 8, 8) → expected digits (b, 4, 10) per quadrant and class."""
    return rearrange(reduce(probabilities, "b c (qy h) (qx w) -> b qy qx c", "sum", qy=2, qx=2),
                     "b qy qx c -> b (qy qx) c")


def quadrant_index(corners: np.ndarray, digit_size: int = 28, canvas: int = 64) -> np.ndarray:
    """Quadrant (index into QUADRANTS) of digits whose top-left corners are (..., 2) px."""
    centre = np.asarray(corners) + digit_size / 2
    down, right = centre[..., 0] >= canvas / 2, centre[..., 1] >= canvas / 2
    return (2 * down + right).astype(np.int64)


def caption_counts(digits: np.ndarray, quadrants: np.ndarray) -> torch.Tensor:
    """The counts a caption asks for, int64 (n, 4, 10), from digits and quadrant indices (n, k)."""
    digits, quadrants = np.asarray(digits, dtype=np.int64), np.asarray(quadrants, dtype=np.int64)
    if digits.ndim != 2 or quadrants.shape != digits.shape:
        raise ValueError(f"digits and quadrants must both have shape (n, k); got {digits.shape} "
                         f"and {quadrants.shape}")
    if digits.size and (digits.min() < 0 or digits.max() >= NUM_CLASSES):
        raise ValueError(f"digits must lie in [0, {NUM_CLASSES - 1}]")
    if quadrants.size and (quadrants.min() < 0 or quadrants.max() >= len(QUADRANTS)):
        raise ValueError(f"quadrants must lie in [0, {len(QUADRANTS) - 1}]")
    wanted = np.zeros((len(digits), len(QUADRANTS), NUM_CLASSES), dtype=np.int64)
    np.add.at(wanted, (np.arange(len(digits))[:, None], quadrants, digits), 1)
    return torch.from_numpy(wanted)


@torch.no_grad()
def reads_frame_captions(reader: FrameReader, frames: torch.Tensor | np.ndarray,
                         digits: np.ndarray, quadrants: np.ndarray,
                         digits_only: bool = False) -> torch.Tensor:
    """bool (n,): whether the reader counts exactly the caption's digits (in its quadrants)."""
    if not isinstance(reader, FrameReader):
        raise TypeError(f"reader must be a FrameReader, got {type(reader).__name__}")
    wanted = caption_counts(digits, quadrants)
    if len(wanted) != len(frames):
        raise ValueError(f"digits must hold one caption per frame: {len(wanted)} captions for "
                         f"{len(frames)} frames")
    read = reader.counts(frames).round().long()
    if digits_only:
        read, wanted = read.sum(dim=1), wanted.sum(dim=1)
    return (read == wanted).flatten(1).all(dim=1)


# --------------------------------------------------------------------------- fresh frames
def still_frames(count: int, digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
                 num_digits: int = 2, augment: bool = False) -> dict[str, np.ndarray]:
    """`count` frames of `num_digits` digits at uniform corners on a 64×64 canvas, pasted as
    Moving MNIST pastes them (the brighter pixel wins): frames uint8 (n, 64, 64), digits (n, k),
    corners (n, k, 2)."""
    config = MovingMNISTConfig()
    images, labels = digits
    ids = rng.integers(len(images), size=(count, num_digits))
    chosen = images[ids]
    if augment:
        chosen = random_affine(chosen.reshape(-1, *chosen.shape[2:]), rng).reshape(chosen.shape)
    corners = rng.integers(0, config.free_size + 1, size=(count, 1, num_digits, 2))
    frames = render(chosen, corners, config.canvas_size)[:, 0]
    return {"frames": frames, "digits": labels[ids].astype(np.int64), "corners": corners[:, 0]}


class FreshStillFrames(Dataset):
    """Item i: a fresh frame of one or two training digits (a pure function of seed and i)."""

    def __init__(self, split: str = "train", seed: int = 0, augment: bool = True,
                 two_digit_share: float = 0.75) -> None:
        self.digits = load_digits(split)
        self.seed, self.augment, self.two_digit_share = seed, augment, two_digit_share

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 50, index])
        k = 2 if rng.random() < self.two_digit_share else 1
        item = still_frames(1, self.digits, rng, num_digits=k, augment=self.augment)
        target = torch.zeros(NUM_CLASSES, 8, 8)
        cells = np.clip((item["corners"][0] + 14) // CELL, 0, 7)
        for digit, (row, col) in zip(item["digits"][0], cells, strict=True):
            target[digit, row, col] = 1.0
        return {"frame": torch.from_numpy(item["frames"][0]), "cells": target}


def reader_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Binary cross-entropy per (cell, class), a plain mean over all 640 of a frame's entries.

    A plain mean keeps the sigmoids *calibrated*, which the count needs: the quadrant's sum of
    probabilities is an expected number of digits only if each is a true frequency. (Averaging
    digit cells and empty ones apart, as the judge's detection loss does, weights a digit centre
    ~400×; a first reader trained so was sure of digits in a dozen cells per frame.) The mean is
    scaled by the entries per frame, so its size is that of one frame's sum."""
    logits, target = model(batch["frame"]), batch["cells"]
    loss = F.binary_cross_entropy_with_logits(logits, target) * target[0].numel()
    counts_right = (quadrant_counts(torch.sigmoid(logits.detach())).round()
                    == quadrant_counts(target)).flatten(1).all(dim=1)
    return loss, {"frames_read": float(counts_right.float().mean())}


@torch.no_grad()
def evaluate_reader(model: nn.Module, num_frames: int = 2000) -> dict[str, float]:
    """The manifest's figures, on frames of the 1,000 held-out test digits (no augmentation):
    frames read exactly (digits in their quadrants, and digits anywhere), two digits and one."""
    model = model.cpu()
    figures = {}
    for k in (2, 1):
        rng = np.random.default_rng(TEST_SEED + k)
        test = still_frames(num_frames, load_digits("test"), rng, num_digits=k)
        quadrants = quadrant_index(test["corners"])
        for digits_only, name in ((False, "quadrants"), (True, "digits")):
            read = reads_frame_captions(model, test["frames"], test["digits"], quadrants,
                                        digits_only=digits_only)
            figures[f"test_{k}digit_{name}_read"] = round(float(read.float().mean()), 4)
    figures["test_frames"] = num_frames
    return figures


TARGET = Target(
    description="frame reader: the digits a still frame shows and their quadrants (2D CNN)",
    build_model=lambda preset: FrameReader(
        {"tiny": FrameReaderConfig(channels=(16, 16, 32), num_blocks=1),
         "full": FrameReaderConfig(channels=(32, 64, 96), num_blocks=3)}.get(preset)),
    build_dataset=lambda preset, seed: FreshStillFrames("train", seed=seed),
    loss_fn=reader_loss,
    schedules={
        "tiny": dict(steps=40, batch_size=16, lr=3e-3, warmup_steps=5),
        "small": dict(steps=4000, batch_size=64, lr=2e-3, warmup_steps=100, weight_decay=0.01),
        "full": dict(steps=10000, batch_size=64, lr=2e-3, warmup_steps=200, weight_decay=0.01),
    },
    evaluate=evaluate_reader,
    notes="trained on fresh frames of the 4,000 bundled training digits (random affine warps; "
          "one digit in a quarter of the frames, two in the rest; corners uniform on the "
          f"canvas); test_*: frames of the 1,000 test digits (seed {TEST_SEED} + digits), read "
          "exactly: each (quadrant, digit) count, or each digit's count anywhere",
)
