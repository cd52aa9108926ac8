"""The judge's reads of a VideoGPT prior on many test clips: class samples and predictions.

64 clips leave about ±6 points of noise (two seeds of the same setting read 67% and 77%), too
much to tell two priors apart. This script samples one prior (with the tokenizer it was trained
on, both given as files) on `--clips` test clips, with fixed seeds, so two priors are compared
on the very same clips and digit requests:

    python docs/videogpt_judge.py checkpoints/videogpt.pt checkpoints/vqvae-compact-t2.pt \
        --clips 256 --out docs/figures/videogpt_judge_256.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.metrics.reconstruction import reconstruct, test_clips
from minivideo.metrics.videogpt_quality import PREDICTION_CONTEXT, judge_reads
from minivideo.models.videogpt import predict_clips, sample_clips
from minivideo.pretrained import pretrained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prior", type=Path)
    parser.add_argument("tokenizer", type=Path)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be positive, got {args.clips}")
    torch.set_num_threads(args.threads)
    prior = build_model_from_checkpoint(args.prior).eval()
    tokenizer = build_model_from_checkpoint(args.tokenizer).eval()
    judge = pretrained("judge")
    clips = test_clips(args.clips, 16)
    video, digits = clips["video"], clips["digits"]
    began = time.perf_counter()
    guided = sample_clips(prior, tokenizer, args.clips, digits=digits, guidance=args.guidance,
                          seed=11, batch_size=32)
    predicted = predict_clips(prior, tokenizer, video[:, :PREDICTION_CONTEXT], seed=12,
                              batch_size=32)
    recon = reconstruct(tokenizer, video, batch_size=32)
    rows = {"command": "python docs/videogpt_judge.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "prior": str(args.prior), "tokenizer": str(args.tokenizer),
            "num_codes": tokenizer.num_codes, "test_clips": args.clips,
            "guidance": args.guidance,
            "class_reads": judge_reads(judge, guided, digits),
            "prediction_reads": judge_reads(judge, predicted[:, PREDICTION_CONTEXT:], digits),
            "tokenizer_reads": judge_reads(judge, recon, digits),
            "real_reads": judge_reads(judge, video, digits),
            "cpu_seconds": round(time.perf_counter() - began)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
