"""A decoder-only transformer (GPT) over discrete tokens: text, image/video codes, or both.

In the spirit of nanoGPT: one config dataclass, a pre-norm block, the model. Additions for video:
- positions: 1D learned embeddings, or factorised 3D (t, h, w) embeddings for the video tokens as
  in VideoGPT, after `prefix_len` conditioning tokens (text, class) that keep 1D positions;
- an optional cross-attention to a context tensor in every block (VideoGPT's frame conditioning);
- a KV cache, so feeding token n + 1 costs one token's work instead of n + 1 tokens' work.

Sampling strategies (temperature, top-k, guidance, ...) live in `minivideo.sampling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minivideo.attention import BACKENDS, KVCache, MultiHeadAttention
from minivideo.utils import FromConfig

POS_EMBS = ("1d", "3d")


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_integer_tensor(x: torch.Tensor) -> bool:
    return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)


# --------------------------------------------------------------------------- config
@dataclass
class GPTConfig:
    """Sizes and options of a GPT; `grid` is the (t, h, w) of the video tokens for 3D positions."""

    vocab_size: int
    block_size: int  # the longest sequence (prefix + video) the model reads
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    pos_emb: str = "1d"  # "1d": one learned vector per position; "3d": t + h + w vectors
    grid: tuple[int, int, int] | None = None
    prefix_len: int = 0  # leading conditioning tokens; with "3d" they get 1D positions
    context_dim: int | None = None  # set: every block cross-attends to a (b, m, context_dim)
    backend: str = "auto"  # attention backend, see minivideo.attention
    extra: dict = field(default_factory=dict)  # recipe-specific settings, saved with the model

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not _is_positive_int(value):
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head} "
                "(each head gets n_embd // n_head channels)"
            )
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.pos_emb not in POS_EMBS:
            raise ValueError(f"GPTConfig.pos_emb must be one of {POS_EMBS}, got {self.pos_emb!r}")
        if self.backend not in (*BACKENDS, "auto"):
            raise ValueError(
                f"GPTConfig.backend must be one of {['auto', *BACKENDS]}, got {self.backend!r}"
            )
        if self.context_dim is not None and not _is_positive_int(self.context_dim):
            raise ValueError(
                f"GPTConfig.context_dim must be a positive int or None, got {self.context_dim!r}"
            )
        if not isinstance(self.prefix_len, int) or not 0 <= self.prefix_len < self.block_size:
            raise ValueError(
                f"GPTConfig.prefix_len must be an int in [0, block_size={self.block_size}), "
                f"got {self.prefix_len!r}"
            )
        if self.pos_emb == "3d":
            grid = self.grid
            if not (isinstance(grid, (tuple, list)) and len(grid) == 3) or not all(
                _is_positive_int(g) for g in grid
            ):
                raise ValueError(
                    f"GPTConfig.pos_emb='3d' needs grid=(t, h, w) of positive ints, got {grid!r}"
                )
            self.grid = tuple(grid)  # a checkpoint's JSON gives a list
            if self.prefix_len + math.prod(self.grid) > self.block_size:
                raise ValueError(
                    f"GPTConfig: prefix_len {self.prefix_len} + t*h*w {math.prod(self.grid)} "
                    f"exceeds block_size {self.block_size}"
                )
        elif self.grid is not None:
            raise ValueError("GPTConfig.grid is only used with pos_emb='3d'; leave it None")

    @property
    def n_positions(self) -> int:
        """How many positions have an embedding: block_size (1D) or prefix_len + t*h*w (3D)."""
        if self.pos_emb == "1d":
            return self.block_size
        return self.prefix_len + math.prod(self.grid)


# --------------------------------------------------------------------------- the block
class MLP(nn.Module):
    """Position-wise feed-forward network: expand 4x, GELU, project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b n c) -> (b n c)."""
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm block: x += attn(norm(x)); [x += cross(norm(x), context)]; x += mlp(norm(x)).

    Pre-norm keeps an untouched identity path from the input to the output of the whole stack,
    which is what lets deep stacks train without warm-up tricks (GPT-2 and later).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = MultiHeadAttention(
            config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout,
            backend=config.backend,
        )  # fmt: skip
        self.cross: MultiHeadAttention | None = None
        if config.context_dim is not None:
            self.norm_cross = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.cross = MultiHeadAttention(
                config.n_embd, config.n_head, context_dim=config.context_dim, bias=config.bias,
                dropout=config.dropout, backend=config.backend,
            )  # fmt: skip
        self.norm_mlp = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)  # residual dropout, on every branch

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        cache: tuple[KVCache, KVCache] | None = None,
    ) -> torch.Tensor:
        """(b n c) -> (b n c); causal self-attention unless an explicit bool mask is given."""
        self_cache, cross_cache = cache if cache is not None else (None, None)
        h = self.attn(self.norm_attn(x), mask=mask, is_causal=mask is None, cache=self_cache)
        x = x + self.dropout(h)
        if self.cross is not None:
            h = self.cross(self.norm_cross(x), context=context, cache=cross_cache)
            x = x + self.dropout(h)
        return x + self.dropout(self.mlp(self.norm_mlp(x)))


# --------------------------------------------------------------------------- the cache
class GPTCache:
    """Per-layer key/value caches (self- and cross-attention) and the number of tokens fed so far.

    Self-attention caches grow by the new tokens at every call; cross-attention caches hold the
    context's keys/values, computed on the first call and reused after (the context is fixed).
    """

    def __init__(self, n_layer: int) -> None:
        if not _is_positive_int(n_layer):
            raise ValueError(f"n_layer must be a positive int, got {n_layer!r}")
        self.layers: list[tuple[KVCache, KVCache]] = [
            (KVCache(), KVCache()) for _ in range(n_layer)
        ]

    def __len__(self) -> int:
        return len(self.layers[0][0])

    @property
    def batch_size(self) -> int | None:
        """Batch size of the cached sequences (None while empty)."""
        k = self.layers[0][0].k
        return None if k is None else k.shape[0]

    def reset(self) -> None:
        """Forget everything: start a new batch of sequences."""
        for self_cache, cross_cache in self.layers:
            self_cache.reset()
            cross_cache.reset()


# --------------------------------------------------------------------------- the model
class GPT(FromConfig, nn.Module):
    """Decoder-only transformer: token + position embeddings, blocks, final norm, (tied) head."""

    config_class = GPTConfig

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(
                f"config must be a GPTConfig (from_config takes a dict), got {_describe(config)}"
            )
        self.config = config
        c = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size, c)
        if config.pos_emb == "1d":
            self.pos_emb = nn.Embedding(config.block_size, c)
        else:
            # Factorised: (t + h + w) * c parameters instead of t * h * w * c, and a token learns
            # "which frame" and "where in the frame" from every token sharing that coordinate.
            t, h, w = config.grid
            self.prefix_pos_emb = nn.Embedding(config.prefix_len, c) if config.prefix_len else None
            self.t_emb = nn.Embedding(t, c)
            self.h_emb = nn.Embedding(h, c)
            self.w_emb = nn.Embedding(w, c)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.norm = nn.LayerNorm(c, bias=config.bias)
        self.head = nn.Linear(c, config.vocab_size, bias=False)
        if config.tie_weights:
            # One matrix both reads tokens in and scores them out (Press & Wolf, 2017): fewer
            # parameters, and rare tokens' output rows get the input's gradient too.
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: each residual branch ends in a projection; scaling those by 1/sqrt(2 * n_layer)
        # keeps the residual stream's variance from growing with the number of branches added.
        for name, param in self.named_parameters():
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def new_cache(self) -> GPTCache:
        """An empty KV cache for incremental decoding with this model."""
        return GPTCache(self.config.n_layer)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters, tied weights counted once.

        non_embedding=True leaves out the lookup tables that do no computation: the position
        embeddings, and the token embedding too unless it doubles as the output head (nanoGPT).
        """
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            lookup = [m for m in self.modules() if isinstance(m, nn.Embedding)]
            if self.config.tie_weights:
                lookup.remove(self.tok_emb)
            total -= sum(m.weight.numel() for m in lookup)
        return total

    # ----------------------------------------------------------------------- forward
    def position_embeddings(
        self, start: int, length: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Embeddings (n c) of the absolute positions start, ..., start + length - 1."""
        positions = torch.arange(start, start + length, device=device)
        if self.config.pos_emb == "1d":
            return self.pos_emb(positions)
        prefix_len = self.config.prefix_len
        n_prefix = min(max(prefix_len - start, 0), length)  # how many of them are prefix tokens
        video = positions[n_prefix:] - prefix_len  # raster index i = (t * h + y) * w + x
        _, h, w = self.config.grid
        t_idx, y_idx, x_idx = video // (h * w), (video // w) % h, video % w
        parts = [self.t_emb(t_idx) + self.h_emb(y_idx) + self.w_emb(x_idx)]
        if n_prefix:
            parts.insert(0, self.prefix_pos_emb(positions[:n_prefix]))
        return torch.cat(parts)

    def _check_inputs(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None,
        mask: torch.Tensor | None,
        context: torch.Tensor | None,
        cache: GPTCache | None,
    ) -> int:
        """Raise a clear error for bad arguments; return the absolute position of idx[:, 0]."""
        config = self.config
        if not isinstance(idx, torch.Tensor) or not _is_integer_tensor(idx):
            raise TypeError(
                f"idx must be an integer tensor (b, n) of token ids, got {_describe(idx)}"
            )
        if idx.dim() != 2 or idx.numel() == 0:
            raise ValueError(f"idx must have shape (b, n) with b, n >= 1, got {tuple(idx.shape)}")
        low, high = torch.stack(torch.aminmax(idx)).tolist()  # one device sync, not two
        if low < 0 or high >= config.vocab_size:
            raise ValueError(
                f"idx holds ids in [{low}, {high}], outside the vocabulary [0, {config.vocab_size})"
            )
        start = 0
        if cache is not None:
            if not isinstance(cache, GPTCache) or len(cache.layers) != config.n_layer:
                raise TypeError(
                    f"cache must come from this model's new_cache(), got {_describe(cache)}"
                )
            start = len(cache)
            if cache.batch_size is not None and cache.batch_size != idx.shape[0]:
                raise ValueError(
                    f"idx has batch size {idx.shape[0]} but the cache holds {cache.batch_size} "
                    "sequences; call cache.reset() to start new ones"
                )
        end = start + idx.shape[1]
        if end > config.block_size:
            raise ValueError(
                f"sequence of {start} cached + {idx.shape[1]} new tokens exceeds "
                f"block_size={config.block_size}"
            )
        if end > config.n_positions:
            raise ValueError(
                f"sequence of {end} tokens exceeds the {config.n_positions} positions of "
                f"prefix_len + t*h*w (pos_emb='3d', grid={config.grid})"
            )
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or not _is_integer_tensor(targets):
                raise TypeError(f"targets must be an integer tensor, got {_describe(targets)}")
            if targets.shape != idx.shape:
                raise ValueError(
                    f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}"
                )
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
                raise TypeError(
                    f"mask must be a bool (N, N) tensor over absolute positions, got "
                    f"{_describe(mask)}"
                )
            if mask.shape[0] != mask.shape[1] or mask.shape[0] < end:
                raise ValueError(
                    f"mask must have shape (N, N) with N >= {end} (cached + new tokens), "
                    f"got {tuple(mask.shape)}"
                )
        if config.context_dim is None:
            if context is not None:
                raise ValueError(
                    "context was given, but this GPT has no cross-attention (context_dim=None)"
                )
            return start
        expected = f"({idx.shape[0]}, m, {config.context_dim})"
        if context is None:
            raise ValueError(f"this GPT cross-attends (context_dim set): pass context {expected}")
        if not isinstance(context, torch.Tensor) or not context.is_floating_point():
            raise TypeError(f"context must be a float tensor {expected}, got {_describe(context)}")
        if (
            context.dim() != 3
            or context.shape[0] != idx.shape[0]
            or context.shape[1] == 0
            or context.shape[2] != config.context_dim
        ):
            raise ValueError(f"context must have shape {expected}, got {tuple(context.shape)}")
        return start

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        cache: GPTCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (b n vocab) for idx (b n), and the mean cross-entropy against targets if given.

        mask: bool (N, N) over absolute positions, True = may attend (default: causal).
        context: (b m context_dim), required exactly when the config has a context_dim.
        cache: idx then holds only the new tokens; they sit after the cached ones, and the
        logits equal those of the full forward. The cache reuses the first call's context.
        targets: ids (b n); entries equal to -100 are left out of the loss (e.g. the prefix).
        """
        start = self._check_inputs(idx, targets, mask, context, cache)
        length = idx.shape[1]
        tokens = self.tok_emb(idx.long())  # (b n c); .long() admits uint8/int32 ids too
        x = self.drop(tokens + self.position_embeddings(start, length, idx.device))
        if mask is not None:
            # rows: the new queries; columns: every key so far (cached + new)
            mask = mask[start : start + length, : start + length].to(idx.device)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, context, cache.layers[i] if cache is not None else None)
        logits = self.head(self.norm(x))  # (b n vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), targets.flatten().long(), ignore_index=-100
            )
        return logits, loss

    # ----------------------------------------------------------------------- training
    def configure_optimizers(
        self, weight_decay: float, lr: float, betas: tuple[float, float] = (0.9, 0.95)
    ) -> torch.optim.AdamW:
        """AdamW that decays the 2-D weights (matmuls, embeddings) but not biases and norms."""
        params = [p for p in self.parameters() if p.requires_grad]  # tied weights appear once
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)


__all__ = ["GPT", "GPTCache", "GPTConfig", "Block", "MLP"]
