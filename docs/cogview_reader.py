"""CogView's single frames read by the frame reader: guidance and self-reranking, against real.

The judge reads clips and reads only two thirds of *real* still frames, so it cannot check
issue 15's single-frame goal (>= 90% of CogView's frames show the caption's digits). The frame
reader (`minivideo.metrics.frame_reader`, `checkpoints/frame-reader.pt`) is built for still
frames. This script scores the shipped CogView as `evaluate_cogview_frames` does, for every
(guidance, best-of-K) pair asked for, with both instruments, on the same test captions; each row
also holds what the reader and the judge read of the real frames and of the tokenizer's
reconstructions. Best of K is CogView's own self-reranking (`minivideo.models.cogvideo.selfrank`):
K frames per caption, the one with the highest caption score kept.

    python docs/cogview_reader.py --frames 256 --guidance 1 2 3 5 --best-of 1 \
        --out docs/figures/cogview_reader_guidance.json
    python docs/cogview_reader.py --frames 256 --guidance 3 --best-of 1 2 4 8 16 \
        --out docs/figures/cogview_reader_best_of.json
    python docs/cogview_reader.py --plot docs/figures/cogview_reader.png \
        --rows docs/figures/cogview_reader_guidance.json docs/figures/cogview_reader_best_of.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

from minivideo.checkpoints import build_model_from_checkpoint, load_checkpoint
from minivideo.metrics.cogvideo_quality import binding_preference, evaluate_cogview_frames
from minivideo.pretrained import pretrained, pretrained_path


def plot(guidance_rows: list[dict], best_of_rows: list[dict], path: Path) -> None:
    """Two panels: frames read against guidance (one image each), and against K (best of K)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, rows, key, label in ((axes[0], guidance_rows, "frames_guidance", "guidance w"),
                                 (axes[1], best_of_rows, "frames_best_of",
                                  "best of K (self-reranked)")):
        xs = [r.get(key, 1) for r in rows]
        ax.plot(xs, [100 * r["frames_reader_read"] for r in rows], "o-",
                label="reader: digits, each in its quadrant")
        ax.plot(xs, [100 * r["frames_reader_digits"] for r in rows], "s--",
                label="reader: digits anywhere")
        ax.plot(xs, [100 * r["frames_judge_reads"] for r in rows], "^:", label="judge")
        ax.axhline(100 * rows[0]["frames_reader_read_real"], color="gray", ls=":")
        ax.text(0.01, 100 * rows[0]["frames_reader_read_real"] - 5, "reader on real frames",
                fontsize=7, color="gray", transform=ax.get_yaxis_transform())
        ax.axhline(90, color="red", lw=0.8, ls="--")
        ax.set(xlabel=label, ylim=(0, 100))
        if key == "frames_best_of":
            ax.set_xscale("log", base=2)
    axes[0].set_ylabel("CogView frames that show\nthe caption's digits (%)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def samples(columns: dict[str, dict], num: int, path: Path) -> None:
    """A grid: one row per test caption, the real frame first, then each column's drawing
    (columns: title → dict(model=CogView, guidance, best_of, layered))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minivideo.metrics.cogvideo_quality import draw_frames, test_clips, test_first_frames
    from minivideo.models.cogvideo import frame_caption, layered_images, tokenizer_of

    real = test_first_frames(num)
    drawn = {}
    for title, column in columns.items():
        model = column["model"]
        clips = test_clips(model, num)
        captions = [frame_caption(clips.digits[i], clips.positions[i, 0],
                                  model.config.caption_order) for i in range(num)]
        if column.get("layered"):
            drawn[title] = layered_images(model, captions, guidance=column["guidance"],
                                          best_of=column["best_of"])
        else:
            codes = draw_frames(model, captions, column["guidance"], best_of=column["best_of"])
            drawn[title] = tokenizer_of(model).decode(codes[:, None])[:, 0]
    fig, axes = plt.subplots(num, 1 + len(columns), figsize=(1.3 * (1 + len(columns)), 1.45 * num))
    reading = [frame_caption(real["digits"][i], real["corners"][i], "reading") for i in range(num)]
    for i in range(num):
        for j, (title, frames) in enumerate([("real frame", real["frames"][i])]
                                            + [(t, d[i]) for t, d in drawn.items()]):
            ax = axes[i, j]
            ax.imshow(frames, cmap="gray", vmin=0, vmax=255 if j == 0 else 1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
        axes[i, 0].set_ylabel(reading[i].replace(" and ", "\n"), fontsize=6, rotation=0,
                              ha="right", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def overlap_split(cogview: torch.nn.Module, reader: torch.nn.Module, num: int, guidance: float,
                  seed: int, threshold: float = 0.1) -> dict[str, float]:
    """What overlapping digits cost: real frames and CogView's layered frames (the default
    sampler's, drawn here clause by clause to keep each layer), each split by whether more than
    `threshold` of the smaller digit's ink (pixels > 0.3) lies under the other digit's, and read
    by the reader on either side of the split."""
    from minivideo.data.mnist import load_digits
    from minivideo.data.moving_mnist import render
    from minivideo.metrics.cogvideo_quality import test_clips, test_first_frames
    from minivideo.metrics.frame_reader import quadrant_index, reads_frame_captions
    from minivideo.models.cogvideo import frame_caption, layered_images

    def shared(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        a, b = first > 0.3, second > 0.3
        smaller = torch.minimum(a.flatten(1).sum(1), b.flatten(1).sum(1)).clamp_min(1)
        return (a & b).flatten(1).sum(1) / smaller

    real = test_first_frames(num)
    images = load_digits("test")[0]
    pasted = [torch.from_numpy(render(images[real["ids"][:, k]][:, None],
                                      real["corners"][:, None, k : k + 1], 64)[:, 0]) / 255
              for k in (0, 1)]
    quadrants = quadrant_index(real["corners"])
    clips = test_clips(cogview, num)
    captions = [frame_caption(clips.digits[i], clips.positions[i, 0],
                              cogview.config.caption_order) for i in range(num)]
    layers = [layered_images(cogview, [c.split(" and ")[k] for c in captions],
                             guidance=guidance, seed=seed + k * 10**6) for k in (0, 1)]
    out = {}
    for name, (first, second) in (("real", pasted), ("drawn", layers)):
        frames = torch.maximum(first, second)
        read = reads_frame_captions(reader, frames, real["digits"], quadrants)
        overlap = shared(first, second) > threshold
        out.update({f"{name}_overlapping_share": round(float(overlap.float().mean()), 4),
                    f"{name}_read_overlapping": round(float(read[overlap].float().mean()), 4),
                    f"{name}_read_apart": round(float(read[~overlap].float().mean()), 4),
                    f"{name}_read": round(float(read.float().mean()), 4)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=None,
                        help="CogView checkpoints, each scored in turn (a run's snapshots give "
                             "its learning curve; default: the shipped cogview-bound)")
    parser.add_argument("--reader", type=Path, default=None,
                        help="a frame-reader checkpoint (default: the shipped frame-reader)")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--guidance", type=float, nargs="+", default=[3.0])
    parser.add_argument("--best-of", type=int, nargs="+", default=[1])
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--score", choices=("caption", "likelihood"), default="caption",
                        help="what best of K ranks by (minivideo.models.cogvideo.selfrank)")
    parser.add_argument("--apart", type=int, default=1,
                        help="layered: K draws of each layer, stacked so digits overlap least")
    parser.add_argument("--layered", action="store_true",
                        help="each clause drawn as a frame of its own, layers composed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="FILE.json for the rows")
    parser.add_argument("--plot", type=Path, default=None,
                        help="FILE.png from two JSONs of --rows (guidance, then best of K)")
    parser.add_argument("--rows", type=Path, nargs=2, default=None)
    parser.add_argument("--overlap", action="store_true",
                        help="read real and layered frames split by whether their digits "
                             "overlap (cogview-bound, the first --guidance)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="FILE.png: real frames beside the shipped CogView's, and the bound "
                             "one's plain, best of --best-of and layered, at --guidance")
    args = parser.parse_args(argv)
    if args.plot is not None:
        if args.rows is None:
            parser.error("--plot needs --rows GUIDANCE.json BEST_OF.json")
        guidance, best_of = (json.loads(p.read_text())["rows"] for p in args.rows)
        plot(guidance, best_of, args.plot)
        return 0
    torch.set_num_threads(args.threads)
    if args.samples is not None:
        bound = pretrained("cogview-bound").eval()
        guidance, best_of = args.guidance[0], args.best_of[-1]
        samples({"CogView (shipped before)": dict(model=pretrained("cogview").eval(),
                                                  guidance=guidance, best_of=1),
                 "cogview-bound": dict(model=bound, guidance=guidance, best_of=1),
                 f"bound, best of {best_of}": dict(model=bound, guidance=guidance,
                                                   best_of=best_of),
                 f"bound, layered, best of {best_of}": dict(model=bound, guidance=guidance,
                                                            best_of=best_of, layered=True)},
                args.frames, args.samples)
        return 0
    if args.out is None:
        parser.error("give --out FILE.json (or --plot, --samples)")
    if args.overlap:
        cogview = pretrained("cogview-bound").eval()
        reader = pretrained("frame-reader").eval() if args.reader is None else \
            build_model_from_checkpoint(args.reader).eval()
        row = overlap_split(cogview, reader, args.frames, args.guidance[0], args.seed)
        print(json.dumps(row))
        command = "python docs/cogview_reader.py " + " ".join(sys.argv[1:] if argv is None
                                                               else argv)
        args.out.write_text(json.dumps({"command": command, "rows": [row]}, indent=1) + "\n")
        return 0
    reader = (pretrained("frame-reader") if args.reader is None
              else build_model_from_checkpoint(args.reader)).eval()
    judge = pretrained("judge")
    rows = []
    for path in args.checkpoint or [pretrained_path("cogview-bound")]:
        cogview = build_model_from_checkpoint(path).eval()
        payload = load_checkpoint(path)
        about = {"checkpoint": str(path), "step": payload["step"],
                 "train_minutes": round(payload.get("seconds", 0.0) / 60, 1),
                 **binding_preference(cogview, args.frames)}
        for guidance, best_of, temperature in itertools.product(args.guidance, args.best_of,
                                                                args.temperature):
            began = time.perf_counter()
            row = evaluate_cogview_frames(cogview, judge, num_frames=args.frames,
                                          guidance=guidance, seed=args.seed, best_of=best_of,
                                          temperature=temperature, reader=reader,
                                          layered=args.layered, score=args.score,
                                          apart=args.apart)
            # drawing, decoding and reading all three sets of frames, per drawn frame
            row["seconds_per_frame_scored"] = round((time.perf_counter() - began) / args.frames,
                                                    3)
            rows.append({**about, **row})
            print(json.dumps(rows[-1]), flush=True)
    command = "python docs/cogview_reader.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.write_text(json.dumps({"command": command, "threads": args.threads, "rows": rows},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
