"""CogVideo: masks, freezing, the gate at init, hierarchy, guidance, learning, errors, commands."""

import copy
import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from minivideo.__main__ import main as cli_main
from minivideo.checkpoints import build_model_from_checkpoint, save_checkpoint
from minivideo.data import MovingMNISTConfig, captions_for, generate_clips, load_digits
from minivideo.data.captions import CaptionTokenizer
from minivideo.data.moving_mnist import COMPASS
from minivideo.masks import local_window_mask
from minivideo.metrics.cogvideo_quality import evaluate_text_to_video
from minivideo.metrics.cogvideo_quality import test_clips as stage_test_clips
from minivideo.models.cogvideo import (
    FRAME_STRIDES,
    HELD_OUT_PAIRS,
    CogVideo,
    CogView,
    CogViewConfig,
    FrameCaptionDataset,
    VideoDataset,
    cell_offsets,
    check_stride,
    clip_config,
    cogview_sequence,
    encode_clips,
    encode_prompt,
    fill_middle,
    frame_caption,
    held_out_prompts,
    interpolate,
    interpolate_once,
    load_tokenizer,
    mentions_held_out,
    motion_caption,
    quadrant,
    sample_images,
    sample_keyframes,
    sequence_loss,
    spatial_mask,
    temporal_mask,
    video_sequence,
)
from minivideo.models.cogvideo.recipe import (
    COGVIEW,
    INTERPOLATION,
    KEYFRAMES,
    KEYFRAMES_FROM_SCRATCH,
    FreshFrames,
    FreshWindows,
    fresh_loss,
    fresh_sequences,
)
from minivideo.sampling import classifier_free_guidance
from minivideo.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tiny models: one thread is fastest

K = 64  # codes of the untrained tiny tokenizer
PROMPT = "digit 3 moves left and digit 7 moves down"


def tiny_cogview(seed: int = 0) -> CogView:
    torch.manual_seed(seed)
    return CogView(CogViewConfig.preset("tiny", K, "untrained-tiny"))


@pytest.fixture(scope="module")
def clips():
    return encode_clips(load_tokenizer("untrained-tiny"), 6, seed=0)


def captions(n: int = 2, prompt: str = PROMPT) -> torch.Tensor:
    return encode_prompt(prompt)[None].repeat(n, 1)


# --------------------------------------------------------------------------- masks
def test_spatial_mask_is_cogview_per_frame():
    text, frames, frame_len = 3, 3, 2
    mask = spatial_mask(text, frames, frame_len)
    group = [-1] * text + [-2] + [f for f in range(frames) for _ in range(frame_len)]
    n = len(group)
    expected = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(n):
            if group[q] == -1:  # text: bidirectional among the text only
                expected[q, k] = group[k] == -1
            elif group[q] == -2:  # rate token: the text and itself
                expected[q, k] = group[k] in (-1, -2)
            else:  # video: the text, and its own frame causally; never the rate token
                expected[q, k] = group[k] == -1 or (group[k] == group[q] and k <= q)
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("times", [(0, 1, 2, 3, 4), (0, 2, 1)])
@pytest.mark.parametrize("window,shift", [(2, 0), (2, 1), (3, 1)])
def test_temporal_mask_windows_in_time_causal_in_sequence(times, window, shift):
    text, frame_len = 2, 3
    mask = temporal_mask(text, times, frame_len, window, shift)
    prefix = text + 1
    frame = [None] * prefix + [f for f in range(len(times)) for _ in range(frame_len)]
    n = len(frame)
    expected = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(n):
            if frame[q] is None:  # text and rate token: bidirectional prefix
                expected[q, k] = frame[k] is None
            elif frame[k] is None:  # video sees the whole prefix
                expected[q, k] = True
            else:
                tq, tk = times[frame[q]], times[frame[k]]
                same = (tq + shift) // window == (tk + shift) // window
                expected[q, k] = same and k <= q
    assert torch.equal(mask, expected)


def test_temporal_mask_is_a_shifted_local_window_for_key_frames():
    text, frame_len, frames = 2, 4, 5
    for shift in (0, 1):
        mask = temporal_mask(text, tuple(range(frames)), frame_len, 2, shift)
        windows = local_window_mask((frames, 1, frame_len), (2, 1, frame_len), (shift, 0, 0),
                                    causal=True)
        assert torch.equal(mask[text + 1 :, text + 1 :], windows)
    # the shift moves the borders: frames 1 and 2 share a window only in shifted layers
    first, second = (text + 1 + f * frame_len for f in (1, 2))
    assert not temporal_mask(text, tuple(range(frames)), frame_len, 2, 0)[second, first]
    assert temporal_mask(text, tuple(range(frames)), frame_len, 2, 1)[second, first]


