"""How sampling settings change what a VideoGPT prior draws: guidance and top-k, and best-of-k.

The prior is trained once; how it is sampled is a free choice made afterwards. This script draws
class-conditional clips for the same TEST digit pairs under each setting and reports how often
the judge reads the requested digits, then predicted futures (8 given frames) under the best
setting, including best-of-k (k futures per context, the one the judge reads best kept):

    python docs/videogpt_sweep.py checkpoints/videogpt.pt --clips 64 \\
        --out docs/figures/videogpt_sweep.json

Best-of-k uses the judge, an outside instrument, to pick; it says what the prior *can* draw, not
what one sample shows, and is reported beside the plain figure, never instead of it.
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
from minivideo.metrics.reconstruction import test_clips
from minivideo.metrics.videogpt_quality import PREDICTION_CONTEXT, judge_reads
from minivideo.models.videogpt import predict_clips, sample_clips
from minivideo.pretrained import pretrained

SETTINGS = [  # (guidance, top_k)
    (1.0, None), (2.0, None), (3.0, None), (4.0, None), (1.0, 16), (3.0, 16),
]


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally save) the sweep of one checkpoint."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="a one-prior VideoGPT FILE.pt")
    parser.add_argument("--clips", type=int, default=64, help="test digit pairs / contexts")
    parser.add_argument("--best-of", type=int, default=4, help="futures per context")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="FILE.json for the figures")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.best_of < 1:
        parser.error("--clips and --best-of must be positive ints")
    model = build_model_from_checkpoint(args.checkpoint).eval()
    if not model.config.null_class:
        parser.error("checkpoint: the sweep needs a one-prior model (null_class)")
    tokenizer, judge = pretrained(model.config.tokenizer), pretrained("judge")
    clips = test_clips(args.clips, model.config.num_frames)
    video, digits = clips["video"], clips["digits"]
    rows, began = [], time.perf_counter()
    for guidance, top_k in SETTINGS:
        samples = sample_clips(model, tokenizer, args.clips, digits=digits, guidance=guidance,
                               top_k=top_k, seed=args.seed)
        rows.append({"guidance": guidance, "top_k": top_k,
                     "judge_reads_requested": judge_reads(judge, samples, digits)})
        print(f"class, guidance {guidance:g}, top-k {top_k}: judge reads "
              f"{rows[-1]['judge_reads_requested']:.1%}", flush=True)
    top_k = max((r for r in rows if r["guidance"] == 1.0),
                key=lambda r: r["judge_reads_requested"])["top_k"]
    k = PREDICTION_CONTEXT
    futures = [predict_clips(model, tokenizer, video[:, :k], seed=args.seed + 1 + i,
                             top_k=top_k)[:, k:] for i in range(args.best_of)]
    wanted = torch.zeros(len(digits), 10, dtype=torch.bool)  # the set of digits of each clip
    wanted[torch.arange(len(digits))[:, None], digits.long()] = True
    read = torch.stack([(judge.predict(f).present == wanted).all(1)
                        for f in futures])  # (k, clips): the judge reads exactly the clip's set
    prediction = {"top_k": top_k, "best_of": args.best_of,
                  "judge_digits_predicted": float(read[0].float().mean()),
                  "judge_digits_predicted_best_of_k": float(read.any(0).float().mean())}
    plain = prediction["judge_digits_predicted"]
    print(f"prediction, top-k {top_k}: both digits read in {plain:.1%}"
          f" of futures, best of {args.best_of}: "
          f"{prediction['judge_digits_predicted_best_of_k']:.1%}")
    if args.out:
        command = "python docs/videogpt_sweep.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        Path(args.out).write_text(json.dumps({
            "command": command, "checkpoint": args.checkpoint, "test_clips": args.clips,
            "class": rows, "prediction": prediction,
            "cpu_seconds": round(time.perf_counter() - began)}, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
