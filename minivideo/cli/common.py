"""What the commands of `python -m minivideo` share: usage errors and CPU threads.

A `UsageError` is bad input to a command (an option, a file the user named): `python -m
minivideo` prints it as one line and exits with status 2. Every other exception is a bug and
keeps its traceback. `user_input("--checkpoint")` turns the ValueError with which library code
rejects an argument into a UsageError, around exactly the calls that read what the user gave.

How many CPU threads torch may use:

The course's models are small: a sampling step is many tiny matrix products, so its cost is
per-op overhead, not arithmetic. Split over several threads, each op waits for every thread, and
a thread that shares its core with another busy process (a training run, a browser) stalls all
the others: on a 2-core machine beside one busy process, `demo` took 30-215 s with torch's
default threads and 6 s with one (issue 17). `benchmarks/threads.py` measures it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minivideo import registry
from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.models import cogvideo
from minivideo.models.videogpt import VideoGPT
from minivideo.pretrained import (
    available_pretrained,
    check_tokenizer_pairing,
    pretrained_path,
    prior_tokenizer,
)
from minivideo.utils import UsageError
from minivideo.viz import save_video, tile

OUTPUTS = (".npz", ".gif", ".mp4")  # what --out of sample and edit may be


@contextmanager
def user_input(what: str) -> Iterator[None]:
    """Inside the block, a ValueError or FileNotFoundError about `what` is the user's error."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, FileNotFoundError) as err:
        message = str(err) if what in str(err) else f"{what}: {err}"
        raise UsageError(message) from err

# Measured by benchmarks/threads.py (benchmarks/results/threads-cpu-2026-12-04.txt): on a 2-core
# machine busy with a training run, the demo's clip took 2.3 s on one thread and 12 s to over 30 s
# on two (torch's default there); beside a second busy process, 8.5 s against over 30 s.
DEFAULT_THREADS = 1


def int_at_least(minimum: int):
    """An argparse type for integers >= minimum ("positive" for 1, "non-negative" for 0)."""
    what = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # e.g. --threads


def add_threads_option(parser: argparse.ArgumentParser, default: int = DEFAULT_THREADS) -> None:
    """Add --threads N: torch's CPU threads for this command (default: one, measured best)."""
    parser.add_argument(
        "--threads", type=positive_int, default=default, metavar="N",
        help=f"CPU threads for torch (default {default}: measured fastest for the course's "
             "small models when anything else uses the CPU; benchmarks/threads.py)")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch using `threads` CPU threads (None: leave them), then restore."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"--threads must be a positive int, got {threads!r}")
    import torch  # here, so that `python -m minivideo --help` stays quick

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- files
def checked_out_path(out: str) -> Path:
    """--out as a Path, with a clear error unless it ends in .npz, .gif or .mp4."""
    path = Path(out)
    if path.suffix not in OUTPUTS:
        raise UsageError(f"--out must end in one of {', '.join(OUTPUTS)}, got {out!r}")
    return path


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


# The shipped VideoGPT that also draws clips of one digit (layered class samples, issue 14).
LAYER_PRIOR = "videogpt-layers"


def load_videogpt(checkpoint: str | None, cond: str, device=None,
                  layers: bool = False) -> tuple[nn.Module, nn.Module]:
    """--checkpoint, else the shipped one-prior VideoGPT (every conditioning; with `layers`, the
    shipped layer prior when there is one), else the shipped prior of `cond`: the prior (eval
    mode) and the tokenizer it was trained on (pairing checked)."""
    shipped = registry.SAMPLERS["videogpt"]
    default = shipped[0] if shipped[0] in available_pretrained() else f"videogpt-{cond}"
    if layers and LAYER_PRIOR in shipped and LAYER_PRIOR in available_pretrained():
        default = LAYER_PRIOR
    prior, path = load_model(checkpoint, default, VideoGPT, "VideoGPT")
    with user_input("tokenizer"):
        tokenizer = prior_tokenizer(path, prior.config.tokenizer, device=device)
    return prior, tokenizer


