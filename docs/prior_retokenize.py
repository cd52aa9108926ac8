"""Carry the shipped VideoGPT prior over to a refined tokenizer with a short CPU fine-tune.

`docs/tokenizer_refine.py` trains `vqvae-compact-t2` on, optionally with its codebook split in
two; its codes keep their meaning (a child code starts as its parent). The prior follows:

* the same codebook: every weight is kept, and the prior trains on the new codes;
* a split codebook: the token table grows from K to 2K codes, and child k + K starts with
  parent k's embedding (the output head is tied to it, so a child starts with its parent's
  logit). Class tokens, BOS and NULL move up by K with their vectors.

Then it trains on fresh clips encoded by the refined tokenizer, and is measured on the 64 test
clips of `eval videogpt --num 64`, with class samples also at guidance 3 (the CLI's default):

    python docs/prior_retokenize.py runs/tok-split2.pt --minutes 40 --threads 2 \
        --out runs/prior-split2.pt --json docs/figures/prior_retokenize_split2.json

`--steps 0` measures the carried-over prior without training (what the split costs at once).

Measured (stop 27; README's VideoGPT lever table): 56 CPU-minutes (10,096 clips) were not enough.
Half the inked cells of the refined tokenizer carry another code than before, and on 256 test
clips (`docs/videogpt_judge.py`) the carried-over prior read the requested digits in 60% of its
guided class samples against the shipped pair's 67%, and both digits in 48% of predictions
against 45%. The shipped pair was kept.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.codebook import split_quantizer
from minivideo.metrics.reconstruction import test_clips
from minivideo.metrics.videogpt_quality import evaluate_videogpt, judge_reads
from minivideo.models.videogpt import VideoGPT, sample_clips
from minivideo.models.videogpt_compact import compact_loss, grow_vocabulary, stream
from minivideo.pretrained import pretrained
from minivideo.train import TrainConfig, fit


def class_reads(prior: VideoGPT, tokenizer, clips: dict, guidance: float, seed: int) -> float:
    samples = sample_clips(prior, tokenizer, len(clips["digits"]), digits=clips["digits"],
                           guidance=guidance, seed=seed, batch_size=32)
    return judge_reads(pretrained("judge"), samples, clips["digits"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer", type=Path, help="a checkpoint of docs/tokenizer_refine.py")
    parser.add_argument("--prior", default="videogpt", help="a shipped prior's name")
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint (resumable)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = build_model_from_checkpoint(args.tokenizer).eval()
    shipped = pretrained(args.prior)
    old = shipped.config.num_codes
    # the split's parents (they depend only on the shipped codebook): new code j descends
    # from parents[j]
    parents = (split_quantizer(pretrained(shipped.config.tokenizer).quantizer)[1]
               if tokenizer.num_codes == 2 * old else torch.arange(old))
    prior = grow_vocabulary(shipped, parents) if tokenizer.num_codes != old else shipped
    if args.steps > 0:
        config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             warmup_steps=50, weight_decay=0.01, cpu_bf16=True,
                             minutes=args.minutes, save_every=100)
        loss = functools.partial(compact_loss, tokenizer=tokenizer)  # the refined codes
        result = fit(prior, loss, stream("train", seed=27), config, checkpoint=args.out,
                     resume=args.resume)
        trained = {"steps": result.step, "clips": result.step * args.batch_size,
                   "train_minutes": round(result.seconds / 60, 1)}
    else:
        trained = {"steps": 0, "clips": 0, "train_minutes": 0.0}
    prior.eval()
    figures = evaluate_videogpt(prior, args.clips, tokenizer=tokenizer)
    clips = test_clips(args.clips, 16)
    figures["judge_reads_requested_guidance3"] = class_reads(prior, tokenizer, clips, 3.0, 3)
    rows = {"command": "python docs/prior_retokenize.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "num_codes": tokenizer.num_codes, **trained,
            "device": f"cpu ({args.threads} threads), bf16 autocast", "figures": figures}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
