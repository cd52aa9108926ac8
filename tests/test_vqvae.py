"""VQ-VAE tokenizers: the quantizer's gradient, EMA and restarts by hand; shapes; learning; resume."""

import functools
import json
import math

import pytest
import torch

from minivideo.__main__ import main as cli
from minivideo.checkpoints import build_model_from_checkpoint
from minivideo.cli import train as train_command
from minivideo.train import TrainConfig, fit
from minivideo.vqvae import (
    CLIP_TOKENIZER_TARGET,
    FRAME_TOKENIZER_TARGET,
    ClipTokenizer,
    ClipTokenizerConfig,
    FrameTokenizer,
    FrameTokenizerConfig,
    VectorQuantizer,
    perplexity,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest



def _quantizer(codebook: torch.Tensor, **kwargs) -> VectorQuantizer:
    """A quantizer whose codebook (and EMA statistics) start at the given vectors."""
    q = VectorQuantizer(len(codebook), codebook.shape[1], **kwargs)
    with torch.no_grad():
        q.embedding.copy_(codebook)
        if q.ema:
            q.embed_sum.copy_(codebook)
            q.cluster_size.fill_(1.0)
        q.initialized.fill_(True)
    return q


# --------------------------------------------------------------------------- quantizer
@pytest.mark.parametrize("ema", [True, False])
def test_straight_through_gradient_is_the_identity(ema):
    torch.manual_seed(0)
    q = VectorQuantizer(8, 4, ema=ema)
    z = torch.randn(2, 5, 4, requires_grad=True)
    z_q, codes, stats = q(z, update=False)
    # forward: the nearest code, found by brute force
    brute = torch.cdist(z.detach().reshape(-1, 4), q.embedding.detach()).argmin(1).reshape(2, 5)
    assert torch.equal(codes, brute) and codes.dtype == torch.int64
    # z + (e − z) is e up to one rounding
    torch.testing.assert_close(z_q.detach(), q.embedding.detach()[codes], atol=1e-6, rtol=0)
    # backward through the pass-through path: dL/dz = dL/dz_q exactly
    upstream = torch.randn_like(z)
    (z_q * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)
    # the commitment path: d/dz β·mean((z − e)²) = 2β(z − e) / numel (the codebook term of
    # plain VQ sees a detached z, so it adds nothing here)
    z.grad = None
    stats["loss"].backward()
    torch.testing.assert_close(z.grad, 2 * q.beta * (z.detach() - z_q.detach()) / z.numel())


def test_ema_update_matches_the_formula_on_a_hand_made_batch():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-50.0, -50.0]])
    q = _quantizer(codebook, decay=0.5, eps=0.1, restart_dead=False)
    with torch.no_grad():  # code 3 has never been used: its cluster size is 0
        q.cluster_size.copy_(torch.tensor([1.0, 1.0, 1.0, 0.0]))
        q.embed_sum[3] = 0.0
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [9.0, 1.0], [11.0, -1.0], [0.0, 9.0]])
    _, codes, _ = q.train()(z)
    assert codes.tolist() == [0, 0, 1, 1, 2]
    # N ← γN + (1−γ)n with γ = 0.5 and counts n = (2, 2, 1, 0)
    n = torch.tensor([0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 1, 0.0])
    assert torch.allclose(q.cluster_size, n)
    # m ← γm + (1−γ)Σz: code 1 had m = (10, 0) and receives (9, 1) + (11, −1) = (20, 0)
    m = torch.tensor([[0.0, 0.0], [15.0, 0.0], [0.0, 9.5], [0.0, 0.0]])
    assert torch.allclose(q.embed_sum, m)
    # e = m / N̂ with Laplace smoothing N̂ = (N + ε) / (ΣN + Kε) · ΣN, ε = 0.1, K = 4
    total = 1.5 + 1.5 + 1.0 + 0.0
    smoothed = (n + 0.1) / (total + 4 * 0.1) * total
    assert torch.allclose(q.embedding, m / smoothed[:, None])
    assert torch.allclose(q.embedding[1], torch.tensor([15 / ((1.6 / 4.4) * 4), 0.0]))
    assert torch.isfinite(q.embedding).all()  # without smoothing code 3 would be 0 / 0
    # the usage statistic that drives restarts follows the same EMA
    assert torch.allclose(q.usage, torch.tensor([1.5, 1.5, 1.0, 0.5]))


