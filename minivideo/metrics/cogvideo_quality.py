"""Held-out figures of the CogVideo stages, for the manifests of `python -m minivideo train`.

Every stage is scored by the bits per code it needs on clips of *test* digits (never seen in
training), with the caption and with the caption dropped: the difference is what the text tells
the model, in bits. The whole hierarchy (key frames, then two interpolation passes) is scored by
caption accuracy (`minivideo.metrics.captions`): the judge reads which digits appear and where
each one first moves in generated clips, and we compare with the prompt.

    evaluate_cogview(model)          stage 0, one frame under its quadrant caption
    evaluate_keyframes(model)        stage 1, 5 key frames at stride 4 under the clip's caption
    evaluate_interpolation(model)    stage 2, middle frames at strides 2 and 1; then, when the
                                     shipped key-frame model and judge exist, the whole pipeline

    python -m minivideo eval cogvideo --num 32    # the shipped pipeline's figures
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from minivideo.data.captions import CaptionTokenizer
from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import COMPASS, generate_clips
from minivideo.metrics.captions import caption_accuracy
from minivideo.metrics.frame_reader import FrameReader, quadrant_index, reads_frame_captions
from minivideo.metrics.judge import MIN_FRAMES, reads_digit_sets
from minivideo.models.cogvideo import (
    CLIP_FRAMES,
    KEYFRAME_STRIDE,
    NUM_KEYFRAMES,
    UNTRAINED_TINY,
    CogVideo,
    CogView,
    EncodedClips,
    clip_config,
    cogview_sequence,
    encode_clips,
    frame_caption,
    held_out_prompts,
    layered_images,
    layered_text_to_video,
    motion_caption,
    quadrant,
    text_to_video,
    tokenizer_of,
    training_pair,
    video_sequence,
)
from minivideo.models.cogvideo.search import search_text_to_video
from minivideo.models.cogvideo.selfrank import best_of_images, image_log_likelihoods
from minivideo.pretrained import available_pretrained, pretrained
from minivideo.utils import to_uint8

TEST_SEED = 1234
_CAPTIONS = CaptionTokenizer()


def test_clips(model: nn.Module, num_clips: int = 64, seed: int = TEST_SEED) -> EncodedClips:
    """Clips of test digits, encoded by the tokenizer the model was trained on (cached), moving
    as the stage's training clips moved (`CogVideoConfig.motion`; CogView's: any angle)."""
    return encode_clips(tokenizer_of(model), num_clips, split="test", seed=seed, cache=True,
                        clips=getattr(model.config, "clips", None))


def prompt_clips(model: CogVideo, num_clips: int, seed: int = TEST_SEED) -> EncodedClips:
    """Test clips whose captions are a video stage's prompts: clips that move as its training
    clips moved, with two digits even for a layer stage (one digit a clip, `LAYERS`)."""
    clips = model.config.clips
    return encode_clips(tokenizer_of(model), num_clips, split="test", seed=seed, cache=True,
                        clips=replace(clips, num_digits=2))


def _clip_caption(clips: EncodedClips, i: int, first: int = 0, last: int = CLIP_FRAMES - 1) -> str:
    return motion_caption(clips.digits[i], clips.directions[i, first:last])


def _ids(texts: list[str]) -> torch.Tensor:
    return _CAPTIONS.encode_batch(texts)


@torch.no_grad()
def bits_per_code(model: nn.Module, pairs: list[dict], batch_size: int = 64) -> float:
    """Mean bits per scored code over training pairs (`training_pair` dicts), in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        inputs = torch.stack([p["input"] for p in chunk]).to(device)
        targets = torch.stack([p["target"] for p in chunk]).to(device)
        _, loss = model(inputs, targets=targets)
        scored = int((targets != -100).sum())
        total, count = total + float(loss) * scored, count + scored
    model.train(was_training)
    return total / count / math.log(2)


def _with_and_without_caption(model: nn.Module, make: Callable[[bool], list[dict]]) -> dict:
    """Bits per code with the caption, without it (all pads), and the difference."""
    with_text, without = bits_per_code(model, make(False)), bits_per_code(model, make(True))
    num_codes = (model.config.base if isinstance(model, CogVideo) else model.config).num_codes
    return {"test_bits_per_code": round(with_text, 4),
            "test_bits_per_code_no_caption": round(without, 4),
            "caption_bits_saved_per_code": round(without - with_text, 4),
            "uniform_bits_per_code": round(math.log2(num_codes), 4)}


