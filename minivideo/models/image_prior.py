"""An image prior: a GPT over the frame tokenizer's 8×8 codes of single Moving MNIST frames.

The smallest autoregressive model of pictures that is still worth sampling from. A frame becomes
a sequence `[BOS, c_0, ..., c_63]` (codes in raster order, BOS = one extra id after the
codebook), and the GPT learns p(c_i | BOS, c_<i) with the ordinary next-token loss. It trains in
minutes on a CPU, which makes it the test bed of lesson 06 (greedy, temperature, top-k, top-p,
the KV cache, bits per token) before the video priors of VideoGPT and CogVideo.

Positions are factorised as in VideoGPT (`pos_emb="3d"` with grid (1, h, w)): a code's position
embedding is row(y) + column(x), and BOS keeps a 1D prefix position. Compared with one learned
vector per raster index, every row vector is trained by all 8 codes of that row (and every column
vector by the 8 of that column), so the model knows "this is the top edge" or "this is the left
border" after fewer steps, with h + w instead of h · w vectors, and the same model shape
extends unchanged to clips (t > 1).

    python -m minivideo train image-prior --config small --out checkpoints/image-prior.pt
    python -m minivideo sample image-prior --num 16 --top-k 32 --out samples.gif
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.utils.data import Dataset

from minivideo.data import MovingMNISTConfig, load_digits
from minivideo.pretrained import pretrained
from minivideo.sampling import bits_per_token, generate
from minivideo.train import Target, TrainConfig, TrainResult, fit
from minivideo.transformer import GPT, GPTConfig
from minivideo.utils import to_uint8
from minivideo.vqvae import encode_generated

PRESETS = ("tiny", "small", "full")
RECIPE = "image-prior"


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ImagePriorConfig:
    """Model size, training data and schedule of one image-prior preset."""

    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    num_clips: int  # training clips encoded once; frames_per_clip frames taken from each
    frames_per_clip: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int

    @classmethod
    def preset(cls, name: str) -> ImagePriorConfig:
        """tiny (tests, seconds), small (CPU student, minutes, shipped), full (GPU)."""
        presets = {
            # a high learning rate: the tiny model must memorise a batch in ~100 steps
            "tiny": cls(n_layer=2, n_head=2, n_embd=32, dropout=0.0, num_clips=8,
                        frames_per_clip=2, steps=120, batch_size=8, lr=1e-2, warmup_steps=10),
            # ~0.5M parameters: 0.25-0.4 s a step on one (shared) CPU thread, so 2000 steps
            # take 9-14 minutes; 8000 frames seen ~8 times, with dropout against memorising
            "small": cls(n_layer=4, n_head=4, n_embd=96, dropout=0.1, num_clips=2000,
                         frames_per_clip=4, steps=2000, batch_size=32, lr=1.5e-3,
                         warmup_steps=100),
            "full": cls(n_layer=8, n_head=8, n_embd=256, dropout=0.1, num_clips=20_000,
                        frames_per_clip=4, steps=20_000, batch_size=128, lr=6e-4,
                        warmup_steps=500),
        }  # fmt: skip
        if name not in presets:
            raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
        return presets[name]

    def train_config(self, **overrides) -> TrainConfig:
        """The preset's schedule as a `TrainConfig` (seed, device, ... as overrides)."""
        fields = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                      warmup_steps=min(self.warmup_steps, self.steps), weight_decay=0.1)
        return TrainConfig(**{**fields, **overrides})


SCHEDULES = {  # what `python -m minivideo train image-prior --config NAME` runs
    name: {k: v for k, v in asdict(ImagePriorConfig.preset(name).train_config()).items()
           if k in ("steps", "batch_size", "lr", "warmup_steps", "weight_decay")}
    for name in PRESETS
}  # fmt: skip


# --------------------------------------------------------------------------- the model
def _tokenizer_grid(tokenizer: nn.Module) -> tuple[int, int, int]:
    """(num_codes, h, w) of a frame tokenizer, with a clear error for anything else."""
    config = getattr(tokenizer, "config", None)
    if not hasattr(config, "num_codes") or not hasattr(config, "grid"):
        raise TypeError(
            "tokenizer must be a FrameTokenizer (with .config.num_codes and .config.grid), "
            f"got {type(tokenizer).__name__}"
        )
    return int(config.num_codes), int(config.grid), int(config.grid)


