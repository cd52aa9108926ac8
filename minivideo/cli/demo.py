"""`python -m minivideo demo`: one text-to-video clip from the shipped CogVideo checkpoints.

    python -m minivideo demo                                  # writes demo.gif
    python -m minivideo demo --prompt "digit 4 moves up and digit 1 moves right" --out my.gif

The same as `python -m minivideo sample cogvideo ...` with friendly defaults: it needs no
training, runs on a CPU, and shows a progress bar while the clip is generated.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minivideo.cli import sample
from minivideo.cli.common import add_threads_option

DEFAULT_PROMPT = "digit 3 moves left and digit 7 moves down"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the demo command."""
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"default: {DEFAULT_PROMPT!r}")
    parser.add_argument("--out", default="demo.gif", help="OUT.gif, OUT.mp4 or OUT.npz")
    parser.add_argument("--num", type=int, default=1, help="number of clips (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance weight (default: the model's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Sample with `sample cogvideo` and say where the clip went and how long it took."""
    parser = argparse.ArgumentParser()
    sample.add_arguments(parser)
    argv = ["cogvideo", "--prompt", args.prompt, "--out", args.out, "--num", str(args.num),
            "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.guidance is not None:
        argv += ["--guidance", str(args.guidance)]
    if args.device is not None:
        argv += ["--device", args.device]
    if args.no_progress:
        argv.append("--no-progress")
    began = time.perf_counter()
    status = sample.run(parser.parse_args(argv))
    print(f"{args.prompt!r} → {Path(args.out).resolve()} in {time.perf_counter() - began:.0f} s")
    return status
