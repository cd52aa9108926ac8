"""What the shipped text-to-video hierarchy draws under other sampling choices, and from a given
first frame.

The stages are trained once; how they are sampled is chosen afterwards. On the same test prompts
as `python -m minivideo eval cogvideo` (guidance 3), this script reports what the judge reads of
whole clips (the prompt's digits, each digit's first direction, both):

* at a few sampling temperatures (every stage);
* with the first key frame *given* instead of drawn: the real clip's first frame (what the
  stages make of a perfect start, a diagnostic) or a frame CogView drew from that frame's own
  quadrant caption (a pipeline that takes its start from the text-to-image model).

    python docs/cogvideo_sweep.py --prompts 64 --out docs/figures/cogvideo_sweep.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from minivideo.metrics.cogvideo_quality import draw_frames, evaluate_text_to_video, test_clips
from minivideo.models.cogvideo import frame_caption
from minivideo.pretrained import pretrained

TEMPERATURES = (1.0, 0.8, 0.7)
GUIDANCE = 3.0


def cogview_first_frames(cogview: torch.nn.Module, clips, batch_size: int) -> torch.Tensor:
    """(n, 1, h, w): CogView's drawing of each test clip's first frame, from its own quadrant
    caption (where the clip's digits start)."""
    quadrants = [frame_caption(clips.digits[i], clips.positions[i, 0]) for i in range(len(clips))]
    return draw_frames(cogview, quadrants, GUIDANCE, seed=0, batch_size=batch_size)[:, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keys, interp, judge = (pretrained(name)
                           for name in ("cogvideo-keyframes", "cogvideo-interp", "judge"))
    clips = test_clips(keys, args.prompts)  # the prompts evaluate_text_to_video captions
    firsts = {"drawn": None, "real": clips.codes[:, :1].long(),
              "cogview": cogview_first_frames(pretrained("cogview"), clips, 16)}
    rows = []
    for first, temperature in [("drawn", t) for t in TEMPERATURES] + [("real", 1.0),
                                                                        ("cogview", 1.0)]:
        figures = evaluate_text_to_video(keys, interp, judge, num_prompts=args.prompts,
                                         guidance=GUIDANCE, temperature=temperature,
                                         given=firsts[first])
        rows.append({"first_key_frame": first, "temperature": temperature,
                     **{key.removeprefix("t2v_caption_"): value for key, value in figures.items()
                        if key.startswith("t2v_caption_")}})
        print(json.dumps(rows[-1]), flush=True)
    command = "python docs/cogvideo_sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.write_text(json.dumps({"command": command, "prompts": args.prompts,
                                    "guidance": GUIDANCE, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
