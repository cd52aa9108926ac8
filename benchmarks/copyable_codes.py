"""How much of a key frame could CogVideo-mini's temporal channel copy from the previous one?

    python benchmarks/copyable_codes.py [--clips 128] [--seed 0]

The key-frame stage draws frame k + 1 after frame k, 4 source frames later. If the moved digit
kept its codes, only shifted, the temporal channel could copy it: attention to "the cell the
digit came from" is exactly what the copy test shows it learns in minutes
(`docs/temporal_levers.py`). This script encodes clips of test digits with the shipped frame
tokenizer (`vqvae-frame-empty`, stride 8, code 0 = background) and counts, over the inked cells
of key frames 2-5, the fraction whose code equals the code of the previous key frame at the
cell shifted by one of the digits' own true displacements, rounded to whole cells: an upper
bound on what a perfect direction-following copier could take from the last frame.

It also counts, per key-frame transition (1→2, …, 4→5), how often a digit moved exactly as
its caption's *first* direction says (4 frames of its first velocity), and how often exactly as
it moved in the transition before: how much of key-frame motion the caption's first word, or
"keep going", could predict at all, with walls 36 px apart.

Three kinds of clips, 17 frames each (`minivideo.models.cogvideo.clip_config`):

* ``any``: the paper's Moving MNIST, any angle at 3.6 px per frame (key frames 14.4 px apart);
* ``compass 3.6 px``: the eight compass directions at the paper's speed, on a 3.6-px lattice;
* ``compass 4 px``: the eight compass directions at 4 px per frame on a 4-px lattice, so key
  frames are whole 8-px cells apart (``motion="compass"``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from minivideo.data.mnist import load_digits
from minivideo.models.cogvideo import COMPASS_STEP_PX, KEYFRAME_STRIDE, NUM_KEYFRAMES, clip_config
from minivideo.pretrained import pretrained
from minivideo.vqvae import encode_generated

CELL = 8  # the tokenizer's stride in pixels
EMPTY = 0  # vqvae-frame-empty's background code


def copyable_fraction(codes: torch.Tensor, positions: np.ndarray) -> float:
    """Fraction of inked key-frame codes (frames 2-5) equal to the previous key frame's code at
    the cell one digit's displacement (rounded to whole cells) away. codes (n, t, h, w),
    positions (n, t, k, 2) in pixels."""
    hits = total = 0
    for i in range(len(codes)):
        for key in range(NUM_KEYFRAMES - 1):
            t, u = key * KEYFRAME_STRIDE, (key + 1) * KEYFRAME_STRIDE
            before, after = codes[i, t], codes[i, u]
            found = torch.zeros_like(after, dtype=torch.bool)
            for shift in np.rint((positions[i, u] - positions[i, t]) / CELL).astype(int):
                found |= torch.roll(before, tuple(int(s) for s in shift), (0, 1)) == after
            inked = after != EMPTY
            hits, total = hits + int((found & inked).sum()), total + int(inked.sum())
    return hits / total


def predictable_moves(positions: np.ndarray, velocities: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per key-frame transition: the fraction of digits displaced exactly by KEYFRAME_STRIDE
    frames of their first velocity, and (from the second transition) exactly as in the one
    before. positions, velocities (n, t, k, 2) in pixels."""
    moved = positions[:, KEYFRAME_STRIDE::KEYFRAME_STRIDE] - positions[:, :-KEYFRAME_STRIDE:
                                                                       KEYFRAME_STRIDE]
    first = np.linalg.norm(moved - KEYFRAME_STRIDE * velocities[:, :1], axis=-1) < 1e-6
    again = np.linalg.norm(moved[:, 1:] - moved[:, :-1], axis=-1) < 1e-6
    return first.mean(axis=(0, 2)), again.mean(axis=(0, 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tokenizer, digits = pretrained("vqvae-frame-empty"), load_digits("test")
    print(f"{'clips':<16} {'key frames apart':>17} {'inked codes copyable':>21}   "
          "transitions 1→2 … 4→5: as the first direction says | as the one before")
    for name, motion, step in (("any", "any", None), ("compass 3.6 px", "compass", 3.6),
                               ("compass 4 px", "compass", 4)):
        config = clip_config(motion, step_px=step or COMPASS_STEP_PX)
        rng = np.random.default_rng([args.seed, 7])
        parts = list(encode_generated(tokenizer, args.clips, digits, config, rng, batch_size=64))
        codes = torch.cat([c for _, c in parts]).long()
        positions = np.concatenate([clips.trajectories.positions for clips, _ in parts])
        velocities = np.concatenate([clips.trajectories.velocities for clips, _ in parts])
        first, again = predictable_moves(positions, velocities)
        apart = KEYFRAME_STRIDE * config.speed_px
        print(f"{name:<16} {apart:>14.1f} px {copyable_fraction(codes, positions):>20.1%}   "
              f"{' '.join(f'{f:4.0%}' for f in first)} | {' '.join(f'{a:4.0%}' for a in again)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
