"""CogVideo (Hong et al., 2022) at small scale: text-to-video on a frozen text-to-image model.

CogVideo's recipe, each idea built for real on captioned Moving MNIST:

1. **Reuse a text-to-image model.** Stage 0, "CogView-mini", is a transformer over
   ``[caption | BOI | 8×8 frame codes]`` trained on single frames and per-frame captions. It
   learns what digits look like and where the text puts them; video data then only has to
   teach motion. Moving MNIST captions describe motion, not positions, so the frames get their
   own captions (`frame_caption`): each digit and the quadrant it sits in, with the compass
   words of the caption vocabulary, e.g. ``"digit 3 up-left and digit 7 down-right"`` (the 3 is
   in the upper-left quadrant). Same 23-word vocabulary, same tokenizer.
2. **The sequence layout.** ``[caption (26) | frame-rate token | BOF, 64 codes | BOF, 64 codes
   | ...]``: the caption (padded) and the frame-rate token attend to each other
   bidirectionally, the video tokens causally (`minivideo.masks.prefix_mask`). BOF ("begin of
   frame") is CogView's BOI token, so each frame is laid out exactly as CogView saw images.
3. **Dual-channel attention.** Every layer keeps CogView's attention, frozen, as the *spatial*
   channel (a frame's tokens see the caption and their own frame, as in CogView), and adds a
   new *temporal* channel (tokens see the frames inside a local window in time, causally). The
   temporal windows are shifted by half a window on every other layer, as Swin does in space,
   so information crosses window borders. The two are mixed by a learned per-channel gate α:
   ``x + spatial + α ⊙ (temporal − spatial)``, with α = 0 at the start, so the new model
   computes exactly what CogView computed for each frame before any training (tested).
4. **Multi-frame-rate hierarchical generation.** Stage 1 (``keyframes``) generates 5 frames at a
   low frame rate (every 4th frame of a 17-frame clip) from the text. Stage 2 (``interp``)
   fills the frame between two neighbours, seeing both (bidirectional in time: the neighbours
   come first in the sequence, the new frame last); applied to every pair it doubles the frame
   rate (5 → 9 → 17 frames). The frame-rate token tells each stage which rate it is at
   (the stride between frames: 4, 2 or 1 source frames).
5. **Classifier-free guidance on the text.** Training drops the caption (all pads) with
   probability `CAPTION_DROPOUT`; sampling mixes ``uncond + w · (cond − uncond)``.

Token ids (one vocabulary for every model, K = the tokenizer's codebook size)::

    [0, K)            frame codes                  the only tokens a model ever predicts
    [K, K + 23)       caption words (pad = K)      minivideo.data.captions.VOCAB
    K + 23            BOI / BOF                    "a frame starts here"
    K + 24 + j        frame-rate token of FRAME_STRIDES[j]   (CogVideo only)

    python -m minivideo train cogview --config small --out checkpoints/cogview.pt
    python -m minivideo train cogvideo-keyframes --config small \\
        --out checkpoints/cogvideo-keyframes.pt
    python -m minivideo train cogvideo-interp --config small --out checkpoints/cogvideo-interp.pt
    python -m minivideo sample cogvideo --prompt "digit 3 moves left and digit 7 moves down" \\
        --num 4 --guidance 3 --out t2v.gif
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from torch.utils.data import Dataset

from minivideo.data.captions import (
    MAX_DIGITS,
    MAX_LENGTH,
    MAX_SEGMENTS,
    VOCAB,
    CaptionTokenizer,
    caption_from_motion,
    parse_caption,
)
from minivideo.data.mnist import cache_dir, load_digits
from minivideo.data.moving_mnist import COMPASS, DigitMotion, MovingMNISTConfig, generate_clips
from minivideo.masks import local_window_mask, prefix_mask
from minivideo.sampling import generate
from minivideo.transformer import Block, GPTCache, GPTConfig
from minivideo.vqvae import FrameTokenizer, FrameTokenizerConfig

PRESETS = ("tiny", "small", "full")
STAGES = ("keyframes", "interp")
TEXT_LEN = MAX_LENGTH  # 26 caption tokens, padded
CLIP_FRAMES = 17  # the generated clip: 5 key frames 4 apart, filled in twice
NUM_KEYFRAMES = 5
KEYFRAME_STRIDE = 4
FRAME_STRIDES = (1, 2, 4)  # frame-rate tokens: source frames between consecutive frames
STAGE_STRIDES = {"keyframes": (1, 2, 4), "interp": (1, 2)}
# Stage 1 trains mostly at the rate it samples at, plus the higher rates (as CogVideo trains at
# several frame rates): the model sees more, shorter motions of the same captions.
KEYFRAME_STRIDE_WEIGHTS = {4: 0.5, 2: 0.25, 1: 0.25}
CAPTION_DROPOUT = 0.1  # probability that a training caption is replaced by pads (for CFG)
UNTRAINED_TINY = "untrained-tiny"  # tokenizer name of tests and tiny presets (seed 0)
_CAPTIONS = CaptionTokenizer()


# --------------------------------------------------------------------------- captions
def quadrant(position: np.ndarray, config: MovingMNISTConfig | None = None) -> str:
    """Compass word of the quadrant of a digit whose top-left corner is at (y, x) pixels."""
    config = MovingMNISTConfig() if config is None else config
    centre = np.asarray(position, dtype=np.float64) + config.digit_size / 2
    half = config.canvas_size / 2
    vertical = "up" if centre[0] < half else "down"
    horizontal = "left" if centre[1] < half else "right"
    return f"{vertical}-{horizontal}"


def frame_caption(digits: np.ndarray, positions: np.ndarray) -> str:
    """Stage 0's caption of one frame: each digit and its quadrant, e.g. "digit 3 up-left"."""
    digits, positions = np.asarray(digits), np.asarray(positions)
    if digits.ndim != 1 or positions.shape != (len(digits), 2):
        raise ValueError(f"digits must be (k,) and positions (k, 2); got {digits.shape} and "
                         f"{positions.shape}")
    return " and ".join(f"digit {int(d)} {quadrant(p)}"
                        for d, p in zip(digits, positions, strict=True))


