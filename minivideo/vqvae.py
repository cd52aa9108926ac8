"""VQ-VAE tokenizers: videos to grids of discrete codes and back (van den Oord et al. 2017).

A transformer models sequences of symbols. A VQ-VAE turns a video into such symbols: an encoder
maps pixels to a grid of vectors z, each vector is replaced by its nearest entry e_k of a learned
codebook, and a decoder maps the chosen entries back to pixels. The index k is the token.

Two tokenizers share one quantizer:
- `FrameTokenizer`: 2D convolutions, every frame its own grid of codes (what CogVideo uses);
  64×64 → 8×8 codes, so a 16-frame clip is 1024 tokens.
- `ClipTokenizer`: 3D convolutions that also down-sample time, with axial attention along t, h
  and w in the residual blocks (VideoGPT); 16×64×64 → 4×16×16 = 1024 tokens.

The quantizer uses the recipe that keeps a codebook alive: codebook initialised from encoder
outputs, exponential-moving-average (EMA) updates instead of codebook gradients, and restarts of
dead codes from recent encoder outputs (VideoGPT, Jukebox).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from tqdm import tqdm

from minivideo.attention import MultiHeadAttention
from minivideo.data import MovingMNIST, MovingMNISTConfig, generate_clips
from minivideo.data.moving_mnist import MovingMNISTBatch
from minivideo.train import Target
from minivideo.utils import FromConfig

PRESETS = ("tiny", "small", "full")


# --------------------------------------------------------------------------- quantizer
def perplexity(codes: torch.Tensor, num_codes: int) -> float:
    """exp(entropy) of the code histogram: the number of codes used "effectively" (1..num_codes)."""
    counts = torch.bincount(codes.reshape(-1), minlength=num_codes).double()
    probs = counts / counts.sum().clamp_min(1)
    return float(torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum()))


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum a statistic over all ranks (a no-op without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


class VectorQuantizer(nn.Module):
    """Nearest-code lookup with a straight-through gradient, EMA codebook and dead-code restarts.

    Input z (..., code_dim); returns (quantized z_q (..., code_dim), codes (...), stats). In the
    forward pass z_q = e[codes]; in the backward pass dL/dz = dL/dz_q (straight-through).
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        *,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_dead: bool = True,
        dead_threshold: float = 0.5,
        empty_code: bool = False,
    ) -> None:
        super().__init__()
        if not (isinstance(num_codes, int) and num_codes >= 2):
            raise ValueError(f"num_codes must be an int >= 2, got {num_codes!r}")
        if not (isinstance(code_dim, int) and code_dim >= 1):
            raise ValueError(f"code_dim must be a positive int, got {code_dim!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, beta
        self.ema, self.decay, self.eps = ema, decay, eps
        self.restart_dead, self.dead_threshold = restart_dead, dead_threshold
        # Code 0 reserved for cells the caller marks empty (no ink): its vector stays zero, no
        # other cell may pick it, and EMA, restarts and the commitment loss ignore it. A prior
        # then pays ~0 bits for empty background instead of a near-random choice among codes.
        self.empty_code = empty_code
        embedding = torch.randn(num_codes, code_dim) / math.sqrt(code_dim)
        if ema:
            # The codebook is a running average, not a parameter: no optimiser touches it.
            self.register_buffer("embedding", embedding)
            self.register_buffer("cluster_size", torch.ones(num_codes))
            self.register_buffer("embed_sum", embedding.clone())
        else:
            self.embedding = nn.Parameter(embedding)
        # Usage EMA drives the restarts (also for the plain quantizer).
        self.register_buffer("usage", torch.ones(num_codes))
        self.register_buffer("initialized", torch.tensor(False))

    def codebook(self) -> torch.Tensor:
        """The code vectors (num_codes, code_dim)."""
        return self.embedding

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each row of flat (n, d), via ||z||² − 2 z·e + ||e||²."""
        e = self.embedding.to(flat.dtype)
        # The expansion costs one matrix product instead of an (n, K, d) difference tensor.
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]
        )
        if self.empty_code:  # the reserved code is given, never chosen
            distances[:, 0] = float("inf")
        return distances.argmin(dim=1)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code ids (...) → their vectors (..., code_dim): how a prior's samples are decoded."""
        if not isinstance(codes, torch.Tensor) or codes.dtype not in (torch.int64, torch.int32):
            got = codes.dtype if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise TypeError(f"codes must be an int64 or int32 tensor of code ids, got {got}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(
                f"codes must be in [0, {self.num_codes}); got values in "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        return F.embedding(codes.long(), self.embedding)

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        """Data-dependent init: codes start on random encoder outputs, so all are reachable."""
        picks = flat[torch.randint(len(flat), (self.num_codes,), device=flat.device)]
        picks = _broadcast(picks.float())
        self.embedding.data.copy_(picks)
        if self.ema:
            self.embed_sum.copy_(picks)
            self.cluster_size.fill_(1.0)
        self._zero_empty()
        self.initialized.fill_(True)

    @torch.no_grad()
    def _zero_empty(self) -> None:
        """Keep the reserved empty code at the zero vector (it is never averaged or restarted)."""
        if self.empty_code:
            self.embedding.data[0] = 0.0
            if self.ema:
                self.embed_sum[0] = 0.0
                self.cluster_size[0] = 1.0

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, onehot: torch.Tensor) -> None:
        """N ← γN + (1−γ)n, m ← γm + (1−γ)Σz, e = m / Laplace-smoothed N."""
        counts = _all_reduce(onehot.sum(0))  # (K,)
        sums = _all_reduce(onehot.t() @ flat)  # (K, d)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps a never-used code from dividing by zero.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.embedding.copy_(self.embed_sum / smoothed[:, None])
        self._zero_empty()

    @torch.no_grad()
    def _restart(self, flat: torch.Tensor, error: torch.Tensor) -> int:
        """Move codes whose usage fell below the threshold onto recent encoder outputs.

        Outputs are drawn with probability ∝ their squared distance to their code (as in
        k-means++): the badly quantized vectors (digit strokes, not the black background that
        fills most of a frame) are the ones that need new codes.
        """
        dead = self.usage < self.dead_threshold
        if self.empty_code:
            dead[0] = False
        n_dead = int(dead.sum())
        if n_dead == 0 or len(flat) == 0:
            return 0
        weights = error.clamp_min(0) + 1e-12
        picks = flat[torch.multinomial(weights, n_dead, replacement=True)]
        picks = _broadcast(picks.float())  # every rank restarts the same codes the same way
        self.embedding.data[dead] = picks
        self.usage[dead] = 1.0
        if self.ema:
            self.embed_sum[dead] = picks
            self.cluster_size[dead] = 1.0
        return n_dead

    def forward(
        self, z: torch.Tensor, update: bool | None = None, empty: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """z (..., d) → (z_q with straight-through gradient, codes (...), stats incl. 'loss').

        `update` (default: `self.training`) says whether this call may change the codebook
        (initialisation, EMA, usage, restarts); `encode` passes False, so tokenizing a video
        never moves the codebook, even in training mode. `empty` (bool (...), only with
        `empty_code`) marks the cells that get the reserved code 0.
        """
        if not isinstance(z, torch.Tensor) or z.dim() < 1 or z.shape[-1] != self.code_dim:
            raise ValueError(f"z must be a tensor of shape (..., {self.code_dim}), got "
                             f"{tuple(getattr(z, 'shape', ()))}")
        update = self.training if update is None else update
        if empty is not None:
            if not self.empty_code:
                raise ValueError("empty was given, but this quantizer has no empty code")
            if tuple(empty.shape) != tuple(z.shape[:-1]) or empty.dtype != torch.bool:
                raise ValueError(f"empty must be a bool tensor of shape {tuple(z.shape[:-1])}, "
                                 f"got {empty.dtype} {tuple(empty.shape)}")
            empty = empty.reshape(-1)
        # Distances, averages and the one-hot matrix in float32 even under autocast: in bfloat16
        # ||z||² − 2 z·e + ||e||² loses the small differences that decide the nearest code.
        with torch.autocast(z.device.type, enabled=False):
            z_q, codes, stats = self._quantize(z.reshape(-1, self.code_dim).float(), update, empty)
        return z_q.reshape(z.shape).to(z.dtype), codes.reshape(z.shape[:-1]), stats

    def _quantize(
        self, flat: torch.Tensor, update: bool, empty: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """flat (n, d) float32 → (z_q (n, d), codes (n,), stats); see `forward`."""
        # Only "ink" cells take part in the codebook's life (init, EMA, restarts, commitment).
        ink = None if empty is None else ~empty
        live = flat if ink is None else flat[ink]
        if update and not bool(self.initialized) and len(live):
            self._init_from(live.detach())
        codes = self.nearest(flat.detach())
        if empty is not None:
            codes = codes.masked_fill(empty, 0)
        quantized = F.embedding(codes, self.embedding)
        # Commitment: pull the encoder towards its code; the codebook loss (plain VQ only) pulls
        # the code towards the encoder. With EMA the codebook is updated by averaging instead.
        live_q = quantized if ink is None else quantized[ink]
        loss = (self.beta * F.mse_loss(live, live_q.detach()) if len(live)
                else flat.sum() * 0.0)
        if not self.ema and len(live):
            loss = loss + F.mse_loss(live_q, live.detach())
        restarted = 0
        onehot = F.one_hot(codes, self.num_codes).float()
        if update:
            with torch.no_grad():
                batch_counts = _all_reduce(onehot.sum(0))
                self.usage.mul_(self.decay).add_(batch_counts, alpha=1 - self.decay)
            live_onehot = onehot if ink is None else onehot[ink]
            if self.ema:
                self._ema_update(live.detach(), live_onehot)
            if self.restart_dead:
                error = (live.detach() - live_q.detach()).pow(2).sum(1)
                restarted = self._restart(live.detach(), error)
        # Straight-through: forward value quantized, gradient of the identity to z. An empty
        # cell's vector does not depend on the encoder, so it passes no gradient back.
        z_q = flat + (quantized - flat).detach()
        if empty is not None:
            z_q = torch.where(empty[:, None], quantized.detach(), z_q)
        probs = onehot.mean(0)
        stats = {
            "loss": loss,
            "perplexity": float(torch.exp(-(probs * torch.log(probs + 1e-12)).sum())),
            "usage": float((probs > 0).float().mean()),
            "restarted": float(restarted),
        }
        return z_q, codes, stats


def _broadcast(x: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank (a no-op without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(x, src=0)
    return x


# --------------------------------------------------------------------------- input checks
def _as_video(video: torch.Tensor, size: int, name: str = "video") -> torch.Tensor:
    """uint8 or float [0, 1] (b t H W) → float (b t H W) in [0, 1], with clear errors."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(video).__name__}")
    if video.dim() != 4 or tuple(video.shape[-2:]) != (size, size):
        raise ValueError(
            f"{name} must have shape (b, t, {size}, {size}) (uint8 or float in [0, 1]); "
            f"got {tuple(video.shape)}"
        )
    if video.shape[0] == 0 or video.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one clip of at least one frame; got shape "
                         f"{tuple(video.shape)}")
    if video.dtype == torch.uint8:
        return video.float() / 255.0
    if not video.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point in [0, 1], got {video.dtype}")
    # One pass for both bounds; NaN propagates into them, so `not (0 <= lo and hi <= 1)` catches
    # NaN and ±inf as well as pixels outside [0, 1] (e.g. 0..255 floats or [-1, 1] inputs).
    lo, hi = (float(v) for v in torch.aminmax(video.detach()))
    if not (0.0 <= lo and hi <= 1.0):
        found = (f"values in [{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) and math.isfinite(hi)
                 else "non-finite values (NaN or inf)")
        raise ValueError(f"{name} must be uint8 or float in [0, 1]; got {video.dtype} with {found}")
    return video.float()


def _check_codes(codes: torch.Tensor, grid: tuple[int, int], num_codes: int) -> None:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"codes must be an integer tensor of code ids, got {codes.dtype}")
    if codes.dim() != 4 or tuple(codes.shape[-2:]) != grid:
        raise ValueError(f"codes must have shape (b, t, {grid[0]}, {grid[1]}), got "
                         f"{tuple(codes.shape)}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= num_codes):
        raise ValueError(f"codes must be in [0, {num_codes}); got values in "
                         f"[{int(codes.min())}, {int(codes.max())}]")


def _check_power_of_two(value: int, name: str) -> None:
    if not (isinstance(value, int) and value >= 1 and value & (value - 1) == 0):
        raise ValueError(f"{name} must be a power of two >= 1, got {value!r}")


# --------------------------------------------------------------------------- 2D tokenizer
class ResBlock2d(nn.Module):
    """x + conv(relu(norm(conv(relu(norm(x)))))): depth without vanishing gradients."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(min(8, channels), channels), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(min(8, channels), channels), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c h w) → same shape."""
        return x + self.net(x)


def _check_empty_threshold(threshold: float) -> None:
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"empty_threshold must be in [0, 1), got {threshold!r}")


@dataclass
class FrameTokenizerConfig:
    """A 2D VQ-VAE: each `image_size`² frame → (image_size / 2^len(channels))² codes."""

    image_size: int = 64
    channels: tuple[int, ...] = (32, 64, 64)  # one stride-2 stage per entry
    num_res_blocks: int = 2  # at the latent resolution, in encoder and decoder
    num_codes: int = 512
    code_dim: int = 32
    beta: float = 0.25
    ema: bool = True
    decay: float = 0.99
    restart_dead: bool = True
    # A latent cell whose pixel box (2^len(channels) pixels a side) holds no ink above
    # empty_threshold gets the reserved code 0 (see VectorQuantizer). Without it ~78% of a
    # Moving MNIST frame's cells are background, each coded by one of ~400 interchangeable
    # codes (8.3 bits of noise a cell, `benchmarks/background_codes.py`) that a prior must pay
    # for and cannot predict from the previous frame.
    empty_code: bool = False
    empty_threshold: float = 0.05

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        _check_empty_threshold(self.empty_threshold)
        if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got "
                             f"{self.channels!r}")
        if self.image_size % (2 ** len(self.channels)):
            raise ValueError(f"image_size={self.image_size} must be divisible by "
                             f"2^len(channels)={2 ** len(self.channels)}")

    @property
    def grid(self) -> int:
        """Codes per side of a frame."""
        return self.image_size // 2 ** len(self.channels)

    @classmethod
    def preset(cls, name: str, empty_code: bool = False) -> FrameTokenizerConfig:
        """tiny (tests), small (laptop CPU, shipped), full (GPU); empty_code reserves code 0
        for background cells (`vqvae-frame-empty`, CogVideo's tokenizer)."""
        presets = {
            "tiny": cls(channels=(16, 32, 32), num_res_blocks=1, num_codes=64, code_dim=16,
                        empty_code=empty_code),
            "small": cls(channels=(32, 64, 64), num_res_blocks=2, num_codes=512, code_dim=32,
                         empty_code=empty_code),
            "full": cls(channels=(64, 128, 256), num_res_blocks=2, num_codes=1024, code_dim=64,
                        empty_code=empty_code),
        }
        if name not in presets:
            raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
        return presets[name]


class Tokenizer(FromConfig, nn.Module):
    """What both tokenizers are to the rest of the course: video (b T H W) ↔ codes (b t h w).

    A subclass gives the code grid (`latent_shape`), the encoder pass (`_encode`), how codes
    become latents (`_embed`) and the decoder pass (`_decode_latents`); encoding, decoding,
    checking codes and the training forward pass are the same for both.
    """

    config: FrameTokenizerConfig | ClipTokenizerConfig
    quantizer: VectorQuantizer

    @property
    def num_codes(self) -> int:
        """Size of the codebook (the prior's vocabulary)."""
        return self.config.num_codes

    def latent_shape(self, num_frames: int) -> tuple[int, int, int]:
        """(t, h, w) of the code grid of a clip with `num_frames` frames."""
        raise NotImplementedError

    def tokens_per_clip(self, num_frames: int) -> int:
        """How many tokens a prior sees for one clip."""
        return math.prod(self.latent_shape(num_frames))

    def _encode(self, video: torch.Tensor,
                update: bool) -> tuple[torch.Tensor, torch.Tensor, dict]:
        raise NotImplementedError  # → (quantized latents, codes (b t h w), quantizer stats)

    def _cell_box(self) -> tuple[int, int, int]:
        raise NotImplementedError  # (frames, pixels, pixels) of video behind one latent cell

    def empty_cells(self, video: torch.Tensor) -> torch.Tensor | None:
        """Bool (b t h w): latent cells of a video (b T H W) in [0, 1] whose pixel box holds no
        ink (None without an empty code)."""
        if not self.config.empty_code:
            return None
        peak = F.max_pool3d(rearrange(video.float(), "b t h w -> b 1 t h w"), self._cell_box())
        return rearrange(peak < self.config.empty_threshold, "b 1 t h w -> b t h w")

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # codes (b t h w) → the latents _decode_latents takes

    def _decode_latents(self, z_q: torch.Tensor, batch: int) -> torch.Tensor:
        raise NotImplementedError  # latents → video (b T H W), unclamped

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video uint8 or float [0, 1] (b T H W) → codes int64 (b t h w)."""
        return self._encode(video, update=False)[1]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (b t h w) → video float in [0, 1] (b T H W)."""
        _check_codes(codes, (self.config.grid, self.config.grid), self.config.num_codes)
        return self._decode_latents(self._embed(codes.long()), codes.shape[0]).clamp(0, 1)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Reconstruct (unclamped, for the loss) and log loss, recon_loss, perplexity, usage."""
        target = _as_video(video, self.config.image_size)
        z_q, codes, stats = self._encode(target, update=self.training)
        recon = self._decode_latents(z_q, target.shape[0])
        return recon, _logs(recon, target, stats, codes)


class FrameTokenizer(Tokenizer):
    """2D VQ-VAE applied to every frame: video (b t H W) ↔ codes (b t h w)."""

    config_class = FrameTokenizerConfig

    def __init__(self, config: FrameTokenizerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FrameTokenizerConfig()
        ch = config.channels
        encoder: list[nn.Module] = [nn.Conv2d(1, ch[0], 3, padding=1)]
        for c_in, c_out in zip((ch[0], *ch[:-1]), ch, strict=True):
            encoder += [nn.SiLU(), nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)]
        encoder += [ResBlock2d(ch[-1]) for _ in range(config.num_res_blocks)]
        encoder += [nn.GroupNorm(min(8, ch[-1]), ch[-1]), nn.SiLU(),
                    nn.Conv2d(ch[-1], config.code_dim, 1)]
        self.encoder = nn.Sequential(*encoder)
        self.quantizer = VectorQuantizer(
            config.num_codes, config.code_dim, config.beta, ema=config.ema, decay=config.decay,
            restart_dead=config.restart_dead, empty_code=config.empty_code,
        )  # fmt: skip
        decoder: list[nn.Module] = [nn.Conv2d(config.code_dim, ch[-1], 3, padding=1)]
        decoder += [ResBlock2d(ch[-1]) for _ in range(config.num_res_blocks)]
        for c_in, c_out in zip(ch[::-1], (*ch[::-1][1:], ch[0]), strict=True):
            decoder += [nn.SiLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
        decoder += [nn.SiLU(), nn.Conv2d(ch[0], 1, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)

    def latent_shape(self, num_frames: int) -> tuple[int, int, int]:
        """(t, h, w) of the code grid of a clip with `num_frames` frames."""
        return (num_frames, self.config.grid, self.config.grid)

    def _encode(
        self, video: torch.Tensor, update: bool
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        x = _as_video(video, self.config.image_size)
        b = x.shape[0]
        frames = rearrange(x, "b t h w -> (b t) 1 h w") * 2 - 1  # centre the pixels
        z = rearrange(self.encoder(frames), "n c h w -> n h w c")
        empty = self.empty_cells(x)
        if empty is not None:
            empty = rearrange(empty, "b t h w -> (b t) h w")
        z_q, codes, stats = self.quantizer(z, update=update, empty=empty)
        codes = rearrange(codes, "(b t) h w -> b t h w", b=b)
        return z_q, codes, stats

    def _cell_box(self) -> tuple[int, int, int]:
        side = 2 ** len(self.config.channels)
        return (1, side, side)

    def _decode_latents(self, z_q: torch.Tensor, b: int) -> torch.Tensor:
        out = self.decoder(rearrange(z_q, "n h w c -> n c h w"))
        return rearrange((out + 1) / 2, "(b t) 1 h w -> b t h w", b=b)

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.quantizer.embed_codes(rearrange(codes, "b t h w -> (b t) h w"))


def _logs(recon: torch.Tensor, target: torch.Tensor, stats: dict, codes: torch.Tensor) -> dict:
    recon_loss = F.mse_loss(recon, target)
    return {
        "loss": recon_loss + stats["loss"],
        "recon_loss": recon_loss,
        "commit_loss": stats["loss"],
        "perplexity": stats["perplexity"],
        "usage": stats["usage"],
        "restarted": stats["restarted"],
        "codes": codes,
    }


# --------------------------------------------------------------------------- 3D tokenizer
class AxialAttention(nn.Module):
    """Self-attention along t, then h, then w, each with its own pre-norm and residual.

    causal: attention along t sees only the present and the past (a causal encoder)."""

    def __init__(self, channels: int, num_heads: int, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(3)])
        self.attns = nn.ModuleList([MultiHeadAttention(channels, num_heads) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c t h w) → same shape; attention cost Σ_axis (length of axis)² per line."""
        patterns = ("b c t h w -> (b h w) t c", "b c t h w -> (b t w) h c",
                    "b c t h w -> (b t h) w c")
        b, c, t, h, w = x.shape
        sizes = {"b": b, "t": t, "h": h, "w": w}
        for axis, (pattern, norm, attn) in enumerate(
            zip(patterns, self.norms, self.attns, strict=True)
        ):
            source, target = pattern.split(" -> ")
            seq = rearrange(x, pattern)
            seq = attn(norm(seq), is_causal=self.causal and axis == 0)
            x = x + rearrange(seq, f"{target} -> {source}", **sizes)
        return x


class CausalConv3d(nn.Module):
    """A Conv3d whose output at time t sees inputs at times <= t (zeros padded on the left only).

    With kernel k_t and stride s_t, k_t - s_t frames of padding keep T / s_t outputs; output j
    then covers inputs s_t·j − (k_t − s_t) … s_t·j + s_t − 1, none of them later than its own box.
    """

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int],
                 stride: tuple[int, int, int] = (1, 1, 1), space_pad: int = 1) -> None:
        super().__init__()
        self.time_pad = kernel[0] - stride[0]
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=(0, space_pad,
                                                                             space_pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c t h w) → (b c' t/s_t h' w')."""
        return self.conv(F.pad(x, (0, 0, 0, 0, self.time_pad, 0)))


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame: a norm over (c, t, h, w) would leak the future."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c t h w) → same shape."""
        b = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


def _norm3d(channels: int, causal: bool) -> nn.Module:
    return (FrameGroupNorm if causal else nn.GroupNorm)(min(8, channels), channels)


def _conv3(c_in: int, c_out: int, causal: bool) -> nn.Module:
    return CausalConv3d(c_in, c_out, (3, 3, 3)) if causal else nn.Conv3d(c_in, c_out, 3,
                                                                            padding=1)


class ResBlock3d(nn.Module):
    """VideoGPT's block: x + conv1(relu(conv3(relu(norm x)))), then axial attention.

    causal: per-frame norms, left-padded convolutions and causal attention along t, so that
    nothing at time t depends on a later frame."""

    def __init__(self, channels: int, num_heads: int, causal: bool = False) -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.conv = nn.Sequential(
            _norm3d(channels, causal), nn.SiLU(),
            _conv3(channels, hidden, causal),
            _norm3d(hidden, causal), nn.SiLU(),
            nn.Conv3d(hidden, channels, 1),
        )  # fmt: skip
        self.attn = AxialAttention(channels, num_heads, causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c t h w) → same shape."""
        return self.attn(x + self.conv(x))


@dataclass
class ClipTokenizerConfig:
    """A 3D VQ-VAE: (T, S, S) → (T / time_down, S / space_down, S / space_down) codes."""

    image_size: int = 64
    time_down: int = 4
    space_down: int = 4
    channels: int = 64
    num_res_blocks: int = 2
    num_heads: int = 2
    num_codes: int = 512
    code_dim: int = 32
    beta: float = 0.25
    ema: bool = True
    decay: float = 0.99
    restart_dead: bool = True
    # A latent cell whose whole (time_down × space_down × space_down) pixel box stays below
    # empty_threshold gets the reserved code 0 (see VectorQuantizer): one symbol for background.
    empty_code: bool = False
    empty_threshold: float = 0.05
    # A causal-in-time encoder: the codes of the first k frames (k a multiple of time_down) are
    # the same whether or not later frames exist, so a prior can be given a context's codes.
    causal: bool = False

    def __post_init__(self) -> None:
        _check_power_of_two(self.time_down, "time_down")
        _check_empty_threshold(self.empty_threshold)
        _check_power_of_two(self.space_down, "space_down")
        if self.image_size % self.space_down:
            raise ValueError(f"image_size={self.image_size} must be divisible by "
                             f"space_down={self.space_down}")
        if self.channels % self.num_heads:
            raise ValueError(f"channels={self.channels} must be divisible by "
                             f"num_heads={self.num_heads}")

    @property
    def grid(self) -> int:
        """Codes per side of a latent frame."""
        return self.image_size // self.space_down

    @classmethod
    def preset(cls, name: str) -> ClipTokenizerConfig:
        """tiny (tests), small (laptop CPU, shipped), full (GPU)."""
        presets = {
            "tiny": cls(channels=16, num_res_blocks=1, num_heads=1, num_codes=64, code_dim=16),
            "small": cls(channels=64, num_res_blocks=2, num_heads=2, num_codes=512, code_dim=32),
            "full": cls(channels=128, num_res_blocks=4, num_heads=4, num_codes=1024, code_dim=64),
        }
        if name not in presets:
            raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
        return presets[name]

    @classmethod
    def compact(cls, name: str, time_down: int = 4) -> ClipTokenizerConfig:
        """The compact tokenizer a CPU prior can learn: 16×64×64 → (16 / time_down)×8×8 codes, a
        small codebook with a reserved empty code. tiny (tests), small (CPU), full (GPU).

        time_down=4 gives 4×8×8 = 256 codes per clip (`vqvae-compact`); time_down=2 gives
        8×8×8 = 512 codes of a 512-entry codebook (`vqvae-compact-t2`): each code then spans 2
        frames instead of 4, which keeps strokes that a 4-frame box blurs away.
        """
        if time_down not in (2, 4):
            raise ValueError(f"time_down must be 2 or 4, got {time_down!r}")
        codes = 256 if time_down == 4 else 512
        shared = dict(space_down=8, time_down=time_down, empty_code=True, causal=True)
        presets = {
            "tiny": cls(channels=16, num_res_blocks=1, num_heads=1, num_codes=32, code_dim=16,
                        **shared),
            "small": cls(channels=64, num_res_blocks=2, num_heads=2, num_codes=codes, code_dim=32,
                         **shared),
        }
        # `full` (GPU) is the `small` model: wider ones would not ship under 20 MB, and what a
        # GPU buys here is many more clips, not a bigger network.
        presets["full"] = presets["small"]
        if name not in presets:
            raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
        return presets[name]


def _stages(time_down: int, space_down: int) -> list[bool]:
    """One stride-2 stage per halving of space (or of time); True where time is halved too."""
    n_time, n_space = int(math.log2(time_down)), int(math.log2(space_down))
    return [i < n_time for i in range(max(n_time, n_space))]


class ClipTokenizer(Tokenizer):
    """3D VQ-VAE with axial attention (VideoGPT): video (b T H W) ↔ codes (b t h w)."""

    config_class = ClipTokenizerConfig

    def __init__(self, config: ClipTokenizerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ClipTokenizerConfig()
        c = config.channels
        n_space = int(math.log2(config.space_down))
        stages = _stages(config.time_down, config.space_down)
        if len(stages) > n_space:
            raise ValueError("ClipTokenizerConfig: time_down must not exceed space_down")

        causal = config.causal

        def down(halve_time: bool, c_in: int) -> nn.Module:
            kt, st = (4, 2) if halve_time else (3, 1)  # kernel 4 / stride 2 / pad 1 halves
            if causal:
                return CausalConv3d(c_in, c, (kt, 4, 4), stride=(st, 2, 2))
            return nn.Conv3d(c_in, c, (kt, 4, 4), stride=(st, 2, 2), padding=1)

        def up(halve_time: bool, c_out: int) -> nn.Module:
            kt, st = (4, 2) if halve_time else (3, 1)
            return nn.ConvTranspose3d(c, c_out, (kt, 4, 4), stride=(st, 2, 2), padding=1)

        # Stage widths: c/2 at full resolution (cheap), c below; first stage from c/2.
        half = max(c // 2, 1)
        encoder: list[nn.Module] = [_conv3(1, half, causal)]
        for i, halve_time in enumerate(stages):
            encoder += [nn.SiLU(), down(halve_time, half if i == 0 else c)]
        encoder += [ResBlock3d(c, config.num_heads, causal) for _ in range(config.num_res_blocks)]
        encoder += [_norm3d(c, causal), nn.SiLU(), nn.Conv3d(c, config.code_dim, 1)]
        self.encoder = nn.Sequential(*encoder)
        self.quantizer = VectorQuantizer(
            config.num_codes, config.code_dim, config.beta, ema=config.ema, decay=config.decay,
            restart_dead=config.restart_dead, empty_code=config.empty_code,
        )  # fmt: skip
        decoder: list[nn.Module] = [nn.Conv3d(config.code_dim, c, 3, padding=1)]
        decoder += [ResBlock3d(c, config.num_heads) for _ in range(config.num_res_blocks)]
        for i, halve_time in enumerate(reversed(stages)):
            last = i == len(stages) - 1
            decoder += [nn.SiLU(), up(halve_time, half if last else c)]
        decoder += [nn.SiLU(), nn.Conv3d(half, 1, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)

    def _check_frames(self, num_frames: int, name: str = "video") -> None:
        # The stride-2 stages in time need a positive multiple of time_down frames (0 would
        # reach the 3D convolutions as an empty time axis).
        if num_frames < self.config.time_down or num_frames % self.config.time_down:
            raise ValueError(f"{name} must have a number of frames divisible by time_down="
                             f"{self.config.time_down} and at least {self.config.time_down}; "
                             f"got {num_frames}")

    def latent_shape(self, num_frames: int) -> tuple[int, int, int]:
        """(t, h, w) of the code grid of a clip with `num_frames` frames."""
        self._check_frames(num_frames, "num_frames")
        return (num_frames // self.config.time_down, self.config.grid, self.config.grid)

    def _encode(
        self, video: torch.Tensor, update: bool
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        x = _as_video(video, self.config.image_size)
        self._check_frames(x.shape[1])
        z = self.encoder(rearrange(x, "b t h w -> b 1 t h w") * 2 - 1)
        z_q, codes, stats = self.quantizer(rearrange(z, "b c t h w -> b t h w c"), update=update,
                                           empty=self.empty_cells(x))
        return z_q, codes, stats

    def _cell_box(self) -> tuple[int, int, int]:
        return (self.config.time_down, self.config.space_down, self.config.space_down)

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.quantizer.embed_codes(codes)

    def _decode_latents(self, z_q: torch.Tensor, batch: int) -> torch.Tensor:
        out = self.decoder(rearrange(z_q, "b t h w c -> b c t h w"))
        return rearrange((out + 1) / 2, "b 1 t h w -> b t h w")




def tokenizer_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """The `fit` loss of either tokenizer: MSE reconstruction + β commitment (+ codebook)."""
    _, logs = model(batch["video"])
    floats = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
              for k, v in logs.items() if k not in ("loss", "codes")}
    return logs["loss"], floats


# --------------------------------------------------------------------------- training targets
def _pixel_clips(split: str, num_clips: int | None, seed: int, num_frames: int):
    """Moving MNIST clips of `split` digits, `num_frames` long, items holding the pixels only."""
    return MovingMNIST(split, num_clips=num_clips, seed=seed,
                       config=MovingMNISTConfig(num_frames=num_frames),
                       transform=lambda item: {"video": item["video"]})


def _training_clips(num_frames: int):
    """Endless fresh training clips (training digits only), pixels only, `num_frames` long."""

    def build(preset: str, seed: int):
        return _pixel_clips("train", None, seed, num_frames)

    return build


def _held_out_clips(num_frames: int):
    """A fixed batch of `size` test-digit clips (seed 1234): the held-out periodic loss."""
    from torch.utils.data import default_collate

    def build(preset: str, size: int) -> dict:
        data = _pixel_clips("test", size, 1234, num_frames)
        return default_collate([data[i] for i in range(size)])

    return build


def _tokenizer_target(description: str, build_model, num_frames: int, schedules: dict):
    """A tokenizer's train target: fresh training clips of `num_frames`, the shared loss, the
    held-out batch, and the manifest's note (its figures: 256 held-out 16-frame clips)."""
    return Target(
        description=description,
        build_model=build_model,
        build_dataset=_training_clips(num_frames),
        loss_fn=tokenizer_loss,
        eval_batch=_held_out_clips(num_frames),
        schedules=schedules,
        notes="figures on 256 held-out 16-frame clips of test digits (seed 1234)",
    )


def _make_targets():
    frame = _tokenizer_target(
        "2D VQ-VAE, 64×64 frame → 8×8 codes (CogVideo's tokenizer)",
        lambda preset: FrameTokenizer(FrameTokenizerConfig.preset(preset)),
        4,  # 4-frame clips: fresh digit pairs in every clip
        {
            "tiny": dict(steps=60, batch_size=4, lr=2e-3, warmup_steps=10),
            "small": dict(steps=3000, batch_size=8, lr=1e-3, warmup_steps=50),
            "full": dict(steps=30_000, batch_size=64, lr=5e-4, warmup_steps=500),
        },
    )
    frame_empty = _tokenizer_target(
        "2D VQ-VAE, 64×64 frame → 8×8 codes of 512, code 0 reserved for empty background "
        "(CogVideo's tokenizer: a prior pays ~0 bits for background)",
        lambda preset: FrameTokenizer(FrameTokenizerConfig.preset(preset, empty_code=True)),
        4,
        {
            "tiny": dict(steps=60, batch_size=4, lr=2e-3, warmup_steps=10),
            # ~0.15 s a step on 2 CPU cores with --bf16: 8,000 steps of 8 4-frame clips ≈ 20
            # minutes (the shipped run)
            "small": dict(steps=8000, batch_size=8, lr=1e-3, warmup_steps=50),
            "full": dict(steps=30_000, batch_size=64, lr=5e-4, warmup_steps=500),
        },
    )
    clip = _tokenizer_target(
        "3D VQ-VAE with axial attention, 16×64×64 → 4×16×16 codes (VideoGPT's)",
        lambda preset: ClipTokenizer(ClipTokenizerConfig.preset(preset)),
        16,
        {
            "tiny": dict(steps=30, batch_size=2, lr=2e-3, warmup_steps=5),
            "small": dict(steps=1500, batch_size=4, lr=1e-3, warmup_steps=50),
            "full": dict(steps=30_000, batch_size=32, lr=5e-4, warmup_steps=500),
        },
    )
    compact_schedules = {
        # ~0.9 s a step on 2 CPU cores with --bf16: 2,400 steps of 8 clips ≈ 38 minutes.
        # `full` is the same `small` model on a GPU: bigger batches, as many steps as
        # `--minutes` allows (the GPU recipe, docs/gpu_recipe.sh).
        "tiny": dict(steps=30, batch_size=2, lr=2e-3, warmup_steps=5),
        "small": dict(steps=2400, batch_size=8, lr=1e-3, warmup_steps=50),
        "full": dict(steps=30_000, batch_size=32, lr=1e-3, warmup_steps=200),
    }
    compact = _tokenizer_target(
        "compact 3D VQ-VAE, 16×64×64 → 4×8×8 codes of 256 with a reserved empty code "
        "(VideoGPT's tokenizer, sized for a CPU prior)",
        lambda preset: ClipTokenizer(ClipTokenizerConfig.compact(preset)),
        16, compact_schedules,
    )
    compact_t2 = _tokenizer_target(
        "compact 3D VQ-VAE, 16×64×64 → 8×8×8 codes of 512 with a reserved empty code "
        "(time ÷2: twice the codes of vqvae-compact, sharper strokes)",
        lambda preset: ClipTokenizer(ClipTokenizerConfig.compact(preset, time_down=2)),
        16, compact_schedules,
    )
    return frame, frame_empty, clip, compact, compact_t2


@functools.cache
def _copy_on(tokenizer: nn.Module, device: str) -> nn.Module:
    return copy.deepcopy(tokenizer).to(device)


@torch.no_grad()
def encode_generated(tokenizer: nn.Module, num_clips: int, digits: tuple,
                     config: MovingMNISTConfig, rng: np.random.Generator, *,
                     batch_size: int, frames: np.ndarray | None = None, progress: bool = False,
                     ) -> Iterator[tuple[MovingMNISTBatch, torch.Tensor]]:
    """Generate `num_clips` clips in batches and yield each batch with its codes (on the CPU).

    The one "generate → encode" loop of the recipes that encode a dataset once. The tokenizer
    encodes in eval mode (no codebook updates or restarts) and gets its mode back afterwards,
    even when encoding fails; `frames` picks the frames to encode (default: all).
    """
    device = next(tokenizer.parameters()).device
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        for start in tqdm(range(0, num_clips, batch_size), desc="encoding clips",
                          disable=not progress):
            clips = generate_clips(min(batch_size, num_clips - start), digits, config, rng)
            video = clips.videos if frames is None else clips.videos[:, frames]
            yield clips, tokenizer.encode(torch.from_numpy(video).to(device)).cpu()
    finally:
        tokenizer.train(was_training)


def encode_frozen(tokenizer: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Codes of a frozen tokenizer for a video on any device, always in float32.

    For recipes that encode inside the training loss: a tokenizer on another device is copied
    there once (and the copy kept), and float32 even inside a mixed-precision step, because the
    codes must be the ones the tokenizer gives at sampling time, when nothing is autocast.
    """
    if next(tokenizer.parameters()).device != video.device:
        tokenizer = _copy_on(tokenizer, str(video.device))
    with torch.autocast(video.device.type, enabled=False):
        return tokenizer.encode(video)


(FRAME_TOKENIZER_TARGET, FRAME_EMPTY_TOKENIZER_TARGET, CLIP_TOKENIZER_TARGET,
 COMPACT_TOKENIZER_TARGET, COMPACT_T2_TOKENIZER_TARGET) = _make_targets()