def evaluate_cogview(model: nn.Module, num_clips: int = 64) -> dict[str, float]:
    """Stage 0: bits per code of test frames (0, 8, 16 of each clip) under their captions."""
    if not isinstance(model, CogView):
        raise TypeError(f"model must be a CogView, got {type(model).__name__}")
    clips = test_clips(model, num_clips)
    num_codes = model.config.num_codes
    frames = [(i, t) for i in range(len(clips)) for t in (0, 8, 16)]

    def make(drop: bool) -> list[dict]:
        order = model.config.caption_order
        texts = [frame_caption(clips.digits[i], clips.positions[i, t], order) for i, t in frames]
        ids = _ids(texts) * (0 if drop else 1)
        codes = torch.stack([clips.codes[i, t] for i, t in frames]).long()
        sequences = cogview_sequence(ids, codes, num_codes)
        return [training_pair(s, model.config.text_len + 1, num_codes) for s in sequences]

    out = {**_with_and_without_caption(model, make), "test_frames": len(frames),
           **binding_preference(model, num_clips)}
    shipped = available_pretrained()
    if model.config.tokenizer != UNTRAINED_TINY and "judge" in shipped:
        reader = pretrained("frame-reader") if "frame-reader" in shipped else None
        out.update(evaluate_cogview_frames(model, pretrained("judge"), num_clips, reader=reader))
    return out


@torch.no_grad()
def binding_preference(model: CogView, num_clips: int = 64) -> dict[str, float]:
    """Does CogView know which digit sits where? On the first frames of test clips whose two
    digits differ and sit in different quadrants: the share of frames it finds likelier under
    their caption than under the caption with the two quadrants swapped ("digit 3 up-left and
    digit 7 down-right" → "digit 3 down-right and digit 7 up-left"). 50%: it does not bind."""
    clips = test_clips(model, num_clips)
    order = model.config.caption_order
    right, swapped, keep = [], [], []
    for i in range(len(clips)):
        digits, corners = clips.digits[i], clips.positions[i, 0]
        if digits[0] == digits[1] or quadrant(corners[0]) == quadrant(corners[1]):
            continue
        right.append(frame_caption(digits, corners, order))
        swapped.append(frame_caption(digits, corners[::-1], order))
        keep.append(i)
    if not keep:
        return {}
    codes = clips.codes[keep, 0].long()
    with_right, _ = image_log_likelihoods(model, _ids(right), codes)
    with_swapped, _ = image_log_likelihoods(model, _ids(swapped), codes)
    gap = (with_right - with_swapped) / math.log(2)
    return {"binding_preferred": round(float((gap > 0).float().mean()), 4),
            "binding_bits_per_frame": round(float(gap.mean()), 4), "binding_frames": len(keep)}


def reverse_directions(caption: str) -> str:
    """The caption with every compass word turned around ("moves left" → "moves right")."""
    half_turn = len(COMPASS) // 2  # COMPASS runs counter-clockwise in eighths of a turn
    return " ".join(COMPASS[(COMPASS.index(w) + half_turn) % len(COMPASS)] if w in COMPASS else w
                    for w in caption.split())


def _stage_pairs(model: CogVideo, clips: EncodedClips, stride: int, drop: bool, *,
                 reverse: bool = False, skip_frames: int = 0) -> list[dict]:
    """Deterministic held-out sequences of a stage at one stride (every clip, every window);
    `reverse` turns the captions' directions around, `skip_frames` leaves the first key frames
    unscored."""
    config, base = model.config, model.config.base
    times = config.frame_times
    span = max(times) * stride
    pairs = []
    for i in range(len(clips)):
        firsts = [0] if config.stage == "keyframes" else range(0, CLIP_FRAMES - span, span)
        for first in firsts:
            if config.stage == "keyframes":
                text = _clip_caption(clips, i, first, first + span)
                scored = base.text_len + 1 + skip_frames * base.frame_len
            else:
                text = _clip_caption(clips, i)
                scored = base.text_len + 1 + 2 * base.frame_len
            ids = _ids([reverse_directions(text) if reverse else text]) * (0 if drop else 1)
            codes = clips.codes[i, [first + t * stride for t in times]][None].long()
            sequence = video_sequence(config, ids, stride, codes)[0]
            pairs.append(training_pair(sequence, scored, base.num_codes))
    return pairs


