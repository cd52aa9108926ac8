"""Growing a trained codebook without losing what its codes mean: the split of LBG.

A prior learns the meaning of every code of its tokenizer. Training the tokenizer on from
scratch with more codes would throw that away with the old codebook. The Linde-Buzo-Gray
algorithm (1980) grows a k-means codebook by *splitting*: every code k gets a child, a copy of it
nudged by a little noise, and the two share the parent's cells. Further training (EMA updates of
the codebook, the encoder learning on) moves each child towards the cells nearest to it, so one
coarse code becomes two finer ones. Every new code keeps a parent, so a prior over the old codes
can start over the new ones by giving each child its parent's embedding
(`minivideo.models.videogpt_compact.grow_vocabulary`).

    bigger, parents = split_codebook(tokenizer)   # 2K codes; parents[j] = the old code of j
"""

from __future__ import annotations

from dataclasses import replace

import torch

from minivideo.vqvae import Tokenizer, VectorQuantizer


def _check_noise(noise: float) -> None:
    if not (isinstance(noise, int | float) and 0 <= noise < 1):
        raise ValueError(f"noise must be a number in [0, 1), got {noise!r}")


@torch.no_grad()
def split_quantizer(quantizer: VectorQuantizer, *, seed: int = 0,
                    noise: float = 0.05) -> tuple[VectorQuantizer, torch.Tensor]:
    """A quantizer with twice the codes; returns it and `parents` (2K,), the old code of each.

    Code j < K is old code j; code K + j is a child of code j, nudged by `noise` × the codebook's
    spread. The reserved empty code is not split: its slot K gets a second child of the busiest
    code instead. A code and its child share the parent's EMA mass and usage, so neither starts
    out looking dead.
    """
    _check_noise(noise)
    if not isinstance(quantizer, VectorQuantizer):
        raise TypeError(f"quantizer must be a VectorQuantizer, got {type(quantizer).__name__}")
    if not bool(quantizer.initialized):
        raise ValueError("quantizer has no trained codebook yet (initialized is False)")
    k, d = quantizer.num_codes, quantizer.code_dim
    bigger = VectorQuantizer(2 * k, d, quantizer.beta, ema=quantizer.ema,
                             decay=quantizer.decay, eps=quantizer.eps,
                             restart_dead=quantizer.restart_dead,
                             dead_threshold=quantizer.dead_threshold,
                             empty_code=quantizer.empty_code).to(quantizer.embedding.device)
    first = 1 if quantizer.empty_code else 0
    parents = torch.arange(k, device=quantizer.embedding.device)
    if quantizer.empty_code:
        parents[0] = int(quantizer.usage[first:].argmax()) + first
    old = quantizer.embedding
    generator = torch.Generator().manual_seed(seed)
    nudge = torch.randn(k, d, generator=generator).to(old)
    child = old[parents] + noise * old[first:].std() * nudge
    bigger.embedding.data.copy_(torch.cat([old, child]))
    usage = torch.cat([quantizer.usage, quantizer.usage[parents]])
    shared = torch.cat([torch.ones(k), torch.full((k,), 0.5)]).to(usage)
    shared[parents] = 0.5  # a parent halves its mass with its child
    if quantizer.empty_code:
        shared[0] = 1.0
    bigger.usage.copy_(usage * shared)
    if bigger.ema:
        mass = torch.cat([quantizer.cluster_size, quantizer.cluster_size[parents]]) * shared
        bigger.cluster_size.copy_(mass)
        bigger.embed_sum.copy_(bigger.embedding * mass[:, None])
    bigger.initialized.fill_(True)
    bigger._zero_empty()
    return bigger, torch.cat([torch.arange(k, device=parents.device), parents])


@torch.no_grad()
def split_codebook(tokenizer: Tokenizer, *, seed: int = 0,
                   noise: float = 0.05) -> tuple[Tokenizer, torch.Tensor]:
    """A copy of `tokenizer` (frame or clip) whose quantizer is split (`split_quantizer`).

    Encoder and decoder are the same weights; returns (tokenizer, parents (2K,)).
    """
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a minivideo Tokenizer, got "
                        f"{type(tokenizer).__name__}")
    quantizer, parents = split_quantizer(tokenizer.quantizer, seed=seed, noise=noise)
    bigger = type(tokenizer)(replace(tokenizer.config, num_codes=quantizer.num_codes))
    bigger.to(tokenizer.quantizer.embedding.device)
    others = {name: value for name, value in tokenizer.state_dict().items()
              if not name.startswith("quantizer.")}
    missing, unexpected = bigger.load_state_dict(others, strict=False)
    if unexpected or any(not name.startswith("quantizer.") for name in missing):
        raise RuntimeError(f"split_codebook: state mismatch {missing} {unexpected}")
    bigger.quantizer = quantizer
    bigger.train(tokenizer.training)
    return bigger, parents


def parent_codes(codes: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """The old code each code of a split codebook descends from."""
    return parents.to(codes.device)[codes.long()]


__all__ = ["parent_codes", "split_codebook", "split_quantizer"]