def test_model_alternates_shifted_windows_and_middle_frame_sees_both_neighbours():
    model = CogVideo.from_cogview(tiny_cogview(), "interp")
    unshifted, shifted = model.temporal_masks
    base = model.config.base
    start = base.text_len + 1
    left, right, middle = (start + i * base.frame_len for i in range(3))  # sequence order
    assert unshifted[middle + 5, left + 5] and not unshifted[middle + 5, right + 5]
    assert shifted[middle + 5, right + 5] and not shifted[middle + 5, left + 5]


# --------------------------------------------------------------------------- the frozen base
def test_cell_offsets_put_the_previous_frames_same_cell_at_zero():
    g, text_len, frame_len = 8, 26, 65
    index, defined = cell_offsets(text_len, 3, frame_len, g)
    zero = (g - 1) * (2 * g - 1) + (g - 1)

    def token(frame: int, code: int) -> int:  # the token holding `code` of `frame`
        return text_len + 1 + frame * frame_len + 1 + code

    # the query that predicts code 19 of frame 2 is the token holding code 18
    query = token(2, 18)
    assert index[query, token(1, 19)] == zero and defined[query, token(1, 19)]
    # one row up and two columns left of cell 19 = (2, 3): cell (1, 1) = 9
    assert index[query, token(0, 9)] == (g - 2) * (2 * g - 1) + (g - 3)
    # BOF and caption keys have no cell; the last code of a frame predicts no cell
    assert not defined[query, text_len + 1 + frame_len].item()
    assert not defined[query, :text_len + 1].any()
    assert not defined[token(1, 63)].any()
    assert int(index.max()) < (2 * g - 1) ** 2


def test_bad_stage_options_raise_clear_errors():
    with pytest.raises(ValueError, match="gate_scale must be a positive number"):
        CogVideo.from_cogview(tiny_cogview(), "keyframes", gate_scale=0)
    with pytest.raises(ValueError, match="bias_scale must be a positive number"):
        CogVideo.from_cogview(tiny_cogview(), "keyframes", bias_scale=-1.0)
    with pytest.raises(ValueError, match="motion must be one of"):
        CogVideo.from_cogview(tiny_cogview(), "keyframes", motion="diagonal")
    with pytest.raises(ValueError, match="caption_offsets needs relative_bias"):
        CogVideo.from_cogview(tiny_cogview(), "keyframes", caption_offsets=True)


def test_caption_offsets_add_the_tables_of_the_named_directions_at_the_frame_rate():
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", relative_bias=True,
                                  caption_offsets=True, bias_scale=2.0)
    with torch.no_grad():
        model.motion_bias.normal_()
    ids = torch.stack([encode_prompt("digit 3 moves left and digit 7 moves up then down"),
                       encode_prompt("digit 3 moves right")])
    sequence = video_sequence(model.config, ids, 4, torch.randint(0, K, (2, 5, 8, 8)))
    tables = model.caption_motion(sequence)  # (layers, b, heads, offsets)
    table, rate = 2.0 * model.motion_bias, FRAME_STRIDES.index(4)  # bias_scale · parameter
    named = table[:, rate, COMPASS.index("left")] + table[:, rate, COMPASS.index("up")] + \
        table[:, rate, COMPASS.index("down")]
    assert torch.allclose(tables[:, 0], named, atol=1e-5)
    assert torch.allclose(tables[:, 1], table[:, rate, COMPASS.index("right")], atol=1e-6)
    # the caption-free branch of guidance (all pads) gets no motion
    blank = video_sequence(model.config, torch.zeros_like(ids), 4, torch.zeros(2, 5, 8, 8).long())
    assert not model.caption_motion(blank).any()


def test_word_embeddings_correct_only_the_caption_words():
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", word_embeddings=True)
    plain = CogVideo.from_cogview(tiny_cogview(), "keyframes")
    sequence = video_sequence(model.config, captions(), 4, torch.randint(0, K, (2, 5, 8, 8)))
    with torch.no_grad():
        model.word_emb.weight.normal_()
        changed = (model.embed(sequence, 0) - plain.embed(sequence, 0)).abs().sum(-1) > 0
    text_len = model.config.base.text_len
    assert changed[:, :text_len].all() and not changed[:, text_len:].any()
    # and each word's own correction: "left" and "right" are now told apart by it
    words = sequence[:, :text_len] - model.config.base.num_codes
    got = model.embed(sequence, 0)[:, :text_len] - plain.embed(sequence, 0)[:, :text_len]
    assert torch.allclose(got, model.word_emb.weight[words].detach(), atol=1e-6)


