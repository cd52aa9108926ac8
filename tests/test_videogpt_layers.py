"""Layered VideoGPT class samples (issue 14): one-digit labels, the mixed stream, stacking apart."""

from unittest.mock import patch

import numpy as np
import pytest
import torch

from minivideo.__main__ import main as cli
from minivideo.checkpoints import build_model_from_checkpoint, save_checkpoint, write_manifest
from minivideo.data import MovingMNIST, MovingMNISTConfig, generate_clips, load_digits
from minivideo.data.moving_mnist import render
from minivideo.models.videogpt import NO_DIGIT, VideoGPT, VideoGPTConfig
from minivideo.models.videogpt_layers import (
    LayerStream,
    classify,
    label_scores,
    layered_class_clips,
    layered_predict_clips,
    layered_unconditional_clips,
    one_digit_labels,
    pair_labels,
    predict_layers,
    stack_apart,
    stack_prediction,
)
from minivideo.utils import to_uint8
from minivideo.vqvae import ClipTokenizer, ClipTokenizerConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _prior(**overrides) -> VideoGPT:
    config = dict(num_codes=32, grid=(4, 8, 8), tokenizer="vqvae-compact", null_class=True,
                  class_dropout=0.1, one_digit=0.5)
    return VideoGPT(VideoGPTConfig.preset("tiny", "class", **{**config, **overrides}))


def _tokenizer() -> ClipTokenizer:
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny"))
    with torch.no_grad():  # far-apart code vectors: different codes decode to different pixels
        tokenizer.quantizer.embedding.normal_(0, 20)
    return tokenizer.eval()


def test_a_one_digit_label_reads_bos_then_the_digit_and_drops_to_bos_null():
    model = _prior()
    null, bos, codes = model.config.null, model.config.bos, model.config.num_codes
    digits = torch.tensor([[3, NO_DIGIT], [NO_DIGIT, 8], [7, 3]])
    assert model.prefix(3, digits).tolist() == [[bos, codes + 3], [bos, codes + 8],
                                                [codes + 3, codes + 7]]
    assert model.null_prefix(3, digits).tolist() == [[bos, null], [bos, null], [null, null]]
    assert model.null_prefix(2, None).tolist() == [[null, null]] * 2


@pytest.mark.parametrize("digits, match", [
    ([[NO_DIGIT, NO_DIGIT]], "at most one slot"),
    ([[3, -2]], r"0\.\.9, or -1"),
])
def test_bad_one_digit_labels_are_refused(digits, match):
    with pytest.raises(ValueError, match=match):
        _prior()._check_condition(1, torch.tensor(digits), None)


def test_a_prior_not_trained_on_one_digit_refuses_the_label():
    with pytest.raises(ValueError, match=r"digits must lie in 0\.\.9,"):
        _prior(one_digit=0.0)._check_condition(1, torch.tensor([[3, NO_DIGIT]]), None)
    with pytest.raises(ValueError, match="one_digit must be in"):
        _prior(one_digit=1.0)
    with pytest.raises(ValueError, match="needs null_class"):
        _prior(one_digit=0.5, null_class=False, class_dropout=0.0)


def test_condition_dropout_keeps_a_one_digit_clip_one_digit(fed_prefixes):
    torch.manual_seed(0)
    model = _prior(class_dropout=0.5)
    codes = torch.randint(0, 32, (128, 4, 8, 8))
    digits = torch.randint(0, 10, (128, 2))
    one = torch.arange(128) % 2 == 0
    digits[one, 1] = NO_DIGIT
    prefix = fed_prefixes(model.train(), codes, digits)
    null, bos = model.config.null, model.config.bos
    assert (prefix[one, 0] == bos).all()  # one digit, labelled or not
    dropped_one = prefix[one, 1] == null
    dropped_two = (prefix[~one] == null).all(dim=1)
    assert not (prefix[~one] == bos).any()
    for dropped in (dropped_one, dropped_two):
        assert 0.3 < float(dropped.float().mean()) < 0.7


