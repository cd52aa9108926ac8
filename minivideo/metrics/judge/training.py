"""Training the judge: labels, fresh augmented clips, the loss and the `TARGET` recipe."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.data import Dataset

from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import (
    MovingMNISTBatch,
    MovingMNISTConfig,
    render,
    sample_trajectories,
)
from minivideo.metrics.judge.model import (
    CELL,
    IGNORE,
    MAX_FRAMES,
    MIN_FRAMES,
    NUM_BOUNCE_CLASSES,
    NUM_CLASSES,
    TEST_SEED,
    build_judge,
)
from minivideo.train import Target
from minivideo.utils import to_uint8


# --------------------------------------------------------------------------- labels
def judge_targets(digits: np.ndarray, directions: np.ndarray, bounces: np.ndarray,
                  velocities: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Per-class labels (n, 10, ...) from per-slot ones (n, k): presence, direction, bounces.

    A digit class that is absent, or that appears twice with different labels, gets `IGNORE`
    for its direction / bounce label: no single answer is right, so the loss skips it.
    `velocities` (n, k, 2), if given, adds the unit initial velocity per class (zero where the
    direction is ignored).
    """
    digits, directions, bounces = (np.asarray(a, dtype=np.int64)
                                   for a in (digits, directions, bounces))
    if digits.ndim != 2 or directions.shape != digits.shape or bounces.shape != digits.shape:
        raise ValueError(f"digits, directions, bounces must all have shape (n, k); got "
                         f"{digits.shape}, {directions.shape}, {bounces.shape}")
    n, k = digits.shape
    rows = np.arange(n)
    presence = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    presence[rows[:, None], digits] = 1.0
    labels = {}
    for key, value in (("directions", directions),
                       ("bounces", np.minimum(bounces, NUM_BOUNCE_CLASSES - 1))):
        label = np.full((n, NUM_CLASSES), IGNORE, dtype=np.int64)
        seen = np.zeros((n, NUM_CLASSES), dtype=bool)
        for slot in range(k):
            d, v = digits[:, slot], value[:, slot]
            current = label[rows, d]
            # first sighting: take the label; a repeat with a different label: a clash (-1)
            label[rows, d] = np.where(~seen[rows, d], v, np.where(current == v, v, -1))
            seen[rows, d] = True
        label[label == -1] = IGNORE
        labels[key] = torch.from_numpy(label)
    targets = {"presence": torch.from_numpy(presence), **labels}
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float32)
        if velocities.shape != (n, k, 2):
            raise ValueError(f"velocities must have shape ({n}, {k}, 2); got {velocities.shape}")
        unit = velocities / np.maximum(np.linalg.norm(velocities, axis=-1, keepdims=True), 1e-8)
        velocity = np.zeros((n, NUM_CLASSES, 2), dtype=np.float32)
        for slot in reversed(range(k)):  # reversed: the first slot of a class wins, as above
            velocity[rows, digits[:, slot]] = unit[:, slot]
        velocity[labels["directions"].numpy() == IGNORE] = 0.0
        targets["velocity"] = torch.from_numpy(velocity)
    return targets


def batch_targets(batch: MovingMNISTBatch) -> dict[str, torch.Tensor]:
    """`judge_targets` of a generated batch: initial directions and bounces over the whole clip."""
    t = batch.trajectories
    return judge_targets(batch.digits, t.directions[:, 0], t.bounces.sum(axis=1),
                         t.velocities[:, 0])


def random_affine(images: np.ndarray, rng: np.random.Generator, max_degrees: float = 12.0,
                  scale: tuple[float, float] = (0.9, 1.1), max_shear: float = 0.15) -> np.ndarray:
    """Warp uint8 digits (m, s, s) by random rotations, scales and shears about their centres."""
    m = len(images)
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, m))
    zoom = rng.uniform(*scale, m)
    shear = rng.uniform(-max_shear, max_shear, m)
    cos, sin = np.cos(angle), np.sin(angle)
    # affine_grid maps *output* to input coordinates: the inverse warp, in [-1, 1] units
    theta = np.stack([np.stack([cos, -sin + shear, np.zeros(m)], -1),
                      np.stack([sin, cos, np.zeros(m)], -1)], 1) / zoom[:, None, None]
    x = torch.from_numpy(images).float()[:, None] / 255  # m 1 s s
    grid = F.affine_grid(torch.from_numpy(theta).float(), list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, align_corners=False)[:, 0]
    return to_uint8(warped)


