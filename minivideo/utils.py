"""Small helpers shared by every layer: run mode, device choice, seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

MODE_VARIABLE = "MINIVIDEO_MODE"
MODES = ("fast", "full")


def course_mode() -> str:
    """Return "fast" (small configs, for tests and CI) or "full" (what a person runs).

    `pytest --nbval notebooks/` sets MINIVIDEO_MODE=fast through notebooks/conftest.py, so
    teachers' CI gets the fast mode with nothing to remember; JupyterLab gets the full mode.
    """
    mode = os.environ.get(MODE_VARIABLE, "full").strip().lower()
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE} must be one of {MODES}, got {mode!r}")
    return mode


def fast_mode() -> bool:
    """True when the course runs in its small, quick configuration."""
    return course_mode() == "fast"


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU (or `prefer` if given)."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds code that uses the legacy global RNG)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