def test_an_ema_codebook_converges_to_the_means_of_its_clusters():
    q = _quantizer(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), decay=0.9, restart_dead=False).train()
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [4.0, 6.0], [6.0, 6.0]])
    for _ in range(200):
        q(z)
    torch.testing.assert_close(q.embedding, torch.tensor([[1.0, 0.0], [5.0, 6.0]]), atol=1e-3,
                               rtol=0)


@pytest.mark.parametrize("ema", [True, False])
def test_dead_codes_are_restarted_on_badly_quantized_outputs(ema):
    torch.manual_seed(0)
    far = torch.tensor([[100.0, 100.0]] * 3)
    q = _quantizer(torch.cat([torch.zeros(1, 2), far]), decay=0.5, ema=ema).train()
    # half of the batch sits exactly on code 0, half is far from it (error > 0); the far half
    # is symmetric, so the batch mean is 0 and even the EMA keeps code 0 at the origin
    far = torch.randn(4, 2) + torch.tensor([3.0, -3.0])
    z = torch.cat([torch.zeros(8, 2), far, -far])
    _, codes, stats = q(z)
    assert codes.unique().tolist() == [0] and stats["restarted"] == 0  # usage 0.5: not yet dead
    _, _, stats = q(z)
    assert stats["restarted"] == 3  # usage 0.25 < 0.5
    for code in q.embedding.detach()[1:]:
        # each restarted code now sits on an encoder output, drawn ∝ its quantization error,
        # so never on the perfectly quantized zeros
        matches = (z == code).all(dim=1)
        assert matches.any() and not matches[:8].any()
    _, codes, _ = q(z)
    assert len(codes.unique()) > 1  # the restarted codes are used


def test_without_restarts_dead_codes_stay_dead():
    q = _quantizer(torch.tensor([[0.0, 0.0], [100.0, 100.0]]), decay=0.5, restart_dead=False)
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        _, codes, stats = q.train()(z)
    assert codes.unique().tolist() == [0] and stats["restarted"] == 0 and stats["usage"] == 0.5


def test_perplexity_of_a_uniform_assignment_is_the_codebook_size():
    assert perplexity(torch.arange(16).repeat(5), 16) == pytest.approx(16)
    assert perplexity(torch.arange(8).repeat(3), 16) == pytest.approx(8)  # half the codes
    assert perplexity(torch.zeros(30, dtype=torch.long), 16) == pytest.approx(1)
    torch.manual_seed(0)
    q = VectorQuantizer(16, 4)
    _, codes, stats = q(q.embedding.clone().repeat(3, 1), update=False)  # each code once, ×3
    assert stats["perplexity"] == pytest.approx(16) and stats["usage"] == 1.0


# --------------------------------------------------------------------------- tokenizers
@pytest.mark.parametrize(
    ("model", "frames", "latent"),
    [
        (FrameTokenizer(FrameTokenizerConfig.preset("tiny")), 3, (3, 8, 8)),
        (ClipTokenizer(ClipTokenizerConfig.preset("tiny")), 8, (2, 16, 16)),
    ],
    ids=["frame", "clip"],
)
def test_encode_decode_shapes_and_dtypes(model, frames, latent):
    video = torch.randint(0, 256, (2, frames, 64, 64), dtype=torch.uint8)
    codes = model.eval().encode(video)
    assert codes.shape == (2, *latent) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < model.num_codes
    assert model.latent_shape(frames) == latent
    assert model.tokens_per_clip(frames) == math.prod(latent)
    out = model.decode(codes)
    assert out.shape == video.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(model.encode(video.float() / 255), codes)  # uint8 and float agree
    recon, logs = model(video)  # the training path: unclamped, with logs
    assert recon.shape == video.shape and set(logs) >= {"loss", "recon_loss", "perplexity"}