def build_prior(config: ImagePriorConfig | str, num_codes: int, grid: tuple[int, int]) -> GPT:
    """A fresh GPT over [BOS, h·w codes]: vocabulary num_codes + 1, BOS = num_codes."""
    if isinstance(config, str):
        config = ImagePriorConfig.preset(config)
    if not isinstance(num_codes, int) or num_codes < 2:
        raise ValueError(f"num_codes must be an int >= 2, got {num_codes!r}")
    if not (isinstance(grid, (tuple, list)) and len(grid) == 2 and all(
        isinstance(g, int) and g >= 1 for g in grid
    )):  # fmt: skip
        raise ValueError(f"grid must be (h, w) of positive ints, got {grid!r}")
    h, w = grid
    gpt_config = GPTConfig(
        vocab_size=num_codes + 1,
        block_size=1 + h * w,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_embd=config.n_embd,
        dropout=config.dropout,
        pos_emb="3d",
        grid=(1, h, w),
        prefix_len=1,  # BOS
        extra={"recipe": RECIPE, "bos": num_codes},
    )
    return GPT(gpt_config)


def bos_token(prior: nn.Module) -> int:
    """The BOS id of an image prior (the id after the codebook)."""
    config = getattr(prior, "config", None)
    extra = getattr(config, "extra", None) or {}
    if extra.get("recipe") != RECIPE or getattr(config, "grid", None) is None:
        raise TypeError(
            "prior must be a GPT made by build_prior (config.extra['recipe'] == "
            f"{RECIPE!r}), got {type(prior).__name__}"
        )
    return int(extra["bos"])


def code_grid(prior: nn.Module) -> tuple[int, int]:
    """(h, w) of the frames' code grid an image prior models."""
    bos_token(prior)  # checks it is an image prior
    _, h, w = prior.config.grid
    return h, w


def check_compatible(prior: nn.Module, tokenizer: nn.Module) -> None:
    """A clear error unless the tokenizer makes the code grids the prior models."""
    num_codes, h, w = _tokenizer_grid(tokenizer)
    if bos_token(prior) != num_codes or code_grid(prior) != (h, w):
        raise ValueError(
            f"prior models {code_grid(prior)} grids of {bos_token(prior)} codes, but the "
            f"tokenizer makes {(h, w)} grids of {num_codes} codes"
        )


# --------------------------------------------------------------------------- data
def to_sequences(codes: torch.Tensor, bos: int) -> torch.Tensor:
    """Code grids (n, h, w) → sequences (n, 1 + h·w): BOS, then the codes in raster order."""
    if not isinstance(codes, torch.Tensor) or codes.dim() != 3 or codes.is_floating_point():
        raise ValueError(
            f"codes must be an integer tensor (n, h, w), got {_describe(codes)}"
        )
    flat = rearrange(codes.long(), "n h w -> n (h w)")  # raster order: row by row
    return torch.cat([torch.full((len(flat), 1), bos, dtype=torch.long), flat], dim=1)


