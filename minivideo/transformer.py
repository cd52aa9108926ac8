"""A decoder-only transformer (GPT) for sequences of discrete tokens: text, codes, or both.

In the spirit of nanoGPT: one config dataclass, a pre-norm block, the model. Additions for video:
- positions: 1D learned embeddings, or factorised 3D (t, h, w) embeddings for video tokens as in
  VideoGPT, after `prefix_len` conditioning tokens (text, class) that keep 1D positions;
- an optional cross-attention to a context tensor in every block (VideoGPT's frame conditioning);
- a KV cache, so generating token n+1 costs one token's work instead of n + 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minivideo.attention import KVCache, MultiHeadAttention


@dataclass
class GPTConfig:
    """Sizes and options of a GPT; `grid` is the (t, h, w) of the video tokens for 3D positions."""

    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    pos_emb: str = "1d"
    grid: tuple[int, int, int] | None = None
    prefix_len: int = 0
    context_dim: int | None = None
    backend: str = "auto"
    extra: dict = field(default_factory=dict)  # recipe-specific settings, saved with the model

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.pos_emb not in ("1d", "3d"):
            raise ValueError(f"pos_emb must be '1d' or '3d', got {self.pos_emb!r}")
        if not 0 <= self.prefix_len <= self.block_size:
            raise ValueError(f"prefix_len must be in [0, block_size], got {self.prefix_len}")
        if self.pos_emb == "3d":
            if self.grid is None or len(self.grid) != 3 or min(self.grid) < 1:
                raise ValueError(
                    f"pos_emb='3d' needs grid=(t, h, w) of positive ints, got {self.grid}"
                )
            self.grid = tuple(int(g) for g in self.grid)
            if self.prefix_len + math.prod(self.grid) > self.block_size:
                raise ValueError(
                    f"prefix_len {self.prefix_len} + t*h*w {math.prod(self.grid)} exceeds "
                    f"block_size {self.block_size}"
                )


class MLP(nn.Module):
    """Position-wise feed-forward network: expand 4x, GELU, project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b n c) -> (b n c)."""
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)) [+ cross-attn] + mlp(norm(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = MultiHeadAttention(
            config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout,
            backend=config.backend,
        )  # fmt: skip
        self.cross = None
        if config.context_dim is not None:
            self.norm_cross = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.cross = MultiHeadAttention(
                config.n_embd, config.n_head, context_dim=config.context_dim, bias=config.bias,
                dropout=config.dropout, backend=config.backend,
            )  # fmt: skip
        self.norm_mlp = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        context: torch.Tensor | None = None,
        cache: tuple[KVCache, KVCache] | None = None,
    ) -> torch.Tensor:
        """(b n c) -> (b n c); causal unless an explicit mask is given."""
        self_cache, cross_cache = cache if cache is not None else (None, None)
        h = self.attn(self.norm_attn(x), mask=mask, is_causal=mask is None, cache=self_cache)
        x = x + self.dropout(h)
        if self.cross is not None:
            x = x + self.dropout(self.cross(self.norm_cross(x), context=context, cache=cross_cache))
        return x + self.mlp(self.norm_mlp(x))


class GPTCache:
    """Per-layer key/value caches (self- and cross-attention) and the number of tokens seen."""

    def __init__(self, n_layer: int) -> None:
        self.layers = [(KVCache(), KVCache()) for _ in range(n_layer)]

    def __len__(self) -> int:
        return len(self.layers[0][0]) if self.layers else 0

    def reset(self) -> None:
        """Start a new sequence."""
        for self_cache, cross_cache in self.layers:
            self_cache.reset()
            cross_cache.reset()


class GPT(nn.Module):
    """Decoder-only transformer: token + position embeddings, blocks, tied output head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.pos_emb == "1d":
            self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        else:
            t, h, w = config.grid
            self.prefix_pos_emb = nn.Embedding(max(config.prefix_len, 1), config.n_embd)
            self.t_emb = nn.Embedding(t, config.n_embd)
            self.h_emb = nn.Embedding(h, config.n_embd)
            self.w_emb = nn.Embedding(w, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so the residual stream's
        # variance does not grow with depth.
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

    @classmethod
    def from_config(cls, config: dict | GPTConfig) -> GPT:
        """Build a model from a config (a GPTConfig or its dict form, as saved in checkpoints)."""
        return cls(config if isinstance(config, GPTConfig) else GPTConfig(**config))

    def config_dict(self) -> dict:
        """The config as a plain dict (what checkpoints store)."""
        return asdict(self.config)

    def new_cache(self) -> GPTCache:
        """An empty KV cache for incremental decoding."""
        return GPTCache(self.config.n_layer)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters (tied weights counted once)."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.tok_emb.weight.numel()
        return total

    def position_embeddings(self, start: int, length: int, device) -> torch.Tensor:
        """Embeddings (n c) of absolute positions start .. start + length - 1."""
        positions = torch.arange(start, start + length, device=device)
        if self.config.pos_emb == "1d":
            return self.pos_emb(positions)
        prefix_len = self.config.prefix_len
        _, h, w = self.config.grid
        video = (positions - prefix_len).clamp(min=0)  # raster order over (t, h, w)
        t_idx, rest = video // (h * w), video % (h * w)
        factorised = self.t_emb(t_idx) + self.h_emb(rest // w) + self.w_emb(rest % w)
        prefix = self.prefix_pos_emb(positions.clamp(max=max(prefix_len, 1) - 1))
        return torch.where((positions < prefix_len)[:, None], prefix, factorised)

    def _check_inputs(self, idx, targets, mask, context, cache) -> int:
        config = self.config
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.is_floating_point():
            raise ValueError(
                f"idx must be an integer tensor (b, n), got {getattr(idx, 'shape', idx)}"
            )
        if idx.numel() and (idx.min() < 0 or idx.max() >= config.vocab_size):
            raise ValueError(
                f"idx holds ids in [{int(idx.min())}, {int(idx.max())}], outside the "
                f"vocabulary [0, {config.vocab_size})"
            )
        start = len(cache) if cache is not None else 0
        if start + idx.shape[1] > config.block_size:
            raise ValueError(
                f"sequence of {start} cached + {idx.shape[1]} new tokens exceeds "
                f"block_size={config.block_size}"
            )
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(
                f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}"
            )
        if mask is not None and (
            mask.dtype != torch.bool or mask.dim() != 2 or mask.shape[0] != mask.shape[1]
        ):
            raise ValueError(
                "mask must be a bool (N, N) mask over absolute positions, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        if mask is not None and mask.shape[0] < start + idx.shape[1]:
            raise ValueError(f"mask covers {mask.shape[0]} positions, need {start + idx.shape[1]}")
        if config.context_dim is not None:
            if context is None:
                raise ValueError(
                    f"this GPT cross-attends: pass context (b, m, {config.context_dim})"
                )
            if (
                context.dim() != 3
                or context.shape[-1] != config.context_dim
                or context.shape[0] != idx.shape[0]
            ):
                raise ValueError(
                    f"context must have shape ({idx.shape[0]}, m, {config.context_dim}), "
                    f"got {tuple(context.shape)}"
                )
        elif context is not None:
            raise ValueError(
                "context given, but this GPT has no cross-attention (context_dim=None)"
            )
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
        """Logits (b n vocab) for idx (b n), and the cross-entropy against targets if given.

        mask: bool (N, N) over absolute positions (default: causal). With a cache, idx holds only
        the new tokens; they are placed after the cached ones. Targets equal to -100 are ignored.
        """
        start = self._check_inputs(idx, targets, mask, context, cache)
        length = idx.shape[1]
        x = self.tok_emb(idx) + self.position_embeddings(start, length, idx.device)
        x = self.drop(x)
        block_mask = None if mask is None else mask[start : start + length, : start + length]
        for i, block in enumerate(self.blocks):
            x = block(x, block_mask, context, cache.layers[i] if cache is not None else None)
        logits = self.head(self.norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100
            )
        return logits, loss

    def configure_optimizers(
        self, weight_decay: float, lr: float, betas: tuple[float, float] = (0.9, 0.95)
    ) -> torch.optim.AdamW:
        """AdamW that decays matrices (weights, embeddings) but not biases and norms."""
        params = {name: p for name, p in self.named_parameters() if p.requires_grad}
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