class JudgeDataset(Dataset):
    """Fresh labelled clips on demand: item i is a pure function of (split, seed, i).

    Items hold the whole (MAX_FRAMES-frame) clip and per-frame bounce flags; `collate_clips`
    crops each batch to one random length and computes the labels of what is left.
    """

    def __init__(self, split: str = "train", num_clips: int = 2**31 - 1, seed: int = 0,
                 config: MovingMNISTConfig | None = None, augment: bool = True) -> None:
        self.digits = load_digits(split)
        self.config = MovingMNISTConfig(num_frames=MAX_FRAMES) if config is None else config
        self.num_clips, self.seed, self.split, self.augment = num_clips, seed, split, augment
        self._stream = {"train": 10, "test": 11}[split]

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self._stream, index])
        images, labels = self.digits
        ids = rng.integers(len(images), size=self.config.num_digits)
        chosen = random_affine(images[ids], rng) if self.augment else images[ids]
        trajectories = sample_trajectories(1, self.config, rng)
        video = render(chosen[None], trajectories.positions_int, self.config.canvas_size)
        return {
            "video": torch.from_numpy(video[0]),  # uint8 (t, 64, 64)
            "digits": torch.from_numpy(labels[ids].astype(np.int64)),  # (k,)
            "directions": torch.from_numpy(trajectories.directions[0, 0]),  # (k,) at frame 0
            "velocity": torch.from_numpy(trajectories.velocities[0, 0].astype(np.float32)),
            "bounce_flags": torch.from_numpy(trajectories.bounces[0]),  # bool (t, k)
            "cells": torch.from_numpy(digit_cells(trajectories.positions_int[0], self.config)),
            "centres": torch.from_numpy(digit_centres(trajectories.positions_int[0], self.config)),
            "index": index,
        }