def test_the_layer_stream_mixes_fresh_one_and_two_digit_clips():
    data = LayerStream("train", seed=3, one_digit=0.5)
    items = [data[i] for i in range(120)]
    one = [i for i, item in enumerate(items) if item["digits"][1] == NO_DIGIT]
    assert 0.35 < len(one) / len(items) < 0.65
    single = MovingMNIST("train", num_clips=None, seed=4,
                         config=MovingMNISTConfig(num_frames=16, num_digits=1))
    i = one[0]
    assert torch.equal(items[i]["video"], single[i]["video"])
    assert int(items[i]["digits"][0]) == int(single[i]["digits"][0])
    two = next(i for i in range(len(items)) if i not in one)
    assert (items[two]["digits"] >= 0).all()
    assert torch.equal(data[two]["video"], items[two]["video"])  # the same item every time
    # one digit's ink is about half of two digits'
    ink = [float((item["video"] > 76).float().mean()) for item in items]
    assert np.mean([ink[i] for i in one]) < 0.7 * np.mean(
        [ink[i] for i in range(len(items)) if i not in one])
    with pytest.raises(ValueError, match="one_digit must be a share"):
        LayerStream(one_digit=1.5)


def test_stacking_apart_keeps_the_draws_whose_ink_overlaps_least():
    layers = torch.zeros(1, 2, 3, 2, 8, 8)  # (b, layer, draw, T, H, W)
    layers[0, 0, :, :, 0:4, 0:4] = 1.0  # every draw of the first layer: top-left
    layers[0, 1, 0, :, 0:4, 0:4] = 0.8  # second layer, draw 0: on top of it
    layers[0, 1, 1, :, 4:8, 4:8] = 0.6  # draw 1: apart
    layers[0, 1, 2, :, 4:8, 4:8] = 0.9  # draw 2: as far apart, later: the first one wins
    clip = stack_apart(layers)
    assert clip.shape == (1, 2, 8, 8)
    assert torch.equal(clip[0], torch.maximum(layers[0, 0, 0], layers[0, 1, 1]))
    with pytest.raises(ValueError, match="2 layers per clip"):
        stack_apart(torch.zeros(1, 3, 2, 2, 8, 8))


def test_layered_class_clips_are_seeded_stacks_of_one_digit_layers():
    torch.manual_seed(0)
    model, tokenizer = _prior().eval(), _tokenizer()
    digits = torch.tensor([[3, 7], [1, 1]])
    a = layered_class_clips(model, tokenizer, digits, apart=2, seed=5, guidance=2.0)
    b = layered_class_clips(model, tokenizer, digits, apart=2, seed=5, guidance=2.0)
    c = layered_class_clips(model, tokenizer, digits, apart=2, seed=6, guidance=2.0)
    assert a.shape == (2, 16, 64, 64) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs, match", [
    (dict(apart=0), "apart must be a positive int"),
    (dict(digits=torch.tensor([[3, 12]])), r"digits must lie in 0\.\.9"),
    (dict(digits=torch.tensor([3, 7])), r"digits must be an integer tensor \(b, 2\)"),
])
def test_bad_layered_requests_are_refused(kwargs, match):
    arguments = {"digits": torch.tensor([[3, 7]]), **kwargs}
    with pytest.raises(ValueError, match=match):
        layered_class_clips(_prior().eval(), _tokenizer(), arguments.pop("digits"), **arguments)
    with pytest.raises(ValueError, match="clips of one digit too"):
        layered_class_clips(_prior(one_digit=0.0), _tokenizer(), torch.tensor([[3, 7]]))


