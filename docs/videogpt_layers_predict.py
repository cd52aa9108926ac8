"""VideoGPT prediction in layers, measured (issue 14; `layered_predict_clips`).

Two subcommands on the standard test clips (`test_clips`, seed 1234), 8 frames given, 8 predicted:

* ``predict``: each clip's given frames are split into one layer per digit
  (`minivideo.data.split`), each layer's class is read by the prior itself (`classify`) and
  each layer continued as a one-digit clip guided by it; clips whose digits touch in every
  given frame are continued as one stream, guided by the pair of classes the prior reads. The
  judge reads the predicted futures (both digits), split by whether the clip was split, beside
  the true futures; per-frame MSE / SSIM / PSNR against the true future beside copying the last
  given frame; and the one-stream prediction of `--baseline` (the NULL pair, no classes) on the
  same clips and seed.
* ``classify``: how often the prior's reading of the split layers' classes gives each clip's
  true pair, from the given frames alone, with the backward view, and with all views (every
  class scored in every view, and as shipped: the first view's CANDIDATES likeliest). No judge.

    python docs/videogpt_layers_predict.py predict checkpoints/videogpt-layers.pt --clips 256 \\
        --out docs/figures/videogpt_layers_predict.json
    python docs/videogpt_layers_predict.py classify checkpoints/videogpt-layers.pt --clips 128 \\
        --out docs/figures/videogpt_layers_classify.json

``gif``: README's figure. Rows: 8 test clips (seed 0); `--baseline` given their first 8 frames,
one stream; the layer prior given the same frames, in layers.

    python docs/videogpt_layers_predict.py gif checkpoints/videogpt-layers.pt \\
        --out docs/figures/videogpt_layers_prediction.gif
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from unittest.mock import patch

import torch
from einops import rearrange

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.data.split import split_digits
from minivideo.metrics.judge import reads_digit_sets
from minivideo.metrics.prediction import prediction_error
from minivideo.metrics.reconstruction import test_clips
from minivideo.models.videogpt import predict_clips
from minivideo.models.videogpt_layers import (
    CANDIDATES,
    VIEWS,
    classify,
    layered_predict_clips,
    one_digit_labels,
)
from minivideo.pretrained import pretrained

CONTEXT = 8  # frames given (4 latent steps of the shipped tokenizer), as README's prediction row
SEED = 12  # the seed of docs/videogpt_prediction.py, so the one-stream rows compare


def share(flags: torch.Tensor) -> float:
    return round(float(flags.float().mean()), 4) if len(flags) else None


def predict(args: argparse.Namespace) -> dict:
    model = build_model_from_checkpoint(args.prior).eval()
    tokenizer, judge = pretrained(model.config.tokenizer), pretrained("judge")
    clips = test_clips(args.clips, model.config.num_frames)
    video, digits = clips["video"], clips["digits"]
    future = video[:, CONTEXT:].float() / 255
    began = time.perf_counter()
    layered, split = layered_predict_clips(model, tokenizer, video[:, :CONTEXT], seed=SEED,
                                           batch_size=32, progress=True)
    seconds = time.perf_counter() - began
    rows: dict[str, dict] = {}
    baseline = build_model_from_checkpoint(args.baseline).eval()
    stream = predict_clips(baseline, pretrained(baseline.config.tokenizer), video[:, :CONTEXT],
                           seed=SEED, batch_size=32)
    copy_last = video[:, CONTEXT - 1 : CONTEXT].float().div(255).expand_as(future)
    for name, clip_future in (("layers", layered[:, CONTEXT:]),
                              ("one_stream_baseline", stream[:, CONTEXT:]),
                              ("true_future", future), ("copy_last_frame", copy_last)):
        reads = reads_digit_sets(judge, clip_future, digits)
        error = prediction_error(clip_future, future).mean
        rows[name] = {"judge_reads_both": share(reads), "split_clips": share(reads[split]),
                      "unsplit_clips": share(reads[~split]),
                      **{k: round(v, 3) for k, v in error.items()}}
        print(name, rows[name], flush=True)
    return {"test_clips": args.clips, "seed": SEED, "context_frames": CONTEXT,
            "split_share": share(split), "rows": rows,
            "layers_seconds_per_clip": round(seconds / args.clips, 2)}


def classify_views(args: argparse.Namespace) -> dict:
    model = build_model_from_checkpoint(args.prior).eval()
    tokenizer = pretrained(model.config.tokenizer)
    clips = test_clips(args.clips, model.config.num_frames)
    layers, split = split_digits(clips["video"][:, :CONTEXT])
    frames = rearrange(layers[split], "b l t h w -> (b l) t h w")
    true = clips["digits"][split].sort(dim=1).values
    settings = {"given frames": (VIEWS[:1], 10), "and backwards": (VIEWS[:2], 10),
                f"all {len(VIEWS)} views": (VIEWS, 10),
                f"all {len(VIEWS)} views, {CANDIDATES} candidates (shipped)": (VIEWS, CANDIDATES)}
    rows = {}
    for name, (views, candidates) in settings.items():
        began = time.perf_counter()
        with (patch("minivideo.models.videogpt_layers.VIEWS", views),
              patch("minivideo.models.videogpt_layers.CANDIDATES", candidates)):
            labels = classify(model, tokenizer, frames, one_digit_labels())
        pairs = rearrange(labels[:, 0], "(b l) -> b l", l=2).sort(dim=1).values
        rows[name] = {"pair_right": share((pairs == true).all(dim=1)),
                      "seconds_per_layer": round((time.perf_counter() - began) / len(frames), 3)}
        print(name, rows[name], flush=True)
    return {"test_clips": args.clips, "split_clips": int(split.sum()), "rows": rows}


def gif(args: argparse.Namespace) -> dict:
    from minivideo.data import MovingMNISTConfig, generate_clips, load_digits
    from minivideo.viz import save_video, tile

    clips = generate_clips(8, load_digits("test"), MovingMNISTConfig(num_frames=16), seed=0)
    given = torch.from_numpy(clips.videos[:, :CONTEXT])
    model = build_model_from_checkpoint(args.prior).eval()
    baseline = build_model_from_checkpoint(args.baseline).eval()
    tokenizer = pretrained(model.config.tokenizer)
    layered, split = layered_predict_clips(model, tokenizer, given, seed=0)
    stream = predict_clips(baseline, pretrained(baseline.config.tokenizer), given, seed=0)
    rows = [torch.from_numpy(clips.videos).float() / 255, stream, layered]
    save_video(tile(torch.cat(rows), ncols=8), args.out, fps=8, scale=2)
    return {"out": str(args.out), "digits": clips.digits.tolist(), "split": split.tolist(),
            "rows": ["real clips (test digits, seed 0)",
                     f"{args.baseline.stem}, one stream: frames 0-{CONTEXT - 1} given, the rest "
                     "sampled",
                     f"{args.prior.stem}, in layers: the given frames split, each layer "
                     "continued"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("predict", help="layered predictions against one stream")
    one.add_argument("--baseline", type=Path, default=Path("checkpoints/videogpt.pt"))
    two = sub.add_parser("classify", help="the prior's reading of the layers' classes")
    three = sub.add_parser("gif", help="README's figure: one stream against layers")
    three.add_argument("--baseline", type=Path, default=Path("checkpoints/videogpt.pt"))
    for p in (one, two, three):
        p.add_argument("prior", type=Path)
        p.add_argument("--clips", type=int, default=256)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be positive, got {args.clips}")
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    rows = {"predict": predict, "classify": classify_views, "gif": gif}[args.command](args)
    rows = {"command": "python docs/videogpt_layers_predict.py " + " ".join(
        sys.argv[1:] if argv is None else argv), **rows,
        "cpu_seconds": round(time.perf_counter() - began)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = args.out.with_suffix(".json") if args.command == "gif" else args.out
    report.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
