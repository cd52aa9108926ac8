"""`python -m minivideo data`: generate Moving MNIST clips with labels and captions to an .npz."""

from __future__ import annotations

import argparse
from pathlib import Path

from minivideo.cli.common import add_threads_option, int_at_least
from minivideo.data.captions import MIN_FRAMES
from minivideo.data.datasets import generate_arrays, save_clips
from minivideo.data.mnist import SOURCES, SPLITS
from minivideo.data.moving_mnist import MovingMNISTConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the data command."""
    parser.add_argument("--split", choices=SPLITS, default="train",
                        help="which digit images to use (test clips use unseen digits)")
    parser.add_argument("--num", type=int, required=True, help="number of clips")
    parser.add_argument("--out", required=True, help="output file, FILE.npz")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="random seed, an integer >= 0 (default 0)")
    parser.add_argument("--frames", type=int, default=20,
                        help=f"frames per clip, at least {MIN_FRAMES} (default 20)")
    parser.add_argument("--digits", type=int, default=2, help="digits per clip, 1-3 (default 2)")
    parser.add_argument("--source", choices=SOURCES, default="bundled",
                        help="bundled 5k digits (offline) or full MNIST (downloaded)")
    parser.add_argument("--stochastic", action="store_true",
                        help="digits change direction at random times (Denton & Fergus)")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Validate the options, generate the clips and write them; 0 on success."""
    if args.num <= 0:
        raise ValueError(f"--num must be a positive number of clips, got {args.num}")
    if not 1 <= args.digits <= 3:
        raise ValueError(f"--digits must be 1, 2 or 3, got {args.digits}")
    if args.frames < MIN_FRAMES:
        raise ValueError(f"--frames must be at least {MIN_FRAMES}: captions describe motion and "
                         f"one frame shows none; got {args.frames}")
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out must be a file name ending in .npz, got {args.out!r}")
    config = MovingMNISTConfig(num_digits=args.digits, num_frames=args.frames,
                               stochastic=args.stochastic)
    arrays = generate_arrays(args.num, args.split, args.seed, config, args.source,
                             progress=not args.no_progress)
    save_clips(out, arrays)
    videos = arrays["videos"]
    print(f"wrote {out}: videos {videos.dtype} {videos.shape}, captions e.g. "
          f"{str(arrays['captions'][0])!r}")
    return 0
