"""Small helpers shared by every layer: run mode, device choice, seeding, pixels, usage errors."""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any, ClassVar

import numpy as np
import torch

MODE_VARIABLE = "MINIVIDEO_MODE"


class UsageError(ValueError):
    """Bad input from the user (an option, a file they named): `python -m minivideo` prints it
    as one line and exits with status 2. Every other exception is a bug and keeps its traceback.
    A ValueError, so that library callers who catch ValueError see it too."""

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



def to_uint8(videos: torch.Tensor | np.ndarray, name: str = "videos") -> np.ndarray:
    """Pixels as a uint8 NumPy array: uint8 is copied, floats in [0, 1] are clipped and rounded
    to the nearest level.

    The one conversion of every sampler, figure and reference set, so that a clip written by
    `sample` and the same clip shown in a notebook hold identical bytes.
    """
    if isinstance(videos, torch.Tensor):
        videos = videos.detach().cpu()
        videos = (videos if videos.dtype == torch.uint8 else videos.float()).numpy()
    videos = np.asarray(videos)
    if videos.dtype == np.uint8:
        return videos.copy()
    if not np.issubdtype(videos.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or float in [0, 1]; got {videos.dtype}")
    return np.rint(np.clip(videos.astype(np.float32), 0.0, 1.0) * 255).astype(np.uint8)


class FromConfig:
    """What every model of the course shares: it is built from one config dataclass, and a
    checkpoint stores that config as a plain dict (`config_dict`) to rebuild it (`from_config`).

    A subclass names its dataclass in `config_class` and keeps it in `self.config`.
    """

    config_class: ClassVar[type]
    config: Any

    @classmethod
    def from_config(cls, config: Any):
        """Build from a config dataclass or its dict form (as checkpoints store it)."""
        config_class = cls.config_class
        if isinstance(config, config_class):
            return cls(config)
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict or a {config_class.__name__}, got "
                            f"{type(config).__name__}")
        unknown = set(config) - {f.name for f in dataclasses.fields(config_class)}
        if unknown:
            raise ValueError(f"config has keys {config_class.__name__} does not know: "
                             f"{sorted(unknown)}")
        return cls(config_class(**config))

    def config_dict(self) -> dict:
        """The config as a plain dict (what checkpoints store)."""
        return dataclasses.asdict(self.config)
