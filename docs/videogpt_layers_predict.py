"""VideoGPT prediction in layers, measured (issue 14; `layered_predict_clips`).

Subcommands on the standard test clips (`test_clips`, seed 1234), 8 frames given, 8 predicted:

* ``predict``: each clip's given frames are split into one layer per digit
  (`minivideo.data.split`), each layer's class is read by the prior itself (`classify`) and
  each layer continued as a one-digit clip guided by it; clips whose digits touch in every
  given frame are continued as one stream, guided by the pair of classes the prior reads. The
  layers are stacked as drawn, and (the CLI's default) each redrawn first with its given digit's
  own pixels where the prior put it (`minivideo.data.split.redraw`). The judge reads the
  predicted futures (both digits), split by whether the clip was split, beside the true
  futures; per-frame MSE / SSIM / PSNR against the true future beside copying the last given
  frame; and the one-stream prediction of `--baseline` (the NULL pair, no classes) on the same
  clips and seed.
* ``classify``: how often the prior's reading of the split layers' classes gives each clip's
  true pair, from the given frames alone, with the backward view, and with all views (every
  class scored in every view, and as shipped: the first view's CANDIDATES likeliest). No judge.

    python docs/videogpt_layers_predict.py predict checkpoints/videogpt-layers.pt --clips 256 \\
        --out docs/figures/videogpt_layers_predict.json
    python docs/videogpt_layers_predict.py classify checkpoints/videogpt-layers.pt --clips 128 \\
        --out docs/figures/videogpt_layers_classify.json

``curve``: the learning curve of prediction in layers: each checkpoint of a layer fine-tune
predicts the same test clips (seed 12); the judge's reads of the futures against the clips it
was fine-tuned on (one line per run), beside the true futures and copying the last frame on
the same clips.

    python docs/videogpt_layers_predict.py curve runs/s36/layers-long-step000{200,400,600}.pt \\
        checkpoints/videogpt-layers.pt --clips 64 \\
        --out docs/figures/videogpt_layers_predict_curve.json

``split``: how the given frames of the test clips split (no prior): apart in some frame, or
followed while they touch, and how many layers move along their digit's true path.

    python docs/videogpt_layers_predict.py split --clips 256 \\
        --out docs/figures/videogpt_layers_split.json

``best-of``: k futures a clip (seeds 12, 13, ...; the first is predict's), the one closest to
the true future by SSIM kept (Denton & Fergus, 2018), and the judge's reads of each sample
alone and of those clips whose true future it reads. The futures of each seed are cached in
--cache (runs/layered_futures), which predict shares. It also draws README's figure of true
futures the judge reads beside predictions it does not (videogpt_layers_best_of.png).

    python docs/videogpt_layers_predict.py best-of checkpoints/videogpt-layers.pt --clips 256 \\
        --samples 4 --out docs/figures/videogpt_layers_best_of.json

``gif``: README's figure. Rows: 8 test clips (seed 0); `--baseline` given their first 8 frames,
one stream; the layer prior given the same frames, in layers as drawn, and redrawn.

    python docs/videogpt_layers_predict.py gif checkpoints/videogpt-layers.pt \\
        --out docs/figures/videogpt_layers_prediction.gif
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from unittest.mock import patch

import torch
from einops import rearrange

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.data.split import find_templates, path_error, split_digits
from minivideo.metrics.image import ssim
from minivideo.metrics.judge import reads_digit_sets
from minivideo.metrics.prediction import prediction_error
from minivideo.metrics.reconstruction import test_clips
from minivideo.models.videogpt import predict_clips
from minivideo.models.videogpt_layers import (
    CANDIDATES,
    VIEWS,
    classify,
    one_digit_labels,
    predict_layers,
    stack_prediction,
)
from minivideo.pretrained import pretrained
from minivideo.viz import save_frame_strip

CONTEXT = 8  # frames given (4 latent steps of the shipped tokenizer), as README's prediction row
CLIPS_PER_STEP = 16  # the videogpt-layers recipe's batch
SEED = 12  # the seed of docs/videogpt_prediction.py, so the one-stream rows compare


def share(flags: torch.Tensor) -> float:
    return round(float(flags.float().mean()), 4) if len(flags) else None


def reads_by_split(judge, clip_future: torch.Tensor, digits: torch.Tensor,
                   split: torch.Tensor) -> tuple[float, float, float]:
    """The judge's share of futures read with both digits: all clips, split ones, the rest."""
    reads = reads_digit_sets(judge, clip_future, digits)
    return share(reads), share(reads[split]), share(reads[~split])