def motion_caption(digits: np.ndarray, directions: np.ndarray) -> str:
    """The motion caption of a stretch of frames from per-frame compass indices (t, k)."""
    directions = np.asarray(directions)
    motion = []
    for slot, digit in enumerate(np.asarray(digits)):
        sequence = directions[:, slot]
        keep = np.concatenate([[True], sequence[1:] != sequence[:-1]])  # collapse repeats
        words = tuple(COMPASS[int(d)] for d in sequence[keep])
        motion.append(DigitMotion(int(digit), words[0], words, ()))
    return caption_from_motion(motion)


def encode_prompt(prompt: str) -> torch.Tensor:
    """Caption word ids (26,) of a prompt, after checking it follows the caption grammar."""
    accepted = (f"a prompt reads 'digit D moves DIRECTION [then DIRECTION]... [and digit ...]' "
                f"(at most {MAX_DIGITS} digits, {MAX_SEGMENTS} directions each); accepted "
                f"words: {list(VOCAB[1:])}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty caption; {accepted}")
    unknown = sorted({word for word in prompt.split() if word not in VOCAB[1:]})
    if unknown:
        raise ValueError(f"prompt {prompt!r} uses word(s) {unknown} outside the caption "
                         f"vocabulary; {accepted}")
    try:
        clauses = parse_caption(prompt)
    except ValueError as err:
        raise ValueError(f"prompt {prompt!r} is outside the caption grammar ({err}); "
                         f"{accepted}") from err
    if len(clauses) > MAX_DIGITS or any(len(c.directions) > MAX_SEGMENTS for c in clauses):
        raise ValueError(f"prompt {prompt!r} is too long; {accepted}")
    return torch.tensor(_CAPTIONS.encode(prompt), dtype=torch.long)


def check_stride(stride: int, stage: str) -> int:
    """The stride (frame-rate token) if the stage accepts it, else a clear ValueError."""
    accepted = STAGE_STRIDES[stage]
    if not isinstance(stride, int) or isinstance(stride, bool) or stride not in accepted:
        raise ValueError(
            f"frame rate (stride) {stride!r} is not one the {stage} stage was trained at; "
            f"accepted strides (source frames between frames): {list(accepted)}"
        )
    return stride


# --------------------------------------------------------------------------- masks
def spatial_mask(text_len: int, num_frames: int, frame_len: int, *, device=None) -> torch.Tensor:
    """CogView's view, per frame: text ↔ text; the rate token sees text and itself; a frame's
    tokens see the text and, causally, their own frame (never the rate token). Bool (N, N)."""
    rate = -2  # group ids: text -1, rate token -2, frame f → f
    group = torch.cat([torch.full((text_len,), -1), torch.tensor([rate]),
                       repeat(torch.arange(num_frames), "f -> (f n)", n=frame_len)]).to(device)
    same_group = group[:, None] == group[None, :]
    key_is_text = (group == -1)[None, :]
    return prefix_mask(text_len + 1, len(group), device=device) & (same_group | key_is_text)


def temporal_mask(
    text_len: int, frame_times: tuple[int, ...], frame_len: int, window: int, shift: int,
    *, device=None,
) -> torch.Tensor:
    """The new channel: the prefix (text + rate) is bidirectional; a video token sees the prefix
    and, causally in sequence order, the tokens of every frame whose *time* lies in its window.

    Windows tile time as in `minivideo.masks.local_window_mask`: frame time t is in window
    floor((t + shift) / window). Sequence order may differ from time order (stage 2 puts the
    neighbours first), so the window test uses times and the causal test uses positions.
    """
    times = torch.as_tensor(frame_times)
    num_times = int(times.max()) + 1
    # same_window[t, u]: times t and u share a window — a (time, 1, 1) grid of local windows
    same_window = local_window_mask((num_times, 1, 1), (window, 1, 1), (shift, 0, 0))
    frames = same_window[times][:, times]  # (f, g) by sequence order of the frames
    video = repeat(frames, "f g -> (f n) (g m)", n=frame_len, m=frame_len).to(device)
    prefix = text_len + 1
    mask = prefix_mask(prefix, prefix + len(video), device=device)  # causal after the prefix
    mask[prefix:, prefix:] &= video
    return mask