def test_the_sample_command_draws_layers_when_the_prior_can(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIVIDEO_CHECKPOINTS", str(tmp_path))
    tokenizer = _tokenizer()
    path = save_checkpoint(tmp_path / "vqvae-compact.pt", model=tokenizer)
    write_manifest(path, command="test", data_seed=0, train_seconds=0, device="cpu", metrics={})
    torch.manual_seed(0)
    files = {}
    for name, one_digit in (("layers", 0.5), ("plain", 0.0)):
        prior = _prior(one_digit=one_digit)
        files[name] = save_checkpoint(tmp_path / f"{name}.pt", model=prior,
                                      model_config=prior.config_dict())
        write_manifest(files[name], command="test", data_seed=0, train_seconds=0,
                       device="cpu", metrics={})

    def sample(name, *extra, cond=("--cond", "class", "--digits", "3,7")):
        out = tmp_path / "out.npz"
        try:
            cli(["sample", "videogpt", *cond, "--num", "2",
                 "--checkpoint", str(files[name]), "--out", str(out), "--no-progress",
                 "--seed", "4", *extra])
        except SystemExit:  # a usage error: the message is on stderr
            return None
        with np.load(out) as saved:
            return saved["videos"]

    layered = sample("layers", "--apart", "2")
    prior = build_model_from_checkpoint(files["layers"]).eval()
    expected = layered_class_clips(prior, tokenizer, torch.tensor([[3, 7]] * 2),
                                   apart=2, seed=4)
    assert np.array_equal(layered, to_uint8(expected))
    assert not np.array_equal(sample("layers", "--layers", "off"), layered)
    assert sample("plain", "--layers", "on") is None
    assert "--layers on needs a prior trained on clips of one digit" in capsys.readouterr().err
    assert sample("plain", "--apart", "2", "--layers", "off") is None
    assert "--apart is only used with --cond class drawn in layers" in capsys.readouterr().err
    # unconditional: two uniform classes, each layer unguided, stacked as drawn
    free = sample("layers", cond=("--cond", "none"))
    assert np.array_equal(free, to_uint8(layered_unconditional_clips(prior, tokenizer, 2,
                                                                     seed=4)))
    assert not np.array_equal(sample("layers", "--layers", "off", cond=("--cond", "none")), free)
    # prediction: the given frames split into layers, each continued
    batch = generate_clips(2, load_digits("test"), MovingMNISTConfig(num_frames=16), seed=1)
    np.savez(tmp_path / "context.npz", videos=batch.videos)
    given = ("--cond", "frames", "--frames", str(tmp_path / "context.npz"))
    predicted = sample("layers", cond=given)
    expected, _ = layered_predict_clips(prior, tokenizer, torch.from_numpy(batch.videos[:, :8]),
                                        seed=4)
    assert np.array_equal(predicted, to_uint8(expected))
    assert np.array_equal(predicted[:, :8], batch.videos[:, :8])
    assert not np.array_equal(sample("layers", "--layers", "off", cond=given), predicted)
    as_drawn, _ = layered_predict_clips(prior, tokenizer, torch.from_numpy(batch.videos[:, :8]),
                                        seed=4, redraw_digits=False)
    assert np.array_equal(sample("layers", "--redraw", "off", cond=given), to_uint8(as_drawn))
    assert not np.array_equal(to_uint8(as_drawn), predicted)
    assert sample("layers", "--redraw", "off") is None
    assert "--redraw is only used with --cond frames" in capsys.readouterr().err


def test_layered_unconditional_clips_draw_their_own_classes_from_a_seed():
    model, tokenizer = _prior().eval(), _tokenizer()
    a = layered_unconditional_clips(model, tokenizer, 2, seed=3)
    assert a.shape == (2, 16, 64, 64)
    assert torch.equal(a, layered_unconditional_clips(model, tokenizer, 2, seed=3))
    assert not torch.equal(a, layered_unconditional_clips(model, tokenizer, 2, seed=4))
    with pytest.raises(ValueError, match="num must be a positive int"):
        layered_unconditional_clips(model, tokenizer, 0)


def test_label_scores_are_the_log_likelihood_of_the_given_codes_under_each_label():
    torch.manual_seed(0)
    model = _prior().eval()
    codes = torch.randint(0, 32, (3, 4, 8, 8))
    labels = torch.tensor([[0, NO_DIGIT], [4, NO_DIGIT], [2, 7], [9, NO_DIGIT]])
    scores = label_scores(model, codes[:, :2], labels.expand(3, -1, -1))
    assert scores.shape == (3, 4)
    # the plain path: the whole clip through forward(), the first two latent steps' codes scored
    for c, label in enumerate(labels):
        logits, _ = model(codes, label.expand(3, -1))
        logp = logits[:, : 2 * 64].log_softmax(-1)
        plain = logp.gather(-1, codes[:, :2].reshape(3, -1, 1))[..., 0].sum(1)
        torch.testing.assert_close(scores[:, c], plain, rtol=1e-4, atol=1e-3)
    assert len(one_digit_labels()) == 10 and len(pair_labels()) == 55
    assert len({tuple(p) for p in pair_labels().sort(dim=1).values.tolist()}) == 55


def test_classify_picks_the_label_the_prior_finds_likeliest():
    model, tokenizer = _prior().eval(), _tokenizer()
    frames = torch.rand(3, 8, 64, 64)
    labels = classify(model, tokenizer, frames, one_digit_labels())
    assert labels.shape == (3, 2) and bool((labels[:, 1] == NO_DIGIT).all())
    given = tokenizer.encode(frames)[:, :2]
    # with one view it is the argmax of label_scores
    with patch("minivideo.models.videogpt_layers.VIEWS", ((False, 0, 0),)):
        one_view = classify(model, tokenizer, frames, one_digit_labels())
    best = label_scores(model, given, one_digit_labels().expand(3, -1, -1)).argmax(dim=1)
    assert torch.equal(one_view[:, 0], best)


def test_layered_prediction_keeps_the_given_frames_and_splits_what_it_can():
    model, tokenizer = _prior().eval(), _tokenizer()
    batch = generate_clips(4, load_digits("test"), MovingMNISTConfig(num_frames=16), seed=2)
    frames = torch.from_numpy(batch.videos[:, :8])
    positions = np.zeros((1, 8, 2, 2), dtype=np.int64)  # clip 0: always one on the other
    positions[0, :, 0] = np.arange(8)[:, None] + 10
    positions[0, :, 1] = np.arange(8)[:, None] + 12
    frames[0] = torch.from_numpy(render(load_digits("test")[0][None, :2], positions))[0]
    clips, split = layered_predict_clips(model, tokenizer, frames, seed=3)
    assert clips.shape == (4, 16, 64, 64) and not split[0] and split[1:].any()
    torch.testing.assert_close(clips[:, :8], frames.float() / 255)
    again, _ = layered_predict_clips(model, tokenizer, frames, seed=3)
    assert torch.equal(clips, again)
    # by default each layer is redrawn with its given digit's pixels; off, stacked as drawn
    layers, found = predict_layers(model, tokenizer, frames, seed=3)
    assert torch.equal(clips, stack_prediction(layers, found, frames, redraw_digits=True))
    drawn = stack_prediction(layers, found, frames, redraw_digits=False)
    assert torch.equal(drawn[:, 8:], layers[:, :, 8:].amax(dim=1))
    assert torch.equal(clips[0], drawn[0])  # no templates where the clip did not split
    for i in split.nonzero()[:, 0].tolist():
        given = set((frames[i].float() / 255).unique().tolist())
        assert set(clips[i, 8:].unique().tolist()) <= given  # only the digits' own pixels
        assert not set(drawn[i, 8:].unique().tolist()) <= given
    with pytest.raises(ValueError, match="frames must hold a multiple of 4 frames"):
        layered_predict_clips(model, tokenizer, frames[:, :6])