def test_the_presets_give_the_priors_about_a_thousand_tokens_per_16_frames():
    for preset in ("tiny", "small", "full"):
        assert FrameTokenizer(FrameTokenizerConfig.preset(preset)).tokens_per_clip(16) == 1024
    assert ClipTokenizer(ClipTokenizerConfig.preset("tiny")).tokens_per_clip(16) == 1024


def test_encoding_never_moves_the_codebook_even_in_training_mode():
    torch.manual_seed(0)
    model = FrameTokenizer(FrameTokenizerConfig.preset("tiny"))
    model(torch.rand(2, 2, 64, 64))  # a training step's forward initialises the codebook
    before = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model.train().encode(torch.rand(2, 2, 64, 64))
    for key, value in model.quantizer.state_dict().items():
        assert torch.equal(value, before[key]), key


def _black_frame_mse(dataset, n: int = 64) -> float:
    """MSE of predicting an all-black frame: what a tokenizer that ignores the digits scores."""
    video = torch.stack([dataset[i]["video"] for i in range(n)]).float() / 255
    return float(video.pow(2).mean())


def test_a_tiny_frame_tokenizer_learns_in_seconds():
    torch.manual_seed(0)
    dataset = FRAME_TOKENIZER_TARGET.build_dataset("tiny", 0)
    model = FRAME_TOKENIZER_TARGET.build_model("tiny")
    config = TrainConfig(steps=150, batch_size=4, lr=3e-3, warmup_steps=10, progress=False,
                         device="cpu")
    result = fit(model, FRAME_TOKENIZER_TARGET.loss_fn, dataset, config)
    first = result.history[0]["recon_loss"]
    last = sum(h["recon_loss"] for h in result.history[-10:]) / 10
    black = _black_frame_mse(dataset)  # measured: 0.040
    # measured on seed 0: 0.22 → 0.023, perplexity ≈ 30 of 64 codes
    assert last < 0.75 * black and last < 0.15 * first, (first, last, black)
    assert result.history[-1]["perplexity"] > 10


def _tiny_config(**overrides) -> TrainConfig:
    base = dict(steps=24, batch_size=2, lr=2e-3, warmup_steps=4, progress=False, device="cpu")
    return TrainConfig(**{**base, **overrides})


def test_checkpoint_round_trip_rebuilds_the_same_tokenizer(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "frame.pt"
    target = FRAME_TOKENIZER_TARGET
    result = fit(target.build_model("tiny"), target.loss_fn, target.build_dataset("tiny", 0),
                 _tiny_config(steps=8), checkpoint=path)
    rebuilt = build_model_from_checkpoint(path).eval()
    trained = result.model.eval()
    assert isinstance(rebuilt, FrameTokenizer) and rebuilt.config == trained.config
    for key, value in trained.state_dict().items():  # codebook buffers included
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    video = target.build_dataset("tiny", 1)[0]["video"][None]
    codes = trained.encode(video)
    assert torch.equal(rebuilt.encode(video), codes)
    assert torch.equal(rebuilt.decode(codes), trained.decode(codes))


@pytest.mark.parametrize("target", [FRAME_TOKENIZER_TARGET, CLIP_TOKENIZER_TARGET],
                         ids=["frame", "clip"])
def test_resume_continues_the_same_loss_curve(tmp_path, target):
    steps = 12 if target is CLIP_TOKENIZER_TARGET else 24
    config = _tiny_config(steps=steps, save_every=steps // 3)
    dataset = target.build_dataset("tiny", 0)
    torch.manual_seed(0)
    straight = fit(target.build_model("tiny"), target.loss_fn, dataset, config)

    def crash(step, record):
        if step == steps // 2 + 1:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(target.build_model("tiny"), target.loss_fn, dataset, config, checkpoint=path,
            on_step=crash)
    torch.manual_seed(123)  # resuming must not depend on the fresh model's weights
    resumed = fit(target.build_model("tiny"), target.loss_fn, dataset, config, checkpoint=path,
                  resume=True)
    for key in ("loss", "recon_loss", "perplexity", "restarted"):
        a = torch.tensor([h[key] for h in straight.history])
        b = torch.tensor([h[key] for h in resumed.history])
        assert torch.allclose(a, b, atol=1e-6, rtol=0), key
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6), key