# --------------------------------------------------------------------------- stage 0: CogView
@dataclass
class CogViewConfig:
    """Sizes of CogView-mini, and the frame tokenizer whose codes it models."""

    num_codes: int
    grid: int = 8  # codes per side of a frame
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    tokenizer: str = "vqvae-frame"  # pretrained name, or UNTRAINED_TINY
    text_len: int = TEXT_LEN

    @property
    def boi(self) -> int:
        """Id of BOI/BOF, the token before every frame's codes."""
        return self.num_codes + len(VOCAB)

    @property
    def vocab_size(self) -> int:
        """Input vocabulary: codes, caption words, BOI."""
        return self.boi + 1

    @property
    def frame_len(self) -> int:
        """Tokens per frame: BOF and the grid² codes."""
        return 1 + self.grid**2

    @property
    def block_size(self) -> int:
        """Sequence length: caption, BOI, codes."""
        return self.text_len + self.frame_len

    @classmethod
    def preset(cls, name: str, num_codes: int, tokenizer: str) -> CogViewConfig:
        """tiny (tests), small (CPU, shipped), full (GPU)."""
        sizes = {"tiny": dict(n_layer=2, n_head=2, n_embd=32),
                 "small": dict(n_layer=4, n_head=4, n_embd=96),
                 # full (GPU): 8 × 192, exported as float16 (--export-half), keeps a stage
                 # (frozen base + temporal channel) under 10 MB
                 "full": dict(n_layer=8, n_head=6, n_embd=192)}
        if name not in sizes:
            raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
        return cls(num_codes=num_codes, tokenizer=tokenizer, **sizes[name])


def _block_config(config: CogViewConfig) -> GPTConfig:
    """The GPTConfig a transformer.Block needs (only its widths and dropout are used)."""
    return GPTConfig(vocab_size=config.vocab_size, block_size=config.block_size,
                     n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                     dropout=config.dropout)