def evaluate_keyframes(model: nn.Module, num_clips: int = 64) -> dict[str, float]:
    """Stage 1: bits per code of the 5 key frames (stride 4) of test clips under their captions."""
    if not isinstance(model, CogVideo) or model.config.stage != "keyframes":
        raise TypeError("model must be a CogVideo of stage 'keyframes'")
    clips = test_clips(model, num_clips)
    out = _with_and_without_caption(
        model, lambda drop: _stage_pairs(model, clips, KEYFRAME_STRIDE, drop))
    # What the temporal channel buys: key frames 2-5 follow from frame 1 and the caption's
    # motion, so they should cost far fewer bits than frame 1; and if the model reads the
    # caption's directions, the same frames cost more under the directions turned around.
    def later(reverse: bool) -> float:
        return bits_per_code(model, _stage_pairs(model, clips, KEYFRAME_STRIDE, False,
                                                 reverse=reverse, skip_frames=1))
    later_bits, reversed_bits = later(False), later(True)
    k = NUM_KEYFRAMES  # every key frame scores the same number of codes
    first_bits = k * out["test_bits_per_code"] - (k - 1) * later_bits
    return {**out, "first_keyframe_bits_per_code": round(first_bits, 4),
            "later_keyframes_bits_per_code": round(later_bits, 4),
            "later_keyframes_bits_reversed_directions": round(reversed_bits, 4),
            "direction_bits_saved_per_code": round(reversed_bits - later_bits, 4),
            "gate_mean_abs": round(float(model.alpha.detach().abs().mean()), 4),
            "test_clips": num_clips}


# --------------------------------------------------------------------------- frames the judge reads
@torch.no_grad()
def draw_frames(model: CogView, captions: list[str], guidance: float = 3.0, seed: int = 0,
                batch_size: int = 32, best_of: int = 1, **sampling) -> torch.Tensor:
    """Code grids (n, h, w) CogView draws for frame captions, batch by batch (batch b's seed is
    seed + its first index, so a frame does not depend on how many are drawn); best_of K: the
    best of K drawn by CogView's own caption score (`best_of_images`, self-reranking)."""
    return torch.cat([best_of_images(model, _ids(captions[start : start + batch_size]), best_of,
                                     guidance=guidance, seed=seed + start, **sampling)
                      for start in range(0, len(captions), batch_size)])


def test_first_frames(num_frames: int, seed: int = TEST_SEED) -> dict[str, np.ndarray]:
    """The real first frames of the test clips `test_clips(cogview, num_frames)` encodes (the
    same generator, seed and batches of 64): frames uint8 (n, 64, 64), digits (n, 2), corners
    (n, 2, 2), and the ids of the digit images pasted (n, 2)."""
    rng, digits = np.random.default_rng([seed, 1, 9]), load_digits("test")
    config = clip_config("any", CLIP_FRAMES)
    batches = [generate_clips(min(64, num_frames - start), digits, config, rng)
               for start in range(0, num_frames, 64)]
    return {"frames": np.concatenate([b.videos[:, 0] for b in batches]),
            "digits": np.concatenate([b.digits for b in batches]),
            "corners": np.concatenate([b.trajectories.positions_int[:, 0] for b in batches]),
            "ids": np.concatenate([b.digit_ids for b in batches])}


