"""Layered class → video for VideoGPT: one clip per digit, composed in pixels, as Moving MNIST is.

Why. The shipped prior draws a pair of digits as one stream of codes. Where the two digits
cross, one 8×8×2 code must draw both, and the tokenizer cannot: the judge reads the digits in
71% of its reconstructions of 256 test clips, 48% where the two digits share more than a tenth
of their ink and 78% elsewhere (`docs/videogpt_layers.py ceiling`). Moving MNIST itself is made
otherwise: each digit is pasted on its own and a frame keeps the brighter pixel.

So this recipe fine-tunes the shipped prior on a stream in which half of the clips show ONE
digit, labelled (d, NO_DIGIT), i.e. the prefix [BOS, d] (`VideoGPTConfig.one_digit`); a tenth
of them drop their label to [BOS, NULL], as a tenth of the two-digit clips drop theirs to
[NULL, NULL]. The same checkpoint still does everything the shipped one does (the two-digit
clips, their NULL pair, prediction), and it can also draw a *layer*: a clip of one digit of a
given class.

`layered_class_clips` draws each digit of a requested pair as a layer of its own (guided against
[BOS, NULL], one digit of no class), decodes each, and keeps the brighter pixel. With
apart = K every layer is drawn K times and, of the K × K ways to stack a clip's two layers, the
one whose digits share the least ink over the clip is kept (pixels only: no reader is involved),
which gives up Moving MNIST's crossing digits for legible ones; apart=1 keeps them.

    python -m minivideo train videogpt-layers --config small --threads 2 --out runs/layers.pt
    python -m minivideo sample videogpt --cond class --digits 3,7 --out 37.gif  # --layers auto
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.utils.data import Dataset

from minivideo.data import MovingMNIST, MovingMNISTConfig
from minivideo.data.split import Templates, find_templates, layers_of, redraw
from minivideo.models.cogvideo.layers import ink_overlap
from minivideo.models.videogpt import (
    CLASS_GUIDANCE,
    NO_DIGIT,
    NUM_CLASSES,
    ONE_PRIOR,
    VideoGPT,
    check_given_frames,
    encode_frames,
    sample_clips,
)
from minivideo.models.videogpt_compact import (
    NUM_FRAMES,
    SCHEDULES,
    build_model,
    compact_loss,
    held_out_batch,
)
from minivideo.pretrained import pretrained
from minivideo.train import Target

TOKENIZER = "vqvae-compact-t2"  # the shipped prior's tokenizer
ONE_DIGIT = 0.5  # share of the fine-tuning clips that show one digit
# Each layer drawn this many times, the least-overlapping stack kept (see the docstring).
LAYER_APART = 4
# Prediction: each predicted layer redrawn with its given digit's pixels (a digit never changes
# its look in Moving MNIST; README "Prediction in layers" measures both ways).
REDRAW = True


class LayerStream(Dataset):
    """Endless fresh Moving MNIST clips, a share `one_digit` of them with a single digit.

    Item i: {'video' uint8 (16, 64, 64), 'digits' (2,)}; a one-digit clip's digits are
    (d, NO_DIGIT). Whether item i shows one digit is drawn from its own seeded stream, so the
    item never depends on which items were drawn before.
    """

    def __init__(self, split: str = "train", seed: int = 0, one_digit: float = ONE_DIGIT,
                 num_clips: int | None = None) -> None:
        if not 0.0 <= one_digit <= 1.0:
            raise ValueError(f"one_digit must be a share in [0, 1], got {one_digit!r}")
        self.seed, self.one_digit = seed, one_digit
        self.two = MovingMNIST(split, num_clips=num_clips, seed=seed,
                               config=MovingMNISTConfig(num_frames=NUM_FRAMES))
        self.one = MovingMNIST(split, num_clips=num_clips, seed=seed + 1,
                               config=MovingMNISTConfig(num_frames=NUM_FRAMES, num_digits=1))

    def __len__(self) -> int:
        return len(self.two)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 7, index])  # 7: this stream's own coin
        if rng.random() < self.one_digit:
            clip = self.one.clip(index)
            digits = torch.tensor([int(clip.digits[0, 0]), NO_DIGIT])
        else:
            clip = self.two.clip(index)
            digits = torch.from_numpy(clip.digits[0])
        return {"video": torch.from_numpy(clip.videos[0]), "digits": digits}


def build_layer_prior(preset: str) -> VideoGPT:
    """`train videogpt-layers`: the shipped one-prior VideoGPT (tiny: a fresh tiny one), now
    also labelling clips of one digit, to be fine-tuned on `LayerStream`."""
    if preset == "tiny":
        model = build_model("tiny", name=TOKENIZER)
    else:
        model = pretrained(ONE_PRIOR)
        model.train()
        model.requires_grad_(True)
    model.config.one_digit = ONE_DIGIT
    return model


TARGET = Target(
    description="VideoGPT over vqvae-compact-t2 codes, fine-tuned from the shipped prior so that "
    "it also draws clips of one digit (layers): half the clips show one digit",
    build_model=build_layer_prior,
    build_dataset=lambda preset, seed: LayerStream("train", seed),
    loss_fn=compact_loss,
    schedules={
        "tiny": SCHEDULES["tiny"],
        # a fine-tune at half the GPU run's rate: 5 s a step of 16 clips on 2 CPU cores in
        # float32 (an AMD EPYC without native bf16), so 600 steps take ~50 minutes
        "small": dict(steps=600, batch_size=16, lr=5e-4, warmup_steps=50, weight_decay=0.01),
        "full": dict(SCHEDULES["full"], lr=3e-4),
    },
    eval_batch=lambda preset, size: held_out_batch(preset, size, name=TOKENIZER),
    notes="fine-tuned from the shipped videogpt on fresh clips (one digit in half of them); "
          "held-out figures on two-digit clips of TEST digits (minivideo.metrics."
          "videogpt_quality)",
)


def check_layer_prior(model: VideoGPT) -> None:
    """A clear error unless the prior was trained to draw clips of one digit."""
    if not isinstance(model, VideoGPT) or not model.config.one_digit:
        raise ValueError("layered sampling needs a prior trained on clips of one digit too "
                         "(VideoGPTConfig.one_digit > 0: `train videogpt-layers`), got "
                         f"{type(model).__name__}")


@torch.no_grad()
def stack_apart(layers: torch.Tensor) -> torch.Tensor:
    """Layers float (b, 2, K, T, H, W): K draws of each of a clip's two layers → clips (b, T,
    H, W), the brighter pixel of the pair of draws whose ink overlaps least over the clip (the
    first such pair on a tie)."""
    b, two, k = layers.shape[:3]
    if two != 2:
        raise ValueError(f"layers must hold 2 layers per clip (b, 2, K, T, H, W), got "
                         f"{tuple(layers.shape)}")
    first = layers[:, 0, :, None].expand(-1, -1, k, -1, -1, -1)  # (b, K, K, T, H, W)
    second = layers[:, 1, None, :].expand(-1, k, -1, -1, -1, -1)
    pairs = torch.stack([first, second], dim=3)  # (b, K, K, 2, T, H, W)
    # the clip's frames stacked into one tall image: overlap counted over the whole clip
    overlap = ink_overlap(rearrange(pairs, "b i j l t h w -> b i j l (t h) w"))
    best = overlap.flatten(1).argmin(dim=1)
    chosen = pairs.flatten(1, 2)[torch.arange(b), best]  # (b, 2, T, H, W)
    return chosen.amax(dim=1)


@torch.no_grad()
def draw_layers(model: VideoGPT, tokenizer: nn.Module, digits: torch.Tensor, *,
                guidance: float = CLASS_GUIDANCE, apart: int = LAYER_APART, seed: int = 0,
                batch_size: int = 16, progress: bool = False, **sampling) -> torch.Tensor:
    """Pairs of digits (b, 2) → layers float [0, 1] (b, 2, apart, T, H, W): each digit drawn
    `apart` times as a clip of its own ([BOS, d], guided against [BOS, NULL]) and decoded."""
    check_layer_prior(model)
    if not isinstance(apart, int) or isinstance(apart, bool) or apart < 1:
        raise ValueError(f"apart must be a positive int (draws per layer), got {apart!r}")
    if (not isinstance(digits, torch.Tensor) or digits.is_floating_point() or digits.dim() != 2
            or digits.shape[1] != 2 or digits.numel() == 0):
        raise ValueError(f"digits must be an integer tensor (b, 2) of digit pairs, got "
                         f"{digits!r}")
    if digits.min() < 0 or digits.max() > 9:
        raise ValueError(f"digits must lie in 0..9, got values in [{int(digits.min())}, "
                         f"{int(digits.max())}]")
    # one row per (clip, slot, draw): [d, NO_DIGIT]
    wanted = digits.long()[:, :, None].expand(-1, -1, apart).reshape(-1)
    labels = torch.stack([wanted, torch.full_like(wanted, NO_DIGIT)], dim=1)
    layers = sample_clips(model, tokenizer, len(labels), digits=labels, guidance=guidance,
                          seed=seed, batch_size=batch_size, progress=progress, **sampling)
    return rearrange(layers, "(b l k) t h w -> b l k t h w", l=2, k=apart)


@torch.no_grad()
def layered_class_clips(model: VideoGPT, tokenizer: nn.Module, digits: torch.Tensor, *,
                        apart: int = LAYER_APART, **sampling) -> torch.Tensor:
    """Pairs of digits (b, 2) → clips float [0, 1] (b, T, H, W): each digit drawn `apart` times
    as a layer (`draw_layers`), and the two layers whose ink overlaps least stacked by the
    brighter pixel (`stack_apart`)."""
    return stack_apart(draw_layers(model, tokenizer, digits, apart=apart, **sampling))


@torch.no_grad()
def layered_unconditional_clips(model: VideoGPT, tokenizer: nn.Module, num: int, *,
                                seed: int = 0, **sampling) -> torch.Tensor:
    """num clips float [0, 1] (num, T, H, W) with no condition given: each clip's two digit
    classes drawn uniformly (as Moving MNIST draws MNIST digits, whose classes are within a few
    percent of uniform), each layer drawn from the prior unguided and the two stacked as drawn
    (apart = 1: crossings as often as in the data)."""
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise ValueError(f"num must be a positive int, got {num!r}")
    classes = torch.randint(0, 10, (num, 2), generator=torch.Generator().manual_seed(seed))
    return layered_class_clips(model, tokenizer, classes, guidance=1.0, apart=1, seed=seed,
                               **sampling)


def one_digit_labels() -> torch.Tensor:
    """The 10 labels of a one-digit clip, (10, 2): [d, NO_DIGIT]."""
    classes = torch.arange(NUM_CLASSES)
    return torch.stack([classes, torch.full_like(classes, NO_DIGIT)], dim=1)


def pair_labels() -> torch.Tensor:
    """The 55 labels of a two-digit clip, (55, 2): each unordered pair once."""
    return torch.tensor([(a, b) for a in range(NUM_CLASSES) for b in range(a, NUM_CLASSES)])


@torch.no_grad()
def label_scores(model: VideoGPT, given: torch.Tensor, labels: torch.Tensor,
                 batch_size: int = 64) -> torch.Tensor:
    """The prior as a classifier: log p(given codes | label) float (n, c) of the first latent
    steps `given` (n, t0, h, w) of n clips, for each clip's candidate labels (n, c, 2) (digit
    pairs, NO_DIGIT in one slot for one digit). Only the given codes are run through the prior:
    a causal prior's first positions never see later ones."""
    check_layer_prior(model)
    model.eval()
    flat = rearrange(given.long(), "b t h w -> b (t h w)")
    scores = torch.zeros(labels.shape[:2], dtype=torch.float32)
    device = model.gpt.tok_emb.weight.device
    for s in range(0, len(flat), batch_size):
        target = flat[s : s + batch_size]
        for c in range(labels.shape[1]):
            prefix = model.prefix(len(target), labels[s : s + batch_size, c]).cpu()
            logits, _ = model.gpt(torch.cat([prefix, target], dim=1)[:, :-1].to(device))
            logp = logits[:, model.config.prefix_len - 1 :].float().log_softmax(-1).cpu()
            scores[s : s + batch_size, c] = logp.gather(-1, target[..., None])[..., 0].sum(1)
    return scores