def digit_cells(positions_int: np.ndarray, config: MovingMNISTConfig) -> np.ndarray:
    """The 8×8-px cell (row, col) holding each digit's centre: int64 (t, k, 2) from corners."""
    centre = positions_int + config.digit_size // 2
    return np.clip(centre // CELL, 0, config.canvas_size // CELL - 1).astype(np.int64)


def digit_centres(positions_int: np.ndarray, config: MovingMNISTConfig) -> np.ndarray:
    """Each digit's centre (y, x) in px, float32 (t, k, 2), from its pasted top-left corner."""
    return (positions_int + config.digit_size / 2).astype(np.float32)


def offset_loss(offsets: torch.Tensor, cells: torch.Tensor, centres: torch.Tensor,
                frame_stride: int) -> torch.Tensor:
    """Mean L1 error (in cells) of the predicted centre offsets at each digit's own cell."""
    cells, centres = cells[:, ::frame_stride], centres[:, ::frame_stride]  # (n, t', k, 2)
    n, t, k, _ = cells.shape
    clip = torch.arange(n, device=cells.device)[:, None, None]
    frame = torch.arange(t, device=cells.device)[None, :, None]
    predicted = rearrange(offsets, "n c t h w -> n t h w c")[
        clip, frame, cells[..., 0], cells[..., 1]]  # (n, t', k, 2)
    target = centres / CELL - (cells.to(centres.dtype) + 0.5)
    return (predicted - target).abs().mean()


def cell_targets(cells: torch.Tensor, digits: torch.Tensor, frame_stride: int) -> torch.Tensor:
    """Class per cell (n, t', 8, 8): the digit centred there, else 10, on the judge's frames."""
    cells = cells[:, ::frame_stride]  # (n, t', k, 2): the frames the judge looks at
    n, t, k, _ = cells.shape
    target = torch.full((n, t, 8, 8), NUM_CLASSES, dtype=torch.long, device=cells.device)
    clip = torch.arange(n, device=cells.device)[:, None]
    frame = torch.arange(t, device=cells.device)[None, :]
    for slot in range(k):
        target[clip, frame, cells[:, :, slot, 0], cells[:, :, slot, 1]] = digits[:, slot, None]
    return target


def collate_clips(items: list[dict]) -> dict[str, torch.Tensor]:
    """Stack items, crop the batch to a random length in [8, t] and label what is left.

    The length is a pure function of the items' indices, so a resumed run sees the same batches.
    """
    frames = items[0]["video"].shape[0]
    rng = np.random.default_rng([item["index"] for item in items])
    length = int(rng.integers(MIN_FRAMES, frames + 1))
    stack = {key: torch.stack([item[key] for item in items])
             for key in ("video", "digits", "directions", "velocity", "bounce_flags", "cells",
                         "centres")}
    bounces = stack["bounce_flags"][:, :length].sum(dim=1)  # walls hit inside the crop
    targets = judge_targets(stack["digits"].numpy(), stack["directions"].numpy(),
                            bounces.numpy(), stack["velocity"].numpy())
    return {"video": stack["video"][:, :length], "digits": stack["digits"],
            "cells": stack["cells"][:, :length], "centres": stack["centres"][:, :length],
            **targets}


def judge_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Presence BCE + direction CE + velocity MSE + ½ bounce CE (masked) + digit-cell CE
    + 2 × centre-offset L1."""
    out = model(batch["video"])
    presence = F.binary_cross_entropy_with_logits(out["presence"], batch["presence"])
    valid = batch["directions"] != IGNORE  # (n, 10): present classes with one clear label
    direction = F.cross_entropy(rearrange(out["directions"], "n k d -> (n k) d"),
                                batch["directions"].reshape(-1), ignore_index=IGNORE)
    velocity = (out["velocity"] - batch["velocity"]).square().sum(-1)[valid].mean()
    bounce = F.cross_entropy(rearrange(out["bounces"], "n k c -> (n k) c"),
                             batch["bounces"].reshape(-1), ignore_index=IGNORE)
    config = getattr(model, "module", model).config  # DistributedDataParallel wraps the judge
    target = cell_targets(batch["cells"], batch["digits"], config.frame_stride)
    per_cell = F.cross_entropy(out["cells"], target, reduction="none")  # (n, t', 8, 8)
    centred = target != NUM_CLASSES
    # digit cells are ~3% of all cells: average them and the background separately
    cells = per_cell[centred].mean() + per_cell[~centred].mean()
    offset = offset_loss(out["offsets"], batch["cells"], batch["centres"], config.frame_stride)
    loss = presence + direction + velocity + 0.5 * bounce + cells + 2 * offset
    return loss, {"presence": presence.item(), "direction": direction.item(),
                  "velocity": velocity.item(), "bounce": bounce.item(), "cells": cells.item(),
                  "offset": offset.item()}


TARGET = Target(
    description="Moving MNIST judge: digits, directions and bounces of a clip (R(2+1)D CNN)",
    build_model=build_judge,
    build_dataset=lambda preset, seed: JudgeDataset("train", seed=seed),
    loss_fn=judge_loss,
    collate_fn=collate_clips,
    schedules={
        "tiny": dict(steps=30, batch_size=8, lr=3e-3, warmup_steps=5),
        "small": dict(steps=2500, batch_size=32, lr=2e-3, warmup_steps=100, weight_decay=0.01),
        "full": dict(steps=20000, batch_size=64, lr=2e-3, warmup_steps=500, weight_decay=0.01),
    },
    notes="trained on fresh clips of the 4,000 bundled training digits (random affine warps, "
          "random length 8-20 frames); test{T}_*: 2,000 clips of the 1,000 test digits, T frames "
          f"(generate_clips(2000, load_digits('test'), seed={TEST_SEED})). digits: each digit's "
          "class among the m most likely (m = distinct classes in the clip); digit_sets: the "
          "set with presence > 0.5 is exactly right; directions/bounces: per present digit class "
          "with an unambiguous label",
)
