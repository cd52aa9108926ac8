"""`python -m minivideo sample MODEL ... --num N --out OUT.{npz,gif,mp4}`: sample videos.

    python -m minivideo sample videogpt --cond class --digits 3,7 --num 4 --out samples.gif
    python -m minivideo sample videogpt --cond frames --frames context.npz --num 4 --out pred.npz
    python -m minivideo sample cogvideo --prompt "digit 3 moves left and digit 7 moves down" \\
        --num 4 --guidance 3 --out t2v.mp4

Each model's module provides `sample_videos(args) -> uint8 array (N, T, 64, 64)` (and, where it
has any, extra `captions`); this command checks the options and writes the result: an `.npz`
with `videos` (uint8, N×T×64×64), or one tiled `.gif` / `.mp4` of all N videos.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np

from minivideo.cli.common import add_threads_option
from minivideo.cli.train import CONDITIONS
from minivideo.viz import save_video, tile

# model name → "module:function(args) -> dict with 'videos' uint8 (N T 64 64) and extras".
SAMPLERS: dict[str, str] = {
    "image-prior": "minivideo.models.image_prior:sample_videos",
    "videogpt": "minivideo.models.videogpt:sample_videos",
    "cogvideo": "minivideo.models.cogvideo:sample_videos",
}
OUTPUTS = (".npz", ".gif", ".mp4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the sample command (each model reads the ones it understands)."""
    parser.add_argument("model", choices=list(SAMPLERS), help="which model to sample from")
    parser.add_argument("--num", type=int, default=4, help="number of videos (default 4)")
    parser.add_argument("--out", required=True, help="OUT.npz, OUT.gif or OUT.mp4")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--checkpoint", default=None,
                        help="FILE.pt to sample from (default: the shipped checkpoint)")
    parser.add_argument("--cond", choices=CONDITIONS, default="none",
                        help="videogpt: none, class (--digits) or frames (--frames)")
    parser.add_argument("--digits", default=None, help="videogpt --cond class: e.g. 3,7")
    parser.add_argument("--frames", default=None,
                        help="videogpt --cond frames: CONTEXT.npz with 'videos' (N, T, 64, 64)")
    parser.add_argument("--prompt", default=None, help="cogvideo: a caption")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance weight: cogvideo; videogpt --cond class "
                             "(default 3, the best of docs/videogpt_sweep.py; 1 = none)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=16, help="videos per forward pass")
    parser.add_argument("--fps", type=float, default=8, help="frames per second of a .gif/.mp4")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def write_videos(path: Path, videos: np.ndarray, fps: float = 8, **extras: np.ndarray) -> Path:
    """Write uint8 videos (N T H W) as an .npz (with extras), or tiled as one .gif / .mp4."""
    if not (isinstance(videos, np.ndarray) and videos.dtype == np.uint8 and videos.ndim == 4):
        got = f"{videos.dtype} {videos.shape}" if isinstance(videos, np.ndarray) else type(videos)
        raise ValueError(f"videos must be a uint8 array (N, T, H, W), got {got}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez_compressed(path, videos=videos, **extras)
        return path
    return save_video(tile(videos), path, fps=fps)


def checked_out_path(out: str) -> Path:
    """--out as a Path, with a clear error unless it ends in .npz, .gif or .mp4."""
    path = Path(out)
    if path.suffix not in OUTPUTS:
        raise ValueError(f"--out must end in one of {', '.join(OUTPUTS)}, got {out!r}")
    return path


def run(args: argparse.Namespace) -> int:
    """Check the options, sample with the chosen model, write --out."""
    out = checked_out_path(args.out)
    if args.num < 1:
        raise ValueError(f"--num must be a positive int, got {args.num}")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    module_name, _, attribute = SAMPLERS[args.model].partition(":")
    try:
        sample_videos = getattr(importlib.import_module(module_name), attribute)
    except (ModuleNotFoundError, AttributeError) as err:
        raise ValueError(f"model {args.model!r} cannot be sampled yet ({err})") from err
    result = dict(sample_videos(args))
    videos = result.pop("videos")
    write_videos(out, videos, fps=args.fps,
                 **{k: np.asarray(v) for k, v in result.items()})
    print(f"wrote {out}: {videos.shape[0]} videos of {videos.shape[1]} frames")
    return 0