def _shifted(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Frames (..., H, W) moved by (dy, dx) pixels, black where nothing moved in."""
    height, width = frames.shape[-2:]
    moved = torch.zeros_like(frames)
    moved[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = frames[
        ..., max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
    return moved


# The views of a layer that `classify` scores: the given frames as they are, played backwards
# (Moving MNIST's motion is as likely backwards), and moved half a code cell each diagonal way,
# so that each view cuts the digit into different codes. On the 108 split clips of 128 test clips
# the pair of classes came out right in 83% from the given frames alone, 87% with the backward
# view, 93% with all six, and 91% when the first view keeps only its CANDIDATES likeliest classes
# for the others, at half the cost (`python docs/videogpt_layers_predict.py classify`; no judge).
CANDIDATES = 4
VIEWS = ((False, 0, 0), (True, 0, 0), (False, 4, 4), (False, -4, -4), (False, 4, -4),
         (False, -4, 4))


@torch.no_grad()
def classify(model: VideoGPT, tokenizer: nn.Module, frames: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 32) -> torch.Tensor:
    """Labels (n, 2) of n clips' first frames float (n, k, H, W): of the candidate `labels`
    (L, 2), the one under which the prior finds the frames' codes likeliest, summed over the
    VIEWS of them (test-time augmentation of a generative classifier). The first view scores
    every label; the others only its CANDIDATES likeliest."""
    candidates, total = labels.expand(len(frames), -1, -1), None
    for backwards, dy, dx in VIEWS:
        view = _shifted(frames.flip(1) if backwards else frames, dy, dx)
        given = encode_frames(tokenizer, view, batch_size)
        scores = label_scores(model, given, candidates)
        if total is None:  # the first view: keep its likeliest labels
            scores, keep = scores.topk(min(CANDIDATES, len(labels)), dim=1)
            candidates = labels[keep]
        total = scores if total is None else total + scores
    return candidates[torch.arange(len(frames)), total.argmax(dim=1)]


@torch.no_grad()
def predict_layers(model: VideoGPT, tokenizer: nn.Module, frames: torch.Tensor, *,
                   guidance: float = CLASS_GUIDANCE, seed: int = 0, batch_size: int = 16,
                   progress: bool = False, **sampling) -> tuple[torch.Tensor, Templates]:
    """The k given frames (b, k, H, W) → (layers float [0, 1] (b, 2, T, H, W), the templates
    `find_templates` cut from the given frames). Each clip's layers are its two digits, drawn
    as the prior continues them; a clip that does not split comes back as one stream in layer 0
    (layer 1 empty). `layered_predict_clips` stacks them."""
    check_layer_prior(model)
    check_given_frames(model, frames)
    context = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
    b, _, height, width = context.shape
    layers = torch.zeros(b, 2, model.config.num_frames, height, width)
    found = find_templates(context)
    split = found.ok
    options = dict(seed=seed, batch_size=batch_size, progress=progress, **sampling)
    if split.any():
        given_frames = rearrange(layers_of(found, height, width)[split],
                                 "b l t h w -> (b l) t h w")
        given = encode_frames(tokenizer, given_frames, batch_size)
        labels = classify(model, tokenizer, given_frames, one_digit_labels(), batch_size)
        drawn = sample_clips(model, tokenizer, len(labels), digits=labels, given=given,
                             guidance=guidance, **options)
        layers[split] = rearrange(drawn, "(b l) t h w -> b l t h w", l=2)
    if not split.all():  # one stream, guided by the pair of classes the prior reads
        whole = context[~split]
        pairs = classify(model, tokenizer, whole, pair_labels(), batch_size)
        given = encode_frames(tokenizer, whole, batch_size)
        layers[~split, 0] = sample_clips(model, tokenizer, len(whole), digits=pairs,
                                         given=given, guidance=guidance, **options)
    return layers, found


def stack_prediction(layers: torch.Tensor, found: Templates, frames: torch.Tensor,
                     redraw_digits: bool) -> torch.Tensor:
    """`predict_layers`' layers (b, 2, T, H, W) → clips (b, T, H, W): the given frames, then
    the layers' futures stacked by the brighter pixel, each first redrawn with its digit's own
    pixels if `redraw_digits` (`minivideo.data.split.redraw`; clips that did not split stay
    as drawn)."""
    k = frames.shape[1]
    future = layers[:, :, k:]
    if redraw_digits:
        future = redraw(found, future)
    context = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
    return torch.cat([context, future.amax(dim=1)], dim=1)


@torch.no_grad()
def layered_predict_clips(model: VideoGPT, tokenizer: nn.Module, frames: torch.Tensor, *,
                          guidance: float = CLASS_GUIDANCE, seed: int = 0, batch_size: int = 16,
                          progress: bool = False, redraw_digits: bool = REDRAW,
                          **sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """Prediction in layers: the k given frames (b, k, H, W) → (clips float [0, 1] (b, T, H, W):
    the given frames, then the predicted future; split bool (b,): predicted in layers).

    The given frames are split into one layer per digit (`minivideo.data.split`); each layer's
    codes are forced, its class d is the one under which the prior finds those codes likeliest
    (`classify`), and the rest of the layer is drawn as a one-digit clip [BOS, d],
    guided against [BOS, NULL]; the futures are stacked by the brighter pixel. A clip that
    does not split (its digits touch in every given frame and cannot be followed as two) is
    predicted as one stream, labelled and guided by the pair of classes under which the prior
    finds its codes likeliest.

    redraw_digits: each drawn layer is redrawn with the given digit's own pixels, pasted where
    the prior's layer puts it: the prior decides where each digit goes, not how it looks.
    """
    layers, found = predict_layers(model, tokenizer, frames, guidance=guidance, seed=seed,
                                   batch_size=batch_size, progress=progress, **sampling)
    return stack_prediction(layers, found, frames, redraw_digits), found.ok


__all__ = ["LAYER_APART", "LayerStream", "ONE_DIGIT", "TARGET", "build_layer_prior",
           "draw_layers", "label_scores", "layered_predict_clips", "predict_layers",
           "REDRAW", "stack_prediction",
           "classify", "VIEWS", "CANDIDATES", "one_digit_labels", "pair_labels",
           "check_layer_prior", "layered_class_clips",
           "layered_unconditional_clips", "stack_apart"]
