"""Middle frames by search: a layer's digit proposed where it can be halfway, scored by the
interpolation stage (`minivideo.models.cogvideo.middles`)."""

import pytest
import torch

from minivideo.models.cogvideo import CogVideo, CogView, CogViewConfig, encode_prompt
from minivideo.models.cogvideo.middles import (
    ink_centre,
    middle_proposals,
    search_middles,
    shift_pixels,
)

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

LAYER = {"digits": 1, "motion": "compass", "compass_step_px": 2}


def blob(top: int, left: int, size: int = 6) -> torch.Tensor:
    image = torch.zeros(64, 64)
    image[top : top + size, left : left + size] = 1.0
    return image


def test_shift_pixels_moves_ink_and_never_wraps():
    image = blob(10, 10)
    assert torch.equal(shift_pixels(image, 4, -2), blob(14, 8))
    assert torch.allclose(ink_centre(blob(10, 20)[None]), torch.tensor([[12.5, 22.5]]))
    edge = shift_pixels(blob(0, 60, 4), 0, 2)  # two of its four columns leave the canvas
    assert edge.sum() == 8 and edge[:4, 62:].sum() == 8


def test_a_digit_that_moved_is_proposed_only_halfway_and_a_still_one_within_reach():
    left = blob(20, 20)
    moved = middle_proposals(left[None], blob(20, 28)[None], frames=2)[0]  # 8 px in 4 frames
    # halfway along the move; up or down by up to 4 px (a bounce off a wall can hide there)
    assert [float(c) for c in ink_centre(moved)[:, 1] - ink_centre(left[None])[0, 1]] == [4] * 5
    assert torch.equal(moved[2], blob(20, 24))
    diagonal = middle_proposals(left[None], blob(28, 12)[None], frames=2)[0]
    assert len(diagonal) == 1 and torch.equal(diagonal[0], blob(24, 16))
    still = middle_proposals(left[None], left[None], frames=2)[0]  # a bounce can hide in 4
    centres = ink_centre(still) - ink_centre(left[None])
    assert len(still) == 25 and centres.abs().max() == 4  # every 2-px offset within 4 px
    assert len(middle_proposals(left[None], left[None], frames=1)[0]) == 9
    at_wall = middle_proposals(blob(20, 0)[None], blob(20, 0)[None], frames=1)[0]
    assert len(at_wall) == 6  # no offset pushes the digit's ink through the left wall


def tiny_interp(seed: int = 0, **options) -> CogVideo:
    torch.manual_seed(seed)
    base = CogView(CogViewConfig.preset("tiny", 64, "untrained-tiny"))
    return CogVideo.from_cogview(base, "interp", relative_bias=True, **options).eval()


def test_search_middles_keeps_the_key_frames_and_fills_every_middle():
    stage = tiny_interp(**LAYER)
    torch.manual_seed(1)
    keys = torch.randint(0, 64, (2, 5, 8, 8))
    captions = torch.stack([encode_prompt("digit 3 moves left"), encode_prompt("digit 8 moves up")])
    clips = search_middles(stage, captions, keys, guidance=2.0, seed=0)
    assert clips.shape == (2, 17, 8, 8) and torch.equal(clips[:, ::4], keys)
    assert torch.equal(clips, search_middles(stage, captions, keys, guidance=2.0, seed=0))
    with pytest.raises(ValueError, match="needs an interpolation stage trained on compass clips of one digit"):
        search_middles(tiny_interp(), captions, keys)
    with pytest.raises(ValueError, match="move_temperature must be > 0"):
        search_middles(stage, captions, keys, move_temperature=0)
