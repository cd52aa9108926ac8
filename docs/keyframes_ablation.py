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

    python docs/keyframes_ablation.py --plot docs/figures/keyframes_curve.png \
        --rows docs/figures/keyframes_ablation.json docs/figures/keyframes_curve.json

The shipped key-frame stage's own learning curve (its `--keep-every 1000` snapshots):

    python docs/keyframes_ablation.py runs/s22-keyframes-step001000.pt \
        runs/s22-keyframes-step003000.pt runs/s22-keyframes-step005000.pt runs/s22-keyframes.pt \
        --out docs/figures/cogvideo_curve.json
    python docs/keyframes_ablation.py --plot docs/figures/cogvideo_curve.png \
        --rows docs/figures/cogvideo_curve.json

For each: held-out bits per key-frame code with and without the caption (64 clips of test
digits), and what the judge reads in whole clips made from its key frames by the shipped
interpolation stage (digits, motion, both; guidance 3). Both runs share the interpolation stage,
so a difference between them is the key-frame stage's.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.metrics.cogvideo_quality import evaluate_keyframes, evaluate_text_to_video
from minivideo.pretrained import pretrained


def device_of(path: Path) -> str | None:
    """The training device in the run's manifest (a --keep-every file: its run's, RUN.json)."""
    run = path.with_name(re.sub(r"-step\d+$", "", path.stem) + ".json")
    return json.loads(run.read_text())["device"] if run.is_file() else None


def figures(path: Path, prompts: int, guidance: float) -> dict:
    """Held-out figures of one key-frame checkpoint, with the shipped interpolation stage."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model_from_checkpoint(path).eval()
    # a run's file keeps its history; a --keep-every file keeps its seconds so far
    seconds = (payload["history"][-1]["seconds"] if payload.get("history")
               else payload.get("seconds"))
    row = {"checkpoint": str(path), "base": model.config.base_name, "steps": payload["step"],
           "device": device_of(path),
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
    head = ("| key-frame stage | trainable | steps (minutes, device) | bits/code | caption saves | "
            "t2v digits | t2v motion |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        base = "from scratch" if r["base"] == "scratch" else f"frozen {r['base']}"
        device = r["device"] or device_of(Path(r["checkpoint"]))
        lines.append(f"| {base} | {r['trainable_parameters'] / 1e6:.1f}M | {r['steps']} "
                     f"({r['train_minutes']} min, {device}) | {r['test_bits_per_code']:.3f} | "
                     f"{r['caption_bits_saved_per_code']:.3f} | "
                     f"{r['t2v_caption_digits']:.0%} | {r['t2v_caption_motion']:.0%} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Digits read and bits per code against CPU minutes, one line per kind of base."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for base, label in (("cogview", "frozen CogView"), ("scratch", "from scratch")):
        points = sorted(((r["train_minutes"], i) for i, r in enumerate(rows)
                         if r["base"] == base and str(r["device"] or device_of(
                             Path(r["checkpoint"]))).startswith("cpu")))
        if not points:
            continue
        minutes, chosen = [m for m, _ in points], [rows[i] for _, i in points]
        line = axes[0].plot(minutes, [r["t2v_caption_digits"] for r in chosen], "o-",
                            label=f"{label}: digits")[0]
        axes[0].plot(minutes, [r["t2v_caption_motion"] for r in chosen], "s--",
                     color=line.get_color(), label=f"{label}: directions")
        axes[1].plot(minutes, [r["test_bits_per_code"] for r in chosen], "o-", label=label)
    axes[0].set(xlabel="CPU minutes (1 thread)", ylabel="judge reads the prompt's …",
                title="text → video (shipped interpolation, guidance 3)", ylim=(0, 1))
    axes[1].set(xlabel="CPU minutes (1 thread)", ylabel="held-out bits per key-frame code",
                title="key-frame stage")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Measure the checkpoints, print the table, write the JSON (or plot measured rows)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", type=Path, help="key-frame stage FILE.pt")
    parser.add_argument("--rows", nargs="+", type=Path, default=None,
                        help="with --plot: JSON files this script wrote, instead of measuring")
    parser.add_argument("--plot", type=Path, default=None, help="FILE.png: the learning curve")
    parser.add_argument("--prompts", type=int, default=32, help="test prompts (default 32)")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=None, help="FILE.json for the rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.rows:
        rows = [r for f in args.rows for r in json.loads(f.read_text())["rows"]]
        plot(rows, args.plot)
        print(table(rows))
        return 0
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
