"""A sharper decoder over the same codes: a patch discriminator and VQGAN's adaptive weight.

A decoder trained on mean squared error alone draws, for each code, the *average* of every
stroke that code stands for: where a code is ambiguous (a thin 1 or a 7's corner), the average
is a grey smear. VQGAN (Esser, Rombach & Ommer, 2021) adds a patch discriminator: the decoder is
also rewarded for frames that a small convolutional critic cannot tell from real ones, so it
commits to one sharp stroke instead of the blur of all of them.

Here only the decoder learns (the encoder and the codebook are frozen), so every code, and so
every prior trained over them, stays valid: a prior's samples are simply decoded more sharply.

* `PatchDiscriminator`: frames (n 1 64 64) → one real/fake logit per 8×8 patch (n 8 8).
* `hinge_losses`: the discriminator's and the decoder's hinge losses (Lim & Ye, 2017).
* `adaptive_weight`: λ = ‖∇L_rec‖ / ‖∇L_adv‖ at the decoder's last layer, so the adversarial
  term never outweighs the reconstruction it refines (VQGAN, eq. 7).
* `AdversarialDecoder`: a tokenizer and its critic in one module, so the ordinary `fit` loop
  trains both with one optimiser, saves, resumes and logs them (`decoder_gan_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.func import functional_call

from minivideo.vqvae import Tokenizer, _as_video


class PatchDiscriminator(nn.Module):
    """A PatchGAN critic on single frames: (n 1 H W) in [0, 1] → logits (n H/8 W/8).

    Three stride-2 convolutions give one logit per 8×8 patch (a receptive field of about 46 px:
    a digit's stroke and its surroundings, not the whole frame), GroupNorm instead of BatchNorm
    so that a batch of 8 frames trains as well as one of 64.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        if channels < 4 or channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4, got {channels}")
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.GroupNorm(4, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1), nn.GroupNorm(4, 4 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 1, 3, padding=1),
        )  # fmt: skip

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != 1:
            raise ValueError(f"frames must be (n, 1, H, W), got {tuple(frames.shape)}")
        return self.net(frames * 2 - 1).squeeze(1)


def hinge_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                 fake_logits_for_decoder: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic loss, decoder loss). The critic pushes real logits above +1 and fake ones below
    −1 (no reward beyond the margin); the decoder raises the critic's logits on its frames."""
    critic = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return critic, -fake_logits_for_decoder.mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's λ: the ratio of the two losses' gradient norms at the decoder's last weights.

    With λ the adversarial gradient arrives at the same scale as the reconstruction's, whatever
    the critic's current logits; detached, so it is a weight and not a path for gradients.
    """
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, max_weight).detach()


def _last_weight(decoder: nn.Module) -> torch.Tensor:
    convs = [m for m in decoder.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise ValueError("the tokenizer's decoder has no convolution to weigh the losses at")
    return convs[-1].weight


class AdversarialDecoder(nn.Module):
    """A tokenizer whose encoder and codebook are frozen, and the critic its decoder trains with.

    `adversarial` scales the critic's term (VQGAN's discriminator weight, 0 = the MSE-only
    fine-tune); it ramps up linearly over the first `ramp_steps` training steps, counted in a
    buffer so that a resumed run continues the ramp where it stopped.
    """

    def __init__(self, tokenizer: Tokenizer, adversarial: float = 0.5, ramp_steps: int = 200,
                 channels: int = 32) -> None:
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a minivideo Tokenizer, got "
                            f"{type(tokenizer).__name__}")
        if adversarial < 0:
            raise ValueError(f"adversarial must be ≥ 0, got {adversarial}")
        if ramp_steps < 0:
            raise ValueError(f"ramp_steps must be ≥ 0, got {ramp_steps}")
        self.tokenizer = tokenizer
        self.critic = PatchDiscriminator(channels)
        self.adversarial, self.ramp_steps = adversarial, ramp_steps
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        for part in (tokenizer.encoder, tokenizer.quantizer):
            part.requires_grad_(False)

    def factor(self) -> float:
        """The adversarial weight at this step of the ramp."""
        if self.ramp_steps == 0:
            return self.adversarial
        return self.adversarial * min(1.0, float(self.steps_seen) / self.ramp_steps)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        tok = self.tokenizer
        video = _as_video(video, tok.config.image_size)
        with torch.no_grad():  # the codes never change: `encode` does not move the codebook
            codes = tok.encode(video)
        recon = tok._decode_latents(tok._embed(codes), len(video))
        rec = F.mse_loss(recon.float(), video)
        real = rearrange(video, "b t h w -> (b t) 1 h w")
        fake = rearrange(recon.float(), "b t h w -> (b t) 1 h w")
        # The decoder's term sees the critic through detached weights: its gradient reaches the
        # decoder only. The critic's term sees detached frames: its gradient reaches the critic
        # only. One backward pass then trains both players with one optimiser.
        frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
        critic_loss, gen_loss = hinge_losses(self.critic(real), self.critic(fake.detach()),
                                             functional_call(self.critic, frozen, (fake,)))
        factor = self.factor()
        if factor > 0 and torch.is_grad_enabled():
            weight = adaptive_weight(rec, gen_loss, _last_weight(tok.decoder))
        else:
            weight = torch.zeros(())
        if self.training and torch.is_grad_enabled():
            self.steps_seen += 1
        loss = rec + factor * weight * gen_loss + critic_loss
        return loss, {"recon": float(rec.detach()), "critic": float(critic_loss.detach()),
                      "decoder_adv": float(gen_loss.detach()), "weight": float(weight)}


def decoder_gan_loss(model: AdversarialDecoder, batch: dict) -> tuple[torch.Tensor, dict]:
    """The `fit` loss of `AdversarialDecoder`: reconstruction + λ·adversarial + critic."""
    return model(batch["video"])
