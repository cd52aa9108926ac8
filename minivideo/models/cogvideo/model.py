"""The networks of CogVideo-mini: CogView (stage 0) and the dual-channel CogVideo (stages 1-2).

`CogView` is a transformer over ``[caption | BOI | codes]`` under a prefix mask, with a head over
the codes only. `CogVideo` keeps a frozen CogView's attention as the spatial channel, adds a
`TemporalChannel` per layer that attends across frames in (shifted) windows of time, and mixes
the two with a learned gate α that starts at 0, so that it starts as CogView. `sequence_loss` is
the training loss of every stage.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from minivideo.data.captions import VOCAB
from minivideo.data.moving_mnist import COMPASS
from minivideo.masks import prefix_mask
from minivideo.models.cogvideo.layout import (
    FRAME_STRIDES,
    CogVideoConfig,
    CogViewConfig,
    cell_offsets,
    compass_ids,
    spatial_mask,
    temporal_mask,
)
from minivideo.models.cogvideo.pointer import CopyPointer, clause_digits
from minivideo.transformer import Block, GPTCache, GPTConfig
from minivideo.utils import FromConfig


# --------------------------------------------------------------------------- stage 0: CogView
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


class CogView(FromConfig, nn.Module):
    """Text-to-image transformer: [caption | BOI | codes], prefix mask, a head over codes only."""

    config_class = CogViewConfig

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
class TemporalChannel(nn.Module):
    """Pre-norm multi-head attention across frames: the trainable half of a dual-channel layer."""

    def __init__(self, block: Block, grid: int | None = None, bias_scale: float = 1.0) -> None:
        super().__init__()
        self.bias_scale = bias_scale  # bias = bias_scale · the parameter (see CogVideoConfig)
        # Start from a copy of the frozen spatial attention: it already reads this model's
        # features, so the new channel only has to learn where (in time) to look.
        self.norm = copy.deepcopy(block.norm_attn)
        self.attn = copy.deepcopy(block.attn)
        # optional relative (row, column) bias per head, 0 at first: exactly the copy at step 0
        self.bias = None if grid is None else nn.Parameter(
            torch.zeros(block.attn.num_heads, (2 * grid - 1) ** 2))
        self.requires_grad_(True)  # the copies must learn even if the original is frozen

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache=None,
                offsets: tuple[torch.Tensor, torch.Tensor] | None = None,
                extra: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(b n c) -> (b n c); offsets = `cell_offsets` rows of the new tokens, if biased;
        extra: a further per-example offset bias (b heads n m), the caption's motion."""
        if self.bias is not None:
            mask = self.logit_bias(mask, offsets, extra)
        return self.attn(self.norm(x), mask=mask, cache=cache)

    def logit_bias(self, mask: torch.Tensor, offsets: tuple[torch.Tensor, torch.Tensor],
                   extra: torch.Tensor | float = 0.0) -> torch.Tensor:
        """The additive mask (heads or b heads, n, m): each pair's offset bias (plus `extra`)
        where both tokens hold a cell, 0 elsewhere, -inf where the bool mask forbids."""
        index, defined = offsets
        bias = torch.where(defined, self.bias_scale * self.bias[:, index] + extra, 0.0)
        return bias.masked_fill(~mask, -math.inf)


class DualCache(GPTCache):
    """Per-layer (spatial, temporal) key/value caches, and the number of tokens fed so far;
    `motion` keeps the caption's offset tables (see `CogVideo.caption_motion`) once the prefix
    has been fed."""

    motion: torch.Tensor | None = None
    tokens: torch.Tensor | None = None  # every token fed so far (the copy pointer's keys)
    pointer_table: torch.Tensor | None = None  # the pointer's offset tables (prefix-made)
    pointer_digits: torch.Tensor | None = None  # a bound pointer's clause digits (prefix-made)
    hidden: torch.Tensor | None = None  # a bound pointer's hidden states of every token so far