def _check_idx(idx: torch.Tensor, vocab_size: int, block_size: int, start: int) -> None:
    if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.dim() != 2:
        got = f"{idx.dtype} {tuple(idx.shape)}" if isinstance(idx, torch.Tensor) else type(idx)
        raise TypeError(f"idx must be an integer tensor (b, n) of token ids, got {got}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        raise ValueError(f"idx holds ids outside the vocabulary [0, {vocab_size})")
    if start + idx.shape[1] > block_size:
        raise ValueError(f"{start} cached + {idx.shape[1]} new tokens exceed "
                         f"block_size={block_size}")


def _code_loss(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    if targets is None:
        return None
    return F.cross_entropy(rearrange(logits, "b n v -> (b n) v").float(),
                           targets.reshape(-1).long(), ignore_index=-100)


class CogView(nn.Module):
    """Text-to-image transformer: [caption | BOI | codes], prefix mask, a head over codes only."""

    def __init__(self, config: CogViewConfig) -> None:
        super().__init__()
        if not isinstance(config, CogViewConfig):
            raise TypeError(f"config must be a CogViewConfig, got {type(config).__name__}")
        self.config = config
        c = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size, c)
        self.text_pos = nn.Embedding(config.text_len + 1, c)  # caption words and BOI: 1D
        self.row_emb = nn.Embedding(config.grid, c)  # codes: row + column, as in VideoGPT
        self.col_emb = nn.Embedding(config.grid, c)
        self.blocks = nn.ModuleList([Block(_block_config(config)) for _ in range(config.n_layer)])
        self.norm = nn.LayerNorm(c)
        # Text and BOI are always given, never drawn: the head scores the K codes only.
        self.head = nn.Linear(c, config.num_codes, bias=False)
        self.apply(_init_weights)
        for name, param in self.named_parameters():  # GPT-2's scaled residual projections
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * config.n_layer))
        mask = prefix_mask(config.text_len, config.block_size)  # text bidirectional, rest causal
        self.register_buffer("mask", mask, persistent=False)

    @classmethod
    def from_config(cls, config: dict | CogViewConfig) -> CogView:
        """Build from a CogViewConfig or its dict form (as checkpoints store it)."""
        return cls(CogViewConfig(**config) if isinstance(config, dict) else config)

    def new_cache(self) -> GPTCache:
        """An empty KV cache (one self-attention cache per layer)."""
        return GPTCache(self.config.n_layer)

    def frame_positions(self, index: torch.Tensor) -> torch.Tensor:
        """Position embeddings (n c) of in-frame indices: 0 = BOI, 1 + (row · grid + col)."""
        g = self.config.grid
        code = (index - 1).clamp_min(0)
        codes = self.row_emb(code // g) + self.col_emb(code % g)
        boi = self.text_pos(torch.full_like(index, self.config.text_len))
        return torch.where((index == 0)[:, None], boi, codes)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                cache: GPTCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits over codes (b n K) for idx (b n); cross-entropy if targets (-100 = skip)."""
        if mask is not None or context is not None:
            raise ValueError("CogView builds its own prefix mask and takes no context")
        start = len(cache) if cache is not None else 0
        _check_idx(idx, self.config.vocab_size, self.config.block_size, start)
        n, text_len = idx.shape[1], self.config.text_len
        positions = torch.arange(start, start + n, device=idx.device)
        text = self.text_pos(positions.clamp(max=text_len))
        frame = self.frame_positions((positions - text_len).clamp_min(0))
        x = self.tok_emb(idx.long()) + torch.where((positions < text_len)[:, None], text, frame)
        attend = self.mask[start : start + n, : start + n]
        for i, block in enumerate(self.blocks):
            x = block(x, attend, None, cache.layers[i] if cache is not None else None)
        logits = self.head(self.norm(x))
        return logits, _code_loss(logits, targets)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- stages 1-2: CogVideo
@dataclass
class CogVideoConfig:
    """A CogVideo stage: the frozen CogView it grows from, its frames and temporal windows."""

    cogview: dict  # the frozen base's CogViewConfig, as a dict
    stage: str = "keyframes"  # "keyframes" (text → frames) or "interp" (neighbours → middle)
    window: int = 2  # temporal window, in frames; shifted by window // 2 on odd layers
    base_name: str = "cogview"  # where the frozen channel came from (pretrained name)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive int, got {self.window!r}")

    @property
    def base(self) -> CogViewConfig:
        """The frozen model's config."""
        return CogViewConfig(**self.cogview)

    @property
    def frame_times(self) -> tuple[int, ...]:
        """Time of each frame in sequence order: key frames in order; (left, right, middle)."""
        return tuple(range(NUM_KEYFRAMES)) if self.stage == "keyframes" else (0, 2, 1)

    @property
    def vocab_size(self) -> int:
        """CogView's vocabulary plus one frame-rate token per stride."""
        return self.base.vocab_size + len(FRAME_STRIDES)

    @property
    def block_size(self) -> int:
        """Caption, frame-rate token, frames."""
        return self.base.text_len + 1 + len(self.frame_times) * self.base.frame_len

    def rate_token(self, stride: int) -> int:
        """Id of the frame-rate token of a stride this stage accepts."""
        return self.base.vocab_size + FRAME_STRIDES.index(check_stride(stride, self.stage))


class TemporalChannel(nn.Module):
    """Pre-norm multi-head attention across frames: the trainable half of a dual-channel layer."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        # Start from a copy of the frozen spatial attention: it already reads this model's
        # features, so the new channel only has to learn where (in time) to look.
        self.norm = copy.deepcopy(block.norm_attn)
        self.attn = copy.deepcopy(block.attn)
        self.requires_grad_(True)  # the copies must learn even if the original is frozen

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache=None) -> torch.Tensor:
        """(b n c) -> (b n c)."""
        return self.attn(self.norm(x), mask=mask, cache=cache)


class DualCache(GPTCache):
    """Per-layer (spatial, temporal) key/value caches, and the number of tokens fed so far."""


class CogVideo(nn.Module):
    """CogView's frozen layers as the spatial channel, plus gated temporal channels."""

    def __init__(self, config: CogVideoConfig, base: CogView | None = None) -> None:
        super().__init__()
        if not isinstance(config, CogVideoConfig):
            raise TypeError(f"config must be a CogVideoConfig, got {type(config).__name__}")
        self.config = config
        base_config = config.base
        self.base = CogView(base_config) if base is None else base
        if asdict(self.base.config) != asdict(base_config):
            raise ValueError("base does not match config.cogview")
        self.base.requires_grad_(False)  # frozen: only the new parts below learn
        c, layers = base_config.n_embd, base_config.n_layer
        self.temporal = nn.ModuleList([TemporalChannel(b) for b in self.base.blocks])
        self.gate = nn.Parameter(torch.zeros(layers, c))  # α = 0: exactly CogView at step 0
        self.time_emb = nn.Embedding(len(config.frame_times), c)
        nn.init.zeros_(self.time_emb.weight)  # no time signal until it is learned
        self.rate_emb = nn.Embedding(len(FRAME_STRIDES), c)
        with torch.no_grad():  # a rate token starts as CogView's BOI ("an image follows")
            self.rate_emb.weight.copy_(self.base.tok_emb.weight[base_config.boi].expand(
                len(FRAME_STRIDES), c))
        frame_len, text_len = base_config.frame_len, base_config.text_len
        times = config.frame_times
        self.register_buffer("spatial_mask", spatial_mask(text_len, len(times), frame_len),
                             persistent=False)
        shifts = (0, config.window // 2)  # Swin: unshifted, then half-window shifted windows
        temporal = torch.stack([temporal_mask(text_len, times, frame_len, config.window, s)
                                for s in shifts])
        self.register_buffer("temporal_masks", temporal, persistent=False)
        self.register_buffer("frame_time", torch.tensor(times), persistent=False)

    @classmethod
    def from_config(cls, config: dict | CogVideoConfig) -> CogVideo:
        """Build from a CogVideoConfig or its dict form (weights come from the checkpoint)."""
        return cls(CogVideoConfig(**config) if isinstance(config, dict) else config)

    @classmethod
    def from_cogview(cls, base: CogView, stage: str, window: int = 2,
                     base_name: str = "cogview") -> CogVideo:
        """A fresh stage around a (pretrained) CogView, which is frozen in place."""
        config = CogVideoConfig(cogview=asdict(base.config), stage=stage, window=window,
                                base_name=base_name)
        return cls(config, base)

    def train(self, mode: bool = True) -> CogVideo:
        """Train the new parts; the frozen CogView always runs as at inference."""
        super().train(mode)
        self.base.eval()
        return self

    def new_cache(self) -> DualCache:
        """An empty KV cache: one spatial and one temporal cache per layer."""
        return DualCache(self.base.config.n_layer)

    def embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        """Token + position embeddings (b n c) of idx sitting at positions start, start + 1, ..."""
        base, config = self.base, self.base.config
        n, text_len, frame_len = idx.shape[1], config.text_len, config.frame_len
        positions = torch.arange(start, start + n, device=idx.device)
        is_rate = idx >= config.vocab_size
        tokens = base.tok_emb(torch.where(is_rate, 0, idx).long())
        tokens = torch.where(is_rate[..., None],
                             self.rate_emb((idx - config.vocab_size).clamp_min(0).long()), tokens)
        video = (positions - text_len - 1).clamp_min(0)  # index among the video tokens
        frame, within = video // frame_len, video % frame_len
        # text keeps CogView's 1D positions; the rate token takes CogView's BOI slot (text_len)
        text = base.text_pos(positions.clamp(max=text_len))
        frames = base.frame_positions(within) + self.time_emb(
            self.frame_time[frame.clamp(max=len(self.frame_time) - 1)])
        return tokens + torch.where((positions <= text_len)[:, None], text, frames)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                cache: DualCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits over codes (b n K) for idx (b n); cross-entropy if targets (-100 = skip)."""
        if mask is not None or context is not None:
            raise ValueError("CogVideo builds its own dual-channel masks and takes no context")
        start = len(cache) if cache is not None else 0
        _check_idx(idx, self.config.vocab_size, self.config.block_size, start)
        n = idx.shape[1]
        x = self.embed(idx, start)
        rows, cols = slice(start, start + n), slice(0, start + n)
        spatial = self.spatial_mask[rows, cols]
        for i, (block, temporal) in enumerate(zip(self.base.blocks, self.temporal, strict=True)):
            spatial_cache, temporal_cache = cache.layers[i] if cache is not None else (None, None)
            s = block.attn(block.norm_attn(x), mask=spatial, cache=spatial_cache)
            t = temporal(x, self.temporal_masks[i % 2][rows, cols], temporal_cache)
            x = x + s + self.gate[i] * (t - s)  # α = 0: the frozen model's own update
            x = x + block.mlp(block.norm_mlp(x))
        logits = self.base.head(self.base.norm(x))
        return logits, _code_loss(logits, targets)


# --------------------------------------------------------------------------- sequences
def text_tokens(captions: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Model ids (b, 26) of caption word ids (b, 26) (`CaptionTokenizer` ids)."""
    if not isinstance(captions, torch.Tensor) or captions.dim() != 2 or \
            captions.shape[1] != TEXT_LEN or captions.is_floating_point():
        got = tuple(captions.shape) if isinstance(captions, torch.Tensor) else type(captions)
        raise ValueError(f"captions must be integer word ids of shape (b, {TEXT_LEN}) "
                         f"(CaptionTokenizer.encode_batch), got {got}")
    if int(captions.min()) < 0 or int(captions.max()) >= len(VOCAB):
        raise ValueError(f"caption word ids must lie in [0, {len(VOCAB)})")
    return captions.long() + num_codes


def frame_tokens(codes: torch.Tensor, boi: int) -> torch.Tensor:
    """Codes (b, f, h, w) → (b, f·(1 + h·w)): BOF then the codes in raster order, per frame."""
    flat = rearrange(codes.long(), "b f h w -> b f (h w)")
    bof = torch.full((*flat.shape[:2], 1), boi, dtype=torch.long, device=codes.device)
    return rearrange(torch.cat([bof, flat], dim=-1), "b f n -> b (f n)")


def cogview_sequence(captions: torch.Tensor, codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Stage 0 sequences (b, 26 + 1 + h·w) from caption ids (b, 26) and codes (b, h, w)."""
    boi = num_codes + len(VOCAB)
    return torch.cat([text_tokens(captions, num_codes), frame_tokens(codes[:, None], boi)], 1)


def video_sequence(config: CogVideoConfig, captions: torch.Tensor, stride: int,
                   codes: torch.Tensor) -> torch.Tensor:
    """A stage's sequence: caption, frame-rate token, frames (b, f, h, w) in sequence order."""
    base = config.base
    rate = torch.full((len(captions), 1), config.rate_token(stride), dtype=torch.long,
                      device=captions.device)
    return torch.cat([text_tokens(captions, base.num_codes), rate,
                      frame_tokens(codes, base.boi).to(captions.device)], dim=1)


def training_pair(sequence: torch.Tensor, scored_from: int, num_codes: int) -> dict:
    """Inputs and next-token targets of a sequence; only codes at positions ≥ scored_from count."""
    target = sequence[..., 1:].clone()
    position = torch.arange(1, sequence.shape[-1])
    target[..., position < scored_from] = -100
    target[target >= num_codes] = -100  # text, BOF and rate tokens are given, never predicted
    return {"input": sequence[..., :-1], "target": target}


def sequence_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """The `fit` loss of every stage: cross-entropy of the scored codes, and bits per code."""
    _, loss = model(batch["input"], targets=batch["target"])
    return loss, {"bits_per_code": float(loss.detach()) / math.log(2)}


# --------------------------------------------------------------------------- data
@dataclass
class EncodedClips:
    """Moving MNIST clips as codes, with what their captions are made of."""

    codes: torch.Tensor  # int16 (n, t, h, w)
    digits: np.ndarray  # int64 (n, k)
    directions: np.ndarray  # int8 (n, t, k): compass index of the velocity at each frame
    positions: np.ndarray  # float32 (n, t, k, 2): top-left (y, x) of each digit
    num_codes: int  # the tokenizer's codebook size

    def __len__(self) -> int:
        return len(self.codes)


def _state_hash(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_clips(tokenizer: nn.Module, num_clips: int, *, split: str = "train", seed: int = 0,
                 num_frames: int = CLIP_FRAMES, batch_size: int = 64,
                 cache: bool = False) -> EncodedClips:
    """Generate clips (training or test digits) and encode every frame with the tokenizer.

    cache=True keeps the result in the download cache, keyed by the tokenizer's weights, so the
    three stages trained one after another encode their clips once.
    """
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    if not isinstance(getattr(tokenizer, "config", None), FrameTokenizerConfig):
        raise TypeError(f"tokenizer must be a FrameTokenizer, got {type(tokenizer).__name__}")
    path = cache_dir() / "cogvideo" / (
        f"{_state_hash(tokenizer)}-{split}-{num_clips}-{seed}-{num_frames}.pt")
    if cache and path.is_file():
        return EncodedClips(**torch.load(path, weights_only=False))
    config = MovingMNISTConfig(num_frames=num_frames)
    digits = load_digits(split)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 9])
    device = next(tokenizer.parameters()).device
    was_training = tokenizer.training
    tokenizer.eval()
    parts: dict[str, list] = {"codes": [], "digits": [], "directions": [], "positions": []}
    for start in range(0, num_clips, batch_size):
        clips = generate_clips(min(batch_size, num_clips - start), digits, config, rng)
        parts["codes"].append(tokenizer.encode(torch.from_numpy(clips.videos).to(device))
                              .to(torch.int16).cpu())
        parts["digits"].append(clips.digits)
        parts["directions"].append(clips.trajectories.directions.astype(np.int8))
        parts["positions"].append(clips.trajectories.positions.astype(np.float32))
    tokenizer.train(was_training)
    arrays = {"codes": torch.cat(parts["codes"]), "num_codes": tokenizer.num_codes,
              **{k: np.concatenate(v) for k, v in parts.items() if k != "codes"}}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(arrays, path)
    return EncodedClips(**arrays)


def _maybe_drop(captions: torch.Tensor, drop: bool) -> torch.Tensor:
    return torch.zeros_like(captions) if drop else captions  # all pads: "no caption"


class _Draws(Dataset):
    """Item i is a pure function of (seed, i): which clip, frames and caption dropout."""

    STREAM = 0
    LENGTH = 2**31 - 1  # drawn with replacement by the training loop, step by step

    def __init__(self, clips: EncodedClips, seed: int = 0, caption_dropout: float = 0.0,
                 length: int | None = None) -> None:
        self.clips, self.seed, self.caption_dropout = clips, seed, caption_dropout
        self.length = self.LENGTH if length is None else length

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        """The random stream of item `index`."""
        return np.random.default_rng([self.seed, self.STREAM, index])

    def caption(self, text: str, rng: np.random.Generator) -> torch.Tensor:
        """Word ids of a caption, replaced by pads with probability caption_dropout."""
        ids = torch.tensor(_CAPTIONS.encode(text), dtype=torch.long)
        return _maybe_drop(ids, bool(rng.random() < self.caption_dropout))


class FrameCaptionDataset(_Draws):
    """Stage 0: one frame of a random clip, with its quadrant caption."""

    STREAM = 20

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        clip = int(rng.integers(len(self.clips)))
        t = int(rng.integers(self.clips.codes.shape[1]))
        caption = self.caption(frame_caption(self.clips.digits[clip],
                                             self.clips.positions[clip, t]), rng)
        num_codes = self.clips.num_codes
        sequence = cogview_sequence(caption[None], self.clips.codes[clip, t][None], num_codes)
        return training_pair(sequence[0], TEXT_LEN + 1, num_codes)


class VideoDataset(_Draws):
    """Stages 1 and 2: a window of frames of a random clip at a random accepted frame rate."""

    STREAM = 21

    def __init__(self, clips: EncodedClips, config: CogVideoConfig, seed: int = 0,
                 caption_dropout: float = 0.0, length: int | None = None,
                 stride: int | None = None) -> None:
        super().__init__(clips, seed, caption_dropout, length)
        self.config, self.stride = config, stride

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(clip, stride, first frame) of one item."""
        clip = int(rng.integers(len(self.clips)))
        stride, first = draw_window(self.config, self.clips.codes.shape[1], rng, self.stride)
        return clip, stride, first

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        clip, stride, first = self.draw(rng)
        clips = self.clips
        frames = window_frames(self.config, stride, first)
        text = window_caption(self.config, clips.digits[clip], clips.directions[clip], stride,
                              first)
        caption = self.caption(text, rng)
        sequence = video_sequence(self.config, caption[None], stride,
                                  clips.codes[clip, frames][None].long())[0]
        return training_pair(sequence, scored_from(self.config), self.config.base.num_codes)


def draw_window(config: CogVideoConfig, num_frames: int, rng: np.random.Generator,
                stride: int | None = None) -> tuple[int, int]:
    """(stride, first frame) of a training window of a stage in a clip of num_frames frames:
    key frames at stride 4, 2 or 1 (weights KEYFRAME_STRIDE_WEIGHTS), middles at 2 or 1."""
    if stride is not None:
        stride = check_stride(stride, config.stage)
    elif config.stage == "keyframes":
        strides = list(KEYFRAME_STRIDE_WEIGHTS)
        stride = strides[rng.choice(len(strides), p=list(KEYFRAME_STRIDE_WEIGHTS.values()))]
    else:
        stride = int(rng.choice(STAGE_STRIDES["interp"]))
    span = max(config.frame_times) * stride  # source frames from first to last
    return stride, int(rng.integers(num_frames - span))


def window_frames(config: CogVideoConfig, stride: int, first: int) -> list[int]:
    """The source frames of a window, in sequence order."""
    return [first + t * stride for t in config.frame_times]


def window_caption(config: CogVideoConfig, digits: np.ndarray, directions: np.ndarray,
                   stride: int, first: int) -> str:
    """The caption a window trains under; directions (t, k) are the clip's, per frame."""
    if config.stage == "keyframes":
        # the caption of exactly the motion shown between the first and the last frame
        last = first + max(config.frame_times) * stride
        return motion_caption(digits, directions[first:last])
    # stage 2 runs under the whole clip's prompt, so it trains under it too
    return motion_caption(digits, directions[:-1])


def scored_from(config: CogViewConfig | CogVideoConfig) -> int:
    """First scored position: after the caption (and BOI or the rate token); interpolation
    scores only the middle frame, after the two given neighbours."""
    if isinstance(config, CogViewConfig):
        return config.text_len + 1
    base = config.base
    return base.text_len + 1 + (2 * base.frame_len if config.stage == "interp" else 0)


# --------------------------------------------------------------------------- sampling
def _sampling_kwargs(temperature: float, top_k: int | None, top_p: float | None,
                     greedy: bool) -> dict:
    return dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)


def _check_guidance(guidance: float) -> float:
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or guidance < 0:
        raise ValueError(f"guidance must be a number >= 0 (0: ignore the text, 1: plain "
                         f"conditional, > 1: stronger), got {guidance!r}")
    return float(guidance)


@torch.no_grad()
def _sample_frames(model: nn.Module, prefix: torch.Tensor, num_frames: int, *, guidance: float,
                   generator: torch.Generator, progress: bool = False, **sampling) -> torch.Tensor:
    """Append num_frames frames (BOF, then codes drawn with `generate`) to prefix (b, n).

    BOF is given, not drawn, so `generate` runs once per frame; within a frame the KV cache
    makes each new code cost one token's work. Guidance runs the caption-free sequence (text →
    pads) beside the captioned one, in the same batch.
    """
    config = model.config.base if isinstance(model, CogVideo) else model.config
    guidance = _check_guidance(guidance)
    bof = torch.full((len(prefix), 1), config.boi, dtype=torch.long, device=prefix.device)
    tokens, frames = prefix, []
    for _ in range(num_frames):
        tokens = torch.cat([tokens, bof], dim=1)
        uncond = None
        if guidance != 1.0:  # w = 1 is the conditional model: no second pass needed
            uncond = tokens.clone()
            uncond[:, : config.text_len] = config.num_codes  # the pad word
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


def _check_stage(model: nn.Module, stage: str) -> CogVideoConfig:
    config = getattr(model, "config", None)
    if not isinstance(model, CogVideo) or config.stage != stage:
        raise TypeError(f"model must be a CogVideo of stage {stage!r}, got "
                        f"{type(model).__name__} {getattr(config, 'stage', '')}".rstrip())
    return config


def sample_keyframes(model: CogVideo, captions: torch.Tensor, *, stride: int = KEYFRAME_STRIDE,
                     guidance: float = 1.0, seed: int = 0, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None,
                     greedy: bool = False, progress: bool = False) -> torch.Tensor:
    """Stage 1: key frames (b, 5, h, w) from caption word ids (b, 26), at a frame stride."""
    config = _check_stage(model, "keyframes")
    device = next(model.parameters()).device
    captions = captions.to(device)
    rate = torch.full((len(captions), 1), config.rate_token(stride), device=device)
    prefix = torch.cat([text_tokens(captions, config.base.num_codes), rate], dim=1)
    return _sample_frames(model, prefix, len(config.frame_times), guidance=guidance,
                          generator=_generator(seed, device), progress=progress,
                          **_sampling_kwargs(temperature, top_k, top_p, greedy))


def fill_middle(model: CogVideo, captions: torch.Tensor, left: torch.Tensor,
                right: torch.Tensor, *, stride: int, guidance: float = 1.0,
                generator: torch.Generator | None = None, seed: int = 0,
                **sampling) -> torch.Tensor:
    """Stage 2, once: the frame (b, h, w) halfway between left and right (b, h, w).

    `stride` is the new, finer frame rate: the middle frame lies `stride` source frames after
    `left` and before `right`. The neighbours are given (they come first in the sequence), so
    the middle frame's tokens see both of them: bidirectional in time, causal in tokens.
    """
    config = _check_stage(model, "interp")
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
                  progress: bool = False) -> torch.Tensor:
    """The whole hierarchy: caption word ids (b, 26) → codes (b, 17, h, w)."""
    sampling = _sampling_kwargs(temperature, top_k, top_p, False)
    keys = sample_keyframes(keyframes_model, captions, guidance=guidance, seed=seed,
                            progress=progress, **sampling)
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
    from minivideo.pretrained import pretrained  # front door: imported only when used

    return pretrained(name)


