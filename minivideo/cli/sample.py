"""`python -m minivideo sample MODEL ... --num N --out OUT.{npz,gif,mp4}`: sample videos.

    python -m minivideo sample videogpt --cond class --digits 3,7 --num 4 --out samples.gif
    python -m minivideo sample videogpt --cond frames --frames context.npz --num 4 --out pred.npz
    python -m minivideo sample cogvideo --prompt "digit 3 moves left and digit 7 moves down" \\
        --num 4 --guidance 3 --out t2v.mp4
    python -m minivideo sample cogview --prompt "digit 3 up-left and digit 7 down-right" \\
        --num 8 --out t2i.gif

This command is the only place that reads these options. It checks them, loads the model (the
shipped checkpoints that `minivideo.registry` names, or --checkpoint) with the tokenizer it was
trained on, calls the model's typed sampler (`videogpt.sample_videos(model, tokenizer, num,
cond=..., digits=...)`, `image_prior.sample_videos`, `cogvideo.text_to_video`), and writes an
`.npz` with `videos` (uint8, N×T×64×64) and what conditioned them, or one tiled `.gif` / `.mp4`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from einops import repeat
from torch import nn

from minivideo import registry
from minivideo.cli.common import (
    UsageError,
    add_threads_option,
    checked_out_path,
    layer_rerank,
    load_cogvideo_stages,
    load_model,
    load_videogpt,
    middles_searched,
    user_input,
    write_videos,
)
from minivideo.data.captions import CaptionTokenizer
from minivideo.data.video_files import load_video_file
from minivideo.models import cogvideo, image_prior, videogpt, videogpt_layers
from minivideo.models.cogvideo import CogView
from minivideo.models.cogvideo.search import search_text_to_video
from minivideo.models.cogvideo.selfrank import best_of_images
from minivideo.pretrained import prior_tokenizer
from minivideo.utils import pick_device, to_uint8

CONDITIONS = videogpt.CONDITIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the sample command (each model reads the ones it understands)."""
    parser.add_argument("model", choices=list(registry.SAMPLERS),
                        help="which model to sample from")
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
    parser.add_argument("--prompt", default=None,
                        help="cogvideo: a caption ('digit 3 moves left and digit 7 moves down'); "
                             "cogview: a frame caption ('digit 3 up-left and digit 7 "
                             "down-right')")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance weight: cogvideo (default 2 for the "
                             "layer stages, 3 for the two-digit ones; docs/layers.py); videogpt "
                             "--cond class (default 3, the best of docs/videogpt_sweep.py); "
                             "1 = none")
    parser.add_argument("--keyframes", choices=("auto", "drawn", "searched"), default="auto",
                        help="cogvideo: key frames drawn code by code, or by move search (each "
                             "digit moved whole); auto: searched for layer stages, else drawn")
    parser.add_argument("--middles", choices=("auto", "drawn", "searched"), default="auto",
                        help="cogvideo: middle frames drawn by the interpolation stage code by "
                             "code, or by search (the layer's digit shifted, picked by that "
                             "stage's scores); auto: LAYER_MIDDLES (drawn) for layer stages, "
                             "else drawn")
    parser.add_argument("--rerank", type=int, default=None,
                        help="cogvideo, layer stages with searched key frames: key-frame chains "
                             "drawn per layer, the one the stage scores highest kept (default "
                             f"{cogvideo.LAYER_RERANK}; 1: the first); cogview: images drawn "
                             "per caption (per clause), the best by CogView's caption score "
                             f"kept (default {cogvideo.COGVIEW_BEST_OF})")
    parser.add_argument("--apart", type=int, default=None,
                        help="cogview, and videogpt --cond class drawn in layers: each layer "
                             "drawn K times and the layers stacked where their digits overlap "
                             f"least (default {cogvideo.COGVIEW_APART} and "
                             f"{videogpt_layers.LAYER_APART}; 1: as drawn, overlapping as "
                             "Moving MNIST's digits do)")
    parser.add_argument("--layers", choices=("auto", "on", "off"), default="auto",
                        help="videogpt: draw each digit as a clip of its own and stack them "
                             "(a prior trained on one-digit clips too, `train videogpt-layers`; "
                             "none: two classes drawn uniformly; frames: the given frames split "
                             "into one layer per digit, each continued), or both digits in one "
                             "stream of codes; auto: layers when the prior draws them")
    parser.add_argument("--redraw", choices=("on", "off"), default="on",
                        help="videogpt --cond frames in layers: each predicted layer redrawn "
                             "with its given digit's own pixels, where the prior puts it (on), "
                             "or the prior's drawing as it is (off)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=16, help="videos per forward pass")
    parser.add_argument("--fps", type=float, default=8, help="frames per second of a .gif/.mp4")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    add_threads_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# --------------------------------------------------------------------------- options → arguments
def parse_digits(text: str | None) -> list[int]:
    """--digits '3,7' → [3, 7], with a clear error for anything that is not two digits 0..9."""
    if text is None:
        raise UsageError("--cond class needs --digits, e.g. --digits 3,7")
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != videogpt.DIGITS_PER_CLIP or not all(p.isdigit() for p in parts):
        raise UsageError(f"--digits must be two digits 0..9 separated by a comma, e.g. 3,7; "
                         f"got {text!r}")
    values = [int(p) for p in parts]
    if max(values) >= videogpt.NUM_CLASSES:
        raise UsageError(f"unknown digit in --digits {text!r}: digits are 0..9")
    return values


def load_context(path: str | Path, context_frames: int, num: int) -> torch.Tensor:
    """--frames: the first k frames (num, k, 64, 64) uint8 of an .npz's 'videos' (cycled)."""
    with user_input("--frames"):
        videos = load_video_file(path, "--frames", single_clip=True)["videos"]
    if videos.shape[1] < context_frames:
        raise UsageError(f"wrong context length: the model needs the first {context_frames} "
                         f"frames, {path} has {videos.shape[1]}")
    index = np.arange(num) % len(videos)  # fewer contexts than --num: several futures each
    return torch.from_numpy(np.ascontiguousarray(videos[index, :context_frames]))


def sampling_options(args: argparse.Namespace) -> dict:
    """The options every sampler shares, as keyword arguments."""
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                progress=not args.no_progress)


