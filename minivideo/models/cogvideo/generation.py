"""Sampling CogVideo-mini: guided frames, and the three stages chained.

Stage 0 draws single frames (`sample_images`), stage 1 key frames (`sample_keyframes`), stage 2
fills the middles until the stride is 1 (`fill_middle`, `interpolate_once`, `interpolate`);
`text_to_video` runs the whole hierarchy (`layers.py` runs it once per clause of a prompt).
`load_tokenizer` and `tokenizer_of` give the frame
tokenizer that decodes a model's codes. `python -m minivideo sample cogvideo` (in `cli/sample.py`)
reads the options and calls `text_to_video`.
"""

from __future__ import annotations

import functools

import torch
from einops import rearrange, repeat
from torch import nn

from minivideo.models.cogvideo.layout import (
    FRAME_STRIDES,
    KEYFRAME_STRIDE,
    UNTRAINED_TINY,
    CogVideoConfig,
    CogViewConfig,
    text_tokens,
    video_sequence,
)
from minivideo.models.cogvideo.model import CogVideo, CogView
from minivideo.pretrained import pretrained
from minivideo.sampling import generate
from minivideo.vqvae import FrameTokenizer, FrameTokenizerConfig


# --------------------------------------------------------------------------- sampling
def _sampling_kwargs(temperature: float, top_k: int | None, top_p: float | None,
                     greedy: bool) -> dict:
    return dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)


def check_guidance(guidance: float) -> float:
    """The guidance weight as a float, or a clear error for anything but a number >= 0."""
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or guidance < 0:
        raise ValueError(f"guidance must be a number >= 0 (0: ignore the text, 1: plain "
                         f"conditional, > 1: stronger), got {guidance!r}")
    return float(guidance)


def caption_free(tokens: torch.Tensor, config: CogViewConfig) -> torch.Tensor:
    """The same sequences (b, n) with every caption word the pad word: guidance's other side."""
    out = tokens.clone()
    out[:, : config.text_len] = config.num_codes  # the pad word
    return out


@torch.no_grad()
def _sample_frames(model: nn.Module, prefix: torch.Tensor, num_frames: int, *, guidance: float,
                   generator: torch.Generator, progress: bool = False, **sampling) -> torch.Tensor:
    """Append num_frames frames (BOF, then codes drawn with `generate`) to prefix (b, n).

    BOF is given, not drawn, so `generate` runs once per frame; within a frame the KV cache
    makes each new code cost one token's work. Guidance runs the caption-free sequence (text →
    pads) beside the captioned one, in the same batch.
    """
    config = model.config.base if isinstance(model, CogVideo) else model.config
    guidance = check_guidance(guidance)
    bof = torch.full((len(prefix), 1), config.boi, dtype=torch.long, device=prefix.device)
    tokens, frames = prefix, []
    for _ in range(num_frames):
        tokens = torch.cat([tokens, bof], dim=1)
        uncond = None
        if guidance != 1.0:  # w = 1 is the conditional model: no second pass needed
            uncond = caption_free(tokens, config)
        out = generate(model, tokens, config.grid**2, uncond_prefix=uncond, guidance=guidance,
                       seed=None, generator=generator, progress=progress, **sampling)
        tokens = out.tokens
        frames.append(tokens[:, -config.grid**2 :])
    return rearrange(torch.stack(frames, 1), "b f (h w) -> b f h w", h=config.grid)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator(device=device).manual_seed(seed)


def sample_images(model: CogView, captions: torch.Tensor, *, guidance: float = 1.0,
                  seed: int = 0, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, greedy: bool = False) -> torch.Tensor:
    """Stage 0: code grids (b, h, w) drawn from CogView for caption word ids (b, 26)."""
    if not isinstance(model, CogView):
        raise TypeError(f"model must be a CogView, got {type(model).__name__}")
    device = next(model.parameters()).device
    prefix = text_tokens(captions, model.config.num_codes).to(device)
    codes = _sample_frames(model, prefix, 1, guidance=guidance,
                           generator=_generator(seed, device),
                           **_sampling_kwargs(temperature, top_k, top_p, greedy))
    return codes[:, 0]


def check_stage(model: nn.Module, stage: str) -> CogVideoConfig:
    """The config of a CogVideo of `stage`, or a TypeError for any other model."""
    config = getattr(model, "config", None)
    if not isinstance(model, CogVideo) or config.stage != stage:
        raise TypeError(f"model must be a CogVideo of stage {stage!r}, got "
                        f"{type(model).__name__} {getattr(config, 'stage', '')}".rstrip())
    return config


def sample_keyframes(model: CogVideo, captions: torch.Tensor, *, stride: int = KEYFRAME_STRIDE,
                     guidance: float = 1.0, seed: int = 0, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None,
                     greedy: bool = False, progress: bool = False,
                     given: torch.Tensor | None = None) -> torch.Tensor:
    """Stage 1: key frames (b, 5, h, w) from caption word ids (b, 26), at a frame stride.

    With `given` (b, f, h, w), the first f key frames are given, not drawn (real frames, or a
    frame CogView drew), and the stage continues from them as it did from every training clip's
    real frames: image-to-video, or a clip re-captioned from its first frame (notebook 10).
    """
    config = check_stage(model, "keyframes")
    device = next(model.parameters()).device
    captions = captions.to(device)
    sampling = dict(guidance=guidance, generator=_generator(seed, device), progress=progress,
                    **_sampling_kwargs(temperature, top_k, top_p, greedy))
    frames, grid = len(config.frame_times), config.base.grid
    given = torch.empty(len(captions), 0, grid, grid, dtype=torch.long) if given is None else given
    if given.dim() != 4 or tuple(given.shape[2:]) != (grid, grid) or len(given) != len(captions) \
            or given.shape[1] >= frames:
        raise ValueError(f"given must be key frames (b, f, h, w) with b = {len(captions)}, "
                         f"f < {frames} and h = w = {grid}; got {tuple(given.shape)}")
    given = given.to(device=device, dtype=torch.long)
    prefix = video_sequence(config, captions, stride, given)
    drawn = _sample_frames(model, prefix, frames - given.shape[1], **sampling)
    return torch.cat([given, drawn], dim=1)


