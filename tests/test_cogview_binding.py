"""Round nine: captions in reading order, one-digit frames, and the binding measurement."""

import numpy as np
import pytest
import torch

from minivideo.data.captions import CaptionTokenizer
from minivideo.metrics import cogvideo_quality
from minivideo.metrics.cogvideo_quality import binding_preference
from minivideo.models.cogvideo import CogView, CogViewConfig, frame_caption
from minivideo.models.cogvideo.recipe import COGVIEW, COGVIEW_BOUND, FreshFrames

WORDS = CaptionTokenizer()


def test_reading_order_lists_clauses_by_quadrant_then_corner():
    digits = np.array([7, 3])
    corners = np.array([[36.0, 36.0], [0.0, 0.0]])  # the 7 down-right, the 3 up-left
    assert frame_caption(digits, corners) == "digit 7 down-right and digit 3 up-left"  # slots
    assert frame_caption(digits, corners, "reading") == "digit 3 up-left and digit 7 down-right"
    # up-right comes before down-left whatever the slots say
    corners = np.array([[30.0, 0.0], [0.0, 30.0]])
    assert frame_caption(digits, corners, "reading") == "digit 3 up-right and digit 7 down-left"
    # one quadrant: the higher corner first, then the one further left
    same = np.array([[4.0, 2.0], [1.0, 3.0]])
    assert frame_caption(digits, same, "reading") == "digit 3 up-left and digit 7 up-left"
    with pytest.raises(ValueError, match="order must be one of"):
        frame_caption(digits, corners, "random")
    with pytest.raises(ValueError, match="caption_order must be one of"):
        CogViewConfig(num_codes=64, caption_order="backwards")


def test_fresh_frames_hold_one_digit_in_their_share_and_replay():
    data = FreshFrames(seed=0, order="reading", one_digit=0.25)
    captions = [WORDS.decode(data[i]["caption"].tolist()) for i in range(200)]
    one = sum(" and " not in c for c in captions) / len(captions)
    assert 0.15 < one < 0.35, one  # a quarter of the frames, give or take sampling
    item = data[17]
    assert torch.equal(item["frames"], data[17]["frames"])
    # without one-digit frames the stream is the shipped recipe's, frame for frame
    plain, shipped = FreshFrames(seed=0), COGVIEW.build_dataset("small", 0)
    for i in range(5):
        assert torch.equal(plain[i]["frames"], shipped[i]["frames"])
        assert torch.equal(plain[i]["caption"], shipped[i]["caption"])
    with pytest.raises(ValueError, match="one_digit must be a share"):
        FreshFrames(one_digit=1.5)


def test_the_bound_recipe_reads_captions_in_reading_order():
    model = COGVIEW_BOUND.build_model("tiny")
    assert isinstance(model, CogView) and model.config.caption_order == "reading"
    data = COGVIEW_BOUND.build_dataset("tiny", 0)
    assert data.order == "reading" and data.one_digit == 0.25


def test_binding_preference_is_the_share_of_frames_likelier_under_their_own_caption(monkeypatch):
    model = CogView(CogViewConfig.preset("tiny", 512, "vqvae-frame-empty")).eval()
    calls = []

    def knows(model, captions, codes):  # a CogView that binds: its own caption scores higher
        texts = [WORDS.decode(c.tolist()) for c in captions]
        calls.append(texts)
        score = torch.tensor([0.0 if len(calls) == 1 else -1.0] * len(texts))
        return score, score

    monkeypatch.setattr(cogvideo_quality, "image_log_likelihoods", knows)
    figures = binding_preference(model, 64)
    right, swapped = calls
    assert figures["binding_preferred"] == 1.0 and figures["binding_frames"] == len(right)
    assert 0 < len(right) < 64  # frames with one digit twice or one quadrant twice are skipped
    for a, b in zip(right, swapped, strict=True):
        assert a != b and sorted(a.split()) == sorted(b.split())  # the same words, re-paired
        clauses_a, clauses_b = a.split(" and "), b.split(" and ")
        assert {c.split()[1] for c in clauses_a} == {c.split()[1] for c in clauses_b}
        assert {c.split()[2] for c in clauses_a} == {c.split()[2] for c in clauses_b}
    calls.clear()
    monkeypatch.setattr(cogvideo_quality, "image_log_likelihoods",
                        lambda m, c, x: (torch.zeros(len(c)), torch.zeros(len(c))))
    assert binding_preference(model, 64)["binding_preferred"] == 0.0  # ties are not a preference