@torch.no_grad()
def evaluate_cogview_frames(model: CogView, judge: nn.Module | None, num_frames: int = 64,
                            guidance: float = 3.0, seed: int = 0, batch_size: int = 32,
                            temperature: float = 1.0, top_k: int | None = None,
                            reader: FrameReader | None = None,
                            best_of: int = 1, layered: bool = False,
                            score: str = "caption", apart: int = 1) -> dict[str, float]:
    """Stage 0 as a person sees it: does a drawn frame show its caption's two digits?

    Each caption is the quadrant caption of frame 0 of a test clip. The judge reads clips, so
    every frame is held still for MIN_FRAMES frames; the same is done with the real frame and
    with its tokenizer reconstruction, which bound what any CogView can reach. With a `reader`
    (`minivideo.metrics.frame_reader`, built for still frames), the same frames are also read by
    it: the caption's digits each in its quadrant (`frames_reader_read`) and the digits wherever
    they are (`frames_reader_digits`), for the drawn, real and reconstructed frames. best_of K:
    each drawn frame is the best of K by CogView's `score` (`selfrank.best_of_images`).
    layered: each clause drawn as a frame of its own and the layers composed
    (`layers.layered_images`; for a CogView trained on one-digit frames too), and with apart K,
    stacked from K draws of each layer so that the digits share the least ink.
    """
    if not isinstance(model, CogView):
        raise TypeError(f"model must be a CogView, got {type(model).__name__}")
    if judge is None and reader is None:
        raise ValueError("give a judge, a reader or both: nothing would read the frames")
    clips = test_clips(model, num_frames)
    tokenizer = tokenizer_of(model)
    order = model.config.caption_order
    captions = [frame_caption(clips.digits[i], clips.positions[i, 0], order)
                for i in range(num_frames)]
    if layered:
        drawn = layered_images(model, captions, guidance=guidance, seed=seed, best_of=best_of,
                               batch_size=batch_size, temperature=temperature, top_k=top_k,
                               score=score, apart=apart)
    else:
        codes = draw_frames(model, captions, guidance, seed, batch_size, best_of,
                            temperature=temperature, top_k=top_k, score=score)
        drawn = torch.cat([tokenizer.decode(codes[start : start + batch_size, None].cpu())[:, 0]
                           for start in range(0, num_frames, batch_size)])
    sets = {"": drawn, "_tokenizer": tokenizer.decode(clips.codes[:, :1].long())[:, 0]}
    out: dict[str, float] = {}
    if judge is not None:
        for suffix, frames in sets.items():
            still = frames[:, None].expand(-1, MIN_FRAMES, -1, -1)
            read = reads_digit_sets(judge, still, clips.digits).float().mean()
            out[f"frames_judge_reads{suffix}"] = round(float(read), 4)
    if reader is not None:
        real = test_first_frames(num_frames)
        sets["_real"] = torch.from_numpy(real["frames"])
        quadrants = quadrant_index(real["corners"])
        for suffix, frames in sets.items():
            for name, digits_only in (("read", False), ("digits", True)):
                read = reads_frame_captions(reader, frames, clips.digits, quadrants,
                                            digits_only=digits_only).float().mean()
                out[f"frames_reader_{name}{suffix}"] = round(float(read), 4)
    out["frames_guidance"] = guidance  # the manifests' figures: plain sampling
    if temperature != 1.0:
        out["frames_temperature"] = temperature
    if top_k is not None:
        out["frames_top_k"] = top_k
    if best_of > 1:
        out["frames_best_of"], out["frames_best_of_score"] = best_of, score
    if layered:
        out["frames_layered"] = True
    if apart > 1:
        out["frames_apart"] = apart
    return {**out, "frames_test": num_frames}


