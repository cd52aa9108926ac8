"""Layered text → video: one clip per digit, composed in pixels, as Moving MNIST is drawn.

A two-digit key frame made of codes cannot show two digits crossing: where they overlap, one
code must draw both, and a digit that moves is redrawn rather than shifted. Moving MNIST itself
is made otherwise: each digit is pasted on its own and the frame keeps the brighter pixel. So a
prompt can be drawn the same way. Stages trained on clips of *one* digit (`CogVideoConfig.digits
= 1`, the same captions with one clause) draw each clause of the prompt as a clip of its own,
the tokenizer decodes each, and the clip is their pixel-wise maximum. Every stage is still
CogVideo's (frozen CogView, temporal channel, key frames then interpolation); what changes is
that each sequence holds one digit, so its caption names one motion and its key frames can
move the digit as its own codes (with `search=True`, move search over one blob: 9 moves).
"""

from __future__ import annotations

import torch

from minivideo.data.captions import CaptionTokenizer
from minivideo.models.cogvideo.generation import (
    check_stage,
    sample_keyframes,
    text_to_video,
    tokenizer_of,
)
from minivideo.models.cogvideo.layout import encode_prompt, frame_prompt
from minivideo.models.cogvideo.middles import search_middles
from minivideo.models.cogvideo.model import CogVideo, CogView
from minivideo.models.cogvideo.search import search_keyframes, search_text_to_video
from minivideo.models.cogvideo.selfrank import best_of_images

# The sampling defaults of `python -m minivideo sample cogvideo` with layer stages, chosen on
# test prompts (docs/layers.py judge), never on the held-out ones. Guidance 2 read the prompts'
# directions in 38% of 32 test clips against 31% at 3 and 47% unguided (whose digits read 66%
# against 100%); how sharply move search picks each move (probability ∝ exp(score / T)) changed
# nothing between T = 1, 0.3 and 0.1: the stage's scores are that peaked.
LAYER_GUIDANCE = 2.0
LAYER_MOVE_TEMPERATURE = 1.0
# Middle frames: "drawn" code by code by the interpolation stage, or "searched" (each a shifted
# copy of its neighbour's digit, picked by that stage's scores; `middles.py`). On the 32 test
# prompts (best of 4 chains) searched middles read 56% of directions against 50%, but the digits
# in 75% of clips against 91% (a copied first key frame carries its flaws through the clip).
LAYER_MIDDLES = "drawn"
# Key-frame chains drawn per layer by move search, the one the stage scores highest kept
# (`search.chain_scores`): a first key frame that leaves no room for the caption's motion loses.
# K = 4 was fixed before measuring; on the test prompts it reads both (digits and directions)
# in 50% of clips against 44% for one chain.
LAYER_RERANK = 4
# Single frames (`python -m minivideo sample cogview`, round nine; `docs/cogview_reader.py`,
# 512 test captions): guidance 3 (the frame reader reads 84% of layered frames, 84% at 2, 75%
# at 5, 61% unguided); each clause drawn as a layer of its own (84% against 73% for the two
# digits drawn in one frame); best of K by the caption score bought nothing (83%), so 1; and
# each layer drawn 4 times and the layers stacked where their digits overlap least (90%; real
# frames: 82%), which gives up Moving MNIST's overlapping digits for legible ones.
COGVIEW_GUIDANCE = 3.0
COGVIEW_BEST_OF = 1
COGVIEW_LAYERED = True
COGVIEW_APART = 4


def prompt_layers(prompts: list[str], check=encode_prompt) -> tuple[list[str], list[int]]:
    """Each prompt's clauses ("digit D moves ...", or with `check=frame_prompt` a frame
    caption's "digit D up-left"), in order, and the prompt of each clause."""
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of captions, got {prompts!r}")
    clauses, owner = [], []
    for i, prompt in enumerate(prompts):
        check(prompt)  # the grammar's one-line error for a bad prompt
        for clause in prompt.split(" and "):  # "and" only ever joins two digits' clauses
            clauses.append(clause)
            owner.append(i)
    return clauses, owner


def check_layer_stages(keyframes_model: CogVideo, interp_model: CogVideo) -> None:
    """A clear error unless both stages are of their kind and trained on clips of one digit."""
    for name, model, stage in (("keyframes_model", keyframes_model, "keyframes"),
                               ("interp_model", interp_model, "interp")):
        config = check_stage(model, stage)
        if config.digits != 1:
            raise ValueError(f"{name} must be trained on clips of one digit (config.digits=1) "
                             f"to draw layers; got digits={config.digits}")