def from_sequences(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Sequences (n, 1 + h·w) → code grids (n, h, w), dropping BOS."""
    h, w = grid
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[1] != 1 + h * w:
        raise ValueError(f"tokens must have shape (n, {1 + h * w}), got {_describe(tokens)}")
    return rearrange(tokens[:, 1:], "n (h w) -> n h w", h=h, w=w)


@torch.no_grad()
def encode_frames(
    tokenizer: nn.Module,
    num_clips: int,
    *,
    split: str = "train",
    frames_per_clip: int = 4,
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Codes (num_clips · frames_per_clip, h, w) of frames of freshly generated Moving MNIST clips.

    Frames are taken evenly spaced through 20-frame clips: neighbouring frames are nearly equal,
    so more clips (new digits, new positions) teach more than more frames of one clip.
    """
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    config = MovingMNISTConfig()
    if not isinstance(frames_per_clip, int) or not 1 <= frames_per_clip <= config.num_frames:
        raise ValueError(
            f"frames_per_clip must be an int in [1, {config.num_frames}], got {frames_per_clip!r}"
        )
    _tokenizer_grid(tokenizer)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    keep = np.linspace(0, config.num_frames - 1, frames_per_clip).round().astype(int)
    parts = [rearrange(codes, "b t h w -> (b t) h w")
             for _, codes in encode_generated(tokenizer, num_clips, load_digits(split), config,
                                              rng, batch_size=batch_size, frames=keep)]
    return torch.cat(parts)


class FrameCodes(Dataset):
    """Code sequences [BOS, codes...] of frames, encoded once and held in memory."""

    def __init__(self, codes: torch.Tensor, bos: int) -> None:
        self.tokens = to_sequences(codes, bos)  # (n, 1 + h·w) int64

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.tokens[index]


def prior_loss(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token cross-entropy on a batch of sequences (b, n): position i predicts token i+1."""
    _, loss = model(batch[:, :-1], targets=batch[:, 1:])
    return loss, {"bits_per_token": float(loss.detach()) / math.log(2)}


# --------------------------------------------------------------------------- training
def train_image_prior(
    tokenizer: nn.Module,
    preset: str | ImagePriorConfig = "small",
    *,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    test_codes: torch.Tensor | None = None,
    **overrides,
) -> TrainResult:
    """Encode the preset's training frames once, then fit a prior on them with `minivideo.train`.

    test_codes (n, h, w): if given, bits per token on them is evaluated at the end.
    overrides: TrainConfig fields that replace the preset's (steps, batch_size, ...).
    """
    config = ImagePriorConfig.preset(preset) if isinstance(preset, str) else preset
    num_codes, h, w = _tokenizer_grid(tokenizer)
    codes = encode_frames(tokenizer, config.num_clips, frames_per_clip=config.frames_per_clip,
                          seed=seed)
    torch.manual_seed(seed)  # the prior's initial weights
    prior = build_prior(config, num_codes, (h, w))
    eval_fn = None
    if test_codes is not None:

        def eval_fn(model: nn.Module) -> dict[str, float]:
            return {"test_bits_per_token": frame_bits_per_token(model, test_codes)}

    train_config = config.train_config(seed=seed, device=device, progress=progress, **overrides)
    return fit(prior, prior_loss, FrameCodes(codes, num_codes), train_config,
               checkpoint=checkpoint, eval_fn=eval_fn, model_config=prior.config_dict())


# --------------------------------------------------------------------------- sampling
def sample_codes(
    prior: nn.Module, n: int, *, seed: int | None = 0, progress: bool = False, **sampling
) -> torch.Tensor:
    """n code grids (n, h, w) sampled from the prior; sampling kwargs go to `generate`.

    seed seeds a fresh generator; pass seed=None and generator=... to continue a stream.

    BOS is excluded from every drawn position (`allowed`), so the result is always a valid
    grid of codebook ids whatever the temperature or truncation.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if "allowed" in sampling or "prefix" in sampling:
        raise TypeError("sample_codes sets prefix and allowed itself (BOS, then codes only)")
    bos, grid = bos_token(prior), code_grid(prior)
    device = next(prior.parameters()).device
    prefix = torch.full((n, 1), bos, dtype=torch.long, device=device)
    codes_only = torch.ones(bos + 1, dtype=torch.bool, device=device)
    codes_only[bos] = False
    out = generate(prior, prefix, grid[0] * grid[1], allowed=codes_only, seed=seed,
                   progress=progress, **sampling)
    return from_sequences(out.tokens, grid)


@torch.no_grad()
def sample_frames(
    prior: nn.Module, tokenizer: nn.Module, n: int, seed: int = 0, **sampling
) -> torch.Tensor:
    """n frames float [0, 1] (n, H, W): codes sampled from the prior, decoded by the tokenizer."""
    check_compatible(prior, tokenizer)
    codes = sample_codes(prior, n, seed=seed, **sampling)
    codes = codes.to(next(tokenizer.parameters()).device)
    video = tokenizer.decode(rearrange(codes, "n h w -> n 1 h w"))  # a one-frame clip each
    return rearrange(video, "n 1 H W -> n H W")


def frame_bits_per_token(
    prior: nn.Module, codes: torch.Tensor, batch_size: int = 256
) -> float:
    """Bits per code of held-out code grids (n, h, w) under the prior (BOS is not scored)."""
    tokens = to_sequences(codes, bos_token(prior)).to(next(prior.parameters()).device)
    total = 0.0
    for start in range(0, len(tokens), batch_size):
        chunk = tokens[start : start + batch_size]
        total += bits_per_token(prior, chunk) * len(chunk)
    return total / len(tokens)


# --------------------------------------------------------------------------- train command
TEST_CLIPS, TEST_SEED = 256, 1234  # held-out frames of the manifest: 4 frames of each test clip


@functools.cache
def _shipped_tokenizer() -> nn.Module:
    return pretrained("vqvae-frame")


def build_model(preset: str) -> GPT:
    """`train image-prior`: a fresh prior of a preset, sized for the shipped frame tokenizer."""
    num_codes, h, w = _tokenizer_grid(_shipped_tokenizer())
    return build_prior(preset, num_codes, (h, w))


def build_dataset(preset: str, seed: int) -> FrameCodes:
    """`train image-prior`: the preset's training frames, encoded once by the shipped tokenizer."""
    config = ImagePriorConfig.preset(preset)
    tokenizer = _shipped_tokenizer()
    codes = encode_frames(tokenizer, config.num_clips, frames_per_clip=config.frames_per_clip,
                          seed=seed)
    return FrameCodes(codes, tokenizer.config.num_codes)


def held_out_codes(tokenizer: nn.Module | None = None) -> torch.Tensor:
    """The held-out code grids (1024, h, w): frames of clips made only of test digits."""
    tokenizer = _shipped_tokenizer() if tokenizer is None else tokenizer
    return encode_frames(tokenizer, TEST_CLIPS, split="test", frames_per_clip=4, seed=TEST_SEED)


def evaluate(model: nn.Module) -> dict[str, float]:
    """The manifest's figures: bits per code on held-out test-digit frames (and uniform's)."""
    tokenizer = _shipped_tokenizer()
    check_compatible(model, tokenizer)
    codes = held_out_codes(tokenizer)
    return {
        "test_bits_per_token": round(frame_bits_per_token(model, codes), 4),
        "uniform_bits_per_token": round(math.log2(tokenizer.config.num_codes), 4),
        "test_frames": len(codes),
    }


TARGET = Target(
    description="GPT prior over the frame tokenizer's 8×8 codes of single Moving MNIST frames",
    build_model=build_model,
    build_dataset=build_dataset,
    loss_fn=prior_loss,
    schedules=SCHEDULES,
    evaluate=evaluate,
    notes=f"tokenizer: pretrained('vqvae-frame'); bits per code on {4 * TEST_CLIPS} frames of "
    f"{TEST_CLIPS} clips of Moving MNIST test digits (seed {TEST_SEED})",
)


# --------------------------------------------------------------------------- sampling
def sample_videos(prior: GPT, tokenizer: nn.Module, num: int, *, seed: int = 0,
                  batch_size: int = 16, progress: bool = False, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """num frames sampled from the prior and decoded, as one-frame uint8 videos (num, 1, H, W)."""
    bos_token(prior)  # an image prior made by build_prior, or a clear error
    check_compatible(prior, tokenizer)
    device = next(tokenizer.parameters()).device
    # one generator across batches: the num samples are one seeded stream
    generator = torch.Generator(device=device).manual_seed(seed)
    frames = []
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        codes = sample_codes(prior, n, seed=None, generator=generator, temperature=temperature,
                             top_k=top_k, top_p=top_p, progress=progress)
        with torch.no_grad():
            frames.append(tokenizer.decode(rearrange(codes, "n h w -> n 1 h w")).cpu())
    return to_uint8(torch.cat(frames))  # (N 1 H W): one-frame videos


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


__all__ = [
    "FrameCodes", "ImagePriorConfig", "PRESETS", "SCHEDULES", "TARGET", "bos_token",
    "build_dataset", "build_model", "build_prior", "code_grid", "encode_frames", "evaluate",
    "frame_bits_per_token", "from_sequences", "prior_loss", "sample_codes", "sample_frames",
    "check_compatible", "sample_videos", "held_out_codes", "to_sequences", "train_image_prior",
]
