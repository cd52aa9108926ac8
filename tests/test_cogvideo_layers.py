"""Layered text → video: stages trained on clips of one digit draw each clause as its own layer,
and a prompt's layers are composed in pixels by their maximum."""

import numpy as np
import pytest
import torch

from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.data.captions import CaptionTokenizer
from minivideo.metrics import cogvideo_quality
from minivideo.metrics.cogvideo_quality import evaluate_text_to_video, prompt_clips
from minivideo.models.cogvideo import (
    CogVideo,
    CogView,
    CogViewConfig,
    encode_prompt,
    layered_text_to_video,
    prompt_layers,
    text_to_video,
    tokenizer_of,
)
from minivideo.models.cogvideo.recipe import FreshWindows
from minivideo.models.cogvideo.search import search_keyframes, search_text_to_video
from minivideo.utils import to_uint8

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

LAYER = {"digits": 1, "motion": "compass", "compass_step_px": 2}
PROMPTS = ["digit 3 moves left and digit 7 moves down then up", "digit 1 moves up"]


def tiny_cogview(seed: int = 0) -> CogView:
    torch.manual_seed(seed)
    return CogView(CogViewConfig.preset("tiny", 64, "untrained-tiny"))


@pytest.fixture(scope="module")
def layer_stages() -> tuple[CogVideo, CogVideo]:
    base = tiny_cogview()
    torch.manual_seed(1)
    keys = CogVideo.from_cogview(base, "keyframes", pointer="timed", relative_bias=True,
                                 caption_offsets=True, **LAYER)
    interp = CogVideo.from_cogview(base, "interp", relative_bias=True, **LAYER)
    for stage in (keys, interp):  # open the gates, so the temporal channels count
        with torch.no_grad():
            stage.gate.fill_(0.5)
    return keys.eval(), interp.eval()


def test_a_layer_stage_trains_on_clips_of_one_digit_with_one_clause():
    base = tiny_cogview()
    config = CogVideo.from_cogview(base, "keyframes", **LAYER).config
    assert config.clips.num_digits == 1
    windows = FreshWindows(config, seed=0)
    for index in range(4):
        caption = CaptionTokenizer().decode(windows[index]["caption"])
        if caption:  # caption dropout leaves some windows without one
            assert caption.count("digit") == 1 and " and " not in caption
    two = FreshWindows(CogVideo.from_cogview(base, "keyframes").config, seed=0)
    assert " and " in CaptionTokenizer().decode(two[0]["caption"])
    with pytest.raises(ValueError, match=r"digits must be one of \(1, 2\), got 3"):
        CogVideo.from_cogview(base, "keyframes", digits=3)


def test_prompt_layers_split_each_prompt_into_its_clauses():
    clauses, owner = prompt_layers(PROMPTS)
    assert clauses == ["digit 3 moves left", "digit 7 moves down then up", "digit 1 moves up"]
    assert owner == [0, 0, 1]
    with pytest.raises(ValueError, match="outside the caption vocabulary"):
        prompt_layers(["digit 3 moves sideways"])
    with pytest.raises(ValueError, match="prompts must be a non-empty list"):
        prompt_layers("digit 3 moves left")


def test_a_layered_clip_is_the_pixel_maximum_of_its_clauses_drawn_apart(layer_stages):
    keys, interp = layer_stages
    videos = layered_text_to_video(keys, interp, PROMPTS, guidance=2.0, seed=5)
    assert videos.shape == (2, 17, 64, 64)
    # the plain path: the three clauses as one batch of the hierarchy, decoded one by one
    clauses = torch.stack([encode_prompt(c) for c in prompt_layers(PROMPTS)[0]])
    codes = text_to_video(keys, interp, clauses, guidance=2.0, seed=5)
    layers = tokenizer_of(keys).decode(codes)
    assert not torch.equal(layers[0], layers[1])  # two different layers, so max is a test
    torch.testing.assert_close(videos[0], torch.maximum(layers[0], layers[1]))
    torch.testing.assert_close(videos[1], layers[2])
    again = layered_text_to_video(keys, interp, PROMPTS, guidance=2.0, seed=5)
    assert torch.equal(videos, again)  # seeded


def test_searched_layers_move_each_digit_as_one_blob(layer_stages):
    keys, interp = layer_stages
    clauses = torch.stack([encode_prompt(c) for c in prompt_layers(PROMPTS)[0]])
    frames, moves = search_keyframes(keys, clauses, guidance=2.0, seed=3, max_blobs=1)
    for clip, chosen in zip(frames, moves, strict=True):
        assert all(len(move) == 1 for move in chosen)  # one blob: one move a key frame
        for k, ((dy, dx),) in enumerate(chosen):  # each key frame: the last one, shifted
            shifted = torch.roll(clip[k], (dy, dx), (0, 1))
            if (clip[k] != 0).any():
                assert torch.equal(clip[k + 1], shifted)
    videos = layered_text_to_video(keys, interp, PROMPTS, guidance=2.0, seed=3, search=True)
    codes = search_text_to_video(keys, interp, clauses, guidance=2.0, seed=3, max_blobs=1)
    layers = tokenizer_of(keys).decode(codes)
    torch.testing.assert_close(videos[0], torch.maximum(layers[0], layers[1]))


