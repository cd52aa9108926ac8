"""The course's named models in one table: what trains each, what measures it, what ships.

A row answers every question the front door asks about a name such as `videogpt-compact-t2`:

* `target`: the `minivideo.train.Target` that `python -m minivideo train NAME` trains
  ("module:attribute"; an attribute may also be a function `cond -> Target`);
* `evaluation`: the function `model -> {figure: value}` whose held-out figures go into the
  manifest (`None`: the target's own `evaluate`);
* `checkpoint`: the shipped file `checkpoints/CHECKPOINT.pt` trained from this target, if any;
* `tokenizer`: the shipped tokenizer whose codes the model reads and writes (priors only);
* `sampler`: the `python -m minivideo sample SAMPLER` command that uses the checkpoint.

This module is data: it imports nothing of the package, so every layer may read it (the
loader in `pretrained.py` checks that a prior meets the tokenizer it was trained with). Only the
command line turns a "module:attribute" string into the object, so that `--help` stays quick and
each lesson's code loads only when it is used; `tests/test_layering.py` checks every string.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One named model of the course (see the module docstring for the fields)."""

    target: str
    evaluation: str | None = None
    checkpoint: str | None = None
    tokenizer: str | None = None
    sampler: str | None = None


_RECONSTRUCTION = "minivideo.metrics.reconstruction:evaluate_shipped_tokenizer"
_VIDEOGPT_FIGURES = "minivideo.metrics.videogpt_quality:evaluate_videogpt"

