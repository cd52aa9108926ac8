"""How the sampling temperature changes VideoGPT's predicted futures, on 256 test clips.

The sweep (`docs/videogpt_sweep.py`, 64 clips) hinted that predictions read better at a lower
temperature (50% at 0.7 against 42% at 1), but 64 clips leave about ±6 points of noise. This
script predicts the last 8 frames of the same `--clips` test clips from their first 8, once per
temperature (and nucleus setting), with one seed, and reports for each what the judge reads
(both digits in the future), per-frame MSE / SSIM / PSNR against the true future, and the share
of inked pixels left in the last predicted frame against the true one (a future that loses its
digits scores well on nothing else):

    python docs/videogpt_prediction.py checkpoints/videogpt.pt --clips 256 \\
        --out docs/figures/videogpt_prediction.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.metrics.prediction import prediction_error
from minivideo.metrics.reconstruction import test_clips
from minivideo.metrics.videogpt_quality import PREDICTION_CONTEXT, judge_reads
from minivideo.models.videogpt import predict_clips
from minivideo.pretrained import pretrained

SETTINGS = (  # (temperature, top_p)
    (1.0, None), (0.85, None), (0.7, None), (0.5, None), (1.0, 0.9),
)
INK = 0.5  # a pixel brighter than this counts as ink


def main(argv: list[str] | None = None) -> int:
    """Print and save the predictions' figures at each sampling setting."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="a one-prior VideoGPT FILE.pt")
    parser.add_argument("--clips", type=int, default=256, help="test clips to predict")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="FILE.json for the figures")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be a positive int, got {args.clips}")
    torch.set_num_threads(args.threads)
    model = build_model_from_checkpoint(args.checkpoint).eval()
    if not model.config.null_class:
        parser.error("checkpoint: predictions need a one-prior model (null_class)")
    tokenizer, judge = pretrained(model.config.tokenizer), pretrained("judge")
    clips = test_clips(args.clips, model.config.num_frames)
    video, digits, k = clips["video"], clips["digits"], PREDICTION_CONTEXT
    future = video[:, k:].float() / 255 if video.dtype == torch.uint8 else video[:, k:]
    true_ink = float((future[:, -1] > INK).float().sum((1, 2)).mean())
    rows, began = [], time.perf_counter()
    for temperature, top_p in SETTINGS:
        predicted = predict_clips(model, tokenizer, video[:, :k], seed=args.seed,
                                  temperature=temperature, top_p=top_p, batch_size=32)[:, k:]
        error = prediction_error(predicted, future)
        ink = float((predicted[:, -1] > INK).float().sum((1, 2)).mean())
        rows.append({"temperature": temperature, "top_p": top_p,
                     "judge_digits_predicted": judge_reads(judge, predicted, digits),
                     **{name: round(value, 4) for name, value in error.mean.items()},
                     "last_frame_ink_ratio": round(ink / true_ink, 3)})
        print(json.dumps(rows[-1]), flush=True)
    out = {"command": "python docs/videogpt_prediction.py "
                      + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
           "checkpoint": args.checkpoint, "test_clips": args.clips, "seed": args.seed,
           "judge_digits_true_future": judge_reads(judge, future, digits),
           "settings": rows, "cpu_seconds": round(time.perf_counter() - began)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
