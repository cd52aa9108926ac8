"""Autoregressive sampling from a prior: logit processors, KV-cached generation, likelihoods.

A prior is any model with the GPT interface of `minivideo.transformer`:

    logits, _ = model(idx, mask=None, context=None, cache=None)   # idx: (b n) -> logits (b n V)
    cache = model.new_cache()                                      # grows as tokens are fed
    model.config.vocab_size, model.config.block_size

Sampling one token turns the last position's logits into a distribution and draws from it. The
processors below reshape that distribution; `generate` repeats the draw, feeding each token back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm import tqdm

LogitsProcessor = Callable[[torch.Tensor], torch.Tensor]
AllowedTokens = torch.Tensor | Callable[[int], torch.Tensor] | None


# --------------------------------------------------------------------------- logit processors
def temperature_scaling(t: float) -> LogitsProcessor:
    """Divide logits by t: t < 1 sharpens the distribution, t > 1 flattens it (t > 0)."""
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
        raise ValueError(f"temperature must be a number > 0 (use greedy for 0), got {t!r}")
    return lambda logits: logits / t


def top_k_filter(k: int) -> LogitsProcessor:
    """Keep the k largest logits; the rest can never be drawn."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {k!r}")

    def apply(logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -math.inf)

    return apply


def top_p_filter(p: float) -> LogitsProcessor:
    """Nucleus sampling: keep the smallest set of tokens whose probability mass reaches p."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}")

    def apply(logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # mass strictly before each token: a token is kept while the mass before it is < p,
        # so the most likely token is always kept.
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return logits.masked_fill(drop, -math.inf)

    return apply


def min_p_filter(p: float) -> LogitsProcessor:
    """Keep tokens whose probability is at least p times that of the most likely token."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"min_p must be in [0, 1], got {p!r}")

    def apply(logits: torch.Tensor) -> torch.Tensor:
        # log-space: log p_i - log p_max = logit_i - logit_max
        threshold = logits.max(dim=-1, keepdim=True).values + math.log(max(p, 1e-38))
        return logits.masked_fill(logits < threshold, -math.inf)

    return apply


def greedy_filter() -> LogitsProcessor:
    """Keep only the most likely token (ties: the lowest id), so sampling becomes argmax."""

    def apply(logits: torch.Tensor) -> torch.Tensor:
        best = logits.argmax(dim=-1, keepdim=True)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, best, True)
        return logits.masked_fill(~keep, -math.inf)

    return apply


def compose(*processors: LogitsProcessor | None) -> LogitsProcessor:
    """Apply processors left to right (None entries are skipped)."""
    chain = [p for p in processors if p is not None]

    def apply(logits: torch.Tensor) -> torch.Tensor:
        for processor in chain:
            logits = processor(logits)
        return logits

    return apply


def make_processor(
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    greedy: bool = False,
) -> LogitsProcessor:
    """The usual chain: temperature, then the truncations (top-k, top-p, min-p), or greedy."""
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature!r}")
    if greedy or temperature == 0:
        return greedy_filter()
    return compose(
        temperature_scaling(temperature) if temperature != 1.0 else None,
        top_k_filter(top_k) if top_k is not None else None,
        top_p_filter(top_p) if top_p is not None else None,
        min_p_filter(min_p) if min_p is not None else None,
    )


def classifier_free_guidance(
    cond_logits: torch.Tensor, uncond_logits: torch.Tensor, weight: float
) -> torch.Tensor:
    """Guided logits `uncond + w * (cond - uncond)`: w = 0 is unconditional, w = 1 conditional."""
    if cond_logits.shape != uncond_logits.shape:
        raise ValueError(
            f"cond_logits {tuple(cond_logits.shape)} and uncond_logits "
            f"{tuple(uncond_logits.shape)} must have the same shape"
        )
    return uncond_logits + weight * (cond_logits - uncond_logits)


# --------------------------------------------------------------------------- generation
@dataclass
class Generation:
    """What `generate` returns: the full sequences, and optionally each new token's log-prob."""

    tokens: torch.Tensor  # (b, n_prefix + n_new) int64
    logprobs: torch.Tensor | None  # (b, n_new) float, under the processed distribution


