"""The image prior: sequences, data, learning, sampling valid codes, decoding, commands, errors."""

import json
import math

import numpy as np
import pytest
import torch

import minivideo.models.image_prior as image_prior
from minivideo import registry
from minivideo.__main__ import main as cli_main
from minivideo.checkpoints import build_model_from_checkpoint, save_checkpoint
from minivideo.models.image_prior import (
    SCHEDULES,
    TARGET,
    FrameCodes,
    ImagePriorConfig,
    bos_token,
    build_prior,
    code_grid,
    encode_frames,
    frame_bits_per_token,
    from_sequences,
    prior_loss,
    sample_codes,
    sample_frames,
    sample_videos,
    to_sequences,
)
from minivideo.pretrained import tokenizer_record
from minivideo.train import fit
from minivideo.transformer import GPT, GPTConfig
from minivideo.vqvae import FrameTokenizer, FrameTokenizerConfig


@pytest.fixture(scope="module")
def tokenizer() -> FrameTokenizer:
    """An untrained tiny frame tokenizer: 64 codes, 8×8 per frame (its weights do not matter)."""
    torch.manual_seed(0)
    return FrameTokenizer(FrameTokenizerConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def codes(tokenizer) -> torch.Tensor:
    return encode_frames(tokenizer, 4, frames_per_clip=2, seed=0)


@pytest.fixture(scope="module")
def trained(codes) -> tuple[GPT, list[dict]]:
    """The tiny preset's schedule fitted on one fixed batch of 8 frames (the whole dataset)."""
    torch.manual_seed(0)
    prior = build_prior("tiny", 64, (8, 8))
    config = ImagePriorConfig.preset("tiny").train_config(seed=0, progress=False)
    assert config.batch_size == len(codes) == 8  # every step sees the same batch
    result = fit(prior, prior_loss, FrameCodes(codes, bos=64), config)
    return result.model.eval(), result.history


def test_sequences_are_bos_then_raster_order():
    grid = torch.arange(6).reshape(1, 2, 3)  # rows (0 1 2), (3 4 5)
    tokens = to_sequences(grid, bos=9)
    assert tokens.tolist() == [[9, 0, 1, 2, 3, 4, 5]]
    assert torch.equal(from_sequences(tokens, (2, 3)), grid)


def test_encode_frames_shape_dtype_and_seed(tokenizer, codes):
    assert codes.shape == (8, 8, 8) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < 64
    assert torch.equal(codes, encode_frames(tokenizer, 4, frames_per_clip=2, seed=0))
    assert not torch.equal(codes, encode_frames(tokenizer, 4, frames_per_clip=2, seed=1))


def test_prior_uses_factorised_2d_positions():
    prior = build_prior("tiny", 64, (8, 8))
    assert prior.config.pos_emb == "3d" and prior.config.grid == (1, 8, 8)
    assert prior.config.vocab_size == 65 and prior.config.block_size == 65
    assert bos_token(prior) == 64 and code_grid(prior) == (8, 8)


def test_tiny_prior_learns_a_fixed_batch(trained, codes):
    prior, history = trained
    # uniform guessing over 65 ids costs ln 65 = 4.17 nats. 8 frames hold 33 distinct codes
    # (about 2.8 nats of unigram entropy); memorising them drives the loss towards 0 (the tiny
    # schedule reaches 0.08-0.21 over init seeds 0-2 and data seeds 0-1)
    assert history[0]["loss"] > 3.5
    assert history[-1]["loss"] < 0.5, history[-1]["loss"]
    torch.manual_seed(0)
    untrained = build_prior("tiny", 64, (8, 8)).eval()
    assert frame_bits_per_token(prior, codes) < 1.5 < 5.5 < frame_bits_per_token(untrained, codes)


@pytest.mark.parametrize(
    "sampling",
    [{}, {"temperature": 3.0}, {"top_k": 5}, {"top_p": 0.9}, {"greedy": True}],
    ids=["plain", "hot", "top_k", "top_p", "greedy"],
)
def test_samples_are_always_codebook_ids(trained, sampling):
    prior, _ = trained
    codes = sample_codes(prior, 6, seed=0, **sampling)
    assert codes.shape == (6, 8, 8) and codes.dtype == torch.int64
    # BOS (id 64) is never drawn, even at a high temperature that gives it real mass
    assert int(codes.min()) >= 0 and int(codes.max()) < 64


def test_sampling_is_seeded_and_greedy_is_one_sequence(trained):
    prior, _ = trained
    assert torch.equal(sample_codes(prior, 4, seed=3), sample_codes(prior, 4, seed=3))
    assert not torch.equal(sample_codes(prior, 4, seed=3, temperature=3.0),
                           sample_codes(prior, 4, seed=4, temperature=3.0))
    greedy = sample_codes(prior, 3, seed=0, greedy=True)
    assert (greedy == greedy[:1]).all()


def test_sample_frames_decodes_to_pixels(trained, tokenizer):
    prior, _ = trained
    frames = sample_frames(prior, tokenizer, 3, seed=0, top_k=10)
    assert frames.shape == (3, 64, 64) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert torch.equal(frames, sample_frames(prior, tokenizer, 3, seed=0, top_k=10))


def test_checkpoint_round_trip_keeps_the_recipe(trained, tmp_path):
    prior, _ = trained
    path = save_checkpoint(tmp_path / "prior.pt", model=prior)
    loaded = build_model_from_checkpoint(path).eval()
    assert bos_token(loaded) == 64 and code_grid(loaded) == (8, 8)
    assert torch.equal(sample_codes(loaded, 2, seed=0), sample_codes(prior, 2, seed=0))


def test_presets_are_known_and_sized():
    sizes = [build_prior(name, 512, (8, 8)).num_parameters() for name in ("tiny", "small")]
    assert sizes[0] < sizes[1] < 2_000_000  # small stays a CPU model (and under 20 MB)
    with pytest.raises(ValueError, match="preset must be one of"):
        ImagePriorConfig.preset("huge")


def test_bad_input_raises_clear_errors(trained, tokenizer):
    prior, _ = trained
    with pytest.raises(ValueError, match="num_codes"):
        build_prior("tiny", 1, (8, 8))
    with pytest.raises(ValueError, match="grid"):
        build_prior("tiny", 64, (8,))
    with pytest.raises(ValueError, match="n must be"):
        sample_codes(prior, 0)
    with pytest.raises(TypeError, match="allowed"):
        sample_codes(prior, 2, allowed=torch.ones(65, dtype=torch.bool))
    with pytest.raises(TypeError, match="build_prior"):
        bos_token(GPT(GPTConfig(vocab_size=65, block_size=65, n_layer=1, n_head=1, n_embd=8)))
    with pytest.raises(TypeError, match="FrameTokenizer"):
        sample_frames(prior, torch.nn.Linear(2, 2), 2)
    other = FrameTokenizer(FrameTokenizerConfig(channels=(8, 8), num_res_blocks=1, num_codes=32,
                                                code_dim=8))
    with pytest.raises(ValueError, match="tokenizer makes"):
        sample_frames(prior, other, 2)
    with pytest.raises(ValueError, match=r"codes must be an integer tensor \(n, h, w\)"):
        to_sequences(torch.zeros(2, 8, 8), bos=64)
    with pytest.raises(ValueError, match="tokens must have shape"):
        from_sequences(torch.zeros(2, 64, dtype=torch.long), (8, 8))
    with pytest.raises(ValueError, match="frames_per_clip"):
        encode_frames(tokenizer, 2, frames_per_clip=0)
    with pytest.raises(ValueError, match="num_clips"):
        encode_frames(tokenizer, 0)


def test_loss_is_next_token_cross_entropy(trained, codes):
    prior, _ = trained
    batch = to_sequences(codes, bos=64)
    loss, logs = prior_loss(prior, batch)
    assert logs["bits_per_token"] == pytest.approx(float(loss.detach()) / math.log(2))
    assert loss.item() * 64 * len(batch) / math.log(2) == pytest.approx(
        frame_bits_per_token(prior, codes) * 64 * len(batch), rel=1e-4
    )


@pytest.fixture
def shipped_is_tiny(tokenizer, monkeypatch):
    """Stand the tiny untrained tokenizer in for the shipped one (the commands load it by name)."""
    monkeypatch.setattr(image_prior, "_shipped_tokenizer", lambda: tokenizer)
    return tokenizer


def test_target_schedules_are_the_presets():
    assert TARGET.schedules is SCHEDULES and set(SCHEDULES) == {"tiny", "small", "full"}
    for name in SCHEDULES:
        preset = ImagePriorConfig.preset(name)
        config = TARGET.train_config(name)
        assert (config.steps, config.batch_size, config.lr) == (preset.steps, preset.batch_size,
                                                               preset.lr)


def test_train_command_writes_checkpoint_and_held_out_bits(shipped_is_tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(image_prior, "TEST_CLIPS", 32)  # the manifest's 256 clips, cut for speed
    out = tmp_path / "prior.pt"
    assert cli_main(["train", "image-prior", "--config", "tiny", "--out", str(out),
                     "--no-progress"]) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["command"].startswith("python -m minivideo train image-prior --config tiny")
    # the prior records the tokenizer whose codes it models (the registry's, by file hash)
    assert manifest["tokenizer"]["name"] == registry.entry("image-prior").tokenizer
    assert manifest["tokenizer"]["sha256"] == tokenizer_record("vqvae-frame")["sha256"]
    metrics = manifest["metrics"]
    assert metrics["test_frames"] == 4 * 32 and metrics["uniform_bits_per_token"] == 6.0
    # 120 steps on 16 frames already beat uniform guessing on unseen frames of unseen digits
    assert 0 < metrics["test_bits_per_token"] < metrics["uniform_bits_per_token"]
    assert bos_token(build_model_from_checkpoint(out)) == 64


def test_sample_videos_is_seeded_uint8_one_frame_clips(trained, tokenizer):
    prior, _ = trained

    def sample(seed: int) -> np.ndarray:
        return sample_videos(prior, tokenizer, 5, seed=seed, top_p=0.9, batch_size=2)

    videos = sample(0)
    assert videos.shape == (5, 1, 64, 64) and videos.dtype == np.uint8
    assert np.array_equal(videos, sample(0))
    assert not np.array_equal(videos, sample(1))
    with pytest.raises(TypeError, match="made by build_prior"):
        sample_videos(tokenizer, tokenizer, 1)