MODELS: dict[str, Entry] = {
    # tokenizers
    "vqvae-frame": Entry("minivideo.vqvae:FRAME_TOKENIZER_TARGET", _RECONSTRUCTION,
                         checkpoint="vqvae-frame"),
    "vqvae-frame-empty": Entry("minivideo.vqvae:FRAME_EMPTY_TOKENIZER_TARGET", _RECONSTRUCTION,
                               checkpoint="vqvae-frame-empty"),
    "vqvae-clip": Entry("minivideo.vqvae:CLIP_TOKENIZER_TARGET", _RECONSTRUCTION,
                        checkpoint="vqvae-clip"),
    "vqvae-compact": Entry("minivideo.vqvae:COMPACT_TOKENIZER_TARGET", _RECONSTRUCTION,
                           checkpoint="vqvae-compact"),
    "vqvae-compact-t2": Entry("minivideo.vqvae:COMPACT_T2_TOKENIZER_TARGET", _RECONSTRUCTION,
                              checkpoint="vqvae-compact-t2"),
    # instruments
    "digit-classifier": Entry("minivideo.metrics.digit_classifier:TARGET",
                              "minivideo.metrics.digit_classifier:evaluate_classifier",
                              checkpoint="digit-classifier"),
    "judge": Entry("minivideo.metrics.judge:TARGET", "minivideo.metrics.judge:evaluate_judge",
                   checkpoint="judge"),
    # issue 15: which digits a still frame shows, and where (CogView's single-frame figure)
    "frame-reader": Entry("minivideo.metrics.frame_reader:TARGET", checkpoint="frame-reader"),
    # priors
    "image-prior": Entry("minivideo.models.image_prior:TARGET", checkpoint="image-prior",
                         tokenizer="vqvae-frame", sampler="image-prior"),
    # lesson 07's first recipe: one prior per conditioning over 1,024 codes (none shipped)
    "videogpt": Entry("minivideo.models.videogpt:target", _VIDEOGPT_FIGURES,
                      tokenizer="vqvae-clip", sampler="videogpt"),
    "videogpt-compact": Entry("minivideo.models.videogpt_compact:TARGET", _VIDEOGPT_FIGURES,
                              tokenizer="vqvae-compact", sampler="videogpt"),
    # the shipped one-prior VideoGPT (class, unconditional and prediction in one checkpoint)
    "videogpt-compact-t2": Entry("minivideo.models.videogpt_compact:TARGET_T2",
                                 _VIDEOGPT_FIGURES, checkpoint="videogpt",
                                 tokenizer="vqvae-compact-t2", sampler="videogpt"),
    # issue 14: the shipped prior fine-tuned to draw clips of one digit too (layered sampling)
    # (`sample videogpt --cond class` draws with it when shipped: `--layers auto`)
    "videogpt-layers": Entry("minivideo.models.videogpt_layers:TARGET", _VIDEOGPT_FIGURES,
                             checkpoint="videogpt-layers", tokenizer="vqvae-compact-t2",
                             sampler="videogpt"),
    "cogview": Entry("minivideo.models.cogvideo.recipe:COGVIEW",
                     "minivideo.metrics.cogvideo_quality:evaluate_cogview",
                     checkpoint="cogview", tokenizer="vqvae-frame-empty"),
    # round nine (issue 15): CogView fine-tuned to bind each digit to its quadrant
    "cogview-bound": Entry("minivideo.models.cogvideo.recipe:COGVIEW_BOUND",
                           "minivideo.metrics.cogvideo_quality:evaluate_cogview",
                           checkpoint="cogview-bound", tokenizer="vqvae-frame-empty",
                           sampler="cogview"),
    # the paper's two-digit stages (lessons 08, 10; `sample cogvideo --checkpoint` loads them)
    "cogvideo-keyframes": Entry("minivideo.models.cogvideo.recipe:KEYFRAMES",
                                "minivideo.metrics.cogvideo_quality:evaluate_keyframes",
                                checkpoint="cogvideo-keyframes", tokenizer="vqvae-frame-empty"),
    # ablation (lesson 08, issue 15): the key-frame stage with nothing pretrained (not shipped)
    "cogvideo-keyframes-scratch": Entry(
        "minivideo.models.cogvideo.recipe:KEYFRAMES_FROM_SCRATCH",
        "minivideo.metrics.cogvideo_quality:evaluate_keyframes", tokenizer="vqvae-frame-empty"),
    "cogvideo-interp": Entry("minivideo.models.cogvideo.recipe:INTERPOLATION",
                             "minivideo.metrics.cogvideo_quality:evaluate_interpolation",
                             checkpoint="cogvideo-interp", tokenizer="vqvae-frame-empty"),
    # round six (issue 15): the stages of layered text → video, trained on clips of one digit;
    # `sample cogvideo` and `demo` draw with these by default
    "cogvideo-layer-keyframes": Entry("minivideo.models.cogvideo.recipe:LAYER_KEYFRAMES",
                                      "minivideo.metrics.cogvideo_quality:evaluate_keyframes",
                                      checkpoint="cogvideo-layer-keyframes",
                                      tokenizer="vqvae-frame-empty", sampler="cogvideo"),
    # round eight (issue 15): the key-frame stage with the digit word dropped from half its
    # captions (move search reads directions without it)
    "cogvideo-layer-keyframes-motion": Entry(
        "minivideo.models.cogvideo.recipe:LAYER_KEYFRAMES_MOTION",
        "minivideo.metrics.cogvideo_quality:evaluate_keyframes", tokenizer="vqvae-frame-empty"),
    "cogvideo-layer-interp": Entry("minivideo.models.cogvideo.recipe:LAYER_INTERPOLATION",
                                   "minivideo.metrics.cogvideo_quality:evaluate_interpolation",
                                   checkpoint="cogvideo-layer-interp",
                                   tokenizer="vqvae-frame-empty", sampler="cogvideo"),
}

# `python -m minivideo sample NAME`: the shipped checkpoints it loads by default, in order.
SAMPLERS: dict[str, tuple[str, ...]] = {
    sampler: tuple(e.checkpoint for e in MODELS.values()
                   if e.sampler == sampler and e.checkpoint is not None)
    for sampler in dict.fromkeys(e.sampler for e in MODELS.values() if e.sampler)
}


def entry(name: str) -> Entry:
    """The row of a named model, with a clear error for an unknown name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def shipped_entry(checkpoint: str) -> Entry | None:
    """The row whose shipped checkpoint is `checkpoint` (None for a file the table lacks)."""
    return next((e for e in MODELS.values() if e.checkpoint == checkpoint), None)


def resolve(spec: str) -> object:
    """The object that a "module:attribute" string of the table names."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