def _check_model(model: torch.nn.Module) -> tuple[int, int]:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "vocab_size") or not hasattr(config, "block_size"):
        raise TypeError("model must have .config.vocab_size and .config.block_size (a GPT prior)")
    return int(config.vocab_size), int(config.block_size)


def _allowed_at(allowed: AllowedTokens, position: int, vocab: int, device) -> torch.Tensor | None:
    if allowed is None:
        return None
    mask = allowed(position) if callable(allowed) else allowed
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape[-1] != vocab:
        raise ValueError(
            f"allowed must give a bool tensor of shape (vocab_size={vocab},) or (b, {vocab}) "
            f"for position {position}, got {getattr(mask, 'shape', type(mask))}"
        )
    if not mask.any(dim=-1).all():
        raise ValueError(f"allowed leaves no token to choose at position {position}")
    return mask.to(device)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prefix: torch.Tensor,
    num_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    greedy: bool = False,
    allowed: AllowedTokens = None,
    mask: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
    uncond_prefix: torch.Tensor | None = None,
    uncond_context: torch.Tensor | None = None,
    guidance: float = 1.0,
    stop_token: int | None = None,
    use_cache: bool = True,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    return_logprobs: bool = False,
    progress: bool = True,
) -> Generation:
    """Sample `num_tokens` tokens after `prefix` (b, n0), batched, seeded and KV-cached.

    allowed: bool (V,) or (b, V), or a function of the absolute position returning one, that
    restricts which ids may appear there (e.g. only video codes after the text).
    uncond_prefix / uncond_context: the unconditional input for classifier-free guidance; the two
    passes run as one batch of 2b, and logits are mixed as uncond + guidance * (cond - uncond).
    stop_token: stop once every sequence has emitted it (later positions are filled with it).
    use_cache=False recomputes the whole prefix at every step (for teaching and benchmarks);
    it draws the same tokens as the cached path for the same seed.
    """
    vocab, block = _check_model(model)
    _check_ids("prefix", prefix, vocab)
    if not isinstance(num_tokens, int) or isinstance(num_tokens, bool) or num_tokens < 0:
        raise ValueError(f"num_tokens must be an int >= 0, got {num_tokens!r}")
    if prefix.shape[1] + num_tokens > block:
        raise ValueError(
            f"prefix length {prefix.shape[1]} + num_tokens {num_tokens} exceeds the model's "
            f"context (block_size={block})"
        )
    process = make_processor(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, greedy=greedy
    )
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool):
        raise ValueError(f"guidance must be a number, got {guidance!r}")
    guided = uncond_prefix is not None
    if guided:
        _check_ids("uncond_prefix", uncond_prefix, vocab)
        if uncond_prefix.shape != prefix.shape:
            raise ValueError(
                f"uncond_prefix must have the prefix's shape {tuple(prefix.shape)}, "
                f"got {tuple(uncond_prefix.shape)}"
            )
    elif guidance != 1.0:
        raise ValueError(f"guidance={guidance!r} needs an uncond_prefix (the unguided input)")
    elif uncond_context is not None:
        raise ValueError("uncond_context needs an uncond_prefix (guidance is off without one)")
    if uncond_context is not None and context is None:
        raise ValueError("uncond_context needs a context (the conditional pass's)")
    if uncond_context is not None and (
        not isinstance(uncond_context, torch.Tensor) or uncond_context.shape != context.shape
    ):
        raise ValueError(
            f"uncond_context must have the context's shape {tuple(context.shape)}, "
            f"got {_describe(uncond_context)}"
        )
    if stop_token is not None and not (
        isinstance(stop_token, int) and not isinstance(stop_token, bool) and 0 <= stop_token < vocab
    ):
        raise ValueError(f"stop_token must be an int in [0, {vocab}), got {stop_token!r}")
    if generator is None and seed is not None:
        generator = torch.Generator(device=prefix.device).manual_seed(seed)

    batch = prefix.shape[0]
    tokens = torch.cat([prefix, uncond_prefix]) if guided else prefix
    if guided and context is not None:
        context = torch.cat([context, uncond_context if uncond_context is not None else context])
    cache = model.new_cache() if use_cache else None
    feed = tokens  # what the model has not seen yet
    logprobs, finished = [], torch.zeros(batch, dtype=torch.bool, device=prefix.device)
    was_training = model.training
    model.eval()
    steps = tqdm(range(num_tokens), desc="sampling", disable=not progress, leave=False)
    try:
        for _ in steps:
            logits, _ = model(
                feed if use_cache else tokens, mask=mask, context=context, cache=cache
            )
            logits = logits[:, -1, :].float()  # (b, V): the next token's distribution
            if guided:
                cond, uncond = logits.chunk(2)
                logits = classifier_free_guidance(cond, uncond, guidance)
            allowed_now = _allowed_at(allowed, tokens.shape[1], vocab, logits.device)
            if allowed_now is not None:
                logits = logits.masked_fill(~allowed_now, -math.inf)
            log_p = process(logits).log_softmax(dim=-1)
            next_token = torch.multinomial(log_p.exp(), 1, generator=generator)  # (b, 1)
            if stop_token is not None:
                next_token = torch.where(finished[:, None], stop_token, next_token)
                finished |= next_token[:, 0] == stop_token
            logprobs.append(log_p.gather(-1, next_token))
            feed = torch.cat([next_token, next_token]) if guided else next_token
            tokens = torch.cat([tokens, feed], dim=1)
            if stop_token is not None and finished.all():
                break
    finally:
        steps.close()
        model.train(was_training)
    tokens = tokens[:batch]
    if stop_token is not None and tokens.shape[1] < prefix.shape[1] + num_tokens:
        pad = prefix.shape[1] + num_tokens - tokens.shape[1]
        tokens = F.pad(tokens, (0, pad), value=stop_token)
    out_logprobs = torch.cat(logprobs, dim=1) if (return_logprobs and logprobs) else None
    return Generation(tokens=tokens, logprobs=out_logprobs)


