"""VideoGPT: learning, conditioning is used, valid samples, decoding, the commands, clear errors."""

import math

import numpy as np
import pytest
import torch

from minivideo.__main__ import main as cli_main
from minivideo.checkpoints import build_model_from_checkpoint, save_checkpoint, write_manifest
from minivideo.cli.sample import load_context, parse_digits
from minivideo.models.videogpt import (
    SCHEDULES,
    ClipCodes,
    VideoGPT,
    VideoGPTConfig,
    check_tokenizer,
    encode_clips,
    sample_clips,
    target,
    videogpt_loss,
)
from minivideo.train import TrainConfig, fit
from minivideo.vqvae import ClipTokenizer, ClipTokenizerConfig

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tiny models: one thread is fastest

# A small code grid keeps learning tests to seconds: 8 frames → (2, 4, 4) = 32 codes.
SMALL = dict(grid=(2, 4, 4), num_frames=8, num_codes=16, context_frames=4)
N_SEQ = 4  # distinct clips in the fixed batch


def tiny(cond: str, **overrides) -> VideoGPT:
    """A seeded tiny prior over the small grid."""
    torch.manual_seed(0)
    return VideoGPT(VideoGPTConfig.preset("tiny", cond, **{**SMALL, **overrides}))


def fixed_batch() -> dict[str, torch.Tensor]:
    """N_SEQ random code grids, each with its own digit pair and its own context frames."""
    gen = torch.Generator().manual_seed(0)
    return {
        "codes": torch.randint(0, 16, (N_SEQ, 2, 4, 4), generator=gen),
        "digits": torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7]]),
        "frames": (torch.rand(N_SEQ, 4, 64, 64, generator=gen) * 255).to(torch.uint8),
    }


def train_on_fixed_batch(cond: str) -> tuple[VideoGPT, list[dict]]:
    """Fit a tiny prior on the fixed batch (the whole dataset, one batch per step)."""
    model = tiny(cond)
    config = TrainConfig(steps=150, batch_size=N_SEQ, lr=1e-2, warmup_steps=10, seed=0,
                         progress=False, device="cpu")
    result = fit(model, videogpt_loss, ClipCodes(fixed_batch(), cond), config)
    return result.model.eval(), result.history


@pytest.fixture(scope="module")
def trained_class():
    return train_on_fixed_batch("class")


@pytest.fixture(scope="module")
def trained_frames():
    return train_on_fixed_batch("frames")


@pytest.fixture(scope="module")
def clip_tokenizer() -> ClipTokenizer:
    """An untrained tiny clip tokenizer: 64 codes, 16 frames → (4, 16, 16)."""
    torch.manual_seed(0)
    return ClipTokenizer(ClipTokenizerConfig.preset("tiny")).eval()


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("fixture", ["trained_class", "trained_frames"])
def test_tiny_model_learns_a_fixed_batch(fixture, request):
    """Random codes can only be memorised: from ln 16 = 2.77 nats per code to below 0.15.

    (That the memorised clips are told apart by their condition is the next two tests.)
    """
    _, history = request.getfixturevalue(fixture)
    assert history[0]["loss"] > 2.5  # starts near uniform
    assert np.mean([h["loss"] for h in history[-5:]]) < 0.15


def test_class_conditioning_is_used(trained_class):
    """Greedy samples reproduce the clip of the requested digits, and differ between classes."""
    model, _ = trained_class
    batch = fixed_batch()
    codes = model.sample_codes(N_SEQ, digits=batch["digits"], temperature=0)
    assert (codes == batch["codes"]).float().mean() > 0.95
    swapped = model.sample_codes(N_SEQ, digits=batch["digits"].roll(1, 0), temperature=0)
    assert (swapped == batch["codes"].roll(1, 0)).float().mean() > 0.95
    # the digit pair is a set: {1, 0} is the class {0, 1}
    flipped = model.sample_codes(1, digits=torch.tensor([[1, 0]]), temperature=0)
    assert torch.equal(flipped, model.sample_codes(1, digits=torch.tensor([[0, 1]]),
                                                   temperature=0))


def test_frame_conditioning_is_used(trained_frames):
    """Changing only the context frames changes the logits and the (greedy) samples."""
    model, _ = trained_frames
    batch = fixed_batch()
    codes = model.sample_codes(N_SEQ, frames=batch["frames"], temperature=0)
    assert (codes == batch["codes"]).float().mean() > 0.95
    logits_a, _ = model(batch["codes"], frames=batch["frames"])
    logits_b, _ = model(batch["codes"], frames=batch["frames"].roll(1, 0))
    assert (logits_a - logits_b).abs().max() > 1.0


def test_untrained_condition_changes_logits():
    model = tiny("class").eval()
    codes = fixed_batch()["codes"][:1]
    a, _ = model(codes, digits=torch.tensor([[3, 7]]))
    b, _ = model(codes, digits=torch.tensor([[3, 8]]))
    assert not torch.allclose(a, b)


