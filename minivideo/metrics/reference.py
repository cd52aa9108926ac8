"""The Fréchet Judge Distance (FJD) and the reference points that make its value readable.

FVD (Unterthiner et al., 2018) fits a Gaussian to the features of real and of generated videos
and reports the Fréchet distance between the two (`minivideo.metrics.frechet`). Its features
come from I3D, a network trained to recognise human actions in Kinetics. Here the features come
from this course's own judge (`minivideo.metrics.judge`), trained on Moving MNIST: the formula is
FVD's, the embedding is not, so we call the number the **Fréchet Judge Distance** — it cannot be
compared with any published FVD, nor with an FJD computed by a different judge.

A distance alone means little ("is 3.2 good?"). Three kinds of reference points anchor it:

* the **floor** — two independent sets of real clips (test digits vs training digits): what a
  perfect generator would score with this many samples, since finite sets never match exactly;
* **degraded real clips** — what a recognisable failure costs: every frame the first one
  (no motion), frames shuffled (no temporal order), blurred frames, added noise;
* a **degradation sweep** — one knob turned gradually should raise the distance monotonically;
  `tests/test_judge.py` checks that it does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from minivideo.metrics.frechet import frechet_distance
from minivideo.metrics.image import gaussian_window
from minivideo.metrics.judge import Judge, as_video_tensor, judge_features
from minivideo.utils import to_uint8

DEGRADATIONS = ("static", "shuffled", "blur", "noise")
DEFAULT_LEVELS = {"blur": 1.5, "noise": 0.2}  # σ in pixels; σ of the noise in [0, 1] units


def degrade(videos: np.ndarray | torch.Tensor, kind: str, level: float | None = None,
            seed: int = 0) -> torch.Tensor:
    """A degraded copy (uint8 (n, t, 64, 64)) of real videos: static, shuffled, blur or noise.

    * ``static``: every frame is the first one (a still image; `level` unused);
    * ``shuffled``: the frames of each clip in a random order (right content, no dynamics);
    * ``blur``: a Gaussian blur of standard deviation `level` pixels per frame;
    * ``noise``: Gaussian noise of standard deviation `level` added, then clipped to [0, 1].
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"kind must be one of {DEGRADATIONS}, got {kind!r}")
    x = as_video_tensor(videos, min_frames=1)  # float (n, t, 64, 64) in [0, 1]
    level = DEFAULT_LEVELS.get(kind, 0.0) if level is None else float(level)
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    gen = torch.Generator().manual_seed(seed)
    n, t = x.shape[:2]
    if kind == "static":
        out = x[:, :1].expand_as(x)
    elif kind == "shuffled":
        order = torch.argsort(torch.rand(n, t, generator=gen), dim=1)  # a permutation per clip
        out = x[torch.arange(n)[:, None], order]
    elif kind == "blur":
        out = blur(x, level)
    else:
        out = (x + level * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    return torch.from_numpy(to_uint8(out))


def blur(videos: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of float frames (..., h, w) with standard deviation sigma px (0: identity)."""
    if sigma == 0:
        return videos
    size = 2 * int(np.ceil(3 * sigma)) + 1  # ±3σ holds 99.7% of the kernel's mass
    window = gaussian_window(size, sigma).to(videos)[None, None]
    frames = rearrange(videos, "... h w -> (...) 1 h w")
    out = F.conv2d(F.pad(frames, [size // 2] * 4, mode="replicate"), window)
    return out.reshape(videos.shape)


def frechet_judge_distance(judge: Judge, videos: np.ndarray | torch.Tensor,
                           reference: np.ndarray | torch.Tensor | torch.Tensor) -> float:
    """FJD: Fréchet distance between the judge features of two sets of clips (n, t, 64, 64)."""
    for name, x in (("videos", videos), ("reference", reference)):
        if len(x) < 2:
            raise ValueError(f"{name} needs at least 2 clips to fit a Gaussian, got {len(x)}")
    return frechet_distance(judge_features(judge, videos), judge_features(judge, reference))


def reference_points(judge: Judge, reference: np.ndarray | torch.Tensor,
                     other_real: np.ndarray | torch.Tensor, seed: int = 0,
                     progress: bool = False) -> dict[str, float]:
    """FJD to `reference` of other real clips (the floor) and of degraded copies of them.

    `other_real` should be independent real clips (e.g. training-digit clips when `reference`
    holds test-digit clips), as many as the generated sets you will compare: the floor depends
    on the number of samples.
    """
    from tqdm import tqdm  # local: only the CLI wants bars; plain, so no ipywidgets needed

    ref = judge_features(judge, reference)
    sets = {"real (floor)": lambda: other_real,
            **{f"{kind}": (lambda kind=kind: degrade(other_real, kind, seed=seed))
               for kind in DEGRADATIONS}}
    return {name: frechet_distance(judge_features(judge, make()), ref)
            for name, make in tqdm(sets.items(), desc="reference points", disable=not progress)}