def layered_futures(args: argparse.Namespace, model, tokenizer, given: torch.Tensor,
                    seed: int) -> dict:
    """The predicted futures of `given`, redrawn and as drawn, with the split mask and the
    seconds they took, cached in --cache per prior, clip count and seed (`predict` writes
    best-of's first sample; delete the cache after changing the code)."""
    path = args.cache / f"{args.prior.stem}-{len(given)}-seed{seed}.pt"
    if not path.exists():  # a cache per sample, so a stopped run goes on where it was
        began = time.perf_counter()
        layers, found = predict_layers(model, tokenizer, given, seed=seed, batch_size=32,
                                       progress=True)
        futures = {name: stack_prediction(layers, found, given, name == "redrawn")[:, CONTEXT:]
                   for name in ("redrawn", "as_drawn")}
        args.cache.mkdir(parents=True, exist_ok=True)
        torch.save({**futures, "split": found.ok, "touching": found.touching,
                    "seconds": time.perf_counter() - began}, path)
    return torch.load(path)


def predict(args: argparse.Namespace) -> dict:
    model = build_model_from_checkpoint(args.prior).eval()
    tokenizer, judge = pretrained(model.config.tokenizer), pretrained("judge")
    clips = test_clips(args.clips, model.config.num_frames)
    video, digits = clips["video"], clips["digits"]
    future = video[:, CONTEXT:].float() / 255
    given = video[:, :CONTEXT]
    futures = layered_futures(args, model, tokenizer, given, SEED)
    split = futures["split"]
    rows: dict[str, dict] = {}
    baseline = build_model_from_checkpoint(args.baseline).eval()
    stream = predict_clips(baseline, pretrained(baseline.config.tokenizer), given, seed=SEED,
                           batch_size=32)
    copy_last = video[:, CONTEXT - 1 : CONTEXT].float().div(255).expand_as(future)
    for name, clip_future in (("layers_redrawn", futures["redrawn"]),
                              ("layers", futures["as_drawn"]),
                              ("one_stream_baseline", stream[:, CONTEXT:]),
                              ("true_future", future), ("copy_last_frame", copy_last)):
        both, on_split, rest = reads_by_split(judge, clip_future, digits, split)
        error = prediction_error(clip_future, future).mean
        rows[name] = {"judge_reads_both": both, "split_clips": on_split, "unsplit_clips": rest,
                      **{k: round(v, 3) for k, v in error.items()}}
        print(name, rows[name], flush=True)
    return {"test_clips": args.clips, "seed": SEED, "context_frames": CONTEXT,
            "split_share": share(split), "touching_share": share(futures["touching"]),
            "rows": rows, "layers_seconds_per_clip": round(futures["seconds"] / args.clips, 2)}


def classify_views(args: argparse.Namespace) -> dict:
    model = build_model_from_checkpoint(args.prior).eval()
    tokenizer = pretrained(model.config.tokenizer)
    clips = test_clips(args.clips, model.config.num_frames)
    layers, split = split_digits(clips["video"][:, :CONTEXT])
    frames = rearrange(layers[split], "b l t h w -> (b l) t h w")
    true = clips["digits"][split].sort(dim=1).values
    settings = {"given frames": (VIEWS[:1], 10), "and backwards": (VIEWS[:2], 10),
                f"all {len(VIEWS)} views": (VIEWS, 10),
                f"all {len(VIEWS)} views, {CANDIDATES} candidates (shipped)": (VIEWS, CANDIDATES)}
    rows = {}
    for name, (views, candidates) in settings.items():
        began = time.perf_counter()
        with (patch("minivideo.models.videogpt_layers.VIEWS", views),
              patch("minivideo.models.videogpt_layers.CANDIDATES", candidates)):
            labels = classify(model, tokenizer, frames, one_digit_labels())
        pairs = rearrange(labels[:, 0], "(b l) -> b l", l=2).sort(dim=1).values
        rows[name] = {"pair_right": share((pairs == true).all(dim=1)),
                      "seconds_per_layer": round((time.perf_counter() - began) / len(frames), 3)}
        print(name, rows[name], flush=True)
    return {"test_clips": args.clips, "split_clips": int(split.sum()), "rows": rows}


