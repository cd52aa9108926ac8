"""Make the animated figures of README.md from the shipped checkpoints (CPU, a few minutes).

    python docs/make_figures.py                 # writes docs/figures/*.gif and figures.json

Every clip is made of *test* digits or sampled with a fixed seed, so the figures reproduce.
Rows of each GIF are listed in `docs/figures/figures.json`, with the captions and the seeds used.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from minivideo.data.captions import captions_for
from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import MovingMNISTConfig, generate_clips
from minivideo.models import cogvideo, videogpt
from minivideo.pretrained import pretrained
from minivideo.viz import save_video, tile

FIGURES = Path(__file__).resolve().parent / "figures"
PROMPTS = ("digit 3 moves left and digit 7 moves down", "digit 0 moves right and digit 5 moves up")


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """Float [0, 1] videos -> uint8."""
    return (video.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def grid(rows: list[np.ndarray]) -> np.ndarray:
    """Stack rows of clips (each (n, t, 64, 64), same t) into one tiled video, a row per model."""
    frames = min(r.shape[1] for r in rows)
    batch = np.concatenate([r[:, :frames] for r in rows])
    return tile(batch, ncols=len(rows[0]))


@torch.no_grad()
def main() -> None:
    """Write moving_mnist.gif, tokenizers.gif, videogpt.gif, samples.gif and figures.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder for the figures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips and the samples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    record: dict[str, object] = {"command": "python docs/make_figures.py", "seed": args.seed}

    clips = generate_clips(4, load_digits("test"), MovingMNISTConfig(num_frames=20), seed=args.seed)
    save_video(tile(clips.videos), args.out / "moving_mnist.gif", fps=8, scale=2)
    record["moving_mnist.gif"] = {"clips": "4 test clips, 20 frames",
                                  "captions": captions_for(clips)}

    real = clips.videos[:, :16]
    video = torch.from_numpy(real).float() / 255
    frame_tok, clip_tok = pretrained("vqvae-frame"), pretrained("vqvae-clip")
    compact, compact_t2 = pretrained("vqvae-compact"), pretrained("vqvae-compact-t2")
    rows = [real, to_uint8(frame_tok.decode(frame_tok.encode(video))),
            to_uint8(clip_tok.decode(clip_tok.encode(video))),
            to_uint8(compact.decode(compact.encode(video))),
            to_uint8(compact_t2.decode(compact_t2.encode(video)))]
    save_video(grid(rows), args.out / "tokenizers.gif", fps=8, scale=2)
    record["tokenizers.gif"] = {"rows": ["real (test digits)", "vqvae-frame: 8x8 codes per frame",
                                         "vqvae-clip: 4x16x16 codes per 16 frames",
                                         "vqvae-compact: 4x8x8 codes per 16 frames",
                                         "vqvae-compact-t2: 8x8x8 codes per 16 frames"]}

    prior = pretrained(videogpt.ONE_PRIOR)
    tokenizer = pretrained(prior.config.tokenizer)
    k = 8
    predicted = to_uint8(videogpt.predict_clips(prior, tokenizer, torch.from_numpy(real[:, :k]),
                                                seed=args.seed))
    digits = torch.from_numpy(clips.digits)
    asked = to_uint8(videogpt.sample_clips(prior, tokenizer, 4, digits=digits, seed=args.seed,
                                           guidance=videogpt.CLASS_GUIDANCE))
    free = to_uint8(videogpt.sample_clips(prior, tokenizer, 4, seed=args.seed + 1))
    save_video(grid([real, predicted, asked, free]), args.out / "videogpt.gif", fps=8, scale=2)
    record["videogpt.gif"] = {
        "rows": ["real (test digits)",
                 f"videogpt, prediction: the first {k} frames given, the rest sampled",
                 f"videogpt, class: asked for the digits of the real clip above (guidance "
                 f"{videogpt.CLASS_GUIDANCE:g})",
                 "videogpt, unconditional"],
        "digits (row 3)": clips.digits.tolist(),
    }

    # the shipped text-to-video pair: the layer stages, each clause drawn as its own layer
    keys, interp = pretrained("cogvideo-layer-keyframes"), pretrained("cogvideo-layer-interp")
    prompts = [p for p in PROMPTS for _ in range(2)]
    texted = to_uint8(cogvideo.layered_text_to_video(
        keys, interp, prompts, guidance=cogvideo.LAYER_GUIDANCE, seed=args.seed, search=True,
        rerank=cogvideo.LAYER_RERANK, middle_search=cogvideo.LAYER_MIDDLES == "searched"))
    rows = [real, predicted, texted[:, :16]]
    save_video(grid(rows), args.out / "samples.gif", fps=8, scale=2)
    record["samples.gif"] = {
        "rows": ["real (test digits)",
                 f"videogpt: first {k} frames given, the rest sampled",
                 "cogvideo-layer-keyframes + cogvideo-layer-interp: text to video in layers, "
                 f"key frames by move search, the best of {cogvideo.LAYER_RERANK} chains, "
                 f"middles {cogvideo.LAYER_MIDDLES} (first 16 of 17 frames)"],
        "prompts (row 3, two samples each)": list(PROMPTS),
        "guidance": cogvideo.LAYER_GUIDANCE,
    }
    record["seconds"] = round(time.perf_counter() - start, 1)
    (args.out / "figures.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}/moving_mnist.gif, tokenizers.gif, videogpt.gif, samples.gif, "
          f"figures.json "
          f"in {record['seconds']} s")


if __name__ == "__main__":
    main()
