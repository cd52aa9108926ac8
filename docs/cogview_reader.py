"""CogView's single frames read by the frame reader: guidance, self-reranking, layers, binding.

The judge reads clips and reads only two thirds of *real* still frames, so it cannot check
issue 15's single-frame goal (>= 90% of CogView's frames show the caption's digits). The frame
reader (`minivideo.metrics.frame_reader`, `checkpoints/frame-reader.pt`) is built for still
frames. This script scores CogView checkpoints as `evaluate_cogview_frames` does, for every
(guidance, best of K, temperature) asked for, with both instruments, on the same test captions;
each row also holds what they read of the real frames and of the tokenizer's reconstructions,
and how often the checkpoint binds each digit to its quadrant (`binding_preference`). Best of K
is CogView's self-reranking (`minivideo.models.cogvideo.selfrank`); --layered draws each clause
as a frame of its own (`layers.layered_images`), --apart K stacks K draws of each layer where
their digits overlap least. Round nine (README), on one thread each:

    # the CogView beneath the video stages, and the bound one (guidance; best of 4; layers)
    python docs/cogview_reader.py --checkpoint checkpoints/cogview.pt --frames 512 --seed 1 \
        --guidance 3 --best-of 1 4 --out docs/figures/cogview_reader_shipped.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --seed 1 --guidance 1 2 3 5 --out docs/figures/cogview_reader_guidance.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --seed 1 --layered --guidance 1 2 3 5 \
        --out docs/figures/cogview_reader_guidance_layered.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --seed 1 --guidance 3 --best-of 4 --out docs/figures/cogview_reader_best_of.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --seed 1 --layered --guidance 3 --best-of 4 \
        --out docs/figures/cogview_reader_best_of_layered.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --seed 1 --layered --guidance 3 --best-of 4 --score likelihood \
        --out docs/figures/cogview_reader_best_of_likelihood.json
    # layers apart (sample cogview's default), two seeds, and 8 draws a layer
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --guidance 3 --layered --apart 4 --seed 1 --out docs/figures/cogview_reader_apart.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --guidance 3 --layered --apart 4 --seed 2 --out docs/figures/cogview_reader_apart_seed2.json
    python docs/cogview_reader.py --checkpoint checkpoints/cogview-bound.pt --frames 512 \
        --guidance 3 --layered --apart 8 --seed 1 --out docs/figures/cogview_reader_apart8.json
    # what overlapping digits cost, real and layered frames
    python docs/cogview_reader.py --overlap --frames 512 --seed 1 --guidance 3 \
        --out docs/figures/cogview_reader_overlap.json
    # the fine-tune's learning curve (python -m minivideo train cogview-bound --config small
    # --steps 100000 --minutes 60 --threads 1 --save-every 500 --keep-every 2000 --no-eval
    # --out runs/cogview-bound.pt, shipped by the same command with --steps 10835 --resume
    # --export checkpoints/cogview-bound.pt)
    python docs/cogview_reader.py --checkpoint runs/cogview-bound-step00{2,4,6,8}000.pt \
        runs/cogview-bound-step010000.pt checkpoints/cogview-bound.pt --frames 256 --seed 1 \
        --guidance 3 --layered --out docs/figures/cogview_reader_curve.json
    # the figures: docs/figures/cogview_reader.png and docs/figures/cogview_samples.png
    python docs/cogview_reader.py --plot docs/figures/cogview_reader.png
    python docs/cogview_reader.py --samples docs/figures/cogview_samples.png --frames 8 \
        --guidance 3
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


def plot(figures: Path, path: Path) -> None:
    """Two panels from the JSONs under `figures`: the fine-tune's learning curve (binding and
    reads against CPU-minutes, the shipped CogView at minute 0), and reads against guidance
    for the two digits drawn in one frame and as layers, with the layers stacked apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rows(name: str) -> list[dict]:
        return json.loads((figures / f"cogview_reader_{name}.json").read_text())["rows"]

    shipped, curve = rows("shipped")[0], rows("curve")
    real = shipped["frames_reader_read_real"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    minutes = [0.0] + [r["train_minutes"] for r in curve]
    left.plot(minutes, [100 * shipped["binding_preferred"]]
              + [100 * r["binding_preferred"] for r in curve], "s--",
              label="binds: own caption likelier than swapped")
    left.plot(minutes[1:], [100 * r["frames_reader_read"] for r in curve], "o-",
              label="reader: layered frames read")
    left.plot([0], [100 * shipped["frames_reader_read"]], "x", color="C1", markersize=8,
              label="reader: shipped CogView's frames")
    left.set(xlabel="CPU-minutes of fine-tuning (1 thread)", ylabel="% of test frames",
             ylim=(0, 100))
    for ax in (left, right):
        ax.axhline(100 * real, color="gray", ls=":")
        ax.text(0.01, 100 * real + 1.5, "reader on real frames", fontsize=7, color="gray",
                transform=ax.get_yaxis_transform())
        ax.axhline(90, color="red", lw=0.8, ls="--")
    left.legend(fontsize=7, loc="lower right")
    for name, label, style in (("guidance", "two digits in one frame", "s--"),
                               ("guidance_layered", "one layer per clause", "o-")):
        sweep = rows(name)
        right.plot([r["frames_guidance"] for r in sweep],
                   [100 * r["frames_reader_read"] for r in sweep], style, label=label)
    apart = rows("apart")[0]
    right.plot([apart["frames_guidance"]], [100 * apart["frames_reader_read"]], "*",
               markersize=12, label="layers stacked apart (4 draws each)")
    right.set(xlabel="guidance w", ylim=(0, 100), ylabel="frames the reader reads (%)")
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def samples(columns: dict[str, dict], num: int, path: Path) -> None:
    """A grid: one column per test caption, the real frame on top, then a row per sampler
    (columns: title → dict(model=CogView, guidance[, layered, apart]))."""
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
                                          apart=column.get("apart", 1))
        else:
            codes = draw_frames(model, captions, column["guidance"])
            drawn[title] = tokenizer_of(model).decode(codes[:, None])[:, 0]
    fig, axes = plt.subplots(1 + len(columns), num, figsize=(1.25 * num, 1.35 * (1 + len(columns))),
                             squeeze=False)
    reading = [frame_caption(real["digits"][i], real["corners"][i], "reading") for i in range(num)]
    for j, (title, frames) in enumerate([("real frame", real["frames"])] + list(drawn.items())):
        for i in range(num):
            ax = axes[j, i]
            ax.imshow(frames[i], cmap="gray", vmin=0, vmax=255 if j == 0 else 1)
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_title(reading[i].replace("digit ", "").replace(" and ", "\n"),
                             fontsize=7)
        axes[j, 0].set_ylabel(title, fontsize=7)
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
                        help="FILE.png from the cogview_reader_*.json files in --figures")
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--overlap", action="store_true",
                        help="read real and layered frames split by whether their digits "
                             "overlap (cogview-bound, the first --guidance)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="FILE.png: --frames real frames beside the drawings of the CogView "
                             "beneath the stages and of cogview-bound (one frame, layered, "
                             "layers apart), at the first --guidance")
    args = parser.parse_args(argv)
    if args.plot is not None:
        plot(args.figures, args.plot)
        return 0
    torch.set_num_threads(args.threads)
    if args.samples is not None:
        bound, guidance = pretrained("cogview-bound").eval(), args.guidance[0]
        samples({"cogview": dict(model=pretrained("cogview").eval(), guidance=guidance),
                 "bound: one frame": dict(model=bound, guidance=guidance),
                 "bound: layers": dict(model=bound, guidance=guidance, layered=True),
                 "bound: layers apart": dict(model=bound, guidance=guidance, layered=True,
                                             apart=4)},
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
