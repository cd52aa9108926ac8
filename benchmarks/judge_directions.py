"""Where does the judge miss directions? Accuracy against distance to a compass-sector boundary.

    python benchmarks/judge_directions.py [--clips 1000] [--checkpoint judge.pt]

Moving MNIST draws each direction uniformly on the circle; the judge names one of 8 compass
sectors, 45° wide. A digit moving at 22° is "right", at 23° "up-right": near a boundary only
a precise angle gives the right word. This prints the judge's direction accuracy in bands of
distance to the nearest boundary, and the angle error of its velocity head, on held-out clips
of test digits. If the judge's angle error is e, about 2·E[e⁺]/45° of uniformly drawn
directions cross a boundary: 95% accuracy needs a mean signed error of about 3°.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

SECTOR_DEG = 45.0


def main() -> None:
    """Print direction accuracy per band of distance to a sector boundary, and angle errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000, help="held-out clips (default 1000)")
    parser.add_argument("--checkpoint", default=None, help="judge FILE.pt (default: shipped)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from minivideo.checkpoints import build_model_from_checkpoint
    from minivideo.metrics.judge import IGNORE, NUM_CLASSES, batch_targets, test_clips
    from minivideo.pretrained import pretrained

    judge = pretrained("judge") if args.checkpoint is None else \
        build_model_from_checkpoint(args.checkpoint).eval()
    batch = test_clips(args.clips, 16)
    with torch.no_grad():
        out = judge(batch.videos)
    target = batch_targets(batch)["directions"]
    valid = target != IGNORE
    right = out["directions"].argmax(-1) == target

    # the true initial angle of each digit class present (screen up is y decreasing)
    velocity = batch.trajectories.velocities[:, 0]  # n k (y, x)
    angle = np.degrees(np.arctan2(-velocity[..., 0], velocity[..., 1]))
    true = torch.full((len(batch), NUM_CLASSES), float("nan"), dtype=torch.float64)
    rows = np.repeat(np.arange(len(batch)), batch.digits.shape[1])
    true[rows, batch.digits.reshape(-1)] = torch.from_numpy(angle.reshape(-1))
    from_centre = (torch.remainder(true / SECTOR_DEG + 0.5, 1.0) - 0.5).abs() * SECTOR_DEG
    to_boundary = SECTOR_DEG / 2 - from_centre

    print(f"{int(valid.sum())} (clip, digit) pairs with one clear direction, {args.clips} clips "
          f"of test digits; overall accuracy {float(right[valid].float().mean()):.1%}")
    print(f"{'degrees to the nearest boundary':>32s} {'pairs':>6s} {'accuracy':>9s}")
    for low, high in ((0, 2), (2, 5), (5, 10), (10, 22.5)):
        band = valid & (to_boundary >= low) & (to_boundary < high)
        print(f"{f'{low}–{high}':>32s} {int(band.sum()):6d} "
              f"{float(right[band].float().mean()):9.1%}")
    vy, vx = out["velocity"].unbind(-1)
    read = torch.rad2deg(torch.atan2(-vy, vx)).double()
    error = (torch.remainder(read - true + 180, 360) - 180).abs()[valid]
    print(f"velocity head angle error: median {float(error.median()):.1f}°, "
          f"mean {float(error.mean()):.1f}°, 90th percentile {float(error.quantile(0.9)):.1f}°")


if __name__ == "__main__":
    main()