def fill_middle(model: CogVideo, captions: torch.Tensor, left: torch.Tensor,
                right: torch.Tensor, *, stride: int, guidance: float = 1.0,
                generator: torch.Generator | None = None, seed: int = 0,
                **sampling) -> torch.Tensor:
    """Stage 2, once: the frame (b, h, w) halfway between left and right (b, h, w).

    `stride` is the new, finer frame rate: the middle frame lies `stride` source frames after
    `left` and before `right`. The neighbours are given (they come first in the sequence), so
    the middle frame's tokens see both of them: bidirectional in time, causal in tokens.
    """
    config = check_stage(model, "interp")
    if left.shape != right.shape or left.dim() != 3 or len(left) != len(captions):
        raise ValueError(f"left and right must be code grids (b, h, w) with b = {len(captions)} "
                         f"captions; got {tuple(left.shape)} and {tuple(right.shape)}")
    device = next(model.parameters()).device
    generator = _generator(seed, device) if generator is None else generator
    prefix = video_sequence(config, captions.to(device), stride,
                            torch.stack([left, right], 1).to(device))
    return _sample_frames(model, prefix, 1, guidance=guidance, generator=generator,
                          **sampling)[:, 0]


def interpolate_once(model: CogVideo, captions: torch.Tensor, frames: torch.Tensor, *,
                     stride: int, guidance: float = 1.0, seed: int = 0,
                     **sampling) -> torch.Tensor:
    """Double the frame rate: frames (b, f, h, w) → (b, 2f − 1, h, w), originals at even slots.

    Every neighbouring pair is filled at once (b · (f − 1) middles in one batch).
    """
    b, f = frames.shape[:2]
    left = rearrange(frames[:, :-1], "b f h w -> (b f) h w")
    right = rearrange(frames[:, 1:], "b f h w -> (b f) h w")
    pair_captions = repeat(captions, "b n -> (b f) n", f=f - 1)
    middle = fill_middle(model, pair_captions, left, right, stride=stride, guidance=guidance,
                         seed=seed, **sampling).to(frames.device)
    middle = rearrange(middle, "(b f) h w -> b f h w", b=b)
    out = torch.empty((b, 2 * f - 1, *frames.shape[2:]), dtype=frames.dtype,
                      device=frames.device)
    out[:, 0::2], out[:, 1::2] = frames, middle.to(frames.dtype)
    return out


def interpolate(model: CogVideo, captions: torch.Tensor, keyframes: torch.Tensor, *,
                key_stride: int = KEYFRAME_STRIDE, guidance: float = 1.0, seed: int = 0,
                **sampling) -> torch.Tensor:
    """Stage 2, recursively: halve the stride until it is 1 (5 frames 4 apart → 17 frames)."""
    if key_stride not in FRAME_STRIDES:
        raise ValueError(f"key_stride must be one of {list(FRAME_STRIDES)}, got {key_stride!r}")
    frames, stride = keyframes, key_stride
    while stride > 1:
        stride //= 2
        frames = interpolate_once(model, captions, frames, stride=stride, guidance=guidance,
                                  seed=seed + stride, **sampling)
    return frames


def text_to_video(keyframes_model: CogVideo, interp_model: CogVideo, captions: torch.Tensor, *,
                  guidance: float = 1.0, seed: int = 0, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None,
                  progress: bool = False, given: torch.Tensor | None = None) -> torch.Tensor:
    """The whole hierarchy: caption word ids (b, 26) → codes (b, 17, h, w); with `given`
    (b, f, h, w), from those first key frames (see `sample_keyframes`)."""
    sampling = _sampling_kwargs(temperature, top_k, top_p, False)
    keys = sample_keyframes(keyframes_model, captions, guidance=guidance, seed=seed,
                            progress=progress, given=given, **sampling)
    return interpolate(interp_model, captions, keys, guidance=guidance, seed=seed + 1,
                       **sampling)


# --------------------------------------------------------------------------- tokenizers, models
@functools.cache
def load_tokenizer(name: str) -> FrameTokenizer:
    """The frame tokenizer a model was trained on: a shipped one, or the seeded untrained tiny."""
    if name == UNTRAINED_TINY:
        with torch.random.fork_rng():  # fixed weights, without touching the caller's RNG
            torch.manual_seed(0)
            return FrameTokenizer(FrameTokenizerConfig.preset("tiny")).eval()
    return pretrained(name)


def tokenizer_of(model: nn.Module) -> FrameTokenizer:
    """The frame tokenizer whose codes a CogView or CogVideo models."""
    config = model.config.base if isinstance(model, CogVideo) else model.config
    return load_tokenizer(config.tokenizer)
