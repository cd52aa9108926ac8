"""Tokens per clip vs reconstruction quality: frame tokenizers with 4×4, 8×8 and 16×16 codes.

The prior has to model every token, so fewer tokens per clip make a cheaper, easier prior, and a
worse reconstruction. This script measures that trade-off: it trains three 2D tokenizers that
differ only in how many stride-2 stages they have (4, 3 or 2, so 4×4, 8×8 or 16×16 codes per
64×64 frame), each for the same number of steps on the same clips, then reconstructs held-out
clips of *test* digits and reports PSNR, SSIM, SSE per frame, codebook perplexity and digit
legibility (`minivideo.metrics.reconstruction.evaluate_tokenizer`).

    python benchmarks/tokenizer_tradeoff.py --threads 1     # about 6 CPU-minutes on one core

It writes docs/figures/tokenizer_tradeoff.json (settings, one row per grid) and .png (the plot
that notebook 05 reads). The budget is short on purpose: the figures compare the grids with each
other at equal training, they are not what a fully trained tokenizer reaches.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib
import torch

from minivideo.metrics.reconstruction import TEST_SEED, evaluate_tokenizer, format_table
from minivideo.pretrained import pretrained
from minivideo.train import fit
from minivideo.vqvae import FRAME_TOKENIZER_TARGET, FrameTokenizer, FrameTokenizerConfig

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
# Codes per side of a frame → encoder widths, one stride-2 stage each (64 / 2^stages = grid).
CHANNELS = {4: (32, 64, 64, 64), 8: (32, 64, 64), 16: (32, 64)}
FRAMES = 16  # tokens per clip are counted for 16-frame clips, the length the priors model


def train_tokenizer(grid: int, steps: int, seed: int) -> tuple[FrameTokenizer, float, dict]:
    """Train one frame tokenizer with the `small` schedule cut to `steps`; (model, s, last logs)."""
    config = FrameTokenizerConfig(channels=CHANNELS[grid], num_res_blocks=2, num_codes=512,
                                  code_dim=32)
    torch.manual_seed(seed)
    model = FrameTokenizer(config)
    target = FRAME_TOKENIZER_TARGET
    train_config = target.train_config("small", steps=steps, seed=seed, progress=False)
    began = time.perf_counter()
    result = fit(model, target.loss_fn, target.build_dataset("small", seed), train_config)
    seconds = time.perf_counter() - began
    tail = result.history[-50:]
    last = {key: sum(h[key] for h in tail) / len(tail) for key in ("recon_loss", "perplexity")}
    return result.model.eval(), seconds, last


def plot(rows: list[dict], path: Path) -> Path:
    """PSNR, SSE per frame and legibility against tokens per clip, one point per grid."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = [r["tokens_per_clip"] for r in rows]
    labels = [f"{r['grid']}×{r['grid']}" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [("psnr", "PSNR (dB) ↑"), ("sse_per_frame", "SSE per frame ↓"),
              ("legibility_reconstructed", "digits read correctly ↑")]
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [r[key] for r in rows]
        ax.plot(tokens, values, "o-")
        for x, y, label in zip(tokens, values, labels, strict=True):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4))
        if key == "legibility_reconstructed":
            ax.axhline(rows[0]["legibility_original"], color="gray", ls="--", label="originals")
            ax.legend(loc="lower right")
        ax.axvline(1024, color="tab:red", ls=":", lw=1)  # what a laptop prior can model
        ax.set_xscale("log", base=2)
        ax.margins(x=0.2, y=0.12)  # room for the labels of the end points
        ax.set_xlabel(f"tokens per {FRAMES}-frame clip")
        ax.set_title(title)
    fig.suptitle("Frame tokenizers at equal training: fewer tokens, worse reconstructions")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Train the three tokenizers, measure them on held-out clips, write the JSON and the plot."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int, default=400, help="training steps per tokenizer")
    parser.add_argument("--clips", type=int, default=64, help="held-out 16-frame test clips")
    parser.add_argument("--grids", type=int, nargs="+", default=sorted(CHANNELS),
                        choices=sorted(CHANNELS))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES / "tokenizer_tradeoff.json")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the .png from the figures already in --out")
    args = parser.parse_args(argv)
    if args.replot:
        figure = plot(json.loads(args.out.read_text())["rows"], args.out.with_suffix(".png"))
        print(f"wrote {figure}")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    classifier = pretrained("digit-classifier")
    rows = []
    began, began_cpu = time.perf_counter(), time.process_time()
    for grid in args.grids:
        model, seconds, last = train_tokenizer(grid, args.steps, args.seed)
        figures = evaluate_tokenizer(model, num_clips=args.clips, num_frames=FRAMES,
                                     classifier=classifier)
        rows.append({"grid": grid, "channels": list(CHANNELS[grid]),
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "train_seconds": round(seconds, 1),
                     "train_recon_loss_last50": round(last["recon_loss"], 5),
                     **{k: round(v, 4) for k, v in figures.items()}})
        print(f"grid {grid}×{grid}: trained {args.steps} steps in {seconds:.0f} s, "
              f"PSNR {figures['psnr']:.2f} dB", flush=True)
    print(format_table({f"{r['grid']}x{r['grid']}": r for r in rows}))
    report = {
        "what": "frame tokenizers trained for the same steps, measured on held-out test clips",
        "command": "python benchmarks/tokenizer_tradeoff.py"
        + (f" --steps {args.steps}" if args.steps != 400 else "")
        + (f" --threads {args.threads}" if args.threads is not None else ""),
        "steps": args.steps, "batch_size": FRAME_TOKENIZER_TARGET.schedules["small"]["batch_size"],
        "num_codes": 512, "code_dim": 32, "test_clips": args.clips, "frames": FRAMES,
        "test_seed": TEST_SEED, "seed": args.seed, "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "total_seconds": round(time.perf_counter() - began, 1),
        # on a shared machine wall time depends on the neighbours; CPU time is this run's cost
        "total_cpu_seconds": round(time.process_time() - began_cpu, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    figure = plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {figure} in {report['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
