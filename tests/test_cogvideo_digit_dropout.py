"""Round eight: a key-frame stage that also learns directions with no digit named
(`CogVideoConfig.digit_dropout`), and move search that scores its moves so."""

import pytest
import torch

from minivideo.data.captions import CaptionTokenizer
from minivideo.models.cogvideo import CogVideo, CogView, CogViewConfig, encode_prompt
from minivideo.models.cogvideo import search as search_module
from minivideo.models.cogvideo.layout import digit_free
from minivideo.models.cogvideo.recipe import FreshWindows

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

LAYER = {"digits": 1, "motion": "compass", "compass_step_px": 2}
WORDS = CaptionTokenizer()


def tiny_keys(**options) -> CogVideo:
    torch.manual_seed(0)
    base = CogView(CogViewConfig.preset("tiny", 64, "untrained-tiny"))
    return CogVideo.from_cogview(base, "keyframes", pointer="timed", relative_bias=True,
                                 caption_offsets=True, **LAYER, **options).eval()


def test_digit_free_drops_only_the_digit_words():
    ids = encode_prompt("digit 3 moves left then up and digit 7 moves down")
    free = digit_free(ids)
    assert WORDS.decode(free) == "digit moves left then up and digit moves down"
    assert (free != ids).sum() == 2 and (free[ids != free] == 0).all()  # two pads, in place
    assert torch.equal(digit_free(free), free)


def test_windows_drop_the_digit_word_from_their_share_and_keep_everything_else():
    plain = FreshWindows(tiny_keys().config, seed=3)
    dropped = FreshWindows(tiny_keys(digit_dropout=0.5).config, seed=3)
    freed = 0
    for index in range(120):
        a, b = plain[index], dropped[index]
        assert torch.equal(a["frames"], b["frames"]) and a["stride"] == b["stride"]
        if not torch.equal(a["caption"], b["caption"]):
            assert torch.equal(digit_free(a["caption"]), b["caption"])
            freed += 1
    # caption dropout empties ~10% (nothing left to free); half of the rest lose the digit
    assert 35 <= freed <= 75
    with pytest.raises(ValueError, match=r"digit_dropout must be a probability in \[0, 1\]"):
        tiny_keys(digit_dropout=1.5)


@pytest.mark.parametrize("share, digits_scored", [(0.0, True), (0.5, False)])
def test_move_search_scores_later_key_frames_without_the_digit_if_trained_so(
        monkeypatch, share, digits_scored):
    seen = []
    score = search_module.candidate_log_likelihood

    def spy(model, captions, *args, **kwargs):
        seen.append(captions.clone())
        return score(model, captions, *args, **kwargs)

    monkeypatch.setattr(search_module, "candidate_log_likelihood", spy)
    captions = torch.stack([encode_prompt("digit 3 moves left"), encode_prompt("digit 8 moves up")])
    frames, moves = search_module.search_keyframes(tiny_keys(digit_dropout=share), captions,
                                                   guidance=2.0, seed=0, max_blobs=1)
    assert frames.shape[1] == 5 and len(seen) == 4  # the four later key frames were searched
    for scored in seen:
        assert torch.equal(scored, captions if digits_scored else digit_free(captions))