# --------------------------------------------------------------------------- one function per model
def sample_videogpt(args: argparse.Namespace, device: torch.device) -> dict[str, np.ndarray]:
    """`sample videogpt`: {'videos': uint8 (N, 16, 64, 64), 'digits' or 'context'}."""
    cond = args.cond
    for flag, wanted in (("digits", "class"), ("frames", "frames"), ("guidance", "class")):
        if getattr(args, flag) is not None and cond != wanted:
            raise UsageError(f"--{flag} is only used with --cond {wanted} (got --cond {cond})")
    if args.redraw == "off" and (cond != "frames" or args.layers == "off"):
        raise UsageError("--redraw is only used with --cond frames predicted in layers")
    if args.apart is not None and (cond != "class" or args.layers == "off"):
        raise UsageError("--apart is only used with --cond class drawn in layers")
    model, tokenizer = load_videogpt(args.checkpoint, cond, device=device,
                                     layers=args.layers != "off")
    if model.config.cond != cond and not model.config.null_class:
        raise UsageError(f"the checkpoint's model has cond={model.config.cond!r}, "
                         f"but --cond {cond} was asked")
    if args.guidance is not None and not model.config.null_class:
        raise UsageError("--guidance needs a prior trained with a NULL label (the one-prior "
                         "recipe, videogpt-compact)")
    layered = args.layers != "off" and bool(model.config.one_digit)
    if args.layers == "on" and not layered:
        raise UsageError("--layers on needs a prior trained on clips of one digit too (`train "
                         "videogpt-layers`); this one was not")
    extras: dict[str, np.ndarray] = {}
    digits = context = None
    if cond == "class":
        digits = parse_digits(args.digits)
        extras["digits"] = np.array([digits] * args.num)
    if layered and cond == "none":  # two classes drawn uniformly, each layer unguided
        clips = videogpt_layers.layered_unconditional_clips(
            model.to(device), tokenizer, args.num, seed=args.seed, batch_size=args.batch_size,
            **sampling_options(args))
        return {"videos": to_uint8(clips)}
    if cond == "frames":
        if args.frames is None:
            raise UsageError("--cond frames needs --frames CONTEXT.npz holding 'videos'")
        context = load_context(args.frames, model.config.context_frames, args.num)
        extras["context"] = context.numpy()
    if layered and cond == "frames":  # split into one layer per digit, each continued
        clips, _ = videogpt_layers.layered_predict_clips(
            model.to(device), tokenizer, context, seed=args.seed, batch_size=args.batch_size,
            redraw_digits=args.redraw == "on", **sampling_options(args))
        return {"videos": to_uint8(clips), **extras}
    if layered:
        apart = videogpt_layers.LAYER_APART if args.apart is None else args.apart
        guidance = videogpt.CLASS_GUIDANCE if args.guidance is None else args.guidance
        if apart < 1 or guidance < 0:
            raise UsageError(f"--apart must be >= 1 and --guidance >= 0; got {apart} and "
                             f"{guidance}")
        clips = videogpt_layers.layered_class_clips(
            model.to(device), tokenizer, torch.tensor([digits] * args.num), guidance=guidance,
            apart=apart, seed=args.seed, batch_size=args.batch_size, **sampling_options(args))
        return {"videos": to_uint8(clips), **extras}
    videos = videogpt.sample_videos(
        model.to(device), tokenizer, args.num, cond=cond, digits=digits, context=context,
        guidance=args.guidance, seed=args.seed, batch_size=args.batch_size,
        **sampling_options(args))
    return {"videos": videos, **extras}