# --------------------------------------------------------------------------- caption accuracy
@torch.no_grad()
def evaluate_text_to_video(keyframes_model: CogVideo, interp_model: CogVideo, judge: nn.Module,
                           num_prompts: int = 32, guidance: float = 3.0, seed: int = 0,
                           batch_size: int = 16, held_out: bool = False,
                           temperature: float = 1.0,
                           given: torch.Tensor | None = None,
                           search: bool = False, move_temperature: float = 1.0,
                           middle_search: bool = False, rerank: int = 1) -> dict[str, float]:
    """The whole hierarchy on prompts of test clips (or, with held_out, on prompts made only of
    (digit, direction) pairs the stages never trained on): caption accuracy, seconds per clip.

    `given` (num_prompts, f, h, w): the first f key frames of each clip, given instead of drawn
    (`sample_keyframes`); the test clips' own frames are `test_clips(keyframes_model, n).codes`.
    search=True: key frames by move search (`minivideo.models.cogvideo.search`), each move drawn
    with probability ∝ exp(score / move_temperature). Stages trained on clips of one digit draw
    each prompt's clauses as layers (`layered_text_to_video`, with or without search; and
    middle_search=True: their middle frames by search too, `minivideo.models.cogvideo.middles`;
    rerank K: the best-scored of K key-frame chains per layer, `search_keyframes`).
    """
    layered = keyframes_model.config.digits == 1
    if middle_search and not layered:
        raise ValueError("middle_search moves one rigid digit: it needs layer stages "
                         "(config.digits=1)")
    if layered and given is not None:
        raise ValueError("given holds two-digit key frames; stages of one digit "
                         "(config.digits=1) draw layers and cannot continue them")
    if given is not None and len(given) != num_prompts:
        raise ValueError(f"given must hold key frames for each of the {num_prompts} prompts, "
                         f"got {len(given)}")
    if held_out:
        for stage in (keyframes_model, interp_model):
            if "held_out_pairs" not in stage.config.extra:
                raise ValueError(f"the {stage.config.stage} stage was trained on every (digit, "
                                 "direction) pair, so no prompt is held out for it; retrain it "
                                 "(python -m minivideo train cogvideo-keyframes / cogvideo-interp)")
        captions = held_out_prompts(num_prompts)
    else:
        clips = prompt_clips(keyframes_model, num_prompts)
        captions = [_clip_caption(clips, i) for i in range(num_prompts)]
    tokenizer = tokenizer_of(keyframes_model)
    videos, began = [], time.perf_counter()
    for start in range(0, num_prompts, batch_size):
        if layered:
            video = layered_text_to_video(keyframes_model, interp_model,
                                          captions[start : start + batch_size],
                                          guidance=guidance, seed=seed + start,
                                          temperature=temperature, search=search,
                                          move_temperature=move_temperature,
                                          middle_search=middle_search, rerank=rerank)
            videos.append(torch.from_numpy(to_uint8(video)))
            continue
        ids = _ids(captions[start : start + batch_size])
        part = None if given is None else given[start : start + batch_size]
        if search:
            codes = search_text_to_video(keyframes_model, interp_model, ids, guidance=guidance,
                                         seed=seed + start, temperature=temperature, given=part,
                                         move_temperature=move_temperature)
        else:
            codes = text_to_video(keyframes_model, interp_model, ids, guidance=guidance,
                                  seed=seed + start, temperature=temperature, given=part)
        videos.append(torch.from_numpy(to_uint8(tokenizer.decode(codes.cpu()))))
    seconds = (time.perf_counter() - began) / num_prompts
    accuracy = caption_accuracy(judge, torch.cat(videos), captions)
    prefix = "t2v_held_out_" if held_out else "t2v_"
    return {**{f"{prefix}caption_{key}": round(value, 4) for key, value in accuracy.items()},
            f"{prefix}seconds_per_clip": round(seconds, 3), f"{prefix}prompts": num_prompts,
            f"{prefix}guidance": guidance, f"{prefix}temperature": temperature,
            **({f"{prefix}search": True, f"{prefix}move_temperature": move_temperature}
               if search else {}),
            **({f"{prefix}layered": True} if layered else {}),
            **({f"{prefix}middle_search": True} if middle_search else {}),
            **({f"{prefix}rerank": rerank} if rerank > 1 else {})}


def evaluate_interpolation(model: nn.Module, num_clips: int = 64) -> dict[str, float]:
    """Stage 2: bits per middle code at strides 2 and 1; the whole pipeline when it can run."""
    if not isinstance(model, CogVideo) or model.config.stage != "interp":
        raise TypeError("model must be a CogVideo of stage 'interp'")
    clips = test_clips(model, num_clips)
    out: dict[str, float] = {}
    for stride in (2, 1):
        figures = _with_and_without_caption(
            model, lambda drop, s=stride: _stage_pairs(model, clips, s, drop))
        out[f"stride{stride}_test_bits_per_code"] = figures["test_bits_per_code"]
        out[f"stride{stride}_test_bits_per_code_no_caption"] = (
            figures["test_bits_per_code_no_caption"])
    out["gate_mean_abs"] = round(float(model.alpha.detach().abs().mean()), 4)
    shipped = available_pretrained()
    # the key-frame stage of the same kind: layers (one digit a clip) or the paper's two digits
    partner = "cogvideo-layer-keyframes" if model.config.digits == 1 else "cogvideo-keyframes"
    if model.config.base.tokenizer != UNTRAINED_TINY and {partner, "judge"} <= set(shipped):
        keys = pretrained(partner)
        device = next(model.parameters()).device
        out.update(evaluate_text_to_video(keys.to(device), model, pretrained("judge")))
    return out


__all__ = ["binding_preference", "bits_per_code", "evaluate_cogview", "evaluate_cogview_frames",
           "evaluate_interpolation", "evaluate_keyframes", "evaluate_text_to_video",
           "prompt_clips", "reverse_directions", "test_clips", "test_first_frames"]
