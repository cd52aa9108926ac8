"""CogVideo-mini's training items drawn from a pool of encoded clips.

`encode_clips` makes Moving MNIST clips and encodes every frame with a frame tokenizer (cached if
asked, keyed by the tokenizer's weights); `FrameCaptionDataset` (stage 0) and `VideoDataset`
(stages 1-2) draw items that are pure functions of (seed, index). `_Draws` is also the base of the
fresh-clip items of the shipped recipe (`minivideo.models.cogvideo.recipe`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from minivideo.data.mnist import cache_dir, load_digits
from minivideo.data.moving_mnist import LABELS_VERSION, MovingMNISTConfig
from minivideo.models.cogvideo.layout import (
    _CAPTIONS,
    CLIP_FRAMES,
    TEXT_LEN,
    CogVideoConfig,
    clip_config,
    cogview_sequence,
    draw_window,
    frame_caption,
    scored_from,
    training_pair,
    video_sequence,
    window_caption,
    window_frames,
)
from minivideo.vqvae import FrameTokenizerConfig, encode_generated


# --------------------------------------------------------------------------- data
@dataclass
class EncodedClips:
    """Moving MNIST clips as codes, with what their captions are made of."""

    codes: torch.Tensor  # int16 (n, t, h, w)
    digits: np.ndarray  # int64 (n, k)
    directions: np.ndarray  # int8 (n, t, k): compass index of the velocity at each frame
    positions: np.ndarray  # float32 (n, t, k, 2): top-left (y, x) of each digit
    num_codes: int  # the tokenizer's codebook size

    def __len__(self) -> int:
        return len(self.codes)


def _state_hash(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_clips(tokenizer: nn.Module, num_clips: int, *, split: str = "train", seed: int = 0,
                 num_frames: int = CLIP_FRAMES, batch_size: int = 64,
                 cache: bool = False, clips: MovingMNISTConfig | None = None) -> EncodedClips:
    """Generate clips (training or test digits) and encode every frame with the tokenizer.

    cache=True keeps the result in the download cache, keyed by the tokenizer's weights, so the
    three stages trained one after another encode their clips once. `clips` is the generator
    (default: the paper's; `CogVideoConfig.clips` for a stage's own); its frame count is
    num_frames.
    """
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    if not isinstance(getattr(tokenizer, "config", None), FrameTokenizerConfig):
        raise TypeError(f"tokenizer must be a FrameTokenizer, got {type(tokenizer).__name__}")
    config = replace(clips or clip_config("any"), num_frames=num_frames)
    # clips of the paper's generator keep their old name (its labels never changed); any other
    # generator is in the key, with the version of its labels
    default = config == clip_config("any", num_frames)
    key = f"{config!r} labels {LABELS_VERSION}"
    suffix = "" if default else "-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    path = cache_dir() / "cogvideo" / (
        f"{_state_hash(tokenizer)}-{split}-{num_clips}-{seed}-{num_frames}{suffix}.pt")
    if cache and path.is_file():
        return EncodedClips(**torch.load(path, weights_only=False))
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 9])
    parts: dict[str, list] = {"codes": [], "digits": [], "directions": [], "positions": []}
    for clips, codes in encode_generated(tokenizer, num_clips, load_digits(split), config, rng,
                                         batch_size=batch_size):
        parts["codes"].append(codes.to(torch.int16))
        parts["digits"].append(clips.digits)
        parts["directions"].append(clips.trajectories.directions.astype(np.int8))
        parts["positions"].append(clips.trajectories.positions.astype(np.float32))
    arrays = {"codes": torch.cat(parts["codes"]), "num_codes": tokenizer.num_codes,
              **{k: np.concatenate(v) for k, v in parts.items() if k != "codes"}}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(arrays, path)
    return EncodedClips(**arrays)


def _maybe_drop(captions: torch.Tensor, drop: bool) -> torch.Tensor:
    return torch.zeros_like(captions) if drop else captions  # all pads: "no caption"


class _Draws(Dataset):
    """Item i is a pure function of (seed, i): which clip, frames and caption dropout."""

    STREAM = 0
    LENGTH = 2**31 - 1  # drawn with replacement by the training loop, step by step

    def __init__(self, clips: EncodedClips, seed: int = 0, caption_dropout: float = 0.0,
                 length: int | None = None) -> None:
        self.clips, self.seed, self.caption_dropout = clips, seed, caption_dropout
        self.length = self.LENGTH if length is None else length

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        """The random stream of item `index`."""
        return np.random.default_rng([self.seed, self.STREAM, index])

    def caption(self, text: str, rng: np.random.Generator) -> torch.Tensor:
        """Word ids of a caption, replaced by pads with probability caption_dropout."""
        ids = torch.tensor(_CAPTIONS.encode(text), dtype=torch.long)
        return _maybe_drop(ids, bool(rng.random() < self.caption_dropout))


class FrameCaptionDataset(_Draws):
    """Stage 0: one frame of a random clip, with its quadrant caption."""

    STREAM = 20

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        clip = int(rng.integers(len(self.clips)))
        t = int(rng.integers(self.clips.codes.shape[1]))
        caption = self.caption(frame_caption(self.clips.digits[clip],
                                             self.clips.positions[clip, t]), rng)
        num_codes = self.clips.num_codes
        sequence = cogview_sequence(caption[None], self.clips.codes[clip, t][None], num_codes)
        return training_pair(sequence[0], TEXT_LEN + 1, num_codes)


class VideoDataset(_Draws):
    """Stages 1 and 2: a window of frames of a random clip at a random accepted frame rate."""

    STREAM = 21

    def __init__(self, clips: EncodedClips, config: CogVideoConfig, seed: int = 0,
                 caption_dropout: float = 0.0, length: int | None = None,
                 stride: int | None = None) -> None:
        super().__init__(clips, seed, caption_dropout, length)
        self.config, self.stride = config, stride

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(clip, stride, first frame) of one item."""
        clip = int(rng.integers(len(self.clips)))
        stride, first = draw_window(self.config, self.clips.codes.shape[1], rng, self.stride)
        return clip, stride, first

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        clip, stride, first = self.draw(rng)
        clips = self.clips
        frames = window_frames(self.config, stride, first)
        text = window_caption(self.config, clips.digits[clip], clips.directions[clip], stride,
                              first)
        caption = self.caption(text, rng)
        sequence = video_sequence(self.config, caption[None], stride,
                                  clips.codes[clip, frames][None].long())[0]
        return training_pair(sequence, scored_from(self.config), self.config.base.num_codes)
