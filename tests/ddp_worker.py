"""A toy model and dataset for the training-loop tests; run directly, one DDP rank of a test."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from minivideo.train import TrainConfig, fit


@dataclass
class ToyConfig:
    """Sizes of the toy regression model."""

    width: int = 16
    dropout: float = 0.1


class Toy(nn.Module):
    """A small MLP with dropout (so the RNG state matters for exact resumption)."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(4, config.width),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.width, 1),
        )

    @classmethod
    def from_config(cls, config: dict) -> Toy:
        return cls(ToyConfig(**config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class ToyData(Dataset):
    """y = sum(sin(x)): 256 fixed points."""

    def __init__(self, n: int = 256) -> None:
        gen = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = torch.sin(self.x).sum(-1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def mse(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    loss = (model(batch["x"]) - batch["y"]).square().mean()
    return loss, {}


def main() -> None:
    """Train the toy model under torchrun and let rank 0 save the weights to argv[1]."""
    config = TrainConfig(
        steps=20, batch_size=16, lr=1e-2, warmup_steps=2, progress=False, device="cpu"
    )
    torch.manual_seed(0)
    model = Toy(ToyConfig(dropout=0.0))
    result = fit(model, mse, ToyData(), config)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        torch.save(result.model.state_dict(), sys.argv[1])


if __name__ == "__main__":
    main()
