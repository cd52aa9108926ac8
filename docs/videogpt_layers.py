"""Layered VideoGPT class samples, measured (issue 14; `minivideo/models/videogpt_layers.py`).

Two questions, one subcommand each, on the standard test clips (`test_clips`, seed 1234):

* ``ceiling``: what layers can buy through the shipped tokenizer, before any prior. Each test
  clip's two digits are rendered apart (the same digit images on the same paths), each layer
  is encoded and decoded on its own, and the two reconstructions are stacked by the brighter
  pixel. The judge reads them beside the tokenizer's reconstruction of the two-digit clip,
  split by how much ink the two digits share (more than a tenth of the smaller one's, or not).
* ``judge``: a layer prior's class samples for the test clips' pairs (guidance 3), drawn as
  layers (each digit drawn `--apart` times; the first draw of each gives apart = 1 from the
  same samples) and as the two-digit stream, with the two-digit stream of `--baseline` (the
  shipped prior) on the same clips and seeds; and unconditional samples drawn in layers
  (`layered_unconditional_clips`: two uniform classes, each layer unguided, stacked as drawn)
  beside the baseline's unconditional samples, by Fréchet Judge Distance on `--frechet-clips`
  (the manifests' 64: only distances over the same counts compare).

    python docs/videogpt_layers.py ceiling --clips 256 \
        --out docs/figures/videogpt_layers_ceiling.json
    python docs/videogpt_layers.py judge checkpoints/videogpt-layers.pt --clips 128 --apart 4 \
        --out docs/figures/videogpt_layers_judge.json
    python docs/videogpt_layers.py gif --out docs/figures/videogpt_layers.gif

``curve``: the fine-tune's learning curve, every kept checkpoint (`--keep-every`) scored on the
same `--clips` test pairs: layers as drawn (apart 1, guidance 3) read by the judge, and the bits
per code of one-digit test clips under their own label [BOS, d] and under [d, d] (two of them):
how far the prior tells one digit from two. Minutes are the run's own (its manifest's seconds
per step).

    python docs/videogpt_layers.py curve runs/s35/layers-step000200.pt \
        runs/s35/layers-step000400.pt runs/s35/layers-step000600.pt --clips 64 \
        --out docs/figures/videogpt_layers_curve.json

``gif``: README's figure. Rows: the 4 test clips of `docs/make_figures.py` (seed 0); the shipped
prior asked for their digits as one stream (guidance 3); the layer prior asked for them in
layers (apart 4); the same layers as drawn (apart 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.data import MovingMNIST, MovingMNISTConfig
from minivideo.data.moving_mnist import render
from minivideo.metrics.frechet import frechet_distance
from minivideo.metrics.judge import judge_features, reads_digit_sets
from minivideo.metrics.reconstruction import TEST_SEED, reconstruct, test_clips
from minivideo.models.cogvideo.layers import ink_overlap
from minivideo.models.videogpt import NO_DIGIT, sample_clips
from minivideo.models.videogpt_layers import (
    draw_layers,
    layered_unconditional_clips,
    stack_apart,
)
from minivideo.pretrained import pretrained

SHARED = 0.1  # "the digits overlap": they share more than a tenth of the smaller one's ink


def layers_of_test_clips(num: int) -> dict[str, torch.Tensor]:
    """The first `num` test clips (as `test_clips`), each with its two digits rendered apart:
    'video' uint8 (n T H W), 'layers' uint8 (n 2 T H W), 'digits' (n 2)."""
    data = MovingMNIST("test", num_clips=num, seed=TEST_SEED,
                       config=MovingMNISTConfig(num_frames=16))
    videos, layers, digits = [], [], []
    for i in range(num):
        clip = data.clip(i)
        images = data.digits[0][clip.digit_ids]  # (1, 2, 28, 28)
        where = clip.trajectories.positions_int  # (1, T, 2, 2)
        layers.append(np.stack([render(images[:, [s]], where[:, :, [s]])[0] for s in range(2)]))
        videos.append(clip.videos[0])
        digits.append(clip.digits[0])
    return {"video": torch.from_numpy(np.stack(videos)),
            "layers": torch.from_numpy(np.stack(layers)),
            "digits": torch.from_numpy(np.stack(digits))}


def clip_overlap(layers: torch.Tensor) -> torch.Tensor:
    """Layers (n 2 T H W) → (n,): ink shared by the two digits over the clip, as a share of the
    smaller one's."""
    pixels = layers.float() / 255 if layers.dtype == torch.uint8 else layers
    return ink_overlap(rearrange(pixels, "n l t h w -> n l (t h) w"))