@pytest.mark.parametrize("step", [4, 2])
def test_compass_stage_trains_and_is_measured_on_compass_clips(step):
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", motion="compass",
                                  compass_step_px=step)
    cells = {s * 8 for s in range(-step // 2, step // 2 + 1)}  # whole cells per key frame
    data = FreshWindows(model.config, seed=0, stride=4)
    for index in range(4):  # every training clip moves its digits by whole cells per key frame
        item, clip = data[index], data.clip(index)
        assert clip.config == clip_config("compass", step_px=step) == model.config.clips
        moved = np.diff(clip.trajectories.positions[0, ::4], axis=0)  # (4, k, 2)
        walls = np.stack([clip.trajectories.bounces[0, 4 * i + 1 : 4 * i + 5].any(0)
                          for i in range(4)])  # (4, k): a wall inside the transition
        assert set(np.unique(moved[~walls])) <= cells
        if step == 4:  # on the 4-px lattice a wall turns p into 2L − p: still whole cells
            assert set(np.unique(moved)) <= cells
        assert item["frames"].shape == (5, 64, 64)
    assert FreshWindows(CogVideo.from_cogview(tiny_cogview(), "keyframes").config).config == (
        clip_config("any"))
    # the stage's evaluation clips move as its training clips did, under their own cache key
    compass, paper = stage_test_clips(model, 4), stage_test_clips(tiny_cogview(), 4)
    assert set(np.unique(compass.positions[:, 4] - compass.positions[:, 0])) <= cells | {-4, 4}
    assert not set(np.unique(paper.positions[:, 4] - paper.positions[:, 0])) <= cells | {-4, 4}
    with pytest.raises(ValueError, match="step_length = 1/L"):  # 36 px is not 5-px steps
        CogVideo.from_cogview(tiny_cogview(), "keyframes", motion="compass", compass_step_px=5)


@pytest.mark.parametrize("options", [{}, {"relative_bias": True, "gate_scale": 10.0, "word_embeddings": True,
                                     "caption_offsets": True}])
def test_gate_at_init_reproduces_cogview_frame_by_frame(options):
    base = tiny_cogview()
    for stage, n_frames in (("keyframes", 5), ("interp", 3)):
        model = CogVideo.from_cogview(base, stage, **options).eval()
        torch.manual_seed(1)
        codes = torch.randint(0, K, (2, n_frames, 8, 8))
        stride = 4 if stage == "keyframes" else 2
        logits, _ = model(video_sequence(model.config, captions(), stride, codes))
        frame_len = model.config.base.frame_len
        for f in range(n_frames):
            reference, _ = base(cogview_sequence(captions(), codes[:, f], K))
            start = 27 + f * frame_len
            got = logits[:, start : start + frame_len]
            assert torch.allclose(got, reference[:, 26:], atol=1e-5), (stage, f)
    # and the gate is what makes it so: with α ≠ 0 the outputs differ
    with torch.no_grad():
        model.gate.fill_(0.5)
    moved, _ = model(video_sequence(model.config, captions(), 2, codes))
    assert not torch.allclose(moved[:, 27:], logits[:, 27:], atol=1e-3)


@pytest.mark.parametrize("options", [{}, {"relative_bias": True, "word_embeddings": True,
                                     "caption_offsets": True}])
def test_training_step_leaves_the_spatial_channel_unchanged(clips, options):
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", **options)
    frozen = {k: v.clone() for k, v in model.base.state_dict().items()}
    new = {k: v.clone() for k, v in model.named_parameters() if not k.startswith("base.")}
    assert all(not p.requires_grad for p in model.base.parameters())
    config = TrainConfig(steps=2, batch_size=4, lr=1e-2, warmup_steps=0, weight_decay=0.1,
                         progress=False)
    fit(model, sequence_loss, VideoDataset(clips, model.config, seed=0), config)
    for key, value in model.base.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    changed = [k for k, v in model.named_parameters() if k in new and not torch.equal(v, new[k])]
    assert {"gate", "rate_emb.weight"} <= set(changed)
    assert any(k.startswith("temporal.") for k in changed)
    biases = {f"temporal.{i}.bias" for i in range(len(model.temporal))} | {
        "word_emb.weight", "motion_bias"}
    assert biases <= set(changed) if options else not biases & set(new)


@pytest.mark.parametrize("options", [{}, {"relative_bias": True, "gate_scale": 10.0, "word_embeddings": True,
                                     "caption_offsets": True}])
def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path, options):
    model = CogVideo.from_cogview(tiny_cogview(), "interp", **options)
    with torch.no_grad():
        model.gate.normal_()
        for channel in model.temporal if options else ():
            channel.bias.normal_()
        if options:
            model.word_emb.weight.normal_()
            model.motion_bias.normal_()
    path = save_checkpoint(tmp_path / "interp.pt", model=model)
    again = build_model_from_checkpoint(path)
    codes = torch.randint(0, K, (1, 3, 8, 8))
    sequence = video_sequence(model.config, captions(1), 1, codes)
    assert torch.allclose(model.eval()(sequence)[0], again.eval()(sequence)[0])


# --------------------------------------------------------------------------- hierarchy, guidance
@pytest.mark.parametrize("options", [{}, {"relative_bias": True, "word_embeddings": True,
                                     "caption_offsets": True}])
def test_kv_cached_sampling_matches_full_recompute(options):
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", **options).eval()
    with torch.no_grad():
        model.gate.normal_(std=0.5)
        for channel in model.temporal if options else ():
            channel.bias.normal_()
        if options:
            model.word_emb.weight.normal_()
            model.motion_bias.normal_()
    sequence = video_sequence(model.config, captions(1), 4, torch.randint(0, K, (1, 5, 8, 8)))
    full, _ = model(sequence)
    cache = model.new_cache()
    parts = [model(sequence[:, :40], cache=cache)[0]]
    parts += [model(sequence[:, i : i + 1], cache=cache)[0] for i in range(40, 60)]
    assert torch.allclose(torch.cat(parts, 1), full[:, :60], atol=1e-5)


def test_interpolation_keeps_the_given_frames_and_doubles_the_rate():
    model = CogVideo.from_cogview(tiny_cogview(), "interp").eval()
    keys = torch.randint(0, K, (1, 3, 8, 8))
    once = interpolate_once(model, captions(1), keys, stride=2, seed=0)
    assert once.shape == (1, 5, 8, 8) and torch.equal(once[:, ::2], keys)
    video = interpolate(model, captions(1), keys, key_stride=4, seed=0)
    assert video.shape == (1, 9, 8, 8) and torch.equal(video[:, ::4], keys)


def test_key_frames_continue_from_given_first_frames():
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes").eval()
    with torch.no_grad():
        model.gate.normal_(std=0.5)  # the temporal channel takes part
    drawn = sample_keyframes(model, captions(), greedy=True, guidance=2.0)
    # given the key frames the stage drew itself, greedy decoding goes on exactly as before
    for f in (1, 3):
        again = sample_keyframes(model, captions(), greedy=True, guidance=2.0,
                                 given=drawn[:, :f])
        assert torch.equal(again, drawn), f
    # another first frame is kept as given, and the next key frames follow from it
    other = (drawn[:, :1] + 1) % K
    moved = sample_keyframes(model, captions(), greedy=True, guidance=2.0, given=other)
    assert torch.equal(moved[:, :1], other) and not torch.equal(moved[:, 1:], drawn[:, 1:])
    for bad in (drawn[:1, :1], drawn[:, 0], drawn):  # batch, no frame axis, nothing left to draw
        with pytest.raises(ValueError, match=r"given must be key frames \(b, f, h, w\) with b = 2"):
            sample_keyframes(model, captions(), given=bad)


def test_text_to_video_evaluation_checks_the_given_first_frames():
    keys = CogVideo.from_cogview(tiny_cogview(), "keyframes")
    interp = CogVideo.from_cogview(tiny_cogview(), "interp")
    with pytest.raises(ValueError, match="given must hold key frames for each of the 2 prompts"):
        evaluate_text_to_video(keys, interp, None, num_prompts=2,
                               given=torch.zeros(3, 1, 8, 8, dtype=torch.long))


def test_guidance_weights_zero_and_one():
    cond, uncond = torch.randn(3, K), torch.randn(3, K)
    assert torch.allclose(classifier_free_guidance(cond, uncond, 1.0), cond)
    assert torch.allclose(classifier_free_guidance(cond, uncond, 0.0), uncond)
    model = CogVideo.from_cogview(tiny_cogview(), "interp").eval()
    with torch.no_grad():
        model.gate.normal_(std=0.5)
    empty = torch.zeros_like(captions())
    left, right = torch.randint(0, K, (2, 2, 8, 8))
    # w = 0 ignores the text: the same frame as the caption-free model at w = 1 (greedy)
    zero = fill_middle(model, captions(), left, right, stride=1, guidance=0.0, greedy=True)
    assert torch.equal(zero, fill_middle(model, empty, left, right, stride=1, guidance=1.0,
                                         greedy=True))
    base = tiny_cogview()
    assert torch.equal(sample_images(base, captions(), guidance=0.0, greedy=True),
                       sample_images(base, empty, guidance=1.0, greedy=True))
    with pytest.raises(ValueError, match="guidance"):
        sample_images(base, captions(), guidance=-1.0)


# --------------------------------------------------------------------------- learning
def _fixed_batch_loss(model, dataset, steps: int, lr: float) -> tuple[float, float]:
    batch = {key: torch.stack([dataset[i][key] for i in range(8)]) for key in ("input", "target")}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    first = None
    for _ in range(steps):
        loss, _ = sequence_loss(model, batch)
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, float(loss.detach())


@pytest.fixture(scope="module")
def trained_base(clips) -> CogView:
    """A tiny CogView trained on a fixed batch of frames of the clips."""
    base = tiny_cogview()
    first, last = _fixed_batch_loss(base, FrameCaptionDataset(clips, seed=0), 60, 1e-2)
    base.losses = (first, last)
    return base


def test_tiny_cogview_learns_a_fixed_batch(trained_base):
    first, last = trained_base.losses
    assert first > 3.5 and last < 1.0, (first, last)  # ln 64 = 4.16 nats at the start


@pytest.mark.parametrize("stage", ["keyframes", "interp"])
def test_tiny_stages_start_from_the_image_model_and_learn_in_time(clips, trained_base, stage):
    model = CogVideo.from_cogview(copy.deepcopy(trained_base), stage)
    first, last = _fixed_batch_loss(model, VideoDataset(clips, model.config, seed=0), 40, 1e-2)
    # the frozen image model already knows these frames (an untrained one starts at ln 64)...
    assert first < 2.5, first
    # ...and the temporal channels, the only part that learns, lower the loss further
    assert last < 0.8 * first, (first, last)


# --------------------------------------------------------------------------- captions and data
def test_captions_for_frames_and_windows():
    assert quadrant(np.array([0.0, 36.0])) == "up-right"
    assert quadrant(np.array([30.0, 2.0])) == "down-left"
    assert frame_caption(np.array([3, 7]), np.array([[0, 0], [36, 36]])) == (
        "digit 3 up-left and digit 7 down-right")
    batch = generate_clips(4, load_digits("train"), MovingMNISTConfig(num_frames=17), seed=3)
    directions = batch.trajectories.directions
    # over the whole clip, the window caption is the dataset's caption
    assert [motion_caption(batch.digits[i], directions[i, :-1]) for i in range(4)] == \
        captions_for(batch)


def test_datasets_score_only_the_generated_codes(clips):
    model = CogVideo.from_cogview(tiny_cogview(), "interp")
    item = VideoDataset(clips, model.config, seed=0)[5]
    scored = torch.nonzero(item["target"] != -100).flatten()
    assert len(scored) == 64 and int(scored.min()) == 27 + 2 * 65  # the middle frame's codes
    item = FrameCaptionDataset(clips, seed=0)[5]
    assert int((item["target"] != -100).sum()) == 64
    assert torch.equal(FrameCaptionDataset(clips, seed=0)[5]["input"], item["input"])


# --------------------------------------------------------------------------- errors, commands
@pytest.mark.parametrize("prompt,message", [
    ("digit 3 moves sideways", "accepted words"),
    ("3 digit moves left", "outside the caption grammar"),
    ("digit 3 moves left and digit 1 moves up and digit 2 moves up and digit 4 moves up",
     "at most 3 digits"),
    ("", "non-empty"),
])
def test_bad_prompts_raise_clear_errors(prompt, message):
    with pytest.raises(ValueError, match=message):
        encode_prompt(prompt)


def test_bad_frame_rates_raise_clear_errors():
    keyframes = CogVideo.from_cogview(tiny_cogview(), "keyframes")
    with pytest.raises(ValueError, match=r"accepted strides .*\[1, 2, 4\]"):
        sample_keyframes(keyframes, captions(), stride=3)
    with pytest.raises(ValueError, match=r"accepted strides .*\[1, 2\]"):
        check_stride(4, "interp")
    interp = CogVideo.from_cogview(tiny_cogview(), "interp")
    with pytest.raises(ValueError, match="frame rate"):
        interpolate_once(interp, captions(), torch.zeros(2, 3, 8, 8, dtype=torch.long), stride=4)


def test_targets_and_sample_command(tmp_path, capsys):
    assert set(COGVIEW.schedules) == set(KEYFRAMES.schedules) == {"tiny", "small", "full"}
    for name, target in (("keyframes", KEYFRAMES), ("interp", INTERPOLATION)):
        torch.manual_seed(0)
        save_checkpoint(tmp_path / f"cogvideo-{name}.pt", model=target.build_model("tiny"))
    out = tmp_path / "t2v.npz"
    argv = ["sample", "cogvideo", "--prompt", PROMPT, "--num", "1", "--guidance", "2",
            "--checkpoint", str(tmp_path), "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0
    with np.load(out) as saved:
        assert saved["videos"].shape == (1, 17, 64, 64) and saved["videos"].dtype == np.uint8
        assert saved["captions"].tolist() == [PROMPT]
    swapped = f"{tmp_path}/cogvideo-interp.pt,{tmp_path}/cogvideo-keyframes.pt"
    for change, message in ((("--checkpoint", "one.pt"), "KEYFRAMES.pt,INTERP.pt"),
                            (("--prompt", "digit 3 moves fast"), "accepted words"),
                            (("--checkpoint", swapped), "CogVideo of stage 'keyframes'")):
        flag, value = change
        bad = list(argv)
        bad[bad.index(flag) + 1] = value
        with pytest.raises(SystemExit) as err:  # a one-line user error, not a traceback
            cli_main(bad)
        assert err.value.code == 2 and message in capsys.readouterr().err


# --------------------------------------------------------------------------- fresh clips
def test_fresh_items_are_new_clips_that_replay_exactly():
    frames = FreshFrames(seed=0)
    assert len(frames) > 10**9  # endless: no pool
    a, b = frames[7], frames[8]
    assert a["frames"].shape == (1, 64, 64) and a["frames"].dtype == torch.uint8
    assert torch.equal(FreshFrames(seed=0)[7]["frames"], a["frames"])  # (seed, index) → item
    assert torch.equal(FreshFrames(seed=0)[7]["caption"], a["caption"])
    assert not torch.equal(a["frames"], b["frames"])
    assert not torch.equal(FreshFrames(seed=1)[7]["frames"], a["frames"])
    # the caption names the digits of the very frame shown
    clip = frames.clip(7)
    t = [i for i in range(17) if np.array_equal(clip.videos[0, i], a["frames"][0].numpy())][0]
    expected = frame_caption(clip.digits[0], clip.trajectories.positions[0, t])
    assert a["caption"].tolist() == CaptionTokenizer().encode(expected)


@pytest.mark.parametrize("stage", ["keyframes", "interp"])
def test_fresh_windows_hold_the_stage_frames_of_their_clip(stage):
    model = CogVideo.from_cogview(tiny_cogview(), stage)
    data = FreshWindows(model.config, seed=0)
    for index in range(6):
        item, clip = data[index], data.clip(index)
        stride = item["stride"]
        assert stride in ((4, 2, 1) if stage == "keyframes" else (2, 1))
        times = model.config.frame_times
        assert item["frames"].shape == (len(times), 64, 64)
        # the frames are the clip's, `stride` apart, in the stage's sequence order
        firsts = [f for f in range(17) if np.array_equal(clip.videos[0, f],
                                                         item["frames"][0].numpy())]
        assert any(all(np.array_equal(clip.videos[0, f + t * stride], item["frames"][j].numpy())
                       for j, t in enumerate(times)) for f in firsts)


def test_fresh_loss_encodes_the_frames_as_the_pooled_sequences_do(clips):
    base = tiny_cogview()
    model = CogVideo.from_cogview(base, "keyframes")
    data = FreshWindows(model.config, seed=0, stride=4)
    batch = default_collate([data[i] for i in range(3)])  # what the training loader gives
    pair = fresh_sequences(model, batch)
    tokenizer = load_tokenizer(base.config.tokenizer)
    codes = tokenizer.encode(batch["frames"])
    expected = video_sequence(model.config, batch["caption"], 4, codes)
    assert torch.equal(pair["input"], expected[:, :-1])
    assert (pair["target"][:, : base.config.text_len] == -100).all()  # the caption is given
    loss, logs = fresh_loss(model, batch)
    assert torch.isfinite(loss) and logs["bits_per_code"] == pytest.approx(
        float(loss.detach()) / math.log(2))
    frames = FreshFrames(seed=0)
    batch = default_collate([frames[i] for i in range(3)])
    codes = tokenizer.encode(batch["frames"])[:, 0]
    assert torch.equal(fresh_sequences(base, batch)["input"],
                       cogview_sequence(batch["caption"], codes, 64)[:, :-1])


def test_the_cogview_target_learns_from_fresh_clips():
    torch.manual_seed(0)
    model = COGVIEW.build_model("tiny")
    config = TrainConfig(steps=80, batch_size=16, lr=3e-3, warmup_steps=5, progress=False,
                         device="cpu")
    result = fit(model, COGVIEW.loss_fn, COGVIEW.build_dataset("tiny", 0), config)
    first = result.history[0]["bits_per_code"]
    last = sum(h["bits_per_code"] for h in result.history[-10:]) / 10
    assert first > 5.5 and last < first - 1.0, (first, last)  # log2(64) = 6 bits at the start


# --------------------------------------------------------------------------- evaluation
def test_evaluations_report_bits_with_and_without_the_caption(trained_base):
    from minivideo.metrics.cogvideo_quality import evaluate_cogview, evaluate_keyframes

    figures = evaluate_cogview(trained_base, num_clips=4)
    assert 0 < figures["test_bits_per_code"] < figures["uniform_bits_per_code"] == 6
    assert figures["caption_bits_saved_per_code"] == pytest.approx(
        figures["test_bits_per_code_no_caption"] - figures["test_bits_per_code"], abs=1e-3)
    stage = evaluate_keyframes(CogVideo.from_cogview(trained_base, "keyframes"), num_clips=4)
    assert stage["gate_mean_abs"] == 0 and 0 < stage["test_bits_per_code"] < 6
    # the first key frame and the four that follow it make up the whole figure
    assert stage["first_keyframe_bits_per_code"] + 4 * stage["later_keyframes_bits_per_code"] \
        == pytest.approx(5 * stage["test_bits_per_code"], abs=2e-3)
    assert stage["direction_bits_saved_per_code"] == pytest.approx(
        stage["later_keyframes_bits_reversed_directions"]
        - stage["later_keyframes_bits_per_code"], abs=2e-3)
    assert stage["direction_bits_saved_per_code"] != 0  # the caption's words reach the model
    with pytest.raises(TypeError, match="keyframes"):
        evaluate_keyframes(trained_base)


def test_reversed_directions_turn_every_compass_word_around():
    from minivideo.metrics.cogvideo_quality import reverse_directions

    caption = "digit 3 moves left then up-right and digit 7 moves down"
    assert reverse_directions(caption) == "digit 3 moves right then down-left and digit 7 moves up"
    assert reverse_directions(reverse_directions(caption)) == caption


def test_text_to_video_evaluation_runs_the_hierarchy_and_the_judge(trained_base):
    from minivideo.metrics.judge import Judge, JudgeConfig

    keys = CogVideo.from_cogview(trained_base, "keyframes").eval()
    interp = CogVideo.from_cogview(trained_base, "interp").eval()
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(stem_channels=(4, 8), channels=8, num_blocks=1, embed_dim=16))
    figures = evaluate_text_to_video(keys, interp, judge, num_prompts=2, batch_size=2)
    assert {"t2v_caption_digits", "t2v_caption_motion", "t2v_caption_both"} <= set(figures)
    assert figures["t2v_seconds_per_clip"] > 0 and figures["t2v_prompts"] == 2


def _oracle(judge, present, directions, seen):
    """Make `judge` read `present` / `directions` for whatever it is shown (recording shapes)."""
    from minivideo.metrics.judge import JudgePrediction

    def predict(videos, batch_size=256, motion="fit"):
        seen.append(tuple(videos.shape))
        return JudgePrediction(present.float(), present, directions,
                               torch.zeros_like(directions))

    judge.predict = predict
    return judge


def test_text_to_video_figures_are_what_the_judge_reads_of_the_prompts(trained_base):
    from minivideo.metrics.captions import caption_targets
    from minivideo.metrics.cogvideo_quality import _clip_caption, evaluate_text_to_video, test_clips
    from minivideo.metrics.judge import Judge, JudgeConfig

    keys = CogVideo.from_cogview(trained_base, "keyframes").eval()
    interp = CogVideo.from_cogview(trained_base, "interp").eval()
    clips = test_clips(keys, 4)
    named, first = caption_targets([_clip_caption(clips, i) for i in range(4)])
    directions = torch.zeros(4, 10, dtype=torch.long)
    for i, wanted in enumerate(first):
        for digit, allowed in wanted.items():
            directions[i, digit] = min(allowed)
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(stem_channels=(4, 8), channels=8, num_blocks=1, embed_dim=16))
    seen = []
    right = evaluate_text_to_video(keys, interp, _oracle(judge, named, directions, seen),
                                   num_prompts=4, batch_size=2)
    assert (right["t2v_caption_digits"], right["t2v_caption_motion"]) == (1.0, 1.0)
    assert seen == [(4, 17, 64, 64)]  # the whole 17-frame clips of all 4 prompts
    wrong_way = directions.clone()
    wrong_way[:2] = (directions[:2] + 4) % 8  # the opposite direction in two clips
    half = evaluate_text_to_video(keys, interp, _oracle(judge, named, wrong_way, []),
                                  num_prompts=4, batch_size=2)
    assert (half["t2v_caption_digits"], half["t2v_caption_motion"]) == (1.0, 0.5)
    assert half["t2v_caption_both"] == 0.5