# --------------------------------------------------------------------------- sampling
def test_sampled_ids_are_always_codes():
    """Even when the model prefers the class tokens and BOS, only code ids are drawn."""
    model = tiny("class").eval()
    forward = model.gpt.forward
    boost = torch.zeros(model.config.vocab_size)
    boost[model.config.num_codes :] = 100.0  # class tokens and BOS: overwhelmingly likely

    def biased(*args, **kwargs):
        logits, loss = forward(*args, **kwargs)
        return logits + boost, loss

    model.gpt.forward = biased
    codes = model.sample_codes(3, digits=torch.tensor([[1, 2]] * 3), temperature=2.0, seed=1)
    assert codes.shape == (3, 2, 4, 4) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < model.config.num_codes


def test_sampling_is_seeded():
    model = tiny("none").eval()
    a, b = (model.sample_codes(2, seed=5) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, model.sample_codes(2, seed=6))


def test_sample_clips_decodes_the_whole_clip(clip_tokenizer):
    """16-frame clips through the real (4, 16, 16) layout: KV-cached sampling, then decoding."""
    torch.manual_seed(0)
    model = VideoGPT(VideoGPTConfig.preset("tiny", "frames", num_codes=64)).eval()
    check_tokenizer(model, clip_tokenizer)
    context = torch.zeros(2, 8, 64, 64, dtype=torch.uint8)
    videos = sample_clips(model, clip_tokenizer, 2, frames=context, batch_size=1)
    assert videos.shape == (2, 16, 64, 64) and videos.dtype == torch.float32
    assert 0 <= float(videos.min()) and float(videos.max()) <= 1


def test_encode_clips_dataset(clip_tokenizer):
    data = encode_clips(clip_tokenizer, 3, context_frames=8, batch_size=2)
    assert data["codes"].shape == (3, 4, 16, 16) and int(data["codes"].max()) < 64
    assert data["digits"].shape == (3, 2) and data["frames"].shape == (3, 8, 64, 64)
    assert data["frames"].dtype == torch.uint8
    again = encode_clips(clip_tokenizer, 3, context_frames=8, batch_size=2)
    assert torch.equal(data["codes"], again["codes"])  # seeded
    item = ClipCodes(data, "frames")[1]
    assert set(item) == {"codes", "frames"}
    assert set(ClipCodes(data, "class")[0]) == {"codes", "digits"}


def test_checkpoint_round_trip(tmp_path):
    model = tiny("frames").eval()
    path = save_checkpoint(tmp_path / "vg.pt", model=model, model_config=model.config_dict())
    loaded = build_model_from_checkpoint(path).eval()
    batch = fixed_batch()
    assert torch.equal(model(batch["codes"], frames=batch["frames"])[0],
                       loaded(batch["codes"], frames=batch["frames"])[0])