def test_layers_need_stages_trained_on_one_digit(layer_stages):
    keys, interp = layer_stages
    two = CogVideo.from_cogview(tiny_cogview(), "keyframes").eval()
    with pytest.raises(ValueError, match="keyframes_model must be trained on clips of one digit"):
        layered_text_to_video(two, interp, PROMPTS)
    with pytest.raises(TypeError, match="stage 'interp'"):
        layered_text_to_video(keys, keys, PROMPTS)
    with pytest.raises(ValueError, match="rerank=4 ranks chains of searched key frames"):
        layered_text_to_video(keys, interp, PROMPTS, rerank=4)


def test_a_layer_stage_is_judged_on_prompts_of_two_digits(layer_stages):
    from minivideo.metrics.judge import Judge, JudgeConfig

    keys, interp = layer_stages
    assert cogvideo_quality.test_clips(keys, 3).digits.shape == (3, 1)  # its own clips: one digit
    assert prompt_clips(keys, 3).digits.shape == (3, 2)  # its prompts: two clauses
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(stem_channels=(4, 8), channels=8, num_blocks=1, embed_dim=16))
    figures = evaluate_text_to_video(keys, interp, judge, num_prompts=2, batch_size=2)
    assert figures["t2v_layered"] is True and figures["t2v_prompts"] == 2
    with pytest.raises(ValueError, match="draw layers and cannot continue them"):
        evaluate_text_to_video(keys, interp, judge, num_prompts=2,
                               given=torch.zeros(2, 1, 8, 8, dtype=torch.long))


def test_the_layer_targets_and_the_sample_command(tmp_path, capsys):
    from minivideo.__main__ import main as cli_main
    from minivideo.checkpoints import save_checkpoint
    from minivideo.models.cogvideo.recipe import (
        INTERPOLATION,
        KEYFRAMES,
        LAYER_INTERPOLATION,
        LAYER_KEYFRAMES,
    )

    for name, target in (("keyframes", LAYER_KEYFRAMES), ("interp", LAYER_INTERPOLATION)):
        torch.manual_seed(0)
        model = target.build_model("tiny")
        assert model.config.digits == 1 and model.config.motion == "compass"
        save_checkpoint(tmp_path / f"cogvideo-{name}.pt", model=model)
    assert LAYER_KEYFRAMES.build_dataset("tiny", 0).stage_config.clips.num_digits == 1
    out = tmp_path / "t2v.npz"
    argv = ["sample", "cogvideo", "--prompt", PROMPTS[0], "--num", "2", "--checkpoint",
            str(tmp_path), "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0  # layer stages: each clause a layer, key frames searched
    with np.load(out) as saved:
        videos = saved["videos"]
        assert videos.shape == (2, 17, 64, 64) and videos.dtype == np.uint8
    keys, interp = (build_model_from_checkpoint(tmp_path / f"cogvideo-{n}.pt").eval()
                    for n in ("keyframes", "interp"))
    expected = layered_text_to_video(keys, interp, [PROMPTS[0]] * 2, guidance=2.0, seed=0,
                                     search=True, rerank=4)
    # the defaults: guidance 2, key frames searched (the best of 4 chains), middles drawn
    assert np.array_equal(videos, to_uint8(expected))
    assert cli_main([*argv, "--middles", "searched", "--rerank", "1"]) == 0
    with np.load(out) as saved:
        searched = layered_text_to_video(keys, interp, [PROMPTS[0]] * 2, guidance=2.0, seed=0,
                                         search=True, middle_search=True)
        assert np.array_equal(saved["videos"], to_uint8(searched))
        assert not np.array_equal(saved["videos"], videos)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "two.pt", model=KEYFRAMES.build_model("tiny"))
    mixed = f"{tmp_path}/two.pt,{tmp_path}/cogvideo-interp.pt"
    with_mixed = [mixed if a == str(tmp_path) else a for a in argv]
    two_digit = f"{tmp_path}/two.pt,{tmp_path}/two-interp.pt"
    save_checkpoint(tmp_path / "two-interp.pt", model=INTERPOLATION.build_model("tiny"))
    with_two = [two_digit if a == str(tmp_path) else a for a in argv]
    for bad, message in ((with_mixed, "both be layer stages"),
                         ([*with_two, "--middles", "searched"], "needs the layer stages"),
                         ([*with_two, "--rerank", "3"], "ranks chains of searched key frames"),
                         ([*argv, "--rerank", "0"], "--rerank must be a positive number"),
                         ([*argv, "--top-k", "4"], "apply to key frames drawn")):
        with pytest.raises(SystemExit) as err:  # a one-line user error, not a traceback
            cli_main(bad)
        assert err.value.code == 2 and message in capsys.readouterr().err
