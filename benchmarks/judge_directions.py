"""Where does the judge miss directions? Accuracy against distance to a compass-sector boundary.

    python benchmarks/judge_directions.py [--clips 1000] [--checkpoint judge.pt]

Moving MNIST draws each direction uniformly on the circle; the judge names one of 8 compass
sectors, 45° wide. A digit moving at 22° is "right", at 23° "up-right": near a boundary only
a precise angle gives the right word. This prints, for the judge's two readings of motion —
its learned heads, and the bouncing trajectory fitted to its per-frame track (what `predict`
reports) — the direction accuracy in bands of distance to the nearest boundary and the angle
error, on held-out clips of test digits. If the judge's angle error is e, about 2·E[e⁺]/45° of
uniformly drawn directions cross a boundary: 95% accuracy needs a mean signed error of about 3°.
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
    from minivideo.data.moving_mnist import compass_direction
    from minivideo.metrics.judge import IGNORE, NUM_CLASSES, batch_targets, test_clips
    from minivideo.metrics.trajectory_fit import fit_trajectories
    from minivideo.pretrained import pretrained

    judge = pretrained("judge") if args.checkpoint is None else \
        build_model_from_checkpoint(args.checkpoint).eval()
    batch = test_clips(args.clips, 16)
    with torch.no_grad():
        out = judge(batch.videos)
    target = batch_targets(batch)["directions"]
    valid = target != IGNORE
    corners, confidence = judge.track(batch.videos)
    fit = fit_trajectories(corners[valid], confidence[valid])
    fitted = torch.full_like(target, -1)
    fitted[valid] = torch.from_numpy(compass_direction(fit.velocity.numpy()))
    right = {"learned head": out["directions"].argmax(-1) == target,
             "fitted path": fitted == target}

    # the true initial angle of each digit class present (screen up is y decreasing)
    velocity = batch.trajectories.velocities[:, 0]  # n k (y, x)
    angle = np.degrees(np.arctan2(-velocity[..., 0], velocity[..., 1]))
    true = torch.full((len(batch), NUM_CLASSES), float("nan"), dtype=torch.float64)
    rows = np.repeat(np.arange(len(batch)), batch.digits.shape[1])
    true[rows, batch.digits.reshape(-1)] = torch.from_numpy(angle.reshape(-1))
    from_centre = (torch.remainder(true / SECTOR_DEG + 0.5, 1.0) - 0.5).abs() * SECTOR_DEG
    to_boundary = SECTOR_DEG / 2 - from_centre

    print(f"{int(valid.sum())} (clip, digit) pairs with one clear direction, {args.clips} clips "
          f"of test digits")
    print(f"{'degrees to the nearest boundary':>32s} {'pairs':>6s} "
          + " ".join(f"{name:>13s}" for name in right))
    bands = ((0, 2), (2, 5), (5, 10), (10, 22.5), (0, 22.5))
    for low, high in bands:
        band = valid & (to_boundary >= low) & (to_boundary < high)
        label = "all" if (low, high) == (0, 22.5) else f"{low}–{high}"
        print(f"{label:>32s} {int(band.sum()):6d} "
              + " ".join(f"{float(r[band].float().mean()):13.1%}" for r in right.values()))
    vy, vx = out["velocity"].unbind(-1)
    readings = {"learned head": torch.rad2deg(torch.atan2(-vy, vx))[valid].double(),
                "fitted path": torch.rad2deg(torch.atan2(-fit.velocity[:, 0],
                                                         fit.velocity[:, 1])).double()}
    for name, read in readings.items():
        error = (torch.remainder(read - true[valid] + 180, 360) - 180).abs()
        print(f"{name} angle error: median {float(error.median()):.1f}°, "
              f"mean {float(error.mean()):.1f}°, 90th percentile {float(error.quantile(0.9)):.1f}°")


if __name__ == "__main__":
    main()
