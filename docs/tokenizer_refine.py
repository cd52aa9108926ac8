"""Sharper codes without a new prior: keep training a tokenizer, its codebook optionally split.

`vqvae-compact-t2` caps every VideoGPT sample (the judge reads 72% of its reconstructions of real
clips, 91% of the clips) and was trained for only 2.5 GPU-minutes. Fine-tuning its decoder alone
bought nothing (`docs/decoder_finetune.py`): the strokes are lost in the codes. Two levers that
change the codes but keep their *meaning*, so that the shipped prior can follow them with a short
fine-tune instead of a new run of CPU-hours:

* `--split 1`: the same 512 codes, encoder, codebook and decoder all trained on (more clips);
* `--split 2`: every ink code k gets a child k + K, a copy of it nudged by a little noise, with
  half its EMA mass each (the LBG split of a k-means codebook, Linde, Buzo & Gray 1980). The
  children then drift apart on the cells their parent used to share, so one code becomes two
  finer ones. A prior follows by giving the child its parent's embedding and logit
  (`docs/prior_retokenize.py`).

    python docs/tokenizer_refine.py --split 1 --minutes 60 --out runs/tok-more.pt \
        --json docs/figures/tokenizer_refine_more.json
    python docs/tokenizer_refine.py --split 2 --minutes 60 --out runs/tok-split.pt \
        --json docs/figures/tokenizer_refine_split.json

Figures, before and after, on 256 held-out clips of test digits (`evaluate_tokenizer`: PSNR,
SSIM, legibility gap) and on the 64 test clips every VideoGPT figure uses (the judge on the
reconstructions: the ceiling of any prior over these codes); and how many cells keep their code
(or their code's parent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.codebook import parent_codes, split_codebook
from minivideo.metrics.reconstruction import test_clips
from minivideo.metrics.videogpt_quality import tokenizer_figures
from minivideo.pretrained import pretrained
from minivideo.train import TrainConfig, fit
from minivideo.vqvae import _training_clips, tokenizer_loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="vqvae-compact-t2",
                        help="a shipped tokenizer's name, or a checkpoint file (.pt)")
    parser.add_argument("--split", type=int, choices=(1, 2), default=1,
                        help="1: the same codebook; 2: every code split in two")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint (resumable)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    torch.set_num_threads(args.threads)
    classifier, judge = pretrained("digit-classifier"), pretrained("judge")
    clips = test_clips(64, 16)  # the clips of `eval videogpt --num 64`
    shipped = (build_model_from_checkpoint(args.tokenizer) if args.tokenizer.endswith(".pt")
               else pretrained(args.tokenizer))
    before = tokenizer_figures(shipped, classifier, judge, clips)
    probe = test_clips(32, 16, seed=99)["video"]
    old_codes = shipped.encode(probe)
    tokenizer, parents = (split_codebook(shipped, seed=args.seed) if args.split == 2
                          else (shipped, torch.arange(shipped.num_codes)))
    # no dead-code restarts: on a CPU batch of 8 clips most codes look "dead" to a usage EMA
    # tuned for the GPU's 32, and a restart re-means a code the prior has learned
    tokenizer.quantizer.restart_dead = False
    tokenizer.train()
    config = TrainConfig(steps=100_000, batch_size=args.batch_size, lr=args.lr, warmup_steps=50,
                         cpu_bf16=True, minutes=args.minutes, save_every=200, seed=args.seed)
    result = fit(tokenizer, tokenizer_loss, _training_clips(16)("small", args.seed), config,
                 checkpoint=args.out, resume=args.resume)
    after = tokenizer_figures(tokenizer, classifier, judge, clips)
    new_codes = tokenizer.encode(probe)
    ink = old_codes != 0
    kept = parent_codes(new_codes, parents) == old_codes
    rows = {"command": "python docs/tokenizer_refine.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "num_codes": tokenizer.num_codes, "steps": result.step,
            "clips": result.step * args.batch_size,
            "train_minutes": round(result.seconds / 60, 1),
            "device": f"cpu ({args.threads} threads), bf16 autocast",
            "ink_cells_keeping_code_or_parent": float(kept[ink].float().mean()),
            "empty_cells_kept": float((new_codes[~ink] == 0).float().mean()),
            "before": before, "after": after}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