def split_reads(reads: torch.Tensor, shared: torch.Tensor) -> dict[str, float]:
    """Mean reads, over all clips and over the clips whose digits overlap or not."""
    return {"all": float(reads.float().mean()),
            "overlapping": float(reads[shared].float().mean()),
            "apart": float(reads[~shared].float().mean())}


def ceiling(args: argparse.Namespace) -> dict:
    judge, tokenizer = pretrained("judge"), pretrained(args.tokenizer)
    clips = layers_of_test_clips(args.clips)
    shared = clip_overlap(clips["layers"]) > SHARED
    recon = reconstruct(tokenizer, clips["video"], batch_size=32)
    layer_recon = reconstruct(tokenizer, rearrange(clips["layers"], "n l t h w -> (n l) t h w"),
                              batch_size=32)
    stacked = rearrange(layer_recon, "(n l) t h w -> n l t h w", l=2).amax(dim=1)
    digits = clips["digits"]
    return {"tokenizer": args.tokenizer, "test_clips": args.clips,
            "share_overlapping": float(shared.float().mean()),
            "real": split_reads(reads_digit_sets(judge, clips["video"], digits), shared),
            "tokenizer_two_digits": split_reads(reads_digit_sets(judge, recon, digits), shared),
            "tokenizer_layers": split_reads(reads_digit_sets(judge, stacked, digits), shared)}


def judge_prior(args: argparse.Namespace) -> dict:
    judge = pretrained("judge")
    prior = build_model_from_checkpoint(args.prior).eval()
    tokenizer = pretrained(prior.config.tokenizer)
    clips = layers_of_test_clips(args.clips)
    digits = clips["digits"]
    rows: dict = {"prior": str(args.prior), "test_clips": args.clips, "guidance": args.guidance,
                  "apart": args.apart}
    began = time.perf_counter()
    # layers: every (clip, slot) drawn `apart` times; draw 0 of each is the apart = 1 sample
    drawn = draw_layers(prior, tokenizer, digits, apart=args.apart, guidance=args.guidance,
                        seed=21, batch_size=32)
    first = drawn[:, :, 0]
    shared = clip_overlap(first) > SHARED
    rows["layers_apart_1"] = split_reads(reads_digit_sets(judge, first.amax(dim=1), digits),
                                         shared)
    apart = stack_apart(drawn)
    rows[f"layers_apart_{args.apart}"] = float(reads_digit_sets(judge, apart, digits)
                                               .float().mean())
    rows["layer_seconds"] = round(time.perf_counter() - began)
    for name, path in (("two_digits", args.prior), ("baseline_two_digits", args.baseline)):
        model = build_model_from_checkpoint(path).eval()
        guided = sample_clips(model, tokenizer, args.clips, digits=digits,
                              guidance=args.guidance, seed=11, batch_size=32)
        rows[name] = float(reads_digit_sets(judge, guided, digits).float().mean())
    rows["baseline"] = str(args.baseline)
    n = args.frechet_clips
    real = judge_features(judge, test_clips(n, 16)["video"])
    other = test_clips(n, 16, seed=4321)["video"]
    layered = layered_unconditional_clips(prior, tokenizer, n, seed=31, batch_size=32)
    plain = sample_clips(build_model_from_checkpoint(args.baseline).eval(), tokenizer, n,
                         seed=31, batch_size=32)
    rows["frechet_clips"] = n
    rows["frechet_layers"] = frechet_distance(judge_features(judge, layered), real)
    rows["frechet_baseline"] = frechet_distance(judge_features(judge, plain), real)
    rows["frechet_first_frame_repeated"] = frechet_distance(
        judge_features(judge, other[:, :1].expand_as(other)), real)
    rows["frechet_real_vs_real"] = frechet_distance(judge_features(judge, other), real)
    rows["real"] = float(reads_digit_sets(judge, clips["video"], digits).float().mean())
    return rows


