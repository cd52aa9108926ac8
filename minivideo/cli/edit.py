"""`python -m minivideo edit CLIPS.npz --region ... | --trajectory SLOT --out OUT`: edit clips.

    python -m minivideo data --split test --num 2 --num-frames 16 --out clips.npz
    python -m minivideo edit clips.npz --region 8,15 --box 0,32,64,64 --out edited.gif
    python -m minivideo edit clips.npz --trajectory 0 --cond class --new-digits 5,7 --out re.npz

Video editing with the shipped VideoGPT prior (`minivideo.editing`): the prior's tokenizer turns
each clip into its codes (4×8×8 for the one-prior `videogpt`), the codes covering the region —
frames FIRST..LAST inside a pixel box, or one digit's path through the clip (from the file's
`positions`) — are re-sampled by the prior while every other code is kept, and the codes are
decoded. ``--rounds R`` adds
Metropolis–Hastings rounds so that the kept codes *after* the region also shape it. With
``--cond class`` the digits named in the prefix come from the file's `digits`, or from
``--new-digits`` (ask for another digit along an edited trajectory). An ``.npz`` holds
`videos` (the edited clips, uint8 N×16×64×64), `original` and the edited-code mask; a
``.gif`` / ``.mp4`` shows the originals in a row above their edits.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from einops import rearrange

from minivideo.cli.common import (
    UsageError,
    add_threads_option,
    checked_out_path,
    load_videogpt,
    user_input,
    write_videos,
)
from minivideo.data.video_files import load_video_file
from minivideo.editing import region_mask, trajectory_mask
from minivideo.models.videogpt import CONDITIONS, check_tokenizer
from minivideo.viz import save_video, tile, to_uint8


def _ints(text: str, count: int, name: str) -> tuple[int, ...]:
    """Parse "a,b,..." into exactly `count` ints, or fail naming the option."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise UsageError(f"{name} must be {count} comma-separated ints, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the edit command."""
    parser.add_argument("clips", metavar="CLIPS.npz",
                        help="'videos' (N, 16, 64, 64) uint8, as `python -m minivideo data "
                             "--frames 16` writes (with 'digits' and 'positions')")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--region", metavar="FIRST,LAST",
                      help="re-sample frames FIRST..LAST (inclusive) inside --box")
    what.add_argument("--trajectory", type=int, metavar="SLOT",
                      help="re-sample the codes along digit SLOT's path (needs 'positions')")
    parser.add_argument("--box", default="0,0,64,64", metavar="TOP,LEFT,BOTTOM,RIGHT",
                        help="pixel box of --region, bottom/right exclusive (default: all)")
    parser.add_argument("--margin", type=int, default=2,
                        help="--trajectory: pixels added around the digit's box (default 2)")
    # --cond, as in `sample videogpt`; --prior is its older spelling
    parser.add_argument("--cond", "--prior", dest="cond", choices=CONDITIONS, default="class",
                        help="conditioning of the re-sampling prior: class (the file's digits "
                             "or --new-digits), none or frames (default class); the shipped "
                             "one-prior videogpt serves all three")
    parser.add_argument("--new-digits", default=None, metavar="A,B",
                        help="--cond class: the digits to ask for (default: the file's)")
    parser.add_argument("--checkpoint", default=None,
                        help="VideoGPT FILE.pt (default: the shipped prior)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="Metropolis-Hastings rounds after the left-to-right pass")
    parser.add_argument("--out", required=True, help="OUT.npz, OUT.gif or OUT.mp4")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--fps", type=float, default=8, help="frames per second of a .gif/.mp4")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _load_clips(path: str, need: tuple[str, ...], frames: int) -> dict[str, np.ndarray]:
    """The arrays of CLIPS.npz, checked: videos (N, frames, 64, 64) uint8 and the keys in need."""
    arrays = load_video_file(path, "CLIPS.npz", frames=frames)
    for key in need:
        if key not in arrays:
            raise UsageError(f"{path} has no {key!r} array, which this edit needs")
    return arrays


def run(args: argparse.Namespace) -> int:
    """Re-sample the chosen codes of every clip with the prior, keep the rest, write --out."""
    out = checked_out_path(args.out)
    if args.rounds < 0:
        raise UsageError(f"--rounds must be >= 0, got {args.rounds}")
    if args.new_digits is not None and args.cond != "class":
        raise UsageError("--new-digits needs --cond class (the other priors take no digits)")
    need = (("positions",) if args.trajectory is not None else ()) + \
        (("digits",) if args.cond == "class" and args.new_digits is None else ())
    prior, tokenizer = load_videogpt(args.checkpoint, args.cond)
    num_frames = prior.config.num_frames
    arrays = _load_clips(args.clips, need, num_frames)
    videos = torch.from_numpy(arrays["videos"])
    n = len(videos)

    grid = tuple(tokenizer.latent_shape(num_frames))
    if args.region is not None:
        first, last = _ints(args.region, 2, "--region")
        with user_input("--region"):
            masks = [region_mask(grid, num_frames=num_frames, frames=(first, last),
                                 box=_ints(args.box, 4, "--box"))] * n
    else:
        slots = arrays["positions"].shape[2]
        if not 0 <= args.trajectory < slots:
            raise UsageError(f"--trajectory must be a digit slot in [0, {slots}), "
                             f"got {args.trajectory}")
        with user_input("--margin"):
            masks = [trajectory_mask(grid, arrays["positions"][i, :, args.trajectory],
                                     margin=args.margin) for i in range(n)]
    digits = None
    if args.cond == "class":
        if args.new_digits is not None:
            pair = _ints(args.new_digits, prior.config.prefix_len, "--new-digits")
            if not all(0 <= d <= 9 for d in pair):
                raise UsageError(f"--new-digits must be digits 0-9, got {args.new_digits!r}")
            digits = torch.tensor([pair] * n)
        else:
            digits = torch.from_numpy(arrays["digits"].astype(np.int64))
    # A one-prior model (NULL label) needs no separate context: the kept codes are the context.
    cross_attends = prior.config.cond == "frames"
    frames = videos[:, : prior.config.context_frames] if cross_attends else None

    check_tokenizer(prior, tokenizer)
    codes = tokenizer.encode(videos)  # (n, t, h, w)
    edited_codes = prior.edit_codes(codes, torch.stack(masks), digits=digits, frames=frames,
                                    rounds=args.rounds, seed=args.seed,
                                    progress=not args.no_progress)
    edited = to_uint8(tokenizer.decode(edited_codes), "decoded clips")
    if out.suffix == ".npz":
        write_videos(out, edited, original=arrays["videos"],
                     edit_mask=torch.stack(masks).numpy())
    else:  # the originals in the top row, their edits below
        rows = rearrange(np.stack([arrays["videos"], edited]), "r n t h w -> (r n) t h w")
        out.parent.mkdir(parents=True, exist_ok=True)
        save_video(tile(rows, ncols=n), out, fps=args.fps)
    changed = float((edited_codes != codes)[torch.stack(masks)].float().mean())
    print(f"wrote {out}: {n} clips edited, {int(torch.stack(masks)[0].sum())} of "
          f"{int(np.prod(grid))} codes re-sampled per clip ({changed:.0%} of them changed)")
    return 0