def curve(args: argparse.Namespace) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judge = pretrained("judge")
    clips = test_clips(args.clips, 16)
    video, digits = clips["video"], clips["digits"]
    future = video[:, CONTEXT:].float() / 255
    copy_last = video[:, CONTEXT - 1 : CONTEXT].float().div(255).expand_as(future)
    references = {name: share(reads_digit_sets(judge, clip_future, digits)) for name, clip_future
                  in (("true_future", future), ("copy_last_frame", copy_last))}
    rows = []
    for path in args.prior:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        model = build_model_from_checkpoint(path).eval()
        tokenizer = pretrained(model.config.tokenizer)
        given = video[:, :CONTEXT]
        layers, found = predict_layers(model, tokenizer, given, seed=SEED, batch_size=32)
        split = found.ok
        row = {"checkpoint": str(path), "step": int(checkpoint["step"]),
               "cpu_minutes": round(float(checkpoint["seconds"]) / 60, 1)}
        for name, redraw_digits in (("as_drawn", False), ("redrawn", True)):
            clips = stack_prediction(layers, found, given, redraw_digits)[:, CONTEXT:]
            both, on_split, rest = reads_by_split(judge, clips, digits, split)
            row[name] = {"reads_both": both, "split_clips": on_split, "unsplit_clips": rest,
                         "mse": round(prediction_error(clips, future).mean["mse"], 1)}
        rows.append(row)
        print(rows[-1], flush=True)
    fig, axis = plt.subplots(figsize=(6, 3.6))
    runs: dict[str, list[dict]] = {}  # a run's kept checkpoints are joined by a line
    for row in rows:
        runs.setdefault(Path(row["checkpoint"]).stem.split("-step")[0], []).append(row)
    for (run, points), colour in zip(runs.items(), ("C0", "C1", "C2", "C3"), strict=False):
        thousands = [r["step"] * CLIPS_PER_STEP / 1000 for r in points]
        for name, style in (("redrawn", "o-"), ("as_drawn", "s--")):
            axis.plot(thousands, [r[name]["reads_both"] for r in points], style, color=colour,
                      label=f"{run}, {name.replace('_', ' ')}")
    for (name, value), style in zip(references.items(), (":", "-."), strict=True):
        axis.axhline(value, color="gray", linestyle=style, label=name.replace("_", " "))
    axis.axhline(0.9, color="red", linewidth=0.8, label="goal")
    axis.set(xlabel="thousands of fresh clips in the layer fine-tune (16 a step, ~5 s on 2 cores)",
             ylabel="judge reads both digits", ylim=(0, 1),
             title=f"prediction, 8 frames given ({args.clips} test clips)")
    axis.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    figure = args.out.with_suffix(".png")
    fig.savefig(figure, dpi=120)
    return {"test_clips": args.clips, "seed": SEED, "references": references,
            "split_share": share(split), "rows": rows, "figure": str(figure)}


def best_of(args: argparse.Namespace) -> dict:
    model = build_model_from_checkpoint(args.prior).eval()
    tokenizer, judge = pretrained(model.config.tokenizer), pretrained("judge")
    clips = test_clips(args.clips, model.config.num_frames)
    video, digits = clips["video"], clips["digits"]
    given, future = video[:, :CONTEXT], video[:, CONTEXT:].float() / 255
    true_read = reads_digit_sets(judge, future, digits)
    samples: dict[str, list[torch.Tensor]] = {"redrawn": [], "as_drawn": []}
    for i in range(args.samples):  # sample i is seed SEED + i: sample 0 is predict's row
        sample = layered_futures(args, model, tokenizer, given, SEED + i)
        split = sample["split"]
        for name, futures in samples.items():
            futures.append(sample[name])
    rows: dict[str, dict] = {}
    for name, futures in samples.items():
        reads = torch.stack([reads_digit_sets(judge, f, digits) for f in futures], dim=1)  # n k
        closeness = torch.stack([ssim(f, future).mean(dim=1) for f in futures], dim=1)  # n k
        for k in sorted({1, 2, args.samples}):  # the protocol of Denton & Fergus (2018)
            chosen = reads[torch.arange(len(reads)), closeness[:, :k].argmax(1)]
            error = prediction_error(torch.stack(futures[:k], dim=1), future)
            rows[f"{name}, best of {k} by SSIM"] = {
                "judge_reads_both": share(chosen), "split_clips": share(chosen[split]),
                "unsplit_clips": share(chosen[~split]),
                "reads_where_true_future_read": share(chosen[true_read]),
                **{m: round(v, 3) for m, v in error.mean.items()}}
        rows[f"{name}, each sample"] = {
            "judge_reads_both": [share(r) for r in reads.T], "mean": share(reads),
            "reads_where_true_future_read": share(reads[true_read])}
        rows[f"{name}, any of {args.samples} read (the judge as oracle)"] = {
            "judge_reads_both": share(reads.any(dim=1))}
        if name == "redrawn":  # the figure: futures the judge reads, but not their prediction
            missed = (true_read & ~reads[:, 0]).nonzero()[:6, 0]
            pairs = torch.stack([future[missed], futures[0][missed]], dim=1)  # n 2 t h w
            titles = [f"{kind}: reads {' '.join(map(str, p.nonzero()[:, 0].tolist()))}"
                      for pair in pairs
                      for kind, p in zip(("true", "predicted"), judge.predict(pair).present,
                                         strict=True)]
            figure = args.out.with_suffix(".png")
            save_frame_strip(rearrange(pairs, "n r t h w -> (n r) t h w"), figure, titles=titles)
    for row_name, row in rows.items():
        print(row_name, row, flush=True)
    return {"test_clips": args.clips, "samples": args.samples,
            "seeds": [SEED + i for i in range(args.samples)], "split_share": share(split),
            "true_future_reads": share(true_read), "rows": rows, "figure": str(figure),
            "figure_clips": missed.tolist(), "figure_digits": digits[missed].tolist()}