class CogVideo(FromConfig, nn.Module):
    """CogView's frozen layers as the spatial channel, plus gated temporal channels."""

    config_class = CogVideoConfig

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
        grid = base_config.grid if config.relative_bias else None
        self.temporal = nn.ModuleList([TemporalChannel(b, grid, config.bias_scale)
                                       for b in self.base.blocks])
        self.gate = nn.Parameter(torch.zeros(layers, c))  # α = 0: exactly CogView at step 0
        self.time_emb = nn.Embedding(len(config.frame_times), c)
        nn.init.zeros_(self.time_emb.weight)  # no time signal until it is learned
        # CogView learned its caption words from quadrant captions ("digit 3 up-left"): "moves",
        # "then", "left", "right", "up" and "down" were never in them, so their frozen embeddings
        # are untrained noise. A learned correction per word (0 at first) lets the stage teach
        # the frozen channel its new words, as new tokens are added to a frozen language model.
        self.word_emb = nn.Embedding(len(VOCAB), c) if config.word_embeddings else None
        if self.word_emb is not None:
            nn.init.zeros_(self.word_emb.weight)
        # Per layer, head and frame rate, a learned offset bias for each compass word the caption
        # names (0 at first): "left" at stride 4 can make the cell two to the right in the last
        # frame the one to copy from, without the frozen channel having to carry the word there.
        self.motion_bias = nn.Parameter(torch.zeros(
            layers, len(FRAME_STRIDES), len(COMPASS), base_config.n_head,
            (2 * base_config.grid - 1) ** 2)) if config.caption_offsets else None
        self.pointer = None if config.pointer == "none" else CopyPointer(
            base_config, len(config.frame_times), config.pointer in ("timed", "bound"),
            config.bias_scale, bound=config.pointer == "bound")
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
        index, defined = cell_offsets(text_len, len(times), frame_len, base_config.grid)
        self.register_buffer("cell_index", index, persistent=False)
        self.register_buffer("cell_defined", defined, persistent=False)
        position = torch.arange(config.block_size) - text_len - 1  # frame of each position
        self.register_buffer("frame_of", torch.where(position >= 0, position // frame_len, -1),
                             persistent=False)

    @classmethod
    def from_cogview(cls, base: CogView, stage: str, window: int = 2,
                     base_name: str = "cogview", **options) -> CogVideo:
        """A fresh stage around a (pretrained) CogView, which is frozen in place; options are
        CogVideoConfig's (relative_bias, gate_scale, motion)."""
        config = CogVideoConfig(cogview=asdict(base.config), stage=stage, window=window,
                                base_name=base_name, **options)
        return cls(config, base)

    def train(self, mode: bool = True) -> CogVideo:
        """Train the new parts; the frozen CogView always runs as at inference."""
        super().train(mode)
        self.base.eval()
        return self

    @property
    def alpha(self) -> torch.Tensor:
        """The mixing gate α (layers, c) = gate_scale · the learned parameter."""
        return self.config.gate_scale * self.gate

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
        if self.word_emb is not None:  # caption words: ids num_codes + word, before text_len
            word = (idx - config.num_codes).clamp(0, len(VOCAB) - 1).long()
            is_word = (positions < text_len)[None, :, None]
            tokens = tokens + torch.where(is_word, self.word_emb(word), 0.0)
        video = (positions - text_len - 1).clamp_min(0)  # index among the video tokens
        frame, within = video // frame_len, video % frame_len
        # text keeps CogView's 1D positions; the rate token takes CogView's BOI slot (text_len)
        text = base.text_pos(positions.clamp(max=text_len))
        frames = base.frame_positions(within) + self.time_emb(
            self.frame_time[frame.clamp(max=len(self.frame_time) - 1)])
        return tokens + torch.where((positions <= text_len)[:, None], text, frames)

    def caption_motion(self, idx: torch.Tensor) -> torch.Tensor:
        """Each example's offset-bias tables (layers, b, heads, offsets): the sum of the learned
        tables of the compass words its caption names, at its frame rate. idx holds the prefix."""
        config = self.base.config
        named = (idx[:, : config.text_len, None] == compass_ids(config, idx.device)).any(1)
        rate = F.one_hot(idx[:, config.text_len].long() - config.vocab_size, len(FRAME_STRIDES))
        table = self.config.bias_scale * self.motion_bias
        return torch.einsum("bs,bd,lsdho->lbho", rate.to(table.dtype), named.to(table.dtype),
                            table)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                cache: DualCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits over codes (b n K) for idx (b n); cross-entropy if targets (-100 = skip)."""
        if mask is not None or context is not None:
            raise ValueError("CogVideo builds its own dual-channel masks and takes no context")
        start = len(cache) if cache is not None else 0
        h = self.base.norm(self.trunk(idx, cache))
        logits = self.base.head(h)
        if self.pointer is not None:
            logits = self._point(idx, start, h, logits, cache)
        return logits, _code_loss(logits, targets)

    def _point(self, idx: torch.Tensor, start: int, h: torch.Tensor, logits: torch.Tensor,
               cache: DualCache | None) -> torch.Tensor:
        """The copy pointer's mixture (log-probabilities) for the new tokens idx; the cache
        keeps the tokens fed so far and the caption's tables."""
        bound = self.pointer.binder is not None
        if start == 0:  # the prefix is here: read the caption's words and the frame rate
            self._check_prefix(idx, "pointer")
            tokens, table = idx, self.pointer.tables(idx, len(self.frame_time))
            hidden = h if bound else None
            digits = clause_digits(idx[:, : self.base.config.text_len],
                                   self.base.config.num_codes)[1] if bound else None
        else:
            tokens, table = torch.cat([cache.tokens, idx], 1), cache.pointer_table
            hidden = torch.cat([cache.hidden, h], 1) if bound else None
            digits = cache.pointer_digits
        if cache is not None:
            cache.tokens, cache.pointer_table = tokens, table
            cache.hidden, cache.pointer_digits = hidden, digits
        rows, cols = slice(start, start + idx.shape[1]), slice(0, tokens.shape[1])
        query_frame = self.frame_of[rows]
        previous = self.cell_defined[rows, cols] & (
            self.frame_of[cols][None, :] == query_frame[:, None] - 1)
        return self.pointer(h, logits, tokens, table, self.cell_index[rows, cols], previous,
                            query_frame, self.base.tok_emb, hidden, digits)

    def trunk(self, idx: torch.Tensor, cache: DualCache | None = None) -> torch.Tensor:
        """The residual stream (b n c) after the last dual-channel layer, before the head."""
        start = len(cache) if cache is not None else 0
        _check_idx(idx, self.config.vocab_size, self.config.block_size, start)
        n = idx.shape[1]
        x = self.embed(idx, start)
        rows, cols = slice(start, start + n), slice(0, start + n)
        spatial = self.spatial_mask[rows, cols]
        offsets = (self.cell_index[rows, cols], self.cell_defined[rows, cols])
        motion = self._motion(idx, start, cache)
        alpha = self.alpha
        for i, (block, temporal) in enumerate(zip(self.base.blocks, self.temporal, strict=True)):
            spatial_cache, temporal_cache = cache.layers[i] if cache is not None else (None, None)
            s = block.attn(block.norm_attn(x), mask=spatial, cache=spatial_cache)
            extra = 0.0 if motion is None else motion[i][:, :, offsets[0]]
            t = temporal(x, self.temporal_masks[i % 2][rows, cols], temporal_cache, offsets,
                         extra)
            x = x + s + alpha[i] * (t - s)  # α = 0: the frozen model's own update
            x = x + self.feed_forward(i, x)
        return x

    def _motion(self, idx: torch.Tensor, start: int, cache: DualCache | None):
        """The caption's offset tables (`caption_motion`): read from the prefix on the first
        call, kept in the cache for the calls that follow; None without caption_offsets."""
        if self.motion_bias is None:
            return None
        if start == 0:  # the prefix is here: read the caption's words and the frame rate
            self._check_prefix(idx, "caption_offsets")
            motion = self.caption_motion(idx)
            if cache is not None:
                cache.motion = motion
            return motion
        return cache.motion

    def _check_prefix(self, idx: torch.Tensor, option: str) -> None:
        """An option that reads the caption needs it, and the frame-rate token, in the first
        call."""
        if idx.shape[1] <= self.base.config.text_len:
            raise ValueError(f"{option} needs the whole prefix (caption and frame-rate token) "
                             "in the first call")

    def feed_forward(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Layer i's feed-forward update: CogView's frozen MLP (a variant may mix in its own)."""
        block = self.base.blocks[i]
        return block.mlp(block.norm_mlp(x))


# --------------------------------------------------------------------------- training loss
def sequence_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """The `fit` loss of every stage: cross-entropy of the scored codes, and bits per code."""
    _, loss = model(batch["input"], targets=batch["target"])
    return loss, {"bits_per_code": float(loss.detach()) / math.log(2)}
