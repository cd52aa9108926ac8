"""The patch critic that sharpens a decoder over frozen codes (VQGAN's recipe)."""

import pytest
import torch
import torch.nn.functional as F

from minivideo.adversarial import (
    AdversarialDecoder,
    PatchDiscriminator,
    adaptive_weight,
    decoder_gan_loss,
    hinge_losses,
)
from minivideo.train import TrainConfig, fit
from minivideo.vqvae import ClipTokenizer, ClipTokenizerConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _strokes(n: int, seed: int) -> torch.Tensor:
    """Frames with a few sharp bars: what a blurred decoder fails to draw."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.zeros(n, 1, 64, 64)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(4, 56, (2,), generator=g).tolist()
            if torch.rand((), generator=g) < 0.5:
                frames[i, 0, r:r + 2, c - 4:c + 8] = 1
            else:
                frames[i, 0, r - 4:r + 8, c:c + 2] = 1
    return frames


def _blur(frames: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(frames, 5, stride=1, padding=2, count_include_pad=False)


def test_critic_learns_to_tell_sharp_strokes_from_their_blur():
    torch.manual_seed(0)
    critic = PatchDiscriminator(16)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    sharp = _strokes(16, 1000)  # unseen frames

    def held_out() -> tuple[float, float, float]:
        with torch.no_grad():
            real, fake = critic(sharp), critic(_blur(sharp))
        inked = F.max_pool2d(sharp, 8)[:, 0] > 0  # blank patches look alike either way
        ranked = (real.mean((1, 2)) > fake.mean((1, 2))).float().mean()
        return (float(hinge_losses(real, fake, fake)[0]), float((real - fake)[inked].mean()),
                float(ranked))

    loss0, margin0, _ = held_out()
    for step in range(60):
        frames = _strokes(8, step)
        loss, _ = hinge_losses(critic(frames), critic(_blur(frames)), critic(_blur(frames)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss, margin, ranked = held_out()
    assert critic(sharp).shape == (16, 8, 8)
    assert loss0 > 1.9 and abs(margin0) < 0.2  # at first: no idea
    assert loss < 1.2 and margin > 1.5  # measured 0.69 and 3.4
    assert ranked == 1.0  # every unseen sharp frame scores above its blur


def test_hinge_losses_stop_at_the_margin():
    critic, decoder = hinge_losses(torch.full((4,), 2.0), torch.full((4,), -3.0),
                                   torch.full((4,), 0.5))
    assert float(critic) == 0.0 and float(decoder) == -0.5
    critic, _ = hinge_losses(torch.zeros(4), torch.zeros(4), torch.zeros(4))
    assert float(critic) == 2.0


def test_adaptive_weight_is_the_gradient_norm_ratio_at_the_last_layer():
    w = torch.randn(5, requires_grad=True)
    x = torch.randn(5)
    rec, adv = 3.0 * (w * x).sum(), 0.5 * (w * x).sum()
    assert float(adaptive_weight(rec, adv, w)) == pytest.approx(6.0, rel=1e-3)
    assert float(adaptive_weight(rec, 1e-9 * (w * x).sum(), w, max_weight=100.0)) == 100.0


def _tiny() -> ClipTokenizer:
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny", time_down=2))
    tokenizer.train()(torch.rand(2, 4, 64, 64) * (torch.rand(2, 4, 64, 64) > 0.8))  # codebook
    return tokenizer


def test_each_player_gets_only_its_own_gradient():
    tokenizer = _tiny()
    model = AdversarialDecoder(tokenizer, adversarial=1.0, ramp_steps=0, channels=8).train()
    video = torch.rand(2, 4, 64, 64)
    loss, logs = model(video)
    loss.backward()
    assert all(p.grad is None for p in tokenizer.encoder.parameters())
    assert all(p.grad is None for p in tokenizer.quantizer.parameters())
    assert logs["weight"] > 0
    # the critic's gradient is that of its own hinge loss on detached frames, nothing more
    with torch.no_grad():
        recon = tokenizer.decode(tokenizer.encode(video)).reshape(8, 1, 64, 64)
    critic = model.critic
    expected, _ = hinge_losses(critic(video.reshape(8, 1, 64, 64)), critic(recon),
                               torch.zeros(1))
    grads = torch.autograd.grad(expected, list(critic.parameters()))
    for p, g in zip(critic.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    # with the critic's weight at 0 the decoder's gradient is the MSE's alone
    tokenizer.zero_grad()
    model.adversarial = 0.0
    model(video)[0].backward()
    got = [p.grad.clone() for p in tokenizer.decoder.parameters()]
    tokenizer.zero_grad()
    recon = tokenizer._decode_latents(tokenizer._embed(tokenizer.encode(video)), 2)
    F.mse_loss(recon, video).backward()
    for g, p in zip(got, tokenizer.decoder.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-7)


def test_fit_trains_the_decoder_keeps_the_codes_and_resumes_the_ramp(tmp_path):
    tokenizer = _tiny()
    video = torch.rand(4, 4, 64, 64) * (torch.rand(4, 4, 64, 64) > 0.8)
    codes = tokenizer.eval().encode(video)
    encoder = [p.clone() for p in tokenizer.encoder.parameters()]
    decoder = [p.clone() for p in tokenizer.decoder.parameters()]
    data = [{"video": video[i % 4]} for i in range(16)]
    model = AdversarialDecoder(tokenizer, adversarial=0.5, ramp_steps=20, channels=8)
    config = TrainConfig(steps=12, batch_size=2, lr=1e-3, warmup_steps=1, progress=False,
                         grad_clip=None, device="cpu")
    fit(model, decoder_gan_loss, data, config, checkpoint=tmp_path / "gan.pt")
    assert int(model.steps_seen) == 12 and model.factor() == pytest.approx(0.3)
    assert torch.equal(tokenizer.eval().encode(video), codes)
    same = [torch.equal(a, b) for a, b in zip(encoder, tokenizer.encoder.parameters(), strict=True)]
    moved = [not torch.equal(a, b)
             for a, b in zip(decoder, tokenizer.decoder.parameters(), strict=True)]
    assert all(same) and any(moved)
    resumed = AdversarialDecoder(_tiny(), adversarial=0.5, ramp_steps=20, channels=8)
    fit(resumed, decoder_gan_loss, data, TrainConfig(**{**config.__dict__, "steps": 16}),
        checkpoint=tmp_path / "gan.pt", resume=True)
    assert int(resumed.steps_seen) == 16 and resumed.factor() == pytest.approx(0.4)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="channels"):
        PatchDiscriminator(6)
    with pytest.raises(ValueError, match=r"frames must be \(n, 1, H, W\)"):
        PatchDiscriminator(8)(torch.zeros(2, 64, 64))
    with pytest.raises(TypeError, match="tokenizer"):
        AdversarialDecoder(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="adversarial"):
        AdversarialDecoder(_tiny(), adversarial=-1.0)
    with pytest.raises(ValueError, match="ramp_steps"):
        AdversarialDecoder(_tiny(), ramp_steps=-1)
