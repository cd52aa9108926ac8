"""`python -m minivideo eval SAMPLES.npz [--reference REAL.npz] ...`: measure generated video.

    python -m minivideo data --split test --num 500 --frames 16 --out real.npz
    python -m minivideo sample videogpt --num 500 --out samples.npz
    python -m minivideo eval samples.npz --reference real.npz
    python -m minivideo eval t2v.npz --captions                  # captions stored in t2v.npz
    python -m minivideo eval pred.npz --reference real.npz --context-frames 10 --samples-per-clip 4

What it reports (see `minivideo.metrics`):

* what the judge reads: digits seen per clip;
* with ``--reference``: the Fréchet Judge Distance (FJD) of the samples to the real clips; with
  ``--reference-points`` the reference set is split in two halves A and B and everything is
  measured against B: the floor (A vs B), degraded copies of A, and the samples;
* with ``--captions``: caption accuracy (digits, motion, both);
* with ``--context-frames K`` (and ``--reference`` holding the true clips, in the same order):
  prediction error of frames K… — MSE per frame (sum over pixels), SSIM, PSNR; best-of-k with
  ``--samples-per-clip k`` (the samples of clip i are rows i·k … i·k + k − 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from minivideo.cli.common import add_threads_option
from minivideo.data.video_files import load_video_file, read_npz
from minivideo.metrics.captions import caption_accuracy
from minivideo.metrics.frechet import frechet_distance
from minivideo.metrics.judge import MIN_FRAMES, Judge, judge_features
from minivideo.metrics.prediction import prediction_error, split_context
from minivideo.metrics.reference import DEGRADATIONS, degrade


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the eval command."""
    parser.add_argument("samples", metavar="SAMPLES.npz",
                        help="clips to measure: 'videos' (N, T ≥ 8, 64, 64), uint8 or float [0, 1]")
    parser.add_argument("--reference", default=None, metavar="REAL.npz",
                        help="REAL.npz of real clips (python -m minivideo data ...)")
    parser.add_argument("--reference-points", action="store_true",
                        help="also report the floor and degraded sets (needs --reference)")
    parser.add_argument("--captions", nargs="?", const="", default=None, metavar="FILE.npz",
                        help="caption accuracy; captions from FILE.npz, else from SAMPLES.npz")
    parser.add_argument("--context-frames", type=int, default=None, metavar="K",
                        help="prediction error of frames K.. against --reference")
    parser.add_argument("--samples-per-clip", type=int, default=1, metavar="k",
                        help="k samples per context clip, for best-of-k (default 1)")
    parser.add_argument("--judge", default=None, metavar="FILE.pt",
                        help="judge checkpoint FILE.pt (default: the shipped checkpoints/judge.pt)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--batch-size", type=int, default=128, help="clips per judge pass")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def load_videos(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz holding 'videos' (N, T ≥ 8, 64, 64), uint8 or float in [0, 1]."""
    return load_video_file(path, what, min_frames=MIN_FRAMES, floats=True)


def load_judge(path: str | None) -> Judge:
    """The judge of --judge, or the shipped one (verified against its manifest)."""
    from minivideo.checkpoints import build_model_from_checkpoint
    from minivideo.pretrained import pretrained

    judge = pretrained("judge") if path is None else build_model_from_checkpoint(path)
    if not isinstance(judge, Judge):
        raise ValueError(f"{path} holds a {type(judge).__name__}, not a Judge")
    return judge.eval()


def evaluate(args: argparse.Namespace) -> dict[str, float | int | str]:
    """Every figure the options ask for, as an ordered {name: value}."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive int, got {args.batch_size}")
    if args.samples_per_clip < 1:
        raise ValueError(f"--samples-per-clip must be a positive int, got {args.samples_per_clip}")
    needs_reference = args.reference_points or args.context_frames is not None
    if needs_reference and args.reference is None:
        raise ValueError("--reference-points and --context-frames need --reference REAL.npz")
    samples = load_videos(args.samples, "SAMPLES")
    videos = samples["videos"]
    reference = load_videos(args.reference, "--reference")["videos"] if args.reference else None
    progress = not args.no_progress
    judge = load_judge(args.judge)
    results: dict[str, float | int | str] = {"clips": len(videos), "frames": videos.shape[1]}

    features = judge_features(judge, videos, args.batch_size, progress)
    prediction = judge.predict(videos, args.batch_size)
    results["digits seen per clip"] = round(float(prediction.present.sum(1).float().mean()), 3)

    if reference is not None:
        if args.reference_points:
            half = len(reference) // 2
            base, held = reference[:half], reference[half:]
            target = judge_features(judge, held, args.batch_size, progress)
            results["FJD reference clips (B)"] = len(held)
            results["FJD floor: real A vs B"] = frechet_distance(
                judge_features(judge, base, args.batch_size), target)
            for kind in DEGRADATIONS:
                results[f"FJD {kind} A vs B"] = frechet_distance(
                    judge_features(judge, degrade(base, kind), args.batch_size), target)
            results["FJD samples vs B"] = frechet_distance(features, target)
        else:
            target = judge_features(judge, reference, args.batch_size, progress)
            results["FJD samples vs reference"] = frechet_distance(features, target)

    if args.captions is not None:
        source = args.captions or args.samples
        arrays = samples if not args.captions else load_videos_or_captions(args.captions)
        if "captions" not in arrays:
            raise ValueError(f"{source} has no 'captions' array for --captions")
        captions = [str(c) for c in arrays["captions"]]
        for key, value in caption_accuracy(judge, videos, captions, args.batch_size).items():
            results[f"caption accuracy: {key}"] = value

    if args.context_frames is not None:
        k = args.samples_per_clip
        if len(videos) != k * len(reference):
            raise ValueError(f"--context-frames pairs sample rows with reference clips: expected "
                             f"{k} × {len(reference)} = {k * len(reference)} samples, got "
                             f"{len(videos)}")
        _, future = split_context(torch.from_numpy(videos), args.context_frames, "SAMPLES")
        _, truth = split_context(torch.from_numpy(reference), args.context_frames, "--reference")
        if future.shape[1:] != truth.shape[1:]:
            raise ValueError(f"samples and reference clips differ in shape: {videos.shape[1:]} "
                             f"vs {reference.shape[1:]}")
        future = future.reshape(len(reference), k, *future.shape[1:]) if k > 1 else future
        error = prediction_error(future, truth)
        best = f"best of {k}, " if k > 1 else ""
        for name, value, mean in error.rows():
            results[f"prediction {name} ({best}frames {args.context_frames}+)"] = value
            if mean is not None:
                results[f"prediction {name} (mean of {k})"] = mean
    return results


def load_videos_or_captions(path: str) -> dict[str, np.ndarray]:
    """The arrays of a --captions file (it may hold captions only)."""
    return read_npz(path, "--captions", "expected an .npz holding 'captions', an array of strings")


def format_table(results: dict) -> str:
    """Two aligned columns: figure and value."""
    width = max(len(name) for name in results)
    rows = [f"{'figure':<{width}}  value", "-" * (width + 12)]
    for name, value in results.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append(f"{name:<{width}}  {shown}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    """Evaluate SAMPLES.npz and print the figures as a table (or JSON with --json)."""
    results = evaluate(args)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0