def test_cogview_frames_are_scored_by_what_the_judge_reads(trained_base):
    from minivideo.metrics.cogvideo_quality import evaluate_cogview_frames, test_clips
    from minivideo.metrics.judge import MIN_FRAMES, Judge, JudgeConfig

    clips = test_clips(trained_base, 4)
    truth = torch.zeros(4, 10, dtype=torch.bool)
    truth[torch.arange(4)[:, None], torch.as_tensor(clips.digits).long()] = True
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(stem_channels=(4, 8), channels=8, num_blocks=1, embed_dim=16))
    still = torch.zeros(4, 10, dtype=torch.long)
    seen = []
    figures = evaluate_cogview_frames(trained_base, _oracle(judge, truth, still, seen),
                                      num_frames=4, guidance=1.0)
    assert figures["frames_judge_reads"] == figures["frames_judge_reads_tokenizer"] == 1.0
    assert seen == [(4, MIN_FRAMES, 64, 64)] * 2  # drawn frames, then reconstructions, held still
    one_wrong = truth.clone()
    one_wrong[0] = ~one_wrong[0]
    figures = evaluate_cogview_frames(trained_base, _oracle(judge, one_wrong, still, []),
                                      num_frames=4)
    assert figures["frames_judge_reads"] == 0.75 and figures["frames_guidance"] == 3.0


