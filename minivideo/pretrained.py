"""Shipped checkpoints, loaded by name: `minivideo.pretrained.pretrained("vqvae-frame")`.

Checkpoints live in the repository's `checkpoints/` folder (NAME.pt beside its manifest
NAME.json); set MINIVIDEO_CHECKPOINTS to use another folder. Loading verifies the manifest's
sha256 and config first, so a corrupt or replaced file fails loudly instead of silently.

A prior's codes mean something only to the tokenizer it was trained on. Its manifest records
that tokenizer's name and sha256 (`tokenizer_record`), and loading a shipped prior, or a
tokenizer for any prior, refuses a mismatch (`check_tokenizer_pairing`); `minivideo.registry`
names each shipped prior's tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from minivideo import registry
from minivideo.checkpoints import build_model_from_checkpoint, manifest_path, verify_checkpoint

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
    """Load a shipped model by name, verified against its manifest (and, for a prior, against
    its tokenizer's file), in eval mode."""
    path = pretrained_path(name)
    verify_checkpoint(path)
    shipped = registry.shipped_entry(name)
    if shipped is not None and shipped.tokenizer is not None:
        check_tokenizer_pairing(path, shipped.tokenizer)
    model = build_model_from_checkpoint(path)
    if device is not None:
        model = model.to(device)
    return model.eval()


def tokenizer_record(tokenizer: str) -> dict:
    """{name, sha256} of a tokenizer, for a prior's manifest (sha256 None if it is not shipped:
    the seeded untrained tokenizer of tests and tiny presets)."""
    if tokenizer not in available_pretrained():
        return {"name": tokenizer, "sha256": None}
    manifest = json.loads(manifest_path(pretrained_path(tokenizer)).read_text())
    return {"name": tokenizer, "sha256": manifest["sha256"]}


def check_tokenizer_pairing(prior_path: str | Path, tokenizer: str) -> None:
    """Refuse to pair a prior with a tokenizer other than the one its manifest records.

    A prior without a manifest, or whose manifest predates the record, is not checked.
    """
    manifest_file = manifest_path(prior_path)
    if not manifest_file.is_file():
        return
    recorded = json.loads(manifest_file.read_text()).get("tokenizer")
    if not recorded or recorded.get("sha256") is None:
        return
    current = tokenizer_record(tokenizer)
    if (recorded["name"], recorded["sha256"]) != (current["name"], current["sha256"]):
        have = current["sha256"][:12] if current["sha256"] else "no shipped file"
        raise ValueError(
            f"{Path(prior_path).name} was trained on tokenizer {recorded['name']!r} (sha256 "
            f"{recorded['sha256'][:12]}...), not {tokenizer!r} in {checkpoints_dir()} ({have}): "
            "use the tokenizer it was trained on, or retrain the prior on this one")


def prior_tokenizer(prior_path: str | Path, tokenizer: str,
                    device: str | torch.device | None = None) -> nn.Module:
    """The shipped tokenizer of a prior stored at `prior_path`, after checking the pairing."""
    check_tokenizer_pairing(prior_path, tokenizer)
    return pretrained(tokenizer, device=device)


def pretrained_prior(name: str, device: str | torch.device | None = None,
                     ) -> tuple[nn.Module, nn.Module]:
    """A shipped prior and the shipped tokenizer it was trained on, both in eval mode.

    `minivideo.registry` names the tokenizer; the prior's manifest records its sha256, and a
    mismatch is an error (`check_tokenizer_pairing`).
    """
    shipped = registry.shipped_entry(name)
    if shipped is None or shipped.tokenizer is None:
        priors = [e.checkpoint for e in registry.MODELS.values() if e.checkpoint and e.tokenizer]
        raise ValueError(f"{name!r} is not a shipped prior; the shipped priors: "
                         f"{', '.join(priors)}")
    return pretrained(name, device=device), pretrained(shipped.tokenizer, device=device)
