"""Captions for Moving MNIST clips: a tiny grammar, a word tokenizer, and a parser back.

A caption says, for each digit in slot order, its class and the compass directions it takes::

    caption    ::= clause { " and " clause }                 (one clause per digit, 1–3)
    clause     ::= "digit " DIGIT " moves " path
    path       ::= DIRECTION { " then " DIRECTION }          (at most MAX_SEGMENTS directions)
    DIGIT      ::= "0" | "1" | ... | "9"
    DIRECTION  ::= "right" | "up-right" | "up" | "up-left"
                 | "left" | "down-left" | "down" | "down-right"

e.g. ``"digit 3 moves left and digit 7 moves up then down"``.

The rule for ``path``: quantise the digit's velocity at every shown frame (0 … T−2; the last
frame's velocity moves nothing on screen) to the nearest of 8 compass directions, collapse
repeats, and keep the first `MAX_SEGMENTS` (3). A bounce therefore adds "then" + the new
direction exactly when it changes the compass word — a digit moving straight up that grazes a
side wall stays "up". Directions are single tokens ("up-left" is one word), so the vocabulary
is closed: 4 grammar words + 10 digits + 8 directions + the pad token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from minivideo.data.moving_mnist import COMPASS, DigitMotion, MovingMNISTBatch, summarize_motion

MAX_SEGMENTS = 3  # directions per digit: the first one and up to two "then"
MAX_DIGITS = 3
MIN_FRAMES = 2  # a caption describes motion, and one frame shows none
PAD = "<pad>"
DIGIT_WORDS = tuple(str(d) for d in range(10))
GRAMMAR_WORDS = ("digit", "moves", "then", "and")
VOCAB = (PAD, *GRAMMAR_WORDS, *DIGIT_WORDS, *COMPASS)
# Longest caption: 3 clauses × ("digit" d "moves" + 3 directions + 2 "then") + 2 "and" = 26.
MAX_LENGTH = MAX_DIGITS * (3 + 2 * MAX_SEGMENTS - 1) + MAX_DIGITS - 1


class ParsedDigit(NamedTuple):
    """One clause of a caption: a digit class and the directions it takes."""

    digit: int
    directions: tuple[str, ...]


def caption_from_motion(motion: Sequence[DigitMotion], max_segments: int = MAX_SEGMENTS) -> str:
    """The caption of one clip from its per-digit motion summary (see the grammar above)."""
    if not 1 <= max_segments:
        raise ValueError(f"max_segments must be >= 1, got {max_segments}")
    clauses = [
        f"digit {m.digit} moves " + " then ".join(m.directions[:max_segments]) for m in motion
    ]
    return " and ".join(clauses)


def captions_for(batch: MovingMNISTBatch, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """Captions of every clip of a generated batch (clips of at least `MIN_FRAMES` frames)."""
    if batch.config.num_frames < MIN_FRAMES:
        raise ValueError(f"captions need clips of at least {MIN_FRAMES} frames (one frame shows "
                         f"no motion); got num_frames={batch.config.num_frames}")
    return [caption_from_motion(summarize_motion(batch, i), max_segments)
            for i in range(len(batch))]


def parse_caption(text: str) -> list[ParsedDigit]:
    """Parse a caption back to [(digit, directions), ...]; ValueError if it breaks the grammar."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    parsed = []
    for clause in text.strip().split(" and "):
        words = clause.split()
        well_formed = len(words) >= 4 and words[0] == "digit" and words[2] == "moves"
        if not well_formed or words[1] not in DIGIT_WORDS:
            raise ValueError(f"clause {clause!r} must read 'digit D moves DIRECTION [then ...]'")
        path = words[3:]
        directions, separators = path[0::2], path[1::2]
        if any(s != "then" for s in separators) or len(path) % 2 == 0:
            raise ValueError(f"path {' '.join(path)!r} must alternate directions and 'then'")
        unknown = [d for d in directions if d not in COMPASS]
        if unknown:
            raise ValueError(f"unknown direction(s) {unknown}; expected one of {list(COMPASS)}")
        parsed.append(ParsedDigit(int(words[1]), tuple(directions)))
    return parsed


class CaptionTokenizer:
    """Word-level tokenizer over the closed caption vocabulary; pads to a fixed length."""

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.vocab: tuple[str, ...] = VOCAB
        self.max_length = max_length
        self.pad_id = 0
        self._ids = {word: i for i, word in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        """Number of tokens, pad included (23)."""
        return len(self.vocab)

    def encode(self, text: str, pad: bool = True) -> list[int]:
        """Token ids of a caption, padded with pad_id to max_length when pad=True."""
        words = text.split()
        unknown = sorted({w for w in words if w not in self._ids or w == PAD})
        if unknown:
            raise ValueError(f"word(s) {unknown} are not in the caption vocabulary; accepted "
                             f"words: {list(self.vocab[1:])}")
        if len(words) > self.max_length:
            raise ValueError(f"caption has {len(words)} words, more than max_length "
                             f"{self.max_length}: {text!r}")
        ids = [self._ids[w] for w in words]
        return ids + [self.pad_id] * (self.max_length - len(ids)) if pad else ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The caption of token ids, pads dropped."""
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise ValueError(f"ids must be 1-d (L,); got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        bad = [i for i in ids if not 0 <= int(i) < len(self.vocab)]
        if bad:
            raise ValueError(f"token ids {bad} are outside [0, {len(self.vocab)})")
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != self.pad_id)

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """LongTensor (b, max_length) of padded token ids."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of captions, not one str")
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.long).reshape(
            len(texts), self.max_length)

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """Captions of a (b, L) tensor of token ids."""
        if ids.ndim != 2:
            raise ValueError(f"ids must have shape (b, L); got {tuple(ids.shape)}")
        return [self.decode(row) for row in ids]
