"""Captions: grammar, agreement with the trajectories, tokenizer round trips and errors."""

import numpy as np
import pytest
import torch

from minivideo.data.captions import (
    MAX_LENGTH,
    MAX_SEGMENTS,
    VOCAB,
    CaptionTokenizer,
    ParsedDigit,
    caption_from_motion,
    captions_for,
    parse_caption,
)
from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import COMPASS, DigitMotion, MovingMNISTConfig, generate_clips


@pytest.fixture(scope="module")
def batch():
    return generate_clips(200, load_digits("train"), MovingMNISTConfig(num_digits=3), seed=0)


def test_caption_follows_the_grammar():
    motion = [DigitMotion(3, "left", ("left",), ()), DigitMotion(7, "up", ("up", "down"), (9,))]
    assert caption_from_motion(motion) == "digit 3 moves left and digit 7 moves up then down"


def test_segments_are_capped():
    motion = [DigitMotion(1, "up", ("up", "down", "up", "down"), (5, 10, 15))]
    assert caption_from_motion(motion) == "digit 1 moves up then down then up"
    assert caption_from_motion(motion, max_segments=1) == "digit 1 moves up"


def test_captions_agree_with_the_trajectories(batch):
    captions = captions_for(batch)
    directions = batch.trajectories.directions  # (n, t, k)
    for i, caption in enumerate(captions):
        parsed = parse_caption(caption)
        assert [p.digit for p in parsed] == batch.digits[i].tolist()
        for slot, p in enumerate(parsed):
            shown = [COMPASS[d] for d in directions[i, :19, slot]]
            assert p.directions[0] == shown[0]
            # The caption's directions appear in this order along the shown frames.
            expected = [d for j, d in enumerate(shown) if j == 0 or d != shown[j - 1]]
            assert list(p.directions) == expected[:MAX_SEGMENTS]
    # Bounces make "then" common, and the cap makes it bounded.
    assert np.mean(["then" in c for c in captions]) > 0.5


def test_captions_need_two_frames():
    digits = load_digits("train")
    still = generate_clips(3, digits, MovingMNISTConfig(num_frames=1), seed=0)
    with pytest.raises(ValueError, match="at least 2 frames.*num_frames=1"):
        captions_for(still)
    two = generate_clips(3, digits, MovingMNISTConfig(num_frames=2), seed=0)
    first = generate_clips(3, digits, MovingMNISTConfig(num_frames=20), seed=0)
    # Same seed, same first step: the 2-frame caption names each digit's first direction.
    expected = [" and ".join(f"digit {p.digit} moves {p.directions[0]}" for p in parse_caption(c))
                for c in captions_for(first)]
    assert captions_for(two) == expected


def test_parse_caption_round_trip_and_errors():
    text = "digit 0 moves down-right then up-left and digit 9 moves up"
    assert parse_caption(text) == [ParsedDigit(0, ("down-right", "up-left")), ParsedDigit(9, ("up",))]
    for bad in ["digit 12 moves up", "digit 3 goes up", "digit 3 moves sideways",
                "digit 3 moves up then", "digit 3 moves up down", "digit 3"]:
        with pytest.raises(ValueError):
            parse_caption(bad)


def test_vocabulary_is_closed_and_small():
    assert VOCAB[0] == "<pad>" and len(VOCAB) == len(set(VOCAB)) == 23
    assert MAX_LENGTH == 26


def test_tokenizer_round_trip_and_padding(batch):
    tok = CaptionTokenizer()
    captions = captions_for(batch)
    ids = tok.encode_batch(captions)
    assert ids.dtype == torch.long and ids.shape == (200, MAX_LENGTH)
    assert tok.decode_batch(ids) == captions
    longest = max(len(c.split()) for c in captions)
    assert (ids[:, longest:] == tok.pad_id).all() and longest <= MAX_LENGTH
    assert tok.encode("digit 4 moves up", pad=False) == [1, 9, 2, VOCAB.index("up")]


def test_unknown_words_raise_with_the_accepted_list():
    tok = CaptionTokenizer()
    with pytest.raises(ValueError, match=r"\['north'\].*accepted words.*'digit'"):
        tok.encode("digit 4 moves north")
    with pytest.raises(ValueError, match="pad"):
        tok.encode("digit 4 moves up <pad>")
    with pytest.raises(ValueError, match="max_length"):
        CaptionTokenizer(max_length=3).encode("digit 4 moves up")
    with pytest.raises(ValueError, match="outside"):
        tok.decode([0, 99])
    with pytest.raises(TypeError):
        tok.encode_batch("digit 4 moves up")
