"""How legible CogView's frames get with CPU-minutes, and what the judge reads of real frames.

A CogView run keeps a snapshot every N steps (`--keep-every`). This script scores each snapshot as
`evaluate_cogview_frames` does (the judge reads the caption's two digits in a drawn frame,
guidance 3), on 256 test frames, and calibrates the judge on the same kind of frames: real ones,
real ones blurred by a 3×3 box, and the tokenizer's reconstructions. A frame is held still for
the judge, which reads clips. The two runs of README (commands in their manifests):

    # the 40-minute run (the shipped CogView until stop 26)
    python -m minivideo train cogview --config small --steps 100000 --minutes 40.0 --threads 2 \
        --bf16 --save-every 1000 --keep-every 2000 --no-eval --export checkpoints/cogview.pt \
        --out runs/s22-cogview.pt
    python docs/cogview_curve.py runs/s22-cogview-step00{2,4,6,8}000.pt \
        runs/s22-cogview-step01{0,2}000.pt runs/s22-cogview.pt \
        --out docs/figures/cogview_curve.json
    # the 110-minute run (the shipped CogView)
    python -m minivideo train cogview --config small --steps 100000 --minutes 105 --threads 2 \
        --bf16 --save-every 1000 --keep-every 3000 --no-eval --out runs/s26-cogview.pt
    python docs/cogview_curve.py runs/s26-cogview-step0*.pt runs/s26-cogview.pt --threads 1 \
        --out docs/figures/cogview_curve_long.json
    # both against CPU-minutes
    python docs/cogview_curve.py --plot docs/figures/cogview_curve.png --rows \
        "40-minute run (shipped until now)=docs/figures/cogview_curve.json" \
        "110-minute run (shipped)=docs/figures/cogview_curve_long.json"

`--temperature`, `--top-k` and `--guidance` score the same frames under other sampling settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from minivideo.checkpoints import build_model_from_checkpoint, load_checkpoint
from minivideo.metrics.cogvideo_quality import (
    MIN_FRAMES,
    TEST_SEED,
    evaluate_cogview_frames,
    test_first_frames,
)
from minivideo.metrics.videogpt_quality import reads_digit_sets
from minivideo.pretrained import pretrained


def calibration(judge: torch.nn.Module, num_frames: int, tokenizer: str) -> dict[str, float]:
    """The judge on the first frames of the test clips `evaluate_cogview_frames` captions (made
    as `encode_clips` makes them: the same seed, 64 at a time): real, box-blurred, and
    reconstructed (which must match its `frames_judge_reads_tokenizer`)."""
    real = test_first_frames(num_frames, TEST_SEED)
    frames = torch.from_numpy(real["frames"]).float() / 255
    digits = torch.as_tensor(real["digits"])

    def reads(video: torch.Tensor) -> float:
        still = video[:, None].expand(-1, MIN_FRAMES, -1, -1)
        return round(float(reads_digit_sets(judge, still, digits).float().mean()), 4)

    box = torch.ones(1, 1, 3, 3) / 9
    model = pretrained(tokenizer).eval()
    return {"real_frames_judge_reads": reads(frames),
            "real_frames_box_blurred_judge_reads": reads(
                F.conv2d(frames[:, None], box, padding=1)[:, 0]),
            f"{tokenizer}_reconstructions_judge_reads": reads(
                model.decode(model.encode(frames[:, None]))[:, 0])}


def plot(runs: dict[str, dict], path: Path) -> None:
    """Judge reads against CPU-minutes, a line per run (a JSON this script wrote), with what the
    judge reads of real frames and of the tokenizer's reconstructions as ceilings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, run in runs.items():
        rows = sorted(run["rows"], key=lambda r: r["train_minutes"])
        ax.plot([r["train_minutes"] for r in rows], [100 * r["frames_judge_reads"] for r in rows],
                "o-", label=label)
    calibration = next(iter(runs.values()))["calibration"]
    for key, value in calibration.items():
        name = key.replace("_judge_reads", "").replace("_", " ")
        ax.axhline(100 * value, ls=":", color="gray")
        ax.text(0.01, 100 * value + 0.8, f"judge on {name}", fontsize=7, color="gray",
                transform=ax.get_yaxis_transform())  # x in axes units, y in data units
    ax.set(xlabel="CPU-minutes of training (2 threads)", ylim=(0, 75),
           ylabel="frames whose caption's digits\nthe judge reads (%)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--plot", type=Path, default=None,
                        help="FILE.png of the runs in --rows (LABEL=FILE.json), measuring nothing")
    parser.add_argument("--rows", nargs="+", default=[], metavar="LABEL=FILE.json")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="FILE.json for the rows")
    args = parser.parse_args(argv)
    if args.plot is not None:
        if not args.rows or any("=" not in item for item in args.rows):
            parser.error("--plot needs --rows LABEL=FILE.json ...")
        plot({label: json.loads(Path(file).read_text())
              for label, file in (item.split("=", 1) for item in args.rows)}, args.plot)
        return 0
    if not args.checkpoints or args.out is None:
        parser.error("give the checkpoints to score and --out FILE.json (or --plot)")
    torch.set_num_threads(args.threads)
    judge = pretrained("judge")
    rows = []
    for path in args.checkpoints:
        payload = load_checkpoint(path)
        model = build_model_from_checkpoint(path).eval()
        rows.append({"checkpoint": str(path), "step": payload["step"],
                     "train_minutes": round(payload["seconds"] / 60, 1),
                     **evaluate_cogview_frames(model, judge, num_frames=args.frames,
                                              guidance=args.guidance,
                                              temperature=args.temperature, top_k=args.top_k)})
        print(json.dumps(rows[-1]), flush=True)
    judge_calibration = calibration(judge, args.frames, model.config.tokenizer)
    print(json.dumps(judge_calibration))
    # the calibration must have regenerated the very frames the rows were scored on
    if judge_calibration[f"{model.config.tokenizer}_reconstructions_judge_reads"] != (
            rows[-1]["frames_judge_reads_tokenizer"]):
        raise RuntimeError("calibration frames differ from evaluate_cogview_frames' test frames")
    command = "python docs/cogview_curve.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.write_text(json.dumps({"command": command, "rows": rows,
                                    "calibration": judge_calibration}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