def sample_image_prior(args: argparse.Namespace, device: torch.device) -> dict[str, np.ndarray]:
    """`sample image-prior`: {'videos': uint8 (N, 1, 64, 64)}, frames sampled from the prior."""
    prior, path = load_model(args.checkpoint, registry.SAMPLERS["image-prior"][0], nn.Module,
                             "image prior")
    try:
        image_prior.bos_token(prior)
    except TypeError as err:
        raise UsageError(f"--checkpoint {path} is not an image prior: {err}") from err
    with user_input("tokenizer"):
        tokenizer = prior_tokenizer(path, registry.entry("image-prior").tokenizer, device=device)
        image_prior.check_compatible(prior, tokenizer)
    videos = image_prior.sample_videos(prior.to(device), tokenizer, args.num, seed=args.seed,
                                       batch_size=args.batch_size, **sampling_options(args))
    return {"videos": videos}


def sample_cogvideo(args: argparse.Namespace, device: torch.device) -> dict[str, np.ndarray]:
    """`sample cogvideo --prompt ...`: {'videos': uint8 (N, 17, 64, 64), 'captions'}."""
    if args.prompt is None:
        raise UsageError("cogvideo needs --prompt, e.g. "
                         "--prompt 'digit 3 moves left and digit 7 moves down'")
    with user_input("--prompt"):
        caption = cogvideo.encode_prompt(args.prompt)
    keys, interp, search, guidance = load_cogvideo_stages(args.checkpoint, args.keyframes,
                                                          args.guidance, device)
    layered = keys.config.digits == 1
    middle_search = middles_searched(args.middles, keys)
    rerank = layer_rerank(args.rerank, keys, search)
    if search and (args.top_k is not None or args.top_p is not None):
        raise UsageError("--top-k and --top-p apply to key frames drawn code by code; add "
                         "--keyframes drawn, or leave them out")
    with user_input("tokenizer"):  # its pairing with the stage was checked on loading
        tokenizer = cogvideo.load_tokenizer(keys.config.base.tokenizer).to(device)
    parts = []
    for start in range(0, args.num, args.batch_size):
        n = min(args.batch_size, args.num - start)
        seed = args.seed + start
        if layered:  # each clause a layer of its own, composed in pixels
            video = cogvideo.layered_text_to_video(
                keys, interp, [args.prompt] * n, guidance=guidance, seed=seed,
                temperature=args.temperature, search=search,
                move_temperature=cogvideo.LAYER_MOVE_TEMPERATURE, middle_search=middle_search,
                rerank=rerank)
            parts.append(to_uint8(video))
            continue
        captions = repeat(caption, "l -> n l", n=n)
        if search:
            codes = search_text_to_video(keys, interp, captions, guidance=guidance, seed=seed,
                                         temperature=args.temperature)
        else:
            codes = cogvideo.text_to_video(keys, interp, captions, guidance=guidance, seed=seed,
                                           **sampling_options(args))
        with torch.no_grad():
            parts.append(to_uint8(tokenizer.decode(codes)))
    return {"videos": np.concatenate(parts), "captions": np.array([args.prompt] * args.num)}


