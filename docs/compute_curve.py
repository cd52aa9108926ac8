"""What compute buys VideoGPT: the CPU learning curve beside the shipped GPU run.

Two runs of the same one-prior recipe (6 layers × 256, fresh clips every step):

* the CPU run, 4×8×8 codes, 58 minutes on 2 cores (`docs/figures/videogpt_learning_curve.json`,
  written by `docs/learning_curve.py`);
* the shipped prior, 8×8×8 codes, 4.3 minutes on one H200 shared by two runs
  (`docs/gpu_recipe.sh`; its periodic held-out evaluations are in the checkpoint, its judge
  figures in the manifest).

Bits per code are not comparable across token streams, so the left panel shows held-out bits
per *clip* (bits per code × codes per clip). The right panel shows how often the judge reads
the requested digits in class samples.

    python docs/compute_curve.py --out docs/figures/videogpt_compute
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def gpu_rows(checkpoint: Path) -> list[dict]:
    """(minutes, bits per clip) of every periodic held-out evaluation of a run."""
    payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    grid = payload["model_config"]["grid"]
    codes = grid[0] * grid[1] * grid[2]
    seconds = {h["step"]: h["seconds"] for h in payload["history"]}
    rows = []
    for row in payload["evals"]:
        step = row["step"]
        nearest = min(seconds, key=lambda s: abs(s - step))  # history is thinned ×10
        rows.append({"step": step, "minutes": round(seconds[nearest] / 60, 2),
                     "bits_per_clip": round(row["val_bits_per_token"] * codes, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Draw the comparison figure and write its numbers."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--cpu", default=str(ROOT / "docs/figures/videogpt_learning_curve.json"))
    parser.add_argument("--gpu", default=str(ROOT / "checkpoints/videogpt.pt"))
    parser.add_argument("--out", default=str(ROOT / "docs/figures/videogpt_compute"))
    args = parser.parse_args(argv)
    cpu = json.loads(Path(args.cpu).read_text())["rows"]
    cpu_rows = [{"minutes": r["cpu_minutes"],
                 "bits_per_clip": round(r["test_bits_per_code"] * 256, 1),
                 "judge_reads_requested": r["judge_reads_requested"]} for r in cpu]
    gpu = gpu_rows(Path(args.gpu))
    manifest = json.loads(Path(args.gpu).with_suffix(".json").read_text())
    final = {"minutes": round(manifest["train_seconds"] / 60, 2),
             "judge_reads_requested": manifest["metrics"]["judge_reads_requested"]}

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r["minutes"] for r in cpu_rows], [r["bits_per_clip"] for r in cpu_rows], "o-",
              label="2-core CPU, 4×8×8 codes")
    left.plot([r["minutes"] for r in gpu], [r["bits_per_clip"] for r in gpu], "s-",
              label="H200 (shared), 8×8×8 codes")
    left.set(xscale="log", xlabel="training minutes", ylabel="held-out bits per clip")
    left.legend()
    right.plot([r["minutes"] for r in cpu_rows],
               [100 * r["judge_reads_requested"] for r in cpu_rows], "o-",
               label="2-core CPU (unguided)")
    right.plot([final["minutes"]], [100 * final["judge_reads_requested"]], "s", markersize=9,
               label="H200, shipped (guidance 3: 72%)")
    right.set(xscale="log", xlabel="training minutes", ylabel="judge reads requested digits (%)",
              ylim=(0, 100))
    right.axhline(85, ls="--", c="gray", lw=1)
    right.text(right.get_xlim()[0] * 1.1, 87, "goal 85%", color="gray")
    right.legend(loc="center right")
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    command = "python docs/compute_curve.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out.with_suffix(".json").write_text(json.dumps(
        {"command": command.strip(), "cpu": cpu_rows, "gpu": gpu, "gpu_final": final},
        indent=1) + "\n")
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