def load_model(checkpoint: str | None, default: str, kind: type[nn.Module],
               what: str) -> tuple[nn.Module, Path]:
    """--checkpoint FILE.pt, else the shipped `default`: the model (in eval mode) and its file."""
    with user_input("--checkpoint"):
        path = Path(checkpoint) if checkpoint is not None else pretrained_path(default)
        model = build_model_from_checkpoint(path).eval()
    if not isinstance(model, kind):
        raise UsageError(f"--checkpoint {path} is not a {what} checkpoint (it holds a "
                         f"{type(model).__name__})")
    return model, path


def cogvideo_stages(spec: str | None) -> tuple[Path, Path]:
    """--checkpoint for cogvideo: 'K.pt,I.pt', or a folder holding both (default: shipped)."""
    if spec is None:
        return tuple(pretrained_path(name) for name in registry.SAMPLERS["cogvideo"])
    parts = spec.split(",")
    if len(parts) == 1 and Path(spec).is_dir():
        parts = [str(Path(spec) / f"cogvideo-{s}.pt") for s in ("keyframes", "interp")]
    if len(parts) != 2 or not all(p.endswith(".pt") for p in parts):
        raise UsageError("--checkpoint for cogvideo must be KEYFRAMES.pt,INTERP.pt or a folder "
                         f"holding cogvideo-keyframes.pt and cogvideo-interp.pt; got {spec!r}")
    return Path(parts[0]), Path(parts[1])


def load_cogvideo_stages(spec: str | None, keyframes: str, guidance: float | None,
                         device: torch.device | None = None):
    """What `sample cogvideo` and `eval cogvideo` read from --checkpoint, --keyframes and
    --guidance: (key-frame stage, interpolation stage, search, guidance). The stages must be one
    of each, and both layer stages (trained on clips of one digit) or neither; key frames are
    searched if asked, or by default for layer stages; guidance defaults to each pair's
    measured best. The key-frame stage's file must be paired with the tokenizer it names (its
    manifest's record), the tokenizer that decodes every clip of both commands."""
    paths = cogvideo_stages(spec)
    stages = []
    for path, stage in zip(paths, cogvideo.STAGES, strict=True):
        model, _ = load_model(str(path), "", cogvideo.CogVideo, f"CogVideo {stage}-stage")
        try:
            cogvideo.check_stage(model, stage)
        except TypeError as err:  # the other stage's file, or another model
            raise UsageError(f"--checkpoint {path}: {err}") from err
        stages.append(model if device is None else model.to(device))
    keys, interp = stages
    with user_input("tokenizer"):
        check_tokenizer_pairing(paths[0], keys.config.base.tokenizer)
    layered = keys.config.digits == 1
    if (interp.config.digits == 1) != layered:
        raise UsageError("--checkpoint: the two stages must both be layer stages (trained on "
                         "clips of one digit) or neither")
    search = keyframes == "searched" or (keyframes == "auto" and layered)
    default = cogvideo.LAYER_GUIDANCE if layered else 3.0  # each pair's measured best
    with user_input("--guidance"):
        guidance = cogvideo.check_guidance(default if guidance is None else guidance)
    return keys, interp, search, guidance


def layer_rerank(rerank: int | None, keys, search: bool) -> int:
    """What --rerank asks: key-frame chains per layer (`LAYER_RERANK` by default for layer
    stages whose key frames are searched; 1 otherwise)."""
    layered = keys.config.digits == 1
    if rerank is None:
        return cogvideo.LAYER_RERANK if layered and search else 1
    if rerank < 1:
        raise UsageError(f"--rerank must be a positive number of chains, got {rerank}")
    if rerank > 1 and not (layered and search):
        raise UsageError("--rerank ranks chains of searched key frames of layer stages; use it "
                         "with the layer stages and --keyframes searched (or auto)")
    return rerank


def middles_searched(middles: str, keys) -> bool:
    """What --middles asks of a key-frame stage: middle frames by search (`middles.py`) or
    drawn; auto: `LAYER_MIDDLES` for layer stages, drawn for two-digit ones."""
    layered = keys.config.digits == 1
    if middles == "searched" and not layered:
        raise UsageError("--middles searched moves one rigid digit: it needs the layer stages "
                         "(trained on clips of one digit); use --middles drawn")
    return middles == "searched" or (middles == "auto" and layered
                                     and cogvideo.LAYER_MIDDLES == "searched")