def test_the_from_scratch_ablation_is_the_same_network_with_nothing_frozen():
    torch.manual_seed(0)
    frozen, scratch = KEYFRAMES.build_model("tiny"), KEYFRAMES_FROM_SCRATCH.build_model("tiny")
    assert {k: v.shape for k, v in frozen.state_dict().items()} == {
        k: v.shape for k, v in scratch.state_dict().items()}  # one architecture
    trainable = {name for name, p in scratch.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in scratch.named_parameters()}  # everything learns
    assert not any(p.requires_grad for p in frozen.base.parameters())  # the frozen base does not
    assert scratch.config.base_name == "scratch" and frozen.config.base_name != "scratch"
    # it trains through the same loss on fresh windows, and its base weights move
    before = copy.deepcopy(scratch.base.state_dict())
    data = KEYFRAMES_FROM_SCRATCH.build_dataset("tiny", 0)
    fit(scratch, KEYFRAMES_FROM_SCRATCH.loss_fn, data,
        TrainConfig(steps=2, batch_size=2, lr=1e-3, progress=False, seed=0))
    assert any(not torch.equal(before[k], v) for k, v in scratch.base.state_dict().items())


# --------------------------------------------------------------------------- held-out pairs
def test_training_windows_never_pair_a_digit_with_its_held_out_direction():
    config = KEYFRAMES.build_model("tiny").config
    assert config.extra["held_out_pairs"] == [list(p) for p in HELD_OUT_PAIRS]
    held, free = FreshWindows(config, seed=0), FreshWindows(config, seed=0, hold_out=False)
    redrawn = 0
    for index in range(60):
        clip = held.clip(index)
        assert not mentions_held_out(clip.digits[0], clip.trajectories.directions[0][:-1])
        redrawn += not np.array_equal(clip.videos, free.clip(index).videos)
        assert np.array_equal(clip.videos, held.clip(index).videos)  # (seed, index) replays
    assert 0 < redrawn < 60  # some clips held a pair (the check can fail), most did not
    assert not FreshWindows(config, split="test").hold_out  # test clips keep every pair