def gif(args: argparse.Namespace) -> dict:
    from minivideo.data import load_digits
    from minivideo.data.moving_mnist import generate_clips
    from minivideo.models.videogpt_layers import LAYER_APART, layered_class_clips
    from minivideo.viz import save_video, tile

    clips = generate_clips(4, load_digits("test"), MovingMNISTConfig(num_frames=16), seed=0)
    digits = torch.from_numpy(clips.digits)
    shipped, layers = pretrained("videogpt"), pretrained("videogpt-layers")
    tokenizer = pretrained(layers.config.tokenizer)
    stream = sample_clips(shipped, tokenizer, 4, digits=digits, guidance=3.0, seed=0)
    apart = layered_class_clips(layers, tokenizer, digits, apart=LAYER_APART, seed=0)
    drawn = layered_class_clips(layers, tokenizer, digits, apart=1, seed=0)
    rows = [torch.from_numpy(clips.videos).float() / 255, stream, apart, drawn]
    save_video(tile(torch.cat(rows), ncols=4), args.out, fps=8, scale=2)
    return {"out": str(args.out), "digits": clips.digits.tolist(),
            "rows": ["real clips (test digits, docs/make_figures.py's seed 0)",
                     "videogpt asked for their digits, one stream of codes (guidance 3)",
                     f"videogpt-layers, each digit a layer, apart {LAYER_APART} (guidance 3)",
                     "videogpt-layers, layers as drawn (apart 1)"]}


def curve(args: argparse.Namespace) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minivideo.metrics.videogpt_quality import bits_per_code

    judge = pretrained("judge")
    clips = layers_of_test_clips(args.clips)
    digits = clips["digits"]
    single = MovingMNIST("test", num_clips=32, seed=5,
                         config=MovingMNISTConfig(num_frames=16, num_digits=1))
    video = torch.stack([single[i]["video"] for i in range(32)])
    digit = torch.stack([single[i]["digits"][0] for i in range(32)])
    rows = []
    for path in args.checkpoints:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        prior = build_model_from_checkpoint(path).eval()
        tokenizer = pretrained(prior.config.tokenizer)
        codes = tokenizer.encode(video)
        step = int(checkpoint["step"])
        layers = draw_layers(prior, tokenizer, digits, apart=1, guidance=3.0, seed=21,
                             batch_size=32)
        stacked = layers[:, :, 0].amax(dim=1)
        rows.append({
            "checkpoint": str(path), "step": step,
            "cpu_minutes": round(step * args.seconds_per_step / 60, 1),
            "clips_seen": step * 16,
            "layers_read": float(reads_digit_sets(judge, stacked, digits).float().mean()),
            "bits_one_digit_label": bits_per_code(
                prior, codes, torch.stack([digit, torch.full_like(digit, NO_DIGIT)], 1),
                video[:, :8]),
            "bits_two_digit_label": bits_per_code(prior, codes, torch.stack([digit, digit], 1),
                                                  video[:, :8]),
        })
        print(rows[-1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    minutes = [r["cpu_minutes"] for r in rows]
    left.plot(minutes, [r["layers_read"] for r in rows], "o-")
    left.set(xlabel="CPU-minutes of fine-tuning (2 cores)", ylabel="judge reads (layers)",
             ylim=(0, 1), title="layered class samples, apart 1")
    right.plot(minutes, [r["bits_one_digit_label"] for r in rows], "o-", label="[BOS, d]")
    right.plot(minutes, [r["bits_two_digit_label"] for r in rows], "s--", label="[d, d]")
    right.set(xlabel="CPU-minutes", ylabel="bits per code", title="one-digit test clips")
    right.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    return {"rows": rows, "seconds_per_step": args.seconds_per_step, "guidance": 3.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("ceiling", help="the tokenizer's reads of two-digit and layered clips")
    one.add_argument("--tokenizer", default="vqvae-compact-t2")
    two = sub.add_parser("judge", help="a layer prior's class samples, layered and not")
    two.add_argument("prior", type=Path)
    two.add_argument("--baseline", type=Path, default=Path("checkpoints/videogpt.pt"))
    two.add_argument("--apart", type=int, default=4)
    two.add_argument("--guidance", type=float, default=3.0)
    two.add_argument("--frechet-clips", type=int, default=64)
    three = sub.add_parser("gif", help="README's figure: one stream against layers")
    four = sub.add_parser("curve", help="the fine-tune's learning curve, kept checkpoints")
    four.add_argument("checkpoints", type=Path, nargs="+")
    four.add_argument("--seconds-per-step", type=float, default=2998.8 / 600,
                      help="the run's seconds per step (default: the shipped run's manifest)")
    for p in (one, two, three, four):
        p.add_argument("--clips", type=int, default=256)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be positive, got {args.clips}")
    if args.command == "judge" and args.apart < 1:
        parser.error(f"--apart must be positive, got {args.apart}")
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    rows = {"ceiling": ceiling, "judge": judge_prior, "gif": gif,
            "curve": curve}[args.command](args)
    rows = {"command": "python docs/videogpt_layers.py " + " ".join(
        sys.argv[1:] if argv is None else argv), **rows,
        "cpu_seconds": round(time.perf_counter() - began)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = args.out.with_suffix(".json") if args.command == "gif" else args.out
    report.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
