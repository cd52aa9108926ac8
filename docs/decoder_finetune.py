"""Is it the decoder or the codes? Fine-tune a tokenizer's decoder with its codes frozen.

`vqvae-compact-t2` caps every VideoGPT sample: the judge reads the digits of 72% of its
reconstructions of real clips against 91% of the clips. It was trained for 2.5 GPU-minutes, so
its decoder may simply be under-trained. Fine-tuning only the decoder, on fresh clips, keeps every
code the same (encoder and codebook frozen), so the shipped prior would stay valid and draw
sharper digits at once (as latent-diffusion VAEs get new decoders). If the figures barely move,
the strokes are lost in the codes, and only a new tokenizer (and a new prior) can get them back.

    python docs/decoder_finetune.py --minutes 10 --lr 3e-4 --out runs/decoder-ft.pt \
        --json docs/figures/decoder_finetune.json

Figures: `evaluate_tokenizer` on 256 held-out clips of test digits (PSNR, SSIM, legibility gap),
before and after, and the check that the codes did not change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from minivideo.metrics.reconstruction import evaluate_tokenizer, test_clips
from minivideo.pretrained import pretrained
from minivideo.train import TrainConfig, fit
from minivideo.vqvae import _as_video, _training_clips


def decoder_loss(model, batch):
    """MSE of the reconstruction from the frozen codes: only the decoder gets gradients."""
    video = _as_video(batch["video"], model.config.image_size)
    codes = model.encode(video)  # no_grad, and it never moves the codebook
    recon = model._decode_latents(model._embed(codes), len(video))
    loss = F.mse_loss(recon, video)
    return loss, {"recon": float(loss.detach())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="vqvae-compact-t2")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint (resumable)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    classifier = pretrained("digit-classifier")
    tokenizer = pretrained(args.tokenizer)
    before = evaluate_tokenizer(tokenizer, num_clips=256, classifier=classifier)
    probe = test_clips(16)["video"]
    codes = tokenizer.encode(probe)
    tokenizer.encoder.requires_grad_(False)
    tokenizer.quantizer.requires_grad_(False)
    config = TrainConfig(steps=100_000, batch_size=args.batch_size, lr=args.lr, warmup_steps=50,
                         cpu_bf16=True, minutes=args.minutes, save_every=200)
    result = fit(tokenizer, decoder_loss, _training_clips(16)("small", 0), config,
                 checkpoint=args.out)
    tokenizer.eval()
    after = evaluate_tokenizer(tokenizer, num_clips=256, classifier=classifier)
    rows = {"command": "python docs/decoder_finetune.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "steps": result.step, "clips": result.step * args.batch_size,
            "train_minutes": round(result.seconds / 60, 1),
            "device": f"cpu ({args.threads} threads), bf16 autocast",
            "codes_unchanged": bool(torch.equal(tokenizer.encode(probe), codes)),
            "before": before, "after": after}
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
