"""The learning curve of a training run: held-out figures of the weights it kept on the way.

A run started with `--keep-every N` keeps OUT-stepNNNNNN.pt every N steps, each with the training
seconds so far. This script scores each of them on the same clips of TEST digits and writes one
JSON (the numbers) and one PNG (the figure in README and notebook 07):

    python docs/learning_curve.py runs/videogpt.pt --clips 32 \\
        --out docs/figures/videogpt_learning_curve

Figures per kept step: held-out bits per code; the fraction of class-conditional samples in which
the judge reads the requested digits; the fraction of predicted futures (8 given frames) in which
it reads both digits of the clip.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from minivideo.checkpoints import build_model_from_checkpoint, load_checkpoint  # noqa: E402
from minivideo.metrics.reconstruction import test_clips  # noqa: E402
from minivideo.metrics.videogpt_quality import bits_per_code, judge_reads  # noqa: E402
from minivideo.models.videogpt import predict_clips, sample_clips  # noqa: E402
from minivideo.pretrained import pretrained  # noqa: E402


def kept_steps(out: Path) -> list[Path]:
    """The OUT-stepNNNNNN.pt files of a run, in step order."""
    pattern = re.compile(rf"{re.escape(out.stem)}-step(\d+)\.pt$")
    found = [p for p in out.parent.glob(f"{out.stem}-step*.pt") if pattern.search(p.name)]
    return sorted(found, key=lambda p: int(pattern.search(p.name).group(1)))


@torch.no_grad()
def score(path: Path, clips: dict, codes: torch.Tensor, tokenizer, judge, seed: int) -> dict:
    """Held-out bits per code, class reads and prediction reads of one kept checkpoint."""
    model = build_model_from_checkpoint(path).eval()
    state = load_checkpoint(path)
    video, digits = clips["video"], clips["digits"]
    k = 8
    samples = sample_clips(model, tokenizer, len(video), digits=digits, seed=seed)
    predicted = predict_clips(model, tokenizer, video[:, :k], seed=seed + 1)
    return {
        "step": int(state["step"]),
        "cpu_minutes": round(float(state["seconds"]) / 60, 2),
        "test_bits_per_code": round(bits_per_code(model, codes, digits, video[:, :k]), 4),
        "judge_reads_requested": judge_reads(judge, samples, digits),
        "judge_digits_predicted": judge_reads(judge, predicted[:, k:], digits),
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Two panels against training minutes: bits per code; judge reads."""
    minutes = [r["cpu_minutes"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(minutes, [r["test_bits_per_code"] for r in rows], "o-")
    left.set(xlabel="training minutes (2-core CPU)", ylabel="held-out bits per code")
    right.plot(minutes, [100 * r["judge_reads_requested"] for r in rows], "o-",
               label="class → video: requested digits read")
    right.plot(minutes, [100 * r["judge_digits_predicted"] for r in rows], "s-",
               label="prediction: both digits read")
    right.set(xlabel="training minutes (2-core CPU)", ylabel="% of samples", ylim=(0, 100))
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Score every kept step of a run; write OUT.json and OUT.png."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run", help="the run's OUT.pt (its OUT-stepNNNNNN.pt files are scored)")
    parser.add_argument("--clips", type=int, default=32, help="test clips per figure")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--out", default="docs/figures/videogpt_learning_curve",
                        help="output path without suffix")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    paths = kept_steps(run)
    last = load_checkpoint(paths[-1])["step"] if paths else -1
    if run.is_file() and load_checkpoint(run)["step"] > last:
        paths.append(run)  # the run's last step, when it is not a kept one
    if not paths:
        raise SystemExit(f"no kept steps beside {args.run} (train with --keep-every N)")
    judge = pretrained("judge")
    first = build_model_from_checkpoint(paths[0])
    tokenizer = pretrained(first.config.tokenizer)
    clips = test_clips(args.clips)
    codes = tokenizer.encode(clips["video"])
    rows = []
    for path in paths:
        rows.append(score(path, clips, codes, tokenizer, judge, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"command": "python docs/learning_curve.py " + shlex.join(sys.argv[1:]),
         "clips": args.clips, "rows": rows},
        indent=1) + "\n")
    plot(rows, out.with_suffix(".png"),
         f"VideoGPT (one prior, compact tokenizer): {args.clips} test clips per point")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