@torch.no_grad()
def layered_text_to_video(keyframes_model: CogVideo, interp_model: CogVideo,
                          prompts: list[str], *, guidance: float = 1.0, seed: int = 0,
                          temperature: float = 1.0, search: bool = False,
                          move_temperature: float = 1.0, progress: bool = False,
                          batch_size: int = 32, middle_search: bool = False,
                          rerank: int = 1) -> torch.Tensor:
    """Prompts → clips float [0, 1] (b, 17, H, W): each clause drawn by the whole hierarchy as a
    clip of its own (key frames by move search if `search`, each move drawn with probability
    ∝ exp(score / move_temperature), the best-scored of `rerank` chains; middle frames by
    search if `middle_search`, `middles.py`), decoded, and a prompt's layers composed by their
    pixel-wise maximum."""
    check_layer_stages(keyframes_model, interp_model)
    if rerank != 1 and not search:
        raise ValueError(f"rerank={rerank!r} ranks chains of searched key frames: it needs "
                         "search=True")
    clauses, owner = prompt_layers(prompts)
    captions = torch.stack([encode_prompt(clause) for clause in clauses])
    tokenizer = tokenizer_of(keyframes_model)
    layers = []
    for start in range(0, len(captions), batch_size):
        ids = captions[start : start + batch_size]
        if middle_search:
            keys = (search_keyframes(keyframes_model, ids, guidance=guidance, seed=seed + start,
                                     temperature=temperature, max_blobs=1,
                                     move_temperature=move_temperature, rerank=rerank)[0]
                    if search else
                    sample_keyframes(keyframes_model, ids, guidance=guidance, seed=seed + start,
                                     temperature=temperature))
            codes = search_middles(interp_model, ids, keys, guidance=guidance,
                                   seed=seed + start + 1, move_temperature=move_temperature)
        elif search:
            codes = search_text_to_video(keyframes_model, interp_model, ids, guidance=guidance,
                                         seed=seed + start, temperature=temperature,
                                         max_blobs=1, move_temperature=move_temperature,
                                         rerank=rerank)
        else:
            codes = text_to_video(keyframes_model, interp_model, ids, guidance=guidance,
                                  seed=seed + start, temperature=temperature, progress=progress)
        layers.append(tokenizer.decode(codes.cpu()))
    layers = torch.cat(layers)
    out = torch.zeros(len(prompts), *layers.shape[1:])
    for layer, i in zip(layers, owner, strict=True):
        out[i] = torch.maximum(out[i], layer)
    return out


def ink_overlap(layers: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """Pixels (..., k, H, W) → (...): the ink (> threshold) shared by two or more of k layers,
    as a share of the smallest layer's ink."""
    ink = layers > threshold
    shared = (ink.sum(dim=-3) > 1).flatten(-2).sum(-1)
    smallest = ink.flatten(-2).sum(-1).min(dim=-1).values.clamp_min(1)
    return shared / smallest


@torch.no_grad()
def layered_images(model: CogView, captions: list[str], *, guidance: float = 1.0,
                   seed: int = 0, best_of: int = 1, batch_size: int = 32, apart: int = 1,
                   **sampling) -> torch.Tensor:
    """Frame captions ("digit 3 up-left and digit 7 down-right") → frames float [0, 1]
    (b, H, W): each clause drawn by CogView as a frame of its own (a CogView trained on one-digit
    frames too, `train cogview-bound`), the best of `best_of` by its caption score, decoded, and
    a caption's layers composed by their pixel-wise maximum, as Moving MNIST pastes digits.

    apart K > 1: every layer is drawn K times and, of the K^k ways to stack a caption's k layers,
    the one whose digits share the least ink is kept (the first such draws on a tie). Moving
    MNIST lets digits overlap, and so does apart=1; a digit half under another is hard to read,
    for a person as for the frame reader, so apart trades that fidelity for legibility.
    """
    if not isinstance(captions, (list, tuple)) or not captions:
        raise ValueError(f"captions must be a non-empty list of frame captions, got {captions!r}")
    if not isinstance(apart, int) or isinstance(apart, bool) or apart < 1:
        raise ValueError(f"apart must be a positive int, got {apart!r}")
    layers, owner = prompt_layers(captions, check=frame_prompt)
    clauses = [clause for clause in layers for _ in range(apart)]  # a layer's draws side by side
    words = CaptionTokenizer()
    tokenizer = tokenizer_of(model)
    drawn = []
    for start in range(0, len(clauses), batch_size):
        ids = words.encode_batch(clauses[start : start + batch_size])
        codes = best_of_images(model, ids, best_of, guidance=guidance, seed=seed + start,
                               **sampling)
        drawn.append(tokenizer.decode(codes[:, None].cpu())[:, 0])
    draws = torch.cat(drawn).view(len(owner), apart, *drawn[0].shape[1:])
    out = torch.zeros(len(captions), *draws.shape[2:])
    owner_t = torch.tensor(owner)
    for i in range(len(captions)):
        layers = draws[owner_t == i]  # (k, apart, H, W)
        pick = torch.zeros(len(layers), dtype=torch.long)
        if apart > 1 and len(layers) > 1:
            choices = torch.cartesian_prod(*[torch.arange(apart)] * len(layers))
            choices = choices.view(-1, len(layers))  # one row per way to stack the layers
            stacks = layers[torch.arange(len(layers)), choices]  # (apart^k, k, H, W)
            pick = choices[ink_overlap(stacks).argmin()]
        out[i] = layers[torch.arange(len(layers)), pick].amax(dim=0)
    return out
