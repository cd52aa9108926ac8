"""How well a tokenizer reconstructs held-out clips: PSNR, SSIM, SSE, codebook use, legibility.

Test clips are made of *test* digits only, so a tokenizer is scored on digit shapes it never saw.
Legibility: a digit classifier (trained on training digits) reads 28×28 crops at the known digit
positions, in the original frames and in the reconstructions; a tokenizer that keeps digits
readable loses (almost) no accuracy.

    python -m minivideo eval tokenizer vqvae-frame --num 256
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minivideo.data import MovingMNIST, MovingMNISTConfig
from minivideo.metrics.digit_classifier import DIGIT_SIZE, DigitClassifier
from minivideo.metrics.image import psnr, sse_per_frame, ssim
from minivideo.pretrained import pretrained
from minivideo.vqvae import perplexity

TEST_SEED = 1234  # the held-out clips every tokenizer is measured on


def test_clips(num_clips: int, num_frames: int = 16, seed: int = TEST_SEED) -> dict:
    """Held-out clips: 'video' uint8 (n t 64 64), 'digits' (n k), 'positions' int (n t k 2)."""
    if not (isinstance(num_clips, int) and num_clips >= 1):
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    data = MovingMNIST("test", num_clips=num_clips, seed=seed,
                       config=MovingMNISTConfig(num_frames=num_frames))
    items = [data[i] for i in range(num_clips)]
    return {
        "video": torch.stack([item["video"] for item in items]),
        "digits": torch.stack([item["digits"] for item in items]),
        # the renderer pastes each digit at floor(position)
        "positions": torch.stack([item["positions"] for item in items]).floor().long(),
    }


def digit_crops(video: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """28×28 crops at the digits' corners: video (n t H W), positions (n t k 2) → (n t k 28 28)."""
    for name, x in (("video", video), ("positions", positions)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if (video.dim() != 4 or positions.dim() != 4 or positions.shape[-1] != 2
            or positions.shape[:2] != video.shape[:2]):
        raise ValueError(f"video must be (n, t, H, W) and positions (n, t, k, 2) with the same "
                         f"n, t; got {tuple(video.shape)} and {tuple(positions.shape)}")
    if positions.is_floating_point():
        raise TypeError("positions must be integer pixel corners (floor the float positions)")
    limit = min(video.shape[-2:]) - DIGIT_SIZE
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) > limit):
        raise ValueError(f"positions must lie in [0, {limit}] so that 28×28 crops fit the frame; "
                         f"got [{int(positions.min())}, {int(positions.max())}]")
    n, t, k, _ = positions.shape
    offsets = torch.arange(DIGIT_SIZE, device=video.device)
    rows = positions[..., 0, None] + offsets  # (n t k 28)
    cols = positions[..., 1, None] + offsets
    clip = torch.arange(n, device=video.device)[:, None, None, None, None]
    frame = torch.arange(t, device=video.device)[None, :, None, None, None]
    return video[clip, frame, rows[..., :, None], cols[..., None, :]]


@torch.no_grad()
def legibility(classifier: nn.Module, video: torch.Tensor, digits: torch.Tensor,
               positions: torch.Tensor) -> float:
    """Fraction of digit crops (every frame, every digit) the classifier reads correctly."""
    crops = digit_crops(video, positions)  # (n t k 28 28)
    n, t, k = crops.shape[:3]
    predictions = classifier(crops.reshape(-1, DIGIT_SIZE, DIGIT_SIZE)).argmax(-1)
    labels = digits[:, None, :].expand(n, t, k).reshape(-1)
    return float((predictions == labels).float().mean())


@torch.no_grad()
def evaluate_tokenizer(tokenizer: nn.Module, num_clips: int = 256, num_frames: int = 16,
                       batch_size: int = 16, classifier: DigitClassifier | None = None,
                       seed: int = TEST_SEED) -> dict[str, float]:
    """Reconstruct `num_clips` test clips and measure them; every figure is a mean over frames."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    clips = test_clips(num_clips, num_frames, seed)
    recons, all_codes = [], []
    for start in range(0, num_clips, batch_size):
        video = clips["video"][start : start + batch_size].to(device)
        codes = tokenizer.encode(video)
        all_codes.append(codes.cpu())
        recons.append(tokenizer.decode(codes).cpu())
    recon = torch.cat(recons)
    codes = torch.cat(all_codes)
    video = clips["video"]
    num_codes = tokenizer.config.num_codes
    results = {
        "psnr": float(psnr(recon, video).mean()),
        "ssim": float(ssim(recon, video).mean()),
        "sse_per_frame": float(sse_per_frame(recon, video).mean()),
        "perplexity": perplexity(codes, num_codes),
        "perplexity_fraction": perplexity(codes, num_codes) / num_codes,
        "codes_used": float(torch.bincount(codes.reshape(-1), minlength=num_codes)
                            .gt(0).float().mean()),
        "tokens_per_clip": float(math.prod(codes.shape[1:])),
    }
    if classifier is not None:
        classifier = classifier.to("cpu").eval()
        original = legibility(classifier, video, clips["digits"], clips["positions"])
        reconstructed = legibility(classifier, recon, clips["digits"], clips["positions"])
        results.update(legibility_original=original, legibility_reconstructed=reconstructed,
                       legibility_gap_points=100 * (original - reconstructed))
    return results


@torch.no_grad()
def reconstruct(tokenizer: nn.Module, video: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """decode(encode(video)) in batches: float [0, 1] clips (n T H W), what a prior can draw."""
    return torch.cat([tokenizer.decode(tokenizer.encode(video[s : s + batch_size]))
                      for s in range(0, len(video), batch_size)])


def evaluate_shipped_tokenizer(tokenizer: nn.Module) -> dict[str, float]:
    """The figures of a tokenizer's manifest: 256 test clips of 16 frames, legibility included."""
    return evaluate_tokenizer(tokenizer.cpu(), num_clips=256, num_frames=16,
                              classifier=pretrained("digit-classifier"))


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per tokenizer, one column per figure."""
    columns = ["tokens_per_clip", "psnr", "ssim", "sse_per_frame", "perplexity",
               "perplexity_fraction", "codes_used", "legibility_original",
               "legibility_reconstructed", "legibility_gap_points"]
    columns = [c for c in columns if any(c in r for r in rows.values())]
    lines = [" | ".join(["tokenizer", *columns])]
    for name, row in rows.items():
        lines.append(" | ".join([name, *(f"{row[c]:.4g}" if c in row else "-" for c in columns)]))
    return "\n".join(lines)
