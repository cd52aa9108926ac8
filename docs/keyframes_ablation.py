"""What the frozen image model buys CogVideo (its paper's claim, on our data and CPU budget).

Two key-frame stages of one architecture, trained for the same CPU minutes on fresh clips:

* `cogvideo-keyframes`: the temporal channel around the frozen, pretrained CogView;
* `cogvideo-keyframes-scratch`: the same network with its CogView channel randomly initialised
  and trained along (nothing pretrained).

    python -m minivideo train cogvideo-keyframes --config small --minutes 30 --steps 20000 \\
        --bf16 --threads 1 --no-eval --save-every 100 --out runs/ablation/frozen.pt
    python -m minivideo train cogvideo-keyframes-scratch --config small --minutes 30 \\
        --steps 20000 --bf16 --threads 1 --no-eval --save-every 100 --out runs/ablation/scratch.pt
    python docs/keyframes_ablation.py runs/ablation/frozen.pt runs/ablation/scratch.pt \\
        --out docs/figures/keyframes_ablation.json

For each: held-out bits per key-frame code with and without the caption (64 clips of test
digits), and what the judge reads in whole clips made from its key frames by the shipped
interpolation stage (digits, motion, both; guidance 3). Both runs share the interpolation stage,
so a difference between them is the key-frame stage's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.metrics.cogvideo_quality import evaluate_keyframes, evaluate_text_to_video
from minivideo.pretrained import pretrained


def figures(path: Path, prompts: int, guidance: float) -> dict:
    """Held-out figures of one key-frame checkpoint, with the shipped interpolation stage."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model_from_checkpoint(path).eval()
    seconds = payload["history"][-1]["seconds"] if payload.get("history") else None
    row = {"checkpoint": str(path), "base": model.config.base_name, "steps": payload["step"],
           "train_minutes": round(seconds / 60, 1) if seconds else None,
           "trainable_parameters": sum(p.numel() for n, p in model.named_parameters()
                                       if model.config.base_name == "scratch"
                                       or not n.startswith("base."))}
    row.update(evaluate_keyframes(model, num_clips=64))
    row.update(evaluate_text_to_video(model, pretrained("cogvideo-interp"), pretrained("judge"),
                                      num_prompts=prompts, guidance=guidance))
    return row


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = ("| key-frame stage | trainable | steps in the budget | bits/code | caption saves | "
            "t2v digits | t2v motion |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['base']} | {r['trainable_parameters'] / 1e6:.1f}M | {r['steps']} "
                     f"({r['train_minutes']} min) | {r['test_bits_per_code']:.3f} | "
                     f"{r['caption_bits_saved_per_code']:.3f} | "
                     f"{r['t2v_caption_digits']:.0%} | {r['t2v_caption_motion']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the checkpoints, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="key-frame stage FILE.pt")
    parser.add_argument("--prompts", type=int, default=32, help="test prompts (default 32)")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=None, help="FILE.json for the rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [figures(p, args.prompts, args.guidance) for p in args.checkpoints]
    print(table(rows))
    if args.out is not None:
        command = "python docs/keyframes_ablation.py " + shlex.join(sys.argv[1:] if argv is None
                                                                    else argv)
        args.out.write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
