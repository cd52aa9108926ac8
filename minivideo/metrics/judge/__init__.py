"""The judge: a small video classifier for Moving MNIST whose features measure generated video.

FVD embeds videos with I3D, a 3D-convolutional network trained on Kinetics, and compares the
Gaussians fitted to real and generated embeddings (see `minivideo.metrics.frechet`). Kinetics
features know nothing of white digits on black, so this course trains its own judge on the one
world it generates: Moving MNIST clips made of *training* digits, fresh clips at every step. It
reads what a caption or a physicist would check, per digit class (so "the 3 moves left" is read
off class 3): whether the class appears, its initial compass direction (8 classes; plus, as an
auxiliary target, its unit velocity, which tells the network *how far* it is from the boundary
between two compass sectors), and its number of wall bounces in the clip (0, 1 or 2+).

**Detect, then describe.** A per-frame 2D stem shrinks each 64×64 frame to an 8×8 grid of
feature vectors (a cell covers 8×8 px); residual (2+1)D blocks, R(2+1)D-style (Tran et al.,
2018), mix space with (1×3×3) convolutions and time with (3×1×1) ones — a full 3×3×3 kernel
costs 27·C² multiply-adds per output, the factorised pair (9 + 3)·C² and adds a non-linearity.

* *Detect*: a 1×1 convolution classifies every cell of every frame as "the centre of digit d"
  or background, trained with the known digit positions. One presence label per clip is a
  weak signal (a first version that pooled everything and asked only "which digits?" stayed at
  chance for hundreds of steps); the dense one teaches "what is where" quickly. A class is
  present when, in a typical frame, some cell is sure it holds that class.
* *Describe*: per class, attend to the cells that look like it (a softmax over the cell
  scores, frame by frame), pool their features, and read direction, velocity and bounces with
  heads shared by the ten classes.
* *Track, then fit the physics*: a second 1×1 convolution regresses where in its cell each
  digit centre lies (CenterNet-style offsets), so every frame places every class to about a
  pixel (`Judge.track`, every frame: the trunk runs once per phase of its frame stride). The
  motion `Judge.predict` reports is that of the bouncing trajectory closest to the track
  (`minivideo.metrics.trajectory_fit`): 16 frames of positions pin the angle to about a degree,
  where the learned direction head, reading pooled features, is off by several (95% vs 82% of
  directions right on test clips). The heads stay, as auxiliary targets and for comparison
  (``predict(..., motion="heads")``).

Everything is pooled over frames, so the judge accepts any number of frames ≥ 8; it is trained
on clips of random length 8…20 so that it does (the video models make 16 frames, the Moving
MNIST benchmark 20). The layer the heads read — ten class descriptors, averaged over frames,
and the ten presence scores — is the embedding of the Fréchet Judge Distance (`judge_features`).

Only 400 images per digit class train it (the bundled split), and the goal is to read the 100
*unseen* test images per class: each training clip draws its digits through a small random
affine warp (rotation, scale, shear), the classic MNIST augmentation, so the judge learns
handwriting rather than 4,000 particular images.

    python -m minivideo train judge --config small --out checkpoints/judge.pt --threads 1
"""

from __future__ import annotations

import functools

from minivideo.data.moving_mnist import MovingMNISTBatch
from minivideo.metrics.judge.evaluation import (
    evaluate_judge,
    held_out_clips,
    judge_accuracy,
    tracking_error,
)
from minivideo.metrics.judge.model import (
    CELL,
    IGNORE,
    MAX_FRAMES,
    MIN_FRAMES,
    NUM_BOUNCE_CLASSES,
    NUM_CLASSES,
    NUM_DIRECTIONS,
    TEST_SEED,
    Judge,
    JudgeConfig,
    JudgePrediction,
    SpaceTimeBlock,
    as_video_tensor,
    build_judge,
    judge_features,
    reads_digit_sets,
)
from minivideo.metrics.judge.training import (
    TARGET,
    JudgeDataset,
    batch_targets,
    cell_targets,
    collate_clips,
    digit_cells,
    digit_centres,
    judge_loss,
    judge_targets,
    offset_loss,
    random_affine,
)


@functools.wraps(held_out_clips)
def test_clips(*args, **kwargs) -> MovingMNISTBatch:
    """`held_out_clips` under its old name, which tests, notebooks and benchmarks import."""
    return held_out_clips(*args, **kwargs)


test_clips.__test__ = False  # a helper named test_*, not a pytest test

__all__ = [
    "CELL", "IGNORE", "MAX_FRAMES", "MIN_FRAMES", "NUM_BOUNCE_CLASSES", "NUM_CLASSES",
    "NUM_DIRECTIONS", "TARGET", "TEST_SEED", "Judge", "JudgeConfig", "JudgeDataset",
    "JudgePrediction", "SpaceTimeBlock", "as_video_tensor", "batch_targets", "build_judge",
    "cell_targets", "collate_clips", "digit_cells", "digit_centres", "evaluate_judge",
    "held_out_clips", "judge_accuracy", "judge_features", "judge_loss", "judge_targets",
    "offset_loss", "random_affine", "reads_digit_sets", "test_clips", "tracking_error",
]