def split(args: argparse.Namespace) -> dict:
    clips = test_clips(args.clips, 16)
    found = find_templates(clips["video"][:, :CONTEXT])
    truth = clips["positions"][:, :CONTEXT]  # (n, t, 2, 2) true corners of each digit

    def off_path(i: int) -> int:  # px the layers' paths miss their digits', worst frame
        return path_error(found.corners[i], truth[i])

    rows = {}
    for name, which in (("apart", found.ok & ~found.touching), ("touching", found.touching)):
        index = which.nonzero()[:, 0].tolist()
        rows[name] = {"clips": len(index), "share": share(which),
                      "on_true_paths": sum(off_path(i) == 0 for i in index),
                      "within_1_px": sum(off_path(i) <= 1 for i in index),
                      "within_3_px": sum(off_path(i) <= 3 for i in index)}
    return {"test_clips": args.clips, "given_frames": CONTEXT, "split_share": share(found.ok),
            "rows": rows}


def gif(args: argparse.Namespace) -> dict:
    from minivideo.data import MovingMNISTConfig, generate_clips, load_digits
    from minivideo.viz import save_video, tile

    clips = generate_clips(8, load_digits("test"), MovingMNISTConfig(num_frames=16), seed=0)
    given = torch.from_numpy(clips.videos[:, :CONTEXT])
    model = build_model_from_checkpoint(args.prior).eval()
    baseline = build_model_from_checkpoint(args.baseline).eval()
    tokenizer = pretrained(model.config.tokenizer)
    layers, found = predict_layers(model, tokenizer, given, seed=0)
    stream = predict_clips(baseline, pretrained(baseline.config.tokenizer), given, seed=0)
    rows = [torch.from_numpy(clips.videos).float() / 255, stream,
            stack_prediction(layers, found, given, redraw_digits=False),
            stack_prediction(layers, found, given, redraw_digits=True)]
    save_video(tile(torch.cat(rows), ncols=8), args.out, fps=8, scale=2)
    return {"out": str(args.out), "digits": clips.digits.tolist(), "split": found.ok.tolist(),
            "rows": ["real clips (test digits, seed 0)",
                     f"{args.baseline.stem}, one stream: frames 0-{CONTEXT - 1} given, the rest "
                     "sampled",
                     f"{args.prior.stem}, in layers: the given frames split, each layer "
                     "continued, stacked as drawn",
                     "the same layers, each redrawn with its given digit's pixels where the "
                     "prior put it (the CLI's default)"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("predict", help="layered predictions against one stream")
    one.add_argument("--baseline", type=Path, default=Path("checkpoints/videogpt.pt"))
    two = sub.add_parser("classify", help="the prior's reading of the layers' classes")
    three = sub.add_parser("gif", help="README's figure: one stream against layers")
    three.add_argument("--baseline", type=Path, default=Path("checkpoints/videogpt.pt"))
    four = sub.add_parser("curve", help="prediction reads of a fine-tune's checkpoints")
    four.add_argument("prior", type=Path, nargs="+")
    five = sub.add_parser("split", help="how the given frames split (no prior)")
    six = sub.add_parser("best-of", help="k layered futures per clip, the closest kept")
    six.add_argument("--samples", type=int, default=4)
    for p in (one, six):
        p.add_argument("--cache", type=Path, default=Path("runs/layered_futures"))
    for p in (one, two, three, six):
        p.add_argument("prior", type=Path)
    for p in (one, two, three, four, five, six):
        p.add_argument("--clips", type=int, default=256)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be positive, got {args.clips}")
    if getattr(args, "samples", 1) < 1:
        parser.error(f"--samples must be positive, got {args.samples}")
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    rows = {"predict": predict, "classify": classify_views, "gif": gif,
            "curve": curve, "split": split, "best-of": best_of}[args.command](args)
    rows = {"command": "python docs/videogpt_layers_predict.py " + " ".join(
        sys.argv[1:] if argv is None else argv), **rows,
        "cpu_seconds": round(time.perf_counter() - began)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = args.out.with_suffix(".json") if args.command == "gif" else args.out
    report.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
