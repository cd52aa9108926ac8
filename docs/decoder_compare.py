"""The same sampled codes, decoded by two decoders: what a sharper decoder buys shipped priors.

A decoder fine-tuned with its codes frozen (`docs/decoder_finetune.py`) leaves every code, and so
every sample a prior draws, unchanged. This script samples the prior once, with the seeds of
`docs/videogpt_judge.py` (class samples at guidance 3, seed 11; predictions from 8 frames, seed
12), and decodes the very same codes with both tokenizers: the judge's reads differ only by the
decoder. It also writes a picture: real test clips, their reconstructions by both, and class
samples decoded by both.

    python docs/decoder_compare.py videogpt checkpoints/videogpt.pt \
        checkpoints/vqvae-compact-t2.pt runs/vqvae-compact-t2-gan.pt --clips 256 \
        --out docs/figures/decoder_compare.json --figure docs/figures/decoder_compare.png

`cogvideo` does the same for the shipped CogVideo-mini, whose codes are those of
`vqvae-frame-empty`: CogView's frames (the judge on 256 drawn frames) and text → video on 64 test
prompts and 32 held-out ones, each sampled with the manifests' seeds, once per decoder (sampling
never looks at the decoder, so the codes are the same both times):

    python docs/decoder_compare.py cogvideo runs/vqvae-frame-empty-gan.pt \
        --out docs/figures/decoder_compare_cogvideo.json \
        --figure docs/figures/decoder_compare_cogvideo.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.metrics.reconstruction import reconstruct, test_clips
from minivideo.metrics.videogpt_quality import PREDICTION_CONTEXT, judge_reads
from minivideo.models.videogpt import predict_clips, sample_clips
from minivideo.pretrained import pretrained
from minivideo.viz import save_frame_strip, tile

FRAMES = 5  # the picture shows frames 0, 5, 10 and 15
DEMO_PROMPTS = ("digit 3 moves left and digit 7 moves down",
                "digit 0 moves right and digit 5 moves up")


def recording(tokenizer):
    """Make `tokenizer.decode` keep a copy of every code grid it decodes."""
    kept: list[torch.Tensor] = []
    decode = tokenizer.decode

    def keep(codes: torch.Tensor) -> torch.Tensor:
        kept.append(codes.cpu())
        return decode(codes)

    tokenizer.decode = keep
    return kept


def picture(rows: dict[str, torch.Tensor], path: Path) -> None:
    """Rows of clips (n T H W), each tiled side by side (`viz.tile`), every FRAMES-th frame."""
    tiled = np.stack([tile(clips) for clips in rows.values()])
    save_frame_strip(tiled, path, titles=list(rows), every=FRAMES, frame_size=0.9)


def compare_videogpt(args) -> dict:
    """Class samples and predictions of a VideoGPT prior, decoded by tokenizers A and B."""
    prior = build_model_from_checkpoint(args.prior).eval()
    tok_a = build_model_from_checkpoint(args.tokenizer).eval()
    tok_b = build_model_from_checkpoint(args.other).eval()
    judge = pretrained("judge")
    clips = test_clips(args.clips, 16)
    video, digits = clips["video"], clips["digits"]
    context = video[:, :PREDICTION_CONTEXT]
    if not torch.equal(tok_a.encode(context[:8]), tok_b.encode(context[:8])):
        raise SystemExit("the two tokenizers give different codes: compare decoders of one code")
    kept = recording(tok_a)
    guided_a = sample_clips(prior, tok_a, args.clips, digits=digits, guidance=args.guidance,
                            seed=11, batch_size=32)
    guided_b = tok_b.decode(torch.cat(kept))
    kept.clear()
    predicted_a = predict_clips(prior, tok_a, context, seed=12, batch_size=32)
    predicted_b = tok_b.decode(torch.cat(kept))
    future = slice(PREDICTION_CONTEXT, None)
    recon_a = reconstruct(tok_a, video, batch_size=32)
    recon_b = reconstruct(tok_b, video, batch_size=32)
    rows = {"test_clips": args.clips, "guidance": args.guidance,
            "real_reads": judge_reads(judge, video, digits)}
    for name, guided, predicted, recon in (("A", guided_a, predicted_a[:, future], recon_a),
                                           ("B", guided_b, predicted_b[:, future], recon_b)):
        rows[name] = {"tokenizer": str(args.tokenizer if name == "A" else args.other),
                      "class_reads": judge_reads(judge, guided, digits),
                      "prediction_reads": judge_reads(judge, predicted, digits),
                      "tokenizer_reads": judge_reads(judge, recon, digits)}
    if args.figure:
        n = 4
        picture({"real": video[:n], "MSE decoder": recon_a[:n], "critic decoder": recon_b[:n],
                 "class, MSE dec.": guided_a[:n], "class, critic dec.": guided_b[:n]},
                args.figure)
    return rows


def compare_cogvideo(args) -> dict:
    """CogView's frames and text → video of the shipped CogVideo-mini, decoded by the shipped
    `vqvae-frame-empty` (A) and by the decoder of `args.other` (B)."""
    from minivideo.metrics.cogvideo_quality import (
        evaluate_cogview_frames,
        evaluate_text_to_video,
    )
    from minivideo.models import cogvideo

    keys, interp = pretrained("cogvideo-keyframes"), pretrained("cogvideo-interp")
    cogview, judge = pretrained("cogview"), pretrained("judge")
    tokenizer = cogvideo.tokenizer_of(cogview)  # the one object every figure decodes with
    other = build_model_from_checkpoint(args.other).eval()
    probe = test_clips(4, 16)["video"]
    if not torch.equal(tokenizer.encode(probe), other.encode(probe)):
        raise SystemExit("the two tokenizers give different codes: compare decoders of one code")
    decoders = {"A": {k: v.clone() for k, v in tokenizer.decoder.state_dict().items()},
                "B": other.decoder.state_dict()}
    captions = torch.stack([cogvideo.encode_prompt(p) for p in DEMO_PROMPTS])
    rows: dict = {"frames": args.frames, "prompts": args.prompts, "guidance": args.guidance}
    demo = {}
    for name, state in decoders.items():
        tokenizer.decoder.load_state_dict(state)
        row = {"tokenizer": "vqvae-frame-empty (shipped)" if name == "A" else str(args.other)}
        row.update(evaluate_cogview_frames(cogview, judge, args.frames, args.guidance))
        row.update(evaluate_text_to_video(keys, interp, judge, args.prompts, args.guidance))
        row.update(evaluate_text_to_video(keys, interp, judge, args.prompts // 2,
                                          args.guidance, held_out=True))
        rows[name] = row
        codes = cogvideo.text_to_video(keys, interp, captions, guidance=args.guidance, seed=0)
        demo[name] = tokenizer.decode(codes)[:, :16]
    tokenizer.decoder.load_state_dict(decoders["A"])
    if args.figure:
        picture({"shipped decoder": demo["A"], "critic decoder": demo["B"]}, args.figure)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="family", required=True)
    video = sub.add_parser("videogpt", help="a VideoGPT prior and two clip tokenizers")
    video.add_argument("prior", type=Path)
    video.add_argument("tokenizer", type=Path, help="the prior's tokenizer (its decoder: A)")
    video.add_argument("other", type=Path, help="the same codes, another decoder (B)")
    video.add_argument("--clips", type=int, default=256)
    cog = sub.add_parser("cogvideo", help="the shipped CogVideo-mini and another frame decoder")
    cog.add_argument("other", type=Path, help="vqvae-frame-empty with another decoder (B)")
    cog.add_argument("--frames", type=int, default=256, help="CogView frames the judge reads")
    cog.add_argument("--prompts", type=int, default=64, help="test prompts (half as many held out)")
    for each in (video, cog):
        each.add_argument("--guidance", type=float, default=3.0)
        each.add_argument("--threads", type=int, default=1)
        each.add_argument("--out", type=Path, required=True)
        each.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    for name in ("clips", "frames", "prompts"):
        if getattr(args, name, 4) < 4:
            parser.error(f"--{name} must be at least 4, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    rows = (compare_videogpt if args.family == "videogpt" else compare_cogvideo)(args)
    rows = {"command": "python docs/decoder_compare.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            **rows, "cpu_seconds": round(time.perf_counter() - began)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
