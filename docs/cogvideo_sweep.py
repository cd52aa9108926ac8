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
import time
from pathlib import Path

import torch

from minivideo.metrics.captions import caption_accuracy
from minivideo.metrics.cogvideo_quality import _clip_caption, _ids, test_clips, tokenizer_of
from minivideo.models.cogvideo import frame_caption, sample_images, text_to_video
from minivideo.pretrained import pretrained
from minivideo.viz import to_uint8

TEMPERATURES = (1.0, 0.8, 0.7)
GUIDANCE = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keys, interp, cogview, judge = (pretrained(name) for name in (
        "cogvideo-keyframes", "cogvideo-interp", "cogview", "judge"))
    clips = test_clips(keys, args.prompts)
    tokenizer = tokenizer_of(keys)
    captions = [_clip_caption(clips, i) for i in range(args.prompts)]

    def first_frames(source: str, start: int, stop: int, temperature: float):
        if source == "drawn":
            return None
        if source == "real":
            return clips.codes[start:stop, :1].long()
        quadrants = [frame_caption(clips.digits[i], clips.positions[i, 0])
                     for i in range(start, stop)]
        return sample_images(cogview, _ids(quadrants), guidance=GUIDANCE, seed=start,
                             temperature=temperature)[:, None]

    rows = []
    settings = [("drawn", t) for t in TEMPERATURES] + [("real", 1.0), ("cogview", 1.0)]
    for source, temperature in settings:
        videos, began = [], time.perf_counter()
        for start in range(0, args.prompts, args.batch_size):
            stop = min(start + args.batch_size, args.prompts)
            codes = text_to_video(keys, interp, _ids(captions[start:stop]), guidance=GUIDANCE,
                                  seed=start, temperature=temperature,
                                  given=first_frames(source, start, stop, temperature))
            videos.append(torch.from_numpy(to_uint8(tokenizer.decode(codes.cpu()))))
        reads = caption_accuracy(judge, torch.cat(videos), captions)
        rows.append({"first_key_frame": source, "temperature": temperature,
                     **{key: round(value, 4) for key, value in reads.items()},
                     "seconds": round(time.perf_counter() - began, 1)})
        print(json.dumps(rows[-1]), flush=True)
    command = "python docs/cogvideo_sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.write_text(json.dumps({"command": command, "prompts": args.prompts,
                                    "guidance": GUIDANCE, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
