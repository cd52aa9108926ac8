"""CogView's self-reranking: draw several images for a caption, keep the one that fits it best.

CogView (Ding et al., 2021, §3.2) samples many images per caption and ranks them by the *caption
loss*, how likely the caption is given the image, -log p(caption | image); the paper trains a
second, image-to-text CogView to compute it. Our CogView reads the other way round,
p(image | caption), but it was trained with caption dropout, so it also knows p(image), the
same network with the caption replaced by pads (what classifier-free guidance uses). Bayes'
rule then gives the caption score without a second model:

    log p(caption | image) = log p(image | caption) − log p(image) + log p(caption)

For the K candidates of *one* caption the last term is the same, so ranking them by the
pointwise mutual information log p(x | c) − log p(x | ∅) is ranking them by the caption loss.
It prefers the candidate whose codes the caption explains best: the right digit in the right
quadrant, rather than a likely-looking frame that would fit any caption. Nothing is retrained;
each candidate costs one more image to draw and two forward passes to score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from minivideo.models.cogvideo.generation import caption_free, sample_images
from minivideo.models.cogvideo.layout import cogview_sequence
from minivideo.models.cogvideo.model import CogView


@torch.no_grad()
def image_log_likelihoods(model: CogView, captions: torch.Tensor, codes: torch.Tensor,
                          batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(codes | caption) and log p(codes | no caption), in nats, each (b,), for caption word
    ids (b, 26) and code grids (b, h, w): the sum over the grid's codes, in eval mode."""
    if not isinstance(model, CogView):
        raise TypeError(f"model must be a CogView, got {type(model).__name__}")
    if codes.dim() != 3 or len(codes) != len(captions):
        raise ValueError(f"codes must be (b, h, w) with one grid per caption; got "
                         f"{tuple(codes.shape)} for {len(captions)} captions")
    config, device = model.config, next(model.parameters()).device
    was_training = model.training
    model.eval()
    sides: list[list[torch.Tensor]] = [[], []]
    for start in range(0, len(codes), batch_size):
        sequence = cogview_sequence(captions[start : start + batch_size],
                                    codes[start : start + batch_size], config.num_codes)
        for side, tokens in zip(sides, (sequence, caption_free(sequence, config)), strict=True):
            tokens = tokens.to(device)
            logits, _ = model(tokens[:, :-1])
            n = config.grid**2  # the last n positions predict the grid's codes
            logp = F.log_softmax(logits[:, -n:].float(), dim=-1)
            side.append(logp.gather(-1, tokens[:, -n:, None])[..., 0].sum(-1).cpu())
    model.train(was_training)
    return torch.cat(sides[0]), torch.cat(sides[1])


def caption_scores(model: CogView, captions: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """log p(codes | caption) − log p(codes | ∅) (b,): the caption score of each image, up to a
    constant per caption (the module docstring derives it)."""
    with_caption, without = image_log_likelihoods(model, captions, codes)
    return with_caption - without


SCORES = ("caption", "likelihood")  # what best of K ranks by


@torch.no_grad()
def best_of_images(model: CogView, captions: torch.Tensor, best_of: int, *,
                   guidance: float = 1.0, seed: int = 0, score: str = "caption",
                   **sampling) -> torch.Tensor:
    """Code grids (b, h, w): for each caption, the best-scored of `best_of` images drawn by
    `sample_images` (best_of=1: exactly `sample_images`). score "caption": CogView's caption
    score (`caption_scores`); "likelihood": log p(image | caption) alone, the most typical
    drawing of the caption rather than the one the caption explains best."""
    if not isinstance(best_of, int) or isinstance(best_of, bool) or best_of < 1:
        raise ValueError(f"best_of must be a positive int, got {best_of!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if best_of == 1:
        return sample_images(model, captions, guidance=guidance, seed=seed, **sampling)
    many = captions.repeat_interleave(best_of, dim=0)  # candidates of a caption side by side
    codes = sample_images(model, many, guidance=guidance, seed=seed, **sampling)
    ranked = (caption_scores(model, many, codes) if score == "caption"
              else image_log_likelihoods(model, many, codes)[0])
    scores = rearrange(ranked, "(b k) -> b k", k=best_of)
    candidates = rearrange(codes, "(b k) h w -> b k h w", k=best_of)
    return candidates[torch.arange(len(captions)), scores.argmax(dim=1)]
