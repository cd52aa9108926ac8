"""The judge's network and how to read it: sizes, the (2+1)D model, predictions, features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from minivideo.data.moving_mnist import MovingMNISTConfig, compass_direction
from minivideo.metrics.trajectory_fit import fit_trajectories
from minivideo.utils import FromConfig

NUM_CLASSES = 10
NUM_DIRECTIONS = 8
NUM_BOUNCE_CLASSES = 3  # 0, 1, 2 or more
MIN_FRAMES = 8
MAX_FRAMES = 20  # training clips are cropped to a random length in [MIN_FRAMES, MAX_FRAMES]
CELL = 8  # pixels per side of a cell of the judge's 8×8 feature maps
IGNORE = -100  # label of a (clip, digit class) pair the loss and the accuracy skip
TEST_SEED = 1234  # the held-out clips of `held_out_clips` and of the manifest's figures


@dataclass(frozen=True)
class JudgeConfig:
    """Sizes of the judge; the defaults are the shipped checkpoint's."""

    stem_channels: tuple[int, int] = (16, 32)  # per-frame 2D convs: 64² -> 32² -> 16²
    channels: int = 64  # width of the last stem conv (16² -> 8²) and of the (2+1)D blocks
    num_blocks: int = 2  # (2+1)D blocks on the 8×8 maps
    embed_dim: int = 32  # width of each digit class's descriptor (the Fréchet embedding)
    frame_stride: int = 3  # every 3rd frame: 10.8 px of motion per step, a third of the cost

    def __post_init__(self) -> None:
        if len(self.stem_channels) != 2 or min(self.stem_channels) < 1:
            raise ValueError(f"stem_channels must be two positive ints, got {self.stem_channels}")
        for name in ("channels", "num_blocks", "embed_dim", "frame_stride"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        object.__setattr__(self, "stem_channels", tuple(self.stem_channels))


class JudgePrediction(NamedTuple):
    """What the judge reads from a batch of clips (n clips, 10 digit classes)."""

    presence: torch.Tensor  # float (n, 10): probability that each digit class appears
    present: torch.Tensor  # bool (n, 10): presence > 0.5
    directions: torch.Tensor  # int64 (n, 10): initial compass index, per digit class
    bounces: torch.Tensor  # int64 (n, 10): 0, 1 or 2 (= 2 or more), per digit class


def as_video_tensor(videos: np.ndarray | torch.Tensor, name: str = "videos",
                    min_frames: int = MIN_FRAMES) -> torch.Tensor:
    """Check videos (n, t ≥ min_frames, 64, 64), uint8 or float in [0, 1]; float32 in [0, 1]."""
    if isinstance(videos, np.ndarray):
        if videos.dtype == object or videos.dtype.kind not in "uif":
            raise TypeError(f"{name} must be uint8 or floating point in [0, 1]; got {videos.dtype}")
        videos = torch.from_numpy(np.ascontiguousarray(videos))
    if not isinstance(videos, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or torch tensor, "
                        f"got {type(videos).__name__}")
    if videos.ndim != 4 or tuple(videos.shape[2:]) != (64, 64):
        raise ValueError(f"{name} must have shape (n, t, 64, 64); got {tuple(videos.shape)}")
    if videos.shape[1] < min_frames:
        raise ValueError(f"{name} must have at least {min_frames} frames; got {videos.shape[1]}")
    if videos.dtype == torch.uint8:
        return videos.float() / 255
    if not videos.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point in [0, 1]; got {videos.dtype}")
    if videos.numel() and (not torch.isfinite(videos).all() or videos.min() < 0
                           or videos.max() > 1):
        raise ValueError(f"float {name} must hold finite values in [0, 1]; got range "
                         f"[{videos.min().item():.3g}, {videos.max().item():.3g}]")
    return videos.float()


class SpaceTimeBlock(nn.Module):
    """Residual (2+1)D block: (1×3×3) spatial conv, then (3×1×1) temporal conv, on b c t h w."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.norm1 = nn.BatchNorm3d(channels)
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """b c t h w -> b c t h w."""
        y = F.relu(self.norm1(self.spatial(x)))
        y = self.norm2(self.temporal(y))
        return F.relu(y + x)


class Judge(FromConfig, nn.Module):
    """Detect, then describe: a (2+1)D trunk, a digit detector per cell, per-digit-class heads."""

    config_class = JudgeConfig

    def __init__(self, config: JudgeConfig | None = None) -> None:
        super().__init__()
        self.config = config = JudgeConfig() if config is None else config
        c1, c2 = config.stem_channels
        self.stem = nn.Sequential(  # (b t) 1 64 64 -> (b t) c 8 8: a cell covers 8×8 px
            nn.Conv2d(1, c1, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, config.channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(config.channels), nn.ReLU(),
        )
        self.blocks = nn.Sequential(*[SpaceTimeBlock(config.channels)
                                      for _ in range(config.num_blocks)])
        # per cell and frame: the class of the digit centred there, or 10 (background)
        self.cell_head = nn.Conv3d(config.channels, NUM_CLASSES + 1, 1)
        # per cell and frame: where in the cell that centre is, (dy, dx) in cells from its middle
        self.offset_head = nn.Conv3d(config.channels, 2, 1)
        # one describer and one set of heads shared by all ten classes: what a "3" does is
        # read the way what a "7" does is read
        self.describe = nn.Sequential(nn.Linear(config.channels, config.embed_dim), nn.ReLU())
        self.direction_head = nn.Linear(config.embed_dim, NUM_DIRECTIONS)
        self.velocity_head = nn.Linear(config.embed_dim, 2)
        self.bounce_head = nn.Linear(config.embed_dim, NUM_BOUNCE_CLASSES)

    @property
    def feature_dim(self) -> int:
        """Size of `features`: ten class descriptors and ten presence scores."""
        return NUM_CLASSES * (self.config.embed_dim + 1)

    def trunk(self, videos: np.ndarray | torch.Tensor, phase: int = 0) -> torch.Tensor:
        """Feature maps (n, c, t', 8, 8) of frames phase, phase + stride, … of videos (n t h w)."""
        x = as_video_tensor(videos).to(next(self.parameters()).device)
        x = x[:, phase :: self.config.frame_stride]
        b = x.shape[0]
        x = self.stem(rearrange(x, "b t h w -> (b t) 1 h w"))
        return self.blocks(rearrange(x, "(b t) c h w -> b c t h w", b=b))

    def _read(self, videos: np.ndarray | torch.Tensor, phase: int = 0) -> dict[str, torch.Tensor]:
        """Everything the heads need: cell logits and offsets, presence, per-class descriptors."""
        maps = self.trunk(videos, phase)
        cells = self.cell_head(maps)  # n 11 t 8 8
        scores = rearrange(cells, "n k t h w -> n k t (h w)")
        evidence = scores[:, :NUM_CLASSES] - scores[:, NUM_CLASSES:]  # log-odds: digit vs none
        # a class is present if, in a typical frame, some cell is sure it holds that digit
        presence = evidence.amax(dim=-1).mean(dim=-1)  # n 10
        # where is each class? attend to the cells that look like it, frame by frame
        where = evidence.softmax(dim=-1)  # n 10 t (h w)
        pooled = torch.einsum("nkts,ncts->nktc", where, rearrange(maps, "n c t h w -> n c t (h w)"))
        return {"cells": cells, "offsets": self.offset_head(maps), "evidence": evidence,
                "presence": presence, "described": self.describe(pooled)}

    def features(self, videos: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Embedding (n, feature_dim) of videos (n, t ≥ 8, 64, 64): the layer the heads read.

        The ten class descriptors averaged over frames, and the ten presence scores.
        """
        read = self._read(videos)
        described = rearrange(read["described"].mean(dim=2), "n k d -> n (k d)")
        return torch.cat([described, read["presence"]], dim=1)

    def forward(self, videos: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """Per digit class: presence (n, 10), directions (n, 10, 8), velocity, bounces; cells."""
        return self._heads(self._read(videos))

    def _heads(self, read: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What `forward` returns, from one `_read` (of phase 0: frames 0, stride, …)."""
        first = read["described"][:, :, 0]  # n 10 d: the first frame, which sees frames 0…6
        return {
            "presence": read["presence"],
            "directions": self.direction_head(first),
            "velocity": self.velocity_head(first),
            "bounces": self.bounce_head(read["described"].mean(dim=2)),
            "cells": read["cells"],  # (n, 11, t', 8, 8): which digit is centred where
            "offsets": read["offsets"],  # (n, 2, t', 8, 8): where in its cell, (dy, dx) in cells
        }

    def _read_every_frame(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One `_read` per phase of the frame stride, so that together they see every frame."""
        return [self._read(x, phase) for phase in range(min(self.config.frame_stride, x.shape[1]))]

    @torch.no_grad()
    def track(self, videos: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per class and frame: the digit's top-left corner (n, 10, t, 2) px and confidence.

        Every frame is read (the trunk runs once per phase of its frame stride): in each, the
        cell most sure it holds the class, refined by the offset head. Confidence (n, 10, t) is
        that cell's probability of holding the class; the corner is a continuous coordinate
        (a digit pasted at integer corner c reads as about c).
        """
        x = as_video_tensor(videos)
        return self._tracks(self._read_every_frame(x), x.shape[1])

    def _tracks(self, reads: list[dict[str, torch.Tensor]],
                num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`track`'s corners and confidences from the reads of `_read_every_frame`."""
        n = reads[0]["evidence"].shape[0]
        corners = torch.zeros(n, NUM_CLASSES, num_frames, 2)
        confidence = torch.zeros(n, NUM_CLASSES, num_frames)
        width = reads[0]["offsets"].shape[-1]  # cells per row of the feature maps
        half = MovingMNISTConfig().digit_size / 2  # the corner is the centre minus half a digit
        for phase, read in enumerate(reads):
            evidence, best = read["evidence"].max(dim=-1)  # n 10 t': the surest cell per class
            offsets = rearrange(read["offsets"], "n c t h w -> n t (h w) c")
            index = rearrange(best, "n k t -> n t k")[..., None].expand(-1, -1, -1, 2)
            offset = rearrange(offsets.gather(2, index), "n t k c -> n k t c")  # in cells
            cell = torch.stack([best // width, best % width], dim=-1).to(offset.dtype)
            centre = (cell + 0.5 + offset) * CELL
            corners[:, :, phase :: self.config.frame_stride] = (centre - half).cpu()
            confidence[:, :, phase :: self.config.frame_stride] = evidence.sigmoid().cpu()
        return corners, confidence

    @torch.no_grad()
    def predict(self, videos: np.ndarray | torch.Tensor, batch_size: int = 256,
                motion: str = "fit") -> JudgePrediction:
        """Digits present, per-digit initial direction and bounce class, in batches, eval mode.

        ``motion="fit"`` (the default) reads each present class's direction and bounces from
        the bouncing trajectory fitted to its track (`minivideo.metrics.trajectory_fit`);
        ``motion="heads"`` reads them from the learned heads. Classes judged absent always get
        the heads' reading (a caption check still needs a value in their row).
        """
        if motion not in ("fit", "heads"):
            raise ValueError(f"motion must be 'fit' or 'heads', got {motion!r}")
        heads, fitted = self._readings(videos, batch_size, fit=motion == "fit")
        return fitted if motion == "fit" else heads

    @torch.no_grad()
    def _readings(self, videos: np.ndarray | torch.Tensor, batch_size: int,
                  fit: bool) -> tuple[JudgePrediction, JudgePrediction | None]:
        """The heads' prediction and, if ``fit``, the fitted one, from one pass of the trunk."""
        as_video_tensor(videos[:1])  # fail early, with the argument's name, on bad input
        was_training = self.training
        self.eval()
        parts = []
        for start in range(0, len(videos), batch_size):
            x = as_video_tensor(videos[start : start + batch_size])
            # the heads read phase 0; tracking needs every phase, phase 0 included
            reads = self._read_every_frame(x) if fit else [self._read(x)]
            out = self._heads(reads[0])
            presence = out["presence"].sigmoid().cpu()
            directions = out["directions"].argmax(-1).cpu()
            bounces = out["bounces"].argmax(-1).cpu()
            fitted_directions, fitted_bounces = directions.clone(), bounces.clone()
            present = presence > 0.5
            if fit and present.any():
                corners, confidence = self._tracks(reads, x.shape[1])
                path = fit_trajectories(corners[present], confidence[present])
                fitted_directions[present] = torch.from_numpy(
                    compass_direction(path.velocity.numpy()))
                fitted_bounces[present] = path.bounces.sum(-1).clamp(max=NUM_BOUNCE_CLASSES - 1)
            parts.append((presence, directions, bounces, fitted_directions, fitted_bounces))
        self.train(was_training)
        if not parts:
            raise ValueError("videos must hold at least one clip")
        presence, directions, bounces, fitted_directions, fitted_bounces = (
            torch.cat(p) for p in zip(*parts, strict=True))
        heads = JudgePrediction(presence, presence > 0.5, directions, bounces)
        fitted = JudgePrediction(presence, presence > 0.5, fitted_directions, fitted_bounces)
        return heads, fitted if fit else None


def build_judge(preset: str) -> Judge:
    """The judge of a preset: a toy one for tests, the shipped size, a wider one for GPUs."""
    if preset == "tiny":
        return Judge(JudgeConfig(stem_channels=(8, 16), channels=16, num_blocks=1, embed_dim=8))
    if preset == "full":
        return Judge(JudgeConfig(stem_channels=(32, 64), channels=128, num_blocks=3,
                                 embed_dim=64, frame_stride=2))
    return Judge()


def reads_digit_sets(judge: Judge, videos: np.ndarray | torch.Tensor,
                     digits: np.ndarray | torch.Tensor) -> torch.Tensor:
    """bool (n,): whether the judge reads exactly the set of digit labels (n, k) of each clip."""
    digits = torch.as_tensor(digits).long()
    wanted = torch.zeros(len(digits), 10, dtype=torch.bool)
    wanted[torch.arange(len(digits))[:, None], digits] = True
    return (judge.predict(videos).present == wanted).all(dim=1)


@torch.no_grad()
def judge_features(judge: Judge, videos: np.ndarray | torch.Tensor,
                   batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Judge features (n, judge.feature_dim) of many videos, in eval mode, on the CPU."""
    from tqdm import tqdm  # local: only the CLI wants bars; plain, so no ipywidgets needed

    if not isinstance(judge, Judge):
        raise TypeError(f"judge must be a Judge, got {type(judge).__name__}")
    if len(videos) == 0:
        raise ValueError("videos must hold at least one clip")
    as_video_tensor(videos[:1])  # fail early on a bad shape or dtype
    was_training = judge.training
    judge.eval()
    parts = [judge.features(videos[s : s + batch_size]).cpu()
             for s in tqdm(range(0, len(videos), batch_size), desc="judge features",
                           disable=not progress)]
    judge.train(was_training)
    return torch.cat(parts)

