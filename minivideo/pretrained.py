"""Shipped checkpoints, loaded by name: `minivideo.pretrained.pretrained("vqvae-frame")`.

Checkpoints live in the repository's `checkpoints/` folder (NAME.pt beside its manifest
NAME.json); set MINIVIDEO_CHECKPOINTS to use another folder. Loading verifies the manifest's
sha256 and config first, so a corrupt or replaced file fails loudly instead of silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from minivideo.checkpoints import build_model_from_checkpoint, verify_checkpoint

CHECKPOINTS_VARIABLE = "MINIVIDEO_CHECKPOINTS"


def checkpoints_dir() -> Path:
    """Where shipped checkpoints are looked up."""
    override = os.environ.get(CHECKPOINTS_VARIABLE)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "checkpoints"


def available_pretrained() -> list[str]:
    """Names of the checkpoints that have a manifest in `checkpoints_dir()`."""
    folder = checkpoints_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def pretrained_path(name: str) -> Path:
    """The checkpoint file of a shipped model, after checking the name is known."""
    names = available_pretrained()
    if name not in names:
        raise ValueError(
            f"unknown pretrained model {name!r}; available in {checkpoints_dir()}: "
            f"{', '.join(names) or 'none'}"
        )
    return checkpoints_dir() / f"{name}.pt"


def pretrained(name: str, device: str | torch.device | None = None) -> nn.Module:
    """Load a shipped model by name, verified against its manifest, in eval mode."""
    path = pretrained_path(name)
    verify_checkpoint(path)
    model = build_model_from_checkpoint(path)
    if device is not None:
        model = model.to(device)
    return model.eval()