def sample_cogview(args: argparse.Namespace, device: torch.device) -> dict[str, np.ndarray]:
    """`sample cogview --prompt "digit 3 up-left and digit 7 down-right"`: text → image,
    {'videos': uint8 (N, 1, 64, 64), 'captions'}."""
    if args.prompt is None:
        raise UsageError("cogview needs --prompt, e.g. "
                         "--prompt 'digit 3 up-left and digit 7 down-right'")
    for flag in ("keyframes", "middles"):
        if getattr(args, flag) != "auto":
            raise UsageError(f"--{flag} is for cogvideo's clips; cogview draws one frame")
    with user_input("--prompt"):
        cogvideo.frame_prompt(args.prompt)  # the grammar's error before any loading
    model, _ = load_model(args.checkpoint, registry.SAMPLERS["cogview"][0], CogView, "CogView")
    caption = cogvideo.frame_prompt(args.prompt, model.config.caption_order)
    guidance = cogvideo.COGVIEW_GUIDANCE if args.guidance is None else args.guidance
    best_of = cogvideo.COGVIEW_BEST_OF if args.rerank is None else args.rerank
    apart = cogvideo.COGVIEW_APART if args.apart is None else args.apart
    if guidance < 0 or best_of < 1 or apart < 1:
        raise UsageError(f"--guidance must be >= 0, --rerank and --apart >= 1; got {guidance}, "
                         f"{best_of} and {apart}")
    # layers need a CogView that also learned one-digit frames (cogview-bound reads captions in
    # reading order; the CogView beneath the video stages did neither)
    layered = cogvideo.COGVIEW_LAYERED and model.config.caption_order == "reading"
    with user_input("tokenizer"):
        tokenizer = cogvideo.load_tokenizer(model.config.tokenizer).to(device)
    model = model.to(device)
    sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    parts = []
    for start in range(0, args.num, args.batch_size):
        captions = [caption] * min(args.batch_size, args.num - start)
        seed = args.seed + start
        if layered:
            frames = cogvideo.layered_images(model, captions, guidance=guidance, seed=seed,
                                             best_of=best_of, apart=apart, **sampling)
        else:
            codes = best_of_images(model, CaptionTokenizer().encode_batch(captions), best_of,
                                   guidance=guidance, seed=seed, **sampling)
            with torch.no_grad():
                frames = tokenizer.decode(codes[:, None])[:, 0]
        parts.append(to_uint8(frames)[:, None])
    return {"videos": np.concatenate(parts), "captions": np.array([caption] * args.num)}


SAMPLE = {"image-prior": sample_image_prior, "videogpt": sample_videogpt,
          "cogvideo": sample_cogvideo, "cogview": sample_cogview}


def run(args: argparse.Namespace) -> int:
    """Check the options, sample with the chosen model, write --out."""
    out = checked_out_path(args.out)
    for flag in ("num", "batch_size"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive int, "
                             f"got {getattr(args, flag)}")
    if args.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {args.top_p}")
    with user_input("--device"):
        device = pick_device(args.device)
    result = SAMPLE[args.model](args, device)
    videos = result.pop("videos")
    write_videos(out, videos, fps=args.fps, **{k: np.asarray(v) for k, v in result.items()})
    print(f"wrote {out}: {videos.shape[0]} videos of {videos.shape[1]} frames")
    return 0
