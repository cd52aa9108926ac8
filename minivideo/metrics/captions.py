"""Caption accuracy: does a clip generated from a caption show what the caption says?

A text-to-video model is asked for "digit 3 moves left and digit 7 moves up then down". CLIP-style
scores answer "is this video close to this text in some learned space"; on Moving MNIST we can ask
the sharper question directly, because the judge (`minivideo.metrics.judge`) reads digits and
motion off a clip. Two numbers, reported separately because they fail separately:

* **digits** — the set of digit classes the judge sees (presence > 0.5) equals the set the
  caption names. A model that draws the right motion with the wrong digits fails here.
* **motion** — every digit the caption names moves, at the first frame, in the compass direction
  the caption gives first (the judge's direction for that class). A clip can pass this while
  drawing the wrong digits only if the judge still reads a direction in the row of the named
  class, so read it together with **digits**; **both** is the fraction that passes both.

A caption that names one class twice with different first directions accepts either: the judge
has one direction per class and cannot tell the two apart. The judge is not perfect, so a perfect
generator scores about the judge's own accuracy on real clips (published in its manifest), not 1:
that is the ceiling, and shuffled captions give the floor (chance).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from minivideo.data.captions import parse_caption
from minivideo.data.moving_mnist import COMPASS
from minivideo.metrics.judge import Judge, JudgePrediction


def caption_targets(captions: Sequence[str]) -> tuple[torch.Tensor, list[dict[int, set[int]]]]:
    """Parse captions: named digits (n, 10) bool and, per clip, {digit: its first directions}."""
    if isinstance(captions, str) or not isinstance(captions, Sequence | np.ndarray):
        raise TypeError(f"captions must be a sequence of str, got {type(captions).__name__}")
    named = torch.zeros(len(captions), 10, dtype=torch.bool)
    first: list[dict[int, set[int]]] = []
    for i, caption in enumerate(captions):
        try:
            clauses = parse_caption(str(caption))
        except ValueError as err:
            raise ValueError(f"captions[{i}] = {str(caption)!r} is not a valid caption: "
                             f"{err}") from err
        directions: dict[int, set[int]] = {}
        for clause in clauses:
            named[i, clause.digit] = True
            directions.setdefault(clause.digit, set()).add(COMPASS.index(clause.directions[0]))
        first.append(directions)
    return named, first


def caption_matches(prediction: JudgePrediction,
                    captions: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per clip (bool (n,)): digits match, motion matches, both, for judged clips and captions."""
    named, first = caption_targets(captions)
    if len(named) != len(prediction.present):
        raise ValueError(f"got {len(prediction.present)} judged clips but {len(named)} captions")
    digits = (prediction.present == named).all(dim=1)
    motion = torch.tensor([all(int(prediction.directions[i, d]) in allowed
                               for d, allowed in wanted.items())
                           for i, wanted in enumerate(first)], dtype=torch.bool)
    return {"digits": digits, "motion": motion, "both": digits & motion}


def caption_accuracy(judge: Judge, videos: np.ndarray | torch.Tensor,
                     captions: Sequence[str], batch_size: int = 256) -> dict[str, float]:
    """Fractions of clips whose judged digits / first directions / both match their captions."""
    if not isinstance(judge, Judge):
        raise TypeError(f"judge must be a Judge, got {type(judge).__name__}")
    if len(videos) != len(captions):
        raise ValueError(f"videos and captions must have the same length; got {len(videos)} "
                         f"videos and {len(captions)} captions")
    caption_targets(captions)  # reject a bad caption before the (slower) judging
    matches = caption_matches(judge.predict(videos, batch_size), captions)
    return {key: float(value.float().mean()) for key, value in matches.items()}
