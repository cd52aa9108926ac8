"""`python -m minivideo eval ...`: measure generated video, tokenizers and the shipped priors.

    python -m minivideo eval tokenizer vqvae-frame vqvae-compact-t2 --num 256
    python -m minivideo eval videogpt checkpoints/videogpt.pt --num 64
    python -m minivideo eval cogvideo --num 32 --guidance 3
    python -m minivideo eval samples SAMPLES.npz [--reference REAL.npz] ...   # `samples` optional

The first three print the figures of README and the manifests (`minivideo.metrics`
`reconstruction`, `videogpt_quality`, `cogvideo_quality`). `eval samples` measures any clips:

    python -m minivideo data --split test --num 500 --num-frames 16 --out real.npz
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

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.cli.common import (
    UsageError,
    add_threads_option,
    layer_rerank,
    load_cogvideo_stages,
    middles_searched,
    positive_int,
    user_input,
)
from minivideo.data.video_files import load_video_file, read_npz
from minivideo.metrics import cogvideo_quality, reconstruction, videogpt_quality
from minivideo.metrics.captions import caption_accuracy
from minivideo.metrics.frechet import frechet_distance
from minivideo.metrics.judge import MIN_FRAMES, Judge, judge_features
from minivideo.metrics.prediction import prediction_error, split_context
from minivideo.metrics.reference import DEGRADATIONS, degrade
from minivideo.models import cogvideo
from minivideo.models.cogvideo import LAYER_RERANK
from minivideo.models.videogpt import VideoGPT
from minivideo.pretrained import available_pretrained, pretrained

KINDS = ("samples", "tokenizer", "videogpt", "cogvideo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The eval command: one sub-command per kind of figure."""
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    samples = kinds.add_parser("samples", help="measure clips in an .npz (the default kind)")
    add_samples_arguments(samples)
    samples.set_defaults(evaluate=run_samples)
    tokenizer = kinds.add_parser("tokenizer", help="reconstruction table of tokenizers")
    tokenizer.add_argument("names", nargs="+", help="shipped names (vqvae-frame) or FILE.pt")
    # --num counts in every command; --clips / --prompts are the older spellings
    tokenizer.add_argument("--num", "--clips", dest="num", type=positive_int, default=256,
                           help="held-out test clips (default 256)")
    tokenizer.add_argument("--num-frames", type=positive_int, default=16,
                           help="frames per clip (default 16)")
    tokenizer.add_argument("--classifier", default="digit-classifier",
                           help="shipped name or FILE.pt of the digit classifier ('' to skip)")
    tokenizer.set_defaults(evaluate=run_tokenizer)
    videogpt = kinds.add_parser("videogpt", help="held-out figures of a VideoGPT checkpoint")
    videogpt.add_argument("checkpoint", help="a VideoGPT FILE.pt")
    videogpt.add_argument("--num", "--clips", dest="num", type=positive_int, default=64,
                          help="test clips and samples (default 64)")
    videogpt.set_defaults(evaluate=run_videogpt)
    cogvideo = kinds.add_parser("cogvideo", help="caption accuracy of the shipped CogVideo")
    cogvideo.add_argument("--num", "--prompts", dest="num", type=positive_int, default=32,
                          help="prompts of test clips (default 32)")
    cogvideo.add_argument("--guidance", type=float, default=None,
                          help="classifier-free guidance weight (default: 2 for the layer "
                               "stages, 3 for the two-digit ones, as `sample cogvideo`)")
    cogvideo.add_argument("--temperature", type=float, default=1.0,
                          help="sampling temperature of every stage (default 1: plain sampling)")
    cogvideo.add_argument("--held-out", action="store_true",
                          help="prompts made only of (digit, direction) pairs the stages never "
                               "trained on (needs stages trained with them held out)")
    cogvideo.add_argument("--keyframes", choices=("auto", "drawn", "searched"), default="auto",
                          help="key frames drawn code by code or by move search; auto: "
                               "searched for layer stages (the default pair), else drawn")
    cogvideo.add_argument("--middles", choices=("auto", "drawn", "searched"), default="auto",
                          help="middle frames drawn by the interpolation stage or by search; "
                               "auto: LAYER_MIDDLES (drawn) for layer stages, else drawn")
    cogvideo.add_argument("--rerank", type=int, default=None,
                          help="key-frame chains per layer, the best-scored kept (default "
                               f"{LAYER_RERANK} for layer stages)")
    cogvideo.add_argument("--checkpoint", default=None,
                          help="KEYFRAMES.pt,INTERP.pt (default: the shipped layer stages; "
                               "checkpoints/cogvideo-keyframes.pt,checkpoints/cogvideo-interp.pt "
                               "for the two-digit ones)")
    cogvideo.set_defaults(evaluate=run_cogvideo)
    for sub in (tokenizer, videogpt, cogvideo):
        sub.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
        add_threads_option(sub)