def test_sample_command_end_to_end(tmp_path, monkeypatch, clip_tokenizer):
    """`python -m minivideo sample videogpt` on checkpoints in a temporary folder."""
    monkeypatch.setenv("MINIVIDEO_CHECKPOINTS", str(tmp_path))
    path = save_checkpoint(tmp_path / "vqvae-clip.pt", model=clip_tokenizer)
    write_manifest(path, command="test", data_seed=0, train_seconds=0, device="cpu", metrics={})
    torch.manual_seed(0)
    model = VideoGPT(VideoGPTConfig.preset("tiny", "class", num_codes=64))
    path = save_checkpoint(tmp_path / "videogpt-class.pt", model=model,
                           model_config=model.config_dict())
    write_manifest(path, command="test", data_seed=0, train_seconds=0, device="cpu", metrics={})
    out = tmp_path / "samples.npz"
    args = ["sample", "videogpt", "--cond", "class", "--digits", "3,7", "--num", "2",
            "--out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    with np.load(out) as saved:
        assert saved["videos"].shape == (2, 16, 64, 64) and saved["videos"].dtype == np.uint8
        assert saved["digits"].tolist() == [[3, 7], [3, 7]]
    with pytest.raises(SystemExit) as err:  # unknown digit: a clean exit, not a trace
        cli_main([*args[:5], "3,12", *args[6:]])
    assert err.value.code == 2


def test_a_wrong_checkpoint_is_a_user_error_but_a_type_error_is_a_bug(tmp_path, monkeypatch,
                                                                      capsys):
    import minivideo.cli.sample as sample_command

    not_a_prior = save_checkpoint(tmp_path / "tokenizer.pt",
                                  model=ClipTokenizer(ClipTokenizerConfig.compact("tiny")))
    with pytest.raises(SystemExit) as err:
        cli_main(["sample", "videogpt", "--checkpoint", str(not_a_prior), "--num", "1",
                  "--out", str(tmp_path / "x.npz"), "--no-progress"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "is not a VideoGPT checkpoint (it holds a ClipTokenizer)" in message
    assert "Traceback" not in message

    def broken(args):
        raise TypeError("a bug in a command")

    monkeypatch.setattr(sample_command, "run", broken)
    with pytest.raises(TypeError, match="a bug in a command"):  # not swallowed into exit 2
        cli_main(["sample", "videogpt", "--num", "1", "--out", str(tmp_path / "y.npz")])


def test_target_and_schedules():
    t = target("frames")
    assert set(t.schedules) == set(SCHEDULES) == {"tiny", "small", "full"}
    assert t.train_config("tiny").steps == SCHEDULES["tiny"]["steps"]
    # the frame-conditional step is dearer, so its CPU preset takes fewer steps
    assert t.train_config("small").steps < target("none").train_config("small").steps
    with pytest.raises(ValueError, match="cond must be one of"):
        target("text")


# --------------------------------------------------------------------------- errors
def test_config_errors():
    with pytest.raises(ValueError, match="context_frames must be a multiple of time_down=4"):
        VideoGPTConfig(cond="frames", context_frames=5)
    with pytest.raises(ValueError, match="cond must be one of"):
        VideoGPTConfig(cond="text")
    with pytest.raises(ValueError, match="grid"):
        VideoGPTConfig(grid=(4, 16))
    with pytest.raises(ValueError, match="does not know"):
        VideoGPT.from_config({"cond": "none", "n_layers": 2})


@pytest.mark.parametrize(("cond", "kwargs", "error", "match"), [
    ("frames", {"frames": torch.zeros(1, 5, 64, 64)}, ValueError, "wrong context length"),
    ("frames", {"frames": torch.zeros(1, 4, 32, 32)}, ValueError, r"\(1, 4, 64, 64\)"),
    ("frames", {}, ValueError, "pass the first 4 frames"),
    ("frames", {"frames": torch.zeros(1, 4, 64, 64, dtype=torch.int32)}, TypeError, "uint8"),
    ("class", {"digits": torch.tensor([[3, 10]])}, ValueError, "unknown digit"),
    ("class", {"digits": torch.tensor([[3]])}, ValueError, r"shape \(1, 2\)"),
    ("class", {"digits": torch.tensor([[3.0, 7.0]])}, TypeError, "integer"),
    ("class", {}, ValueError, "pass digits"),
    ("none", {"digits": torch.tensor([[3, 7]])}, ValueError, "cond='none'"),
])  # fmt: skip
def test_condition_errors(cond, kwargs, error, match):
    model = tiny(cond)
    codes = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    with pytest.raises(error, match=match):
        model(codes, **kwargs)
    with pytest.raises(error, match=match):
        model.sample_codes(1, **kwargs)


def test_code_errors():
    model = tiny("none")
    with pytest.raises(ValueError, match=r"codes must have shape \(b, 2, 4, 4\)"):
        model(torch.zeros(1, 32, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model(torch.full((1, 2, 4, 4), 16))
    with pytest.raises(ValueError, match="num must be a positive int"):
        model.sample_codes(0)


def test_tokenizer_mismatch(clip_tokenizer):
    with pytest.raises(ValueError, match="the tokenizer makes"):
        check_tokenizer(tiny("none"), clip_tokenizer)


@pytest.mark.parametrize(("text", "match"), [
    (None, "needs --digits"), ("3", "two digits"), ("3,7,1", "two digits"),
    ("a,b", "two digits"), ("3,12", "unknown digit"), ("-1,3", "two digits"),
])  # fmt: skip
def test_parse_digits_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_digits(text)


def test_parse_digits_and_context(tmp_path):
    assert parse_digits(" 3, 7") == [3, 7]
    path = tmp_path / "context.npz"
    np.savez(path, videos=np.zeros((2, 10, 64, 64), np.uint8))
    frames = load_context(path, 8, num=3)
    assert frames.shape == (3, 8, 64, 64) and frames.dtype == torch.uint8
    with pytest.raises(ValueError, match="wrong context length"):
        load_context(path, 12, num=1)
    np.savez(path, videos=np.zeros((2, 10, 64, 64), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_context(path, 8, num=1)
    with pytest.raises(ValueError, match="--frames file not found"):
        load_context(tmp_path / "missing.npz", 8, num=1)


def test_uniform_start_matches_vocabulary():
    """An untrained prior is close to uniform over the whole vocabulary (sanity of the loss)."""
    model = tiny("none")
    with torch.no_grad():
        _, loss = model(fixed_batch()["codes"])
    assert abs(float(loss) - math.log(model.config.vocab_size)) < 0.2


def test_edit_codes_redraws_only_the_masked_codes():
    torch.manual_seed(0)
    model = tiny("class").eval()
    t, h, w = model.config.grid
    codes = torch.randint(model.config.num_codes, (2, t, h, w), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(t, h, w, dtype=torch.bool)
    mask[t - 1] = True  # the last code step
    digits = torch.tensor([[3, 7], [1, 2]])
    edited = model.edit_codes(codes, mask, digits=digits, seed=0)
    assert edited.shape == codes.shape
    assert torch.equal(edited[:, ~mask], codes[:, ~mask])  # kept codes: untouched
    assert not torch.equal(edited[:, mask], codes[:, mask])  # the masked ones were redrawn
    assert int(edited.max()) < model.config.num_codes  # never a class token or BOS
    assert torch.equal(model.codes_of(model.sequence(codes, digits)), codes)
