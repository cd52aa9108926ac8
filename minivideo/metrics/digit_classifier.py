"""A small CNN that reads MNIST digits: the legibility test of a tokenizer's reconstructions.

PSNR rewards a blurry digit almost as much as a sharp one; what matters to the viewer (and to a
caption like "a 3 moving left") is whether the digit can still be read. So we train a classifier
on 28×28 *training* digits and compare its accuracy on 28×28 crops of reconstructed test frames
with its accuracy on the same crops of the originals (`minivideo.metrics.reconstruction`).

Train it (about a minute on one CPU thread) with

    python -m minivideo train digit-classifier --config small --out checkpoints/digit-classifier.pt
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from minivideo.data import load_digits
from minivideo.train import Target
from minivideo.utils import FromConfig

DIGIT_SIZE = 28


@dataclass
class DigitClassifierConfig:
    """Widths of the two conv stages and of the hidden layer."""

    channels: tuple[int, int] = (16, 32)
    hidden: int = 64

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


class DigitClassifier(FromConfig, nn.Module):
    """conv-pool-conv-pool-MLP: 28×28 digit (b 28 28) → 10 logits."""

    config_class = DigitClassifierConfig

    def __init__(self, config: DigitClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DigitClassifierConfig()
        c1, c2 = config.channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14×14
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7×7
            nn.Flatten(), nn.Linear(c2 * 7 * 7, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, 10),
        )  # fmt: skip

    def forward(self, digits: torch.Tensor) -> torch.Tensor:
        """digits uint8 or float [0, 1] (b 28 28) → logits (b 10)."""
        if not isinstance(digits, torch.Tensor):
            raise TypeError(f"digits must be a torch.Tensor, got {type(digits).__name__}")
        if digits.dim() != 3 or tuple(digits.shape[1:]) != (DIGIT_SIZE, DIGIT_SIZE):
            raise ValueError(f"digits must have shape (b, {DIGIT_SIZE}, {DIGIT_SIZE}), got "
                             f"{tuple(digits.shape)}")
        if not (digits.dtype == torch.uint8 or digits.is_floating_point()):
            raise TypeError(f"digits must be uint8 or float in [0, 1], got {digits.dtype}")
        x = digits.float() / 255.0 if digits.dtype == torch.uint8 else digits.float()
        return self.net(x[:, None])

    @torch.no_grad()
    def predict(self, digits: torch.Tensor) -> torch.Tensor:
        """Predicted class (b,) of each digit."""
        return self(digits).argmax(-1)


class ShiftedDigits(Dataset):
    """Training digits shifted by up to `max_shift` px: crops of clips are never centred exactly."""

    def __init__(self, split: str = "train", max_shift: int = 2, seed: int = 0) -> None:
        images, labels = load_digits(split)
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)
        self.max_shift, self.seed = max_shift, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        dy, dx = rng.integers(-self.max_shift, self.max_shift + 1, size=2)
        image = torch.roll(self.images[index], shifts=(int(dy), int(dx)), dims=(0, 1))
        return {"digit": image, "label": self.labels[index]}


def classifier_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the digit classes; logs the batch accuracy."""
    logits = model(batch["digit"])
    loss = F.cross_entropy(logits, batch["label"])
    accuracy = (logits.argmax(-1) == batch["label"]).float().mean()
    return loss, {"accuracy": float(accuracy)}


@torch.no_grad()
def test_accuracy(model: DigitClassifier) -> float:
    """Accuracy on the held-out test digits (the last 100 of each class)."""
    images, labels = load_digits("test")
    model.eval()
    predictions = model.predict(torch.from_numpy(images))
    return float((predictions == torch.from_numpy(labels)).float().mean())


def evaluate_classifier(model: nn.Module) -> dict[str, float]:
    """The manifest's figures: accuracy on the 1,000 held-out test digits."""
    return {"test_digit_accuracy": round(test_accuracy(model.cpu()), 4)}


TARGET = Target(
    description="CNN digit classifier for the legibility of reconstructions (28×28 → 10 classes)",
    build_model=lambda preset: DigitClassifier(
        DigitClassifierConfig(channels=(32, 64), hidden=128) if preset == "full" else None
    ),
    build_dataset=lambda preset, seed: ShiftedDigits("train", max_shift=2, seed=seed),
    loss_fn=classifier_loss,
    schedules={
        "tiny": dict(steps=60, batch_size=32, lr=3e-3, warmup_steps=10),
        "small": dict(steps=800, batch_size=64, lr=2e-3, warmup_steps=50, weight_decay=0.01),
        "full": dict(steps=3000, batch_size=128, lr=2e-3, warmup_steps=100, weight_decay=0.01),
    },
    notes="trained on the 4,000 bundled training digits shifted by up to 2 px; "
    "accuracy on the 1,000 test digits",
)
