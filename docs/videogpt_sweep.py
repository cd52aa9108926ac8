"""How sampling settings change what a VideoGPT prior draws: guidance, top-k, temperature.

The prior is trained once; how it is sampled is a free choice made afterwards. This script draws
class-conditional clips for the same TEST digit pairs under each setting and reports how often
the judge reads the requested digits, then predicted futures (8 given frames) at a few
temperatures, and best-of-k at the best one (k futures per context, kept if any is read):

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
from minivideo.metrics.judge import reads_digit_sets
from minivideo.metrics.reconstruction import test_clips
from minivideo.metrics.videogpt_quality import PREDICTION_CONTEXT, judge_reads
from minivideo.models.videogpt import predict_clips, sample_clips
from minivideo.pretrained import pretrained

SETTINGS = [  # class samples: (guidance, top_k, temperature)
    (1.0, None, 1.0), (2.0, None, 1.0), (3.0, None, 1.0), (4.0, None, 1.0),
    (1.0, 16, 1.0), (3.0, 16, 1.0), (3.0, None, 0.85), (3.0, None, 0.7),
]
TEMPERATURES = (1.0, 0.85, 0.7)  # predictions


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
    for guidance, top_k, temperature in SETTINGS:
        samples = sample_clips(model, tokenizer, args.clips, digits=digits, guidance=guidance,
                               top_k=top_k, temperature=temperature, seed=args.seed)
        rows.append({"guidance": guidance, "top_k": top_k, "temperature": temperature,
                     "judge_reads_requested": judge_reads(judge, samples, digits)})
        print(f"class, guidance {guidance:g}, top-k {top_k}, temperature {temperature:g}: judge "
              f"reads {rows[-1]['judge_reads_requested']:.1%}", flush=True)
    k = PREDICTION_CONTEXT

    def reads(temperature: float, seed: int) -> torch.Tensor:
        """(clips,) bool: the judge reads exactly the clip's digits in a predicted future."""
        future = predict_clips(model, tokenizer, video[:, :k], seed=seed,
                               temperature=temperature)[:, k:]
        return reads_digit_sets(judge, future, digits)

    first = {t: reads(t, args.seed + 1) for t in TEMPERATURES}
    for t, read in first.items():
        print(f"prediction, temperature {t:g}: both digits read in {read.float().mean():.1%}",
              flush=True)
    best = max(TEMPERATURES, key=lambda t: float(first[t].float().mean()))
    more = [first[best]] + [reads(best, args.seed + 1 + i) for i in range(1, args.best_of)]
    prediction = {"temperatures": {str(t): float(r.float().mean()) for t, r in first.items()},
                  "best_temperature": best, "best_of": args.best_of,
                  "judge_digits_predicted": float(first[best].float().mean()),
                  "judge_digits_predicted_best_of_k": float(torch.stack(more).any(0)
                                                            .float().mean())}
    print(f"prediction, temperature {best:g}, best of {args.best_of}: "
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