def test_held_out_prompts_use_only_held_out_pairs():
    prompts = held_out_prompts(32)
    assert len(set(prompts)) == 32 and held_out_prompts(32) == prompts  # fixed and distinct
    assert "digit 3 moves left and digit 7 moves down" in held_out_prompts(45)  # the demo's
    for prompt in prompts:
        words = prompt.split()
        pairs = {(int(words[1]), words[3]), (int(words[6]), words[8])}
        assert pairs <= set(HELD_OUT_PAIRS), prompt
        encode_prompt(prompt)  # the caption grammar accepts it
    with pytest.raises(ValueError, match=r"num must be an int in \[1, 45\]"):
        held_out_prompts(46)


def test_the_shipped_stages_cannot_be_measured_on_held_out_prompts():
    frozen = CogVideo.from_cogview(tiny_cogview(), "keyframes")  # built without the split
    with pytest.raises(ValueError, match="trained on every \\(digit, direction\\) pair"):
        evaluate_text_to_video(frozen, frozen, None, num_prompts=1, held_out=True)


def test_encoded_clip_cache_is_keyed_by_the_generator_labels(tmp_path, monkeypatch):
    # a cache written before the generator's labels changed (pixels unchanged) is not reused
    import minivideo.models.cogvideo.data as stage_data

    monkeypatch.setenv("MINIVIDEO_CACHE", str(tmp_path))
    tokenizer, compass = load_tokenizer("untrained-tiny"), clip_config("compass", step_px=4)
    first = encode_clips(tokenizer, 2, split="test", cache=True, clips=compass)
    (written,) = (tmp_path / "cogvideo").iterdir()
    monkeypatch.setattr(stage_data, "LABELS_VERSION", stage_data.LABELS_VERSION + 1)
    again = encode_clips(tokenizer, 2, split="test", cache=True, clips=compass)
    assert len(list((tmp_path / "cogvideo").iterdir())) == 2 and written.is_file()
    np.testing.assert_array_equal(first.directions, again.directions)  # same generator here
    # the paper's clips (clamp: labels never changed) keep their one, unversioned name
    encode_clips(tokenizer, 2, split="test", cache=True)
    names = sorted(p.name for p in (tmp_path / "cogvideo").iterdir())
    assert len(names) == 3 and sum(n.count("-") == 4 for n in names) == 1
