"""Caption accuracy: matching logic on hand-made judgements, the shipped judge on real clips."""

import json

import numpy as np
import pytest
import torch

from minivideo.data.captions import captions_for
from minivideo.metrics.captions import caption_accuracy, caption_matches, caption_targets
from minivideo.metrics.judge import JudgePrediction, build_judge, test_clips
from minivideo.pretrained import available_pretrained, checkpoints_dir, pretrained

COMPASS_LEFT, COMPASS_UP, COMPASS_DOWN = 4, 2, 6


def judged(present_classes, directions):
    """A JudgePrediction for one clip: these classes present, these directions per class."""
    present = torch.zeros(1, 10, dtype=torch.bool)
    present[0, present_classes] = True
    direction = torch.zeros(1, 10, dtype=torch.long)
    for digit, d in directions.items():
        direction[0, digit] = d
    return JudgePrediction(present.float(), present, direction, torch.zeros(1, 10, dtype=torch.long))


def test_digits_and_motion_are_judged_separately():
    caption = ["digit 3 moves left and digit 7 moves up then down"]
    right = judged([3, 7], {3: COMPASS_LEFT, 7: COMPASS_UP})
    assert {k: bool(v) for k, v in caption_matches(right, caption).items()} == {
        "digits": True, "motion": True, "both": True}
    wrong_digit = judged([3, 8], {3: COMPASS_LEFT, 7: COMPASS_UP})
    assert caption_matches(wrong_digit, caption)["digits"].tolist() == [False]
    assert caption_matches(wrong_digit, caption)["motion"].tolist() == [True]
    extra_digit = judged([3, 7, 1], {3: COMPASS_LEFT, 7: COMPASS_UP})
    assert caption_matches(extra_digit, caption)["digits"].tolist() == [False]
    # only the first direction counts: "up then down" starts up
    wrong_motion = judged([3, 7], {3: COMPASS_LEFT, 7: COMPASS_DOWN})
    assert caption_matches(wrong_motion, caption)["motion"].tolist() == [False]


def test_a_class_named_twice_accepts_either_first_direction():
    named, first = caption_targets(["digit 5 moves left and digit 5 moves up"])
    assert named[0].nonzero().flatten().tolist() == [5]
    assert first[0] == {5: {COMPASS_LEFT, COMPASS_UP}}
    for d in (COMPASS_LEFT, COMPASS_UP):
        assert caption_matches(judged([5], {5: d}), ["digit 5 moves left and digit 5 moves up"])["both"].item()


@pytest.mark.parametrize(("captions", "error", "match"), [
    (["digit 3 goes left"], ValueError, r"captions\[0\] = 'digit 3 goes left' is not a valid caption"),
    (["digit 3 moves sideways"], ValueError, "unknown direction"),
    ("digit 3 moves left", TypeError, "captions must be a sequence of str"),
])
def test_bad_captions_are_rejected_clearly(captions, error, match):
    with pytest.raises(error, match=match):
        caption_targets(captions)


def test_videos_and_captions_must_pair_up():
    judge = build_judge("tiny")
    with pytest.raises(ValueError, match="same length; got 2 videos and 1 captions"):
        caption_accuracy(judge, torch.rand(2, 8, 64, 64), ["digit 1 moves up"])
    with pytest.raises(TypeError, match="judge must be a Judge"):
        caption_accuracy(object(), torch.rand(1, 8, 64, 64), ["digit 1 moves up"])


@pytest.mark.skipif("judge" not in available_pretrained(),
                    reason="checkpoints/judge.pt not shipped: python -m minivideo train judge "
                           "--config small --out checkpoints/judge.pt --threads 1")
def test_real_clips_match_their_captions_and_not_shuffled_ones():
    judge = pretrained("judge")
    metrics = json.loads((checkpoints_dir() / "judge.json").read_text())["metrics"]
    batch = test_clips(300, num_frames=16, seed=21)
    captions = captions_for(batch)
    own = caption_accuracy(judge, batch.videos, captions)
    # the judge's own accuracy bounds what a perfect generator can score (300 clips: ± ~3 points)
    assert own["digits"] >= metrics["test16_digit_sets"] - 0.04, own
    assert own["motion"] >= metrics["test16_directions"] ** 2 - 0.05, own  # both digits right
    shuffled = [captions[i] for i in np.random.default_rng(0).permutation(len(captions))]
    chance = caption_accuracy(judge, batch.videos, shuffled)
    # two random digits agree with probability ~2%, two random directions with 1/64
    assert chance["digits"] < 0.1 and chance["motion"] < 0.1 and chance["both"] < 0.05, chance
