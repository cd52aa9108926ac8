"""Judge throughput and Fréchet Judge Distance cost on the CPU, measured in one run.

    python benchmarks/judge.py                      # 512 clips of 16 frames, 1 thread
    python benchmarks/judge.py --clips 2000 --threads 2

An evaluation of 2,000 generated clips against 2,000 real ones (the course's full-mode FJD)
embeds 4,000 clips and takes one Fréchet distance; this prints how long each part takes, the
clips per second, and the ratio of the whole to a 2-minute budget on a laptop CPU.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    """Time judge_features and frechet_distance; print clips/s and the budget ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="judge FILE.pt (default: shipped)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from minivideo.checkpoints import build_model_from_checkpoint
    from minivideo.metrics.frechet import frechet_distance
    from minivideo.metrics.judge import judge_features, test_clips
    from minivideo.pretrained import pretrained

    judge = pretrained("judge") if args.checkpoint is None else \
        build_model_from_checkpoint(args.checkpoint).eval()
    videos = test_clips(args.clips, num_frames=args.frames, seed=0).videos
    judge_features(judge, videos[:8])  # warm-up
    began = time.perf_counter()
    features = judge_features(judge, videos)
    embed = time.perf_counter() - began
    rate = args.clips / embed
    began = time.perf_counter()
    frechet_distance(features, features.flip(0))
    distance = time.perf_counter() - began
    full = 4000 / rate + distance  # 2,000 generated + 2,000 real clips, one distance
    print(f"judge features: {args.clips} clips × {args.frames} frames in {embed:.2f} s "
          f"= {rate:.0f} clips/s ({args.threads} thread(s)), {features.shape[1]} features")
    print(f"frechet_distance on {args.clips} × {features.shape[1]}: {distance * 1e3:.1f} ms")
    print(f"full-mode FJD (4,000 clips): {full:.0f} s = {full / 120:.2f} × the 2-minute budget")


if __name__ == "__main__":
    main()