def test_layered_images_are_the_pixel_maximum_of_one_clause_frames():
    from minivideo.models.cogvideo import layered_images, tokenizer_of
    from minivideo.models.cogvideo.selfrank import best_of_images

    torch.manual_seed(0)
    model = COGVIEW_BOUND.build_model("tiny").eval()
    captions = ["digit 3 up-left and digit 7 down-right", "digit 1 up-right"]
    frames = layered_images(model, captions, guidance=2.0, seed=4, best_of=2)
    assert frames.shape == (2, 64, 64)
    clauses = ["digit 3 up-left", "digit 7 down-right", "digit 1 up-right"]
    codes = best_of_images(model, WORDS.encode_batch(clauses), 2, guidance=2.0, seed=4)
    layers = tokenizer_of(model).decode(codes[:, None])[:, 0]
    assert torch.equal(frames[0], torch.maximum(layers[0], layers[1]))
    assert torch.equal(frames[1], layers[2])
    assert not torch.equal(layers[0], layers[1])  # two layers, not one drawn twice
    with pytest.raises(ValueError, match="captions must be a non-empty list"):
        layered_images(model, [])


def test_frame_prompts_follow_the_grammar_and_the_models_order():
    from minivideo.models.cogvideo import frame_prompt

    prompt = "digit 7 down-right and digit 3 up-left"
    assert frame_prompt(prompt) == prompt
    assert frame_prompt(prompt, "reading") == "digit 3 up-left and digit 7 down-right"
    assert frame_prompt("digit 1 up-right and digit 2 up-right", "reading") == (
        "digit 1 up-right and digit 2 up-right")  # a tie keeps the person's order
    for bad in ("", "digit 3 moves left", "digit 12 up-left", "digit 3 up-left and",
                " and ".join(["digit 1 up-left"] * 4)):  # at most MAX_DIGITS (3) clauses
        with pytest.raises(ValueError, match="frame"):
            frame_prompt(bad)


def test_sample_cogview_draws_frames_of_a_frame_prompt(tmp_path, capsys):
    from minivideo.__main__ import main as cli_main
    from minivideo.checkpoints import save_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "bound.pt", model=COGVIEW_BOUND.build_model("tiny"))
    out = tmp_path / "t2i.npz"
    prompt = "digit 7 down-right and digit 3 up-left"
    argv = ["sample", "cogview", "--prompt", prompt, "--num", "3", "--rerank", "2",
            "--checkpoint", str(path), "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    with np.load(out) as saved:
        assert saved["videos"].shape == (3, 1, 64, 64) and saved["videos"].dtype == np.uint8
        # the model reads captions in reading order, so that is the caption it was given
        assert saved["captions"].tolist() == ["digit 3 up-left and digit 7 down-right"] * 3
        assert len({frame.tobytes() for frame in saved["videos"]}) == 3  # three draws
    for change, message in ((("--prompt", "digit 3 moves left"), "outside the frame grammar"),
                            (("--rerank", "0"), "--rerank and --apart >= 1")):
        flag, value = change
        bad = list(argv)
        bad[bad.index(flag) + 1] = value
        with pytest.raises(SystemExit) as err:  # a one-line user error, not a traceback
            cli_main(bad)
        assert err.value.code == 2 and message in capsys.readouterr().err


def test_apart_stacks_the_draws_whose_digits_overlap_least():
    from minivideo.models.cogvideo import ink_overlap, layered_images

    layers = torch.zeros(2, 2, 64, 64)
    layers[0, 0, 10:20, 10:20] = layers[0, 1, 10:20, 10:20] = 1.0  # the same 10×10 patch twice
    layers[1, 0, 10:20, 15:25] = layers[1, 1, 40:50, 40:50] = 1.0  # half covered; apart
    assert torch.allclose(ink_overlap(layers), torch.tensor([1.0, 0.0]))
    from minivideo.models.cogvideo import tokenizer_of
    from minivideo.models.cogvideo.selfrank import best_of_images

    torch.manual_seed(0)
    model = COGVIEW_BOUND.build_model("tiny").eval()
    caption = "digit 3 up-left and digit 7 up-left"
    chosen = layered_images(model, [caption], guidance=2.0, seed=1, apart=3)
    # the same draws, by hand: three of each layer, side by side in one batch
    clauses = ["digit 3 up-left"] * 3 + ["digit 7 up-left"] * 3
    codes = best_of_images(model, WORDS.encode_batch(clauses), 1, guidance=2.0, seed=1)
    draws = tokenizer_of(model).decode(codes[:, None])[:, 0].view(2, 3, 64, 64)
    stacks = {(a, b): torch.stack([draws[0, a], draws[1, b]]) for a in range(3) for b in range(3)}
    overlaps = {pair: float(ink_overlap(stack[None])) for pair, stack in stacks.items()}
    best = min(overlaps, key=overlaps.get)  # the first of equals, as the sampler breaks ties
    assert torch.equal(chosen[0], stacks[best].amax(dim=0))
    with pytest.raises(ValueError, match="apart must be a positive int"):
        layered_images(model, [caption], apart=0)