def _check_ids(name: str, ids: object, vocab: int) -> None:
    """Raise a ValueError naming `name` unless ids is a non-empty int64 (b, n) of ids < vocab."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        raise ValueError(f"{name} must be an int64 tensor (b, n), got {_describe(ids)}")
    if ids.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one token (e.g. a start or class token)")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"{name} ids must lie in [0, {vocab}); got [{ids.min()}, {ids.max()}]")


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


# --------------------------------------------------------------------------- likelihood
@torch.no_grad()
def sequence_nll(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    *,
    start: int = 1,
    mask: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood (nats) of tokens[:, start:] given what precedes them, per row."""
    vocab, block = _check_model(model)
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be an int64 tensor (b, n), got {_describe(tokens)}")
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start must be in [1, {tokens.shape[1]}) (the first scored position)")
    if tokens.shape[1] > block:
        raise ValueError(f"sequence length {tokens.shape[1]} exceeds block_size={block}")
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise ValueError(f"token ids must lie in [0, {vocab})")
    was_training = model.training
    model.eval()
    logits, _ = model(tokens, mask=mask, context=context)
    model.train(was_training)
    # position i predicts token i + 1
    log_p = logits[:, start - 1 : -1].float().log_softmax(dim=-1)
    picked = log_p.gather(-1, rearrange(tokens[:, start:], "b n -> b n 1"))
    return -picked.sum(dim=(1, 2))


def bits_per_token(
    model: torch.nn.Module, tokens: torch.Tensor, *, start: int = 1, **kwargs
) -> float:
    """Average bits per scored token (bits per dimension of the code sequence)."""
    nll = sequence_nll(model, tokens, start=start, **kwargs)
    return float(nll.mean() / ((tokens.shape[1] - start) * math.log(2)))


def kept_mass(logits: torch.Tensor, processor: LogitsProcessor) -> torch.Tensor:
    """Probability mass (under softmax(logits)) of the tokens a processor keeps, per row."""
    kept = torch.isfinite(processor(logits))
    return (logits.softmax(dim=-1) * kept).sum(dim=-1)


__all__ = [
    "Generation",
    "bits_per_token",
    "classifier_free_guidance",
    "compose",
    "generate",
    "greedy_filter",
    "kept_mass",
    "make_processor",
    "min_p_filter",
    "sequence_nll",
    "temperature_scaling",
    "top_k_filter",
    "top_p_filter",
]