def tokenizer_of(model: nn.Module) -> FrameTokenizer:
    """The frame tokenizer whose codes a CogView or CogVideo models."""
    config = model.config.base if isinstance(model, CogVideo) else model.config
    return load_tokenizer(config.tokenizer)


def _load(path_or_name: str) -> nn.Module:
    from minivideo.checkpoints import build_model_from_checkpoint
    from minivideo.pretrained import pretrained

    if path_or_name.endswith(".pt"):
        return build_model_from_checkpoint(path_or_name).eval()
    return pretrained(path_or_name)


# --------------------------------------------------------------------------- sample command
def _checkpoints(spec: str | None) -> tuple[nn.Module, nn.Module]:
    """The (keyframes, interp) models: shipped, or 'K.pt,I.pt', or a folder holding both."""
    if spec is None:
        return _load("cogvideo-keyframes"), _load("cogvideo-interp")
    parts = spec.split(",")
    if len(parts) == 1 and Path(spec).is_dir():
        parts = [str(Path(spec) / f"cogvideo-{s}.pt") for s in STAGES]
    if len(parts) != 2 or not all(p.endswith(".pt") for p in parts):
        raise ValueError("--checkpoint for cogvideo must be KEYFRAMES.pt,INTERP.pt or a folder "
                         f"holding cogvideo-keyframes.pt and cogvideo-interp.pt; got {spec!r}")
    keys, interp = (_load(p) for p in parts)
    for model, stage, path in ((keys, "keyframes", parts[0]), (interp, "interp", parts[1])):
        try:
            _check_stage(model, stage)
        except TypeError as err:
            raise ValueError(f"--checkpoint {path}: {err}") from err
    return keys, interp