def add_samples_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `eval samples`."""
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
    judge = pretrained("judge") if path is None else build_model_from_checkpoint(path)
    if not isinstance(judge, Judge):
        raise UsageError(f"{path} holds a {type(judge).__name__}, not a Judge")
    return judge.eval()


def evaluate(args: argparse.Namespace) -> dict[str, float | int | str]:
    """Every figure the options ask for, as an ordered {name: value}."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive int, got {args.batch_size}")
    if args.samples_per_clip < 1:
        raise UsageError(f"--samples-per-clip must be a positive int, got {args.samples_per_clip}")
    needs_reference = args.reference_points or args.context_frames is not None
    if needs_reference and args.reference is None:
        raise UsageError("--reference-points and --context-frames need --reference REAL.npz")
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
            raise UsageError(f"{source} has no 'captions' array for --captions")
        captions = [str(c) for c in arrays["captions"]]
        for key, value in caption_accuracy(judge, videos, captions, args.batch_size).items():
            results[f"caption accuracy: {key}"] = value

    if args.context_frames is not None:
        k = args.samples_per_clip
        if len(videos) != k * len(reference):
            raise UsageError(f"--context-frames pairs sample rows with reference clips: expected "
                             f"{k} × {len(reference)} = {k * len(reference)} samples, got "
                             f"{len(videos)}")
        _, future = split_context(torch.from_numpy(videos), args.context_frames, "SAMPLES")
        _, truth = split_context(torch.from_numpy(reference), args.context_frames, "--reference")
        if future.shape[1:] != truth.shape[1:]:
            raise UsageError(f"samples and reference clips differ in shape: {videos.shape[1:]} "
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


def run_samples(args: argparse.Namespace) -> int:
    """Evaluate SAMPLES.npz and print the figures as a table (or JSON with --json)."""
    results = evaluate(args)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def _load(name: str) -> torch.nn.Module:
    """A shipped model by name, or a FILE.pt."""
    with user_input(name):
        return (build_model_from_checkpoint(name) if name.endswith(".pt")
                else pretrained(name)).eval()


def run_tokenizer(args: argparse.Namespace) -> int:
    """The reconstruction table (PSNR, SSIM, perplexity, legibility) of tokenizers."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 (seeds code that uses the legacy global RNG)
    classifier = _load(args.classifier) if args.classifier else None
    rows = {name: reconstruction.evaluate_tokenizer(_load(name), args.num, args.num_frames,
                                                    classifier=classifier)
            for name in args.names}
    print(reconstruction.format_table(rows))
    return 0


def _print_figures(figures: dict) -> None:
    for name, value in figures.items():
        print(f"{name:28s} {value:.4g}")


def run_videogpt(args: argparse.Namespace) -> int:
    """The held-out figures of a VideoGPT checkpoint (those of its manifest)."""
    model = _load(args.checkpoint)
    if not isinstance(model, VideoGPT):
        raise UsageError(f"{args.checkpoint} holds a {type(model).__name__}, not a VideoGPT")
    _print_figures(videogpt_quality.evaluate_videogpt(model, num_clips=args.num,
                                                      seed=args.seed))
    return 0


def run_cogvideo(args: argparse.Namespace) -> int:
    """Caption accuracy of the shipped text-to-video pipeline, and of CogView's frames."""
    if args.guidance is not None and args.guidance < 0:
        raise UsageError(f"--guidance must be >= 0, got {args.guidance}")
    if not args.temperature > 0:
        raise UsageError(f"--temperature must be > 0, got {args.temperature}")
    keys, interp, search, guidance = load_cogvideo_stages(args.checkpoint, args.keyframes,
                                                          args.guidance)
    layered = keys.config.digits == 1
    judge = pretrained("judge")
    with user_input("--held-out"):
        figures = cogvideo_quality.evaluate_text_to_video(
            keys, interp, judge, num_prompts=args.num, guidance=guidance, seed=args.seed,
            held_out=args.held_out, temperature=args.temperature, search=search,
            move_temperature=cogvideo.LAYER_MOVE_TEMPERATURE if layered else 1.0,
            middle_search=middles_searched(args.middles, keys),
            rerank=layer_rerank(args.rerank, keys, search))
    # CogView's single frames, as `sample cogview` draws them (round nine: the bound CogView,
    # layered, its layers stacked apart), read by the judge and by the frame reader
    shipped = available_pretrained()
    reader = pretrained("frame-reader") if "frame-reader" in shipped else None
    cogview = pretrained("cogview-bound" if "cogview-bound" in shipped else "cogview")
    in_layers = cogvideo.COGVIEW_LAYERED and cogview.config.caption_order == "reading"
    figures.update(cogvideo_quality.evaluate_cogview_frames(
        cogview, judge, num_frames=2 * args.num, guidance=cogvideo.COGVIEW_GUIDANCE,
        seed=args.seed, temperature=args.temperature, reader=reader, layered=in_layers,
        best_of=cogvideo.COGVIEW_BEST_OF, apart=cogvideo.COGVIEW_APART if in_layers else 1))
    _print_figures(figures)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen kind of evaluation."""
    return args.evaluate(args)