def test_the_train_command_resumes_where_it_stopped(tmp_path, monkeypatch):
    common = ["train", "vqvae-frame", "--config", "tiny", "--steps", "6", "--save-every", "3",
              "--no-eval", "--no-progress", "--out"]
    assert cli([*common, str(tmp_path / "straight.pt")]) == 0

    def crash(step, record):
        if step == 4:
            raise KeyboardInterrupt  # the student closes the laptop after the save at step 3

    monkeypatch.setattr(train_command, "fit", functools.partial(fit, on_step=crash))
    part = tmp_path / "part.pt"
    with pytest.raises(KeyboardInterrupt):
        cli([*common, str(part)])
    assert torch.load(part, weights_only=False)["step"] == 3
    monkeypatch.undo()
    assert cli([*common, str(part), "--resume"]) == 0
    straight = torch.load(tmp_path / "straight.pt", weights_only=False)
    resumed = torch.load(part, weights_only=False)
    assert resumed["step"] == 6 and len(resumed["history"]) == 6
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in straight["history"]], abs=1e-6)
    manifest = json.loads(part.with_suffix(".json").read_text())
    assert manifest["command"] == (
        "python -m minivideo train vqvae-frame --config tiny --steps 6 --save-every 3 --no-eval "
        f"--no-progress --out {part}")  # every option of the run, but not --resume
    assert manifest["model_class"] == "minivideo.vqvae:FrameTokenizer"