def sample_videos(args: argparse.Namespace) -> dict:
    """`python -m minivideo sample cogvideo --prompt ...`: uint8 videos (N, 17, 64, 64)."""
    if args.prompt is None:
        raise ValueError("cogvideo needs --prompt, e.g. "
                         "--prompt 'digit 3 moves left and digit 7 moves down'")
    caption = encode_prompt(args.prompt)
    guidance = _check_guidance(3.0 if args.guidance is None else args.guidance)
    keys_model, interp_model = _checkpoints(args.checkpoint)
    device = torch.device(args.device) if args.device else None
    if device is not None:
        keys_model, interp_model = keys_model.to(device), interp_model.to(device)
    tokenizer = tokenizer_of(keys_model)
    parts = []
    for start in range(0, args.num, args.batch_size):
        n = min(args.batch_size, args.num - start)
        codes = text_to_video(keys_model, interp_model, repeat(caption, "l -> n l", n=n),
                              guidance=guidance, seed=args.seed + start,
                              temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              progress=not args.no_progress)
        video = tokenizer.to(codes.device).decode(codes)
        parts.append((video * 255).round().to(torch.uint8).cpu().numpy())
    return {"videos": np.concatenate(parts), "captions": np.array([args.prompt] * args.num)}


__all__ = [
    "CAPTION_DROPOUT", "CLIP_FRAMES", "FRAME_STRIDES", "NUM_KEYFRAMES", "check_stride", "CogVideo",
    "CogVideoConfig", "CogView", "cogview_sequence", "CogViewConfig", "draw_window", "DualCache",
    "encode_clips", "encode_prompt", "EncodedClips", "fill_middle", "frame_caption",
    "FrameCaptionDataset", "interpolate", "interpolate_once", "load_tokenizer", "motion_caption",
    "quadrant", "sample_images", "sample_keyframes", "sample_videos", "scored_from",
    "sequence_loss", "spatial_mask", "temporal_mask", "TemporalChannel", "text_to_video",
    "text_tokens", "tokenizer_of", "training_pair", "video_sequence", "VideoDataset",
    "window_caption", "window_frames",
]