# --------------------------------------------------------------------------- bad input
FRAME = FrameTokenizer(FrameTokenizerConfig.preset("tiny")).eval()
CLIP = ClipTokenizer(ClipTokenizerConfig.preset("tiny")).eval()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: FRAME.encode(torch.zeros(3, 64, 64, dtype=torch.uint8)), ValueError, r"video must have shape \(b, t, 64, 64\)"),
        (lambda: FRAME.encode(torch.zeros(1, 2, 32, 32)), ValueError, r"video must have shape \(b, t, 64, 64\).*got \(1, 2, 32, 32\)"),
        (lambda: FRAME.encode(torch.zeros(1, 2, 64, 64, dtype=torch.int32)), TypeError, "uint8 or floating point"),
        (lambda: FRAME.encode(torch.zeros(1, 2, 64, 64).numpy()), TypeError, "video must be a torch.Tensor"),
        (lambda: CLIP.encode(torch.zeros(1, 6, 64, 64)), ValueError, "divisible by time_down=4"),
        (lambda: CLIP.encode(torch.zeros(1, 0, 64, 64)), ValueError, r"video must hold at least one clip of at least one frame; got shape \(1, 0, 64, 64\)"),
        (lambda: CLIP(torch.zeros(1, 0, 64, 64, dtype=torch.uint8)), ValueError, "video must hold at least one clip of at least one frame"),
        (lambda: CLIP.encode(torch.zeros(0, 4, 64, 64)), ValueError, "video must hold at least one clip"),
        (lambda: CLIP.encode(torch.zeros(1, 2, 64, 64)), ValueError, r"video must have a number of frames divisible by time_down=4 and at least 4; got 2"),
        (lambda: CLIP.latent_shape(0), ValueError, "num_frames must have a number of frames .* got 0"),
        (lambda: FRAME.encode(torch.zeros(1, 0, 64, 64)), ValueError, "video must hold at least one clip of at least one frame"),
        (lambda: FRAME.encode(torch.zeros(0, 2, 64, 64, dtype=torch.uint8)), ValueError, "video must hold at least one clip"),
        (lambda: FRAME.encode(torch.full((1, 2, 64, 64), 255.0)), ValueError, r"video must be uint8 or float in \[0, 1\]; got torch.float32 with values in \[255, 255\]"),
        (lambda: FRAME.encode(torch.rand(1, 2, 64, 64) * 2 - 1), ValueError, r"video must be uint8 or float in \[0, 1\]; got torch.float32 with values in \[-"),
        (lambda: FRAME.encode(torch.tensor(float("nan")).expand(1, 2, 64, 64)), ValueError, r"video must be uint8 or float in \[0, 1\].*non-finite values \(NaN or inf\)"),
        (lambda: FRAME(torch.full((1, 2, 64, 64), 1.5, dtype=torch.float64)), ValueError, r"video must be uint8 or float in \[0, 1\]; got torch.float64 with values in \[1.5, 1.5\]"),
        (lambda: CLIP.encode(torch.full((1, 4, 64, 64), float("inf"))), ValueError, r"video must be uint8 or float in \[0, 1\].*non-finite"),
        (lambda: CLIP.encode(torch.full((1, 4, 64, 64), -0.01)), ValueError, r"video must be uint8 or float in \[0, 1\]; got torch.float32 with values in \[-0.01, -0.01\]"),
        (lambda: CLIP(torch.full((1, 4, 64, 64), float("nan"))), ValueError, "video must be uint8 or float in .*non-finite"),
        (lambda: FRAME.decode(torch.zeros(1, 2, 8, 8)), TypeError, "integer tensor of code ids"),
        (lambda: FRAME.decode(torch.zeros(2, 8, 8, dtype=torch.long)), ValueError, r"codes must have shape \(b, t, 8, 8\)"),
        (lambda: FRAME.decode(torch.zeros(1, 2, 4, 4, dtype=torch.long)), ValueError, r"codes must have shape \(b, t, 8, 8\)"),
        (lambda: CLIP.decode(torch.zeros(1, 2, 8, 8, dtype=torch.long)), ValueError, r"codes must have shape \(b, t, 16, 16\)"),
        (lambda: FRAME.decode(torch.full((1, 1, 8, 8), 64)), ValueError, r"codes must be in \[0, 64\); got values in \[64, 64\]"),
        (lambda: CLIP.decode(torch.full((1, 1, 16, 16), -1)), ValueError, r"codes must be in \[0, 64\)"),
        (lambda: FRAME.quantizer.embed_codes(torch.zeros(3)), TypeError, "int64 or int32 tensor of code ids"),
        (lambda: FRAME.quantizer(torch.zeros(4, 3)), ValueError, r"z must be a tensor of shape \(\.\.\., 16\)"),
        (lambda: VectorQuantizer(1, 4), ValueError, "num_codes must be an int >= 2"),
        (lambda: VectorQuantizer(8, 4, decay=1.0), ValueError, "decay must be in"),
        (lambda: FrameTokenizerConfig(image_size=60), ValueError, "divisible by 2\\^len\\(channels\\)=8"),
        (lambda: FrameTokenizerConfig(channels=()), ValueError, "channels must be a non-empty tuple"),
        (lambda: ClipTokenizerConfig(time_down=3), ValueError, "time_down must be a power of two"),
        (lambda: ClipTokenizer(ClipTokenizerConfig(time_down=8, space_down=4)), ValueError, "time_down must not exceed space_down"),
        (lambda: FrameTokenizerConfig.preset("huge"), ValueError, "preset must be one of"),
    ],
)
def test_bad_input_gives_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("model", [FRAME, CLIP], ids=["frame", "clip"])
def test_the_bounds_of_the_pixel_range_are_valid_input(model):
    # exactly 0 and exactly 1, in any float dtype, are in range: the check must not reject them
    video = torch.zeros(1, 4, 64, 64)
    video[:, :, 20:40, 20:40] = 1.0
    codes = model.encode(video)
    for dtype in (torch.float64, torch.float16):
        assert torch.equal(model.encode(video.to(dtype)), codes), dtype
    assert torch.equal(model.encode((video * 255).to(torch.uint8)), codes)


def test_the_periodic_eval_batch_is_made_of_held_out_test_clips():
    batch = FRAME_TOKENIZER_TARGET.eval_batch("tiny", 3)
    assert batch["video"].shape == (3, 4, 64, 64) and batch["video"].dtype == torch.uint8
    assert CLIP_TOKENIZER_TARGET.eval_batch("tiny", 2)["video"].shape == (2, 16, 64, 64)
    from minivideo.data import MovingMNIST
    test = MovingMNIST("test", num_clips=3, seed=1234)
    assert torch.equal(batch["video"][2], test[2]["video"][:4])  # the test split, seed 1234
