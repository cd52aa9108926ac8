"""PyTorch datasets of Moving MNIST: generated on the fly (seeded per index) or cached to .npz.

Every item is a dict::

    video           uint8 (t, 64, 64)        digits          int64 (k,)
    positions       float32 (t, k, 2) (y, x)  caption         str
    caption_tokens  int64 (max_length,)      index           int

The default `torch.utils.data.default_collate` stacks these into a batch (captions become a
list of str), so no custom collate is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm  # plain bars: no ipywidgets needed in notebooks

from minivideo.data.captions import CaptionTokenizer, captions_for
from minivideo.data.mnist import SPLITS, load_digits
from minivideo.data.moving_mnist import MovingMNISTBatch, MovingMNISTConfig, generate_clips

INFINITE = 2**31 - 1  # "num_clips=None": as many distinct clips as a DataLoader can index
_SPLIT_STREAM = {"train": 0, "test": 1}  # train and test clips come from disjoint seed streams


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


class MovingMNIST(Dataset):
    """Clips generated on demand: item i is always the same clip for the same (split, seed, config).

    Train clips use only training digits and test clips only test digits (see
    `minivideo.data.mnist`), so a test clip never shows a digit image seen in training.
    """

    def __init__(self, split: str = "train", num_clips: int | None = 10_000, seed: int = 0,
                 config: MovingMNISTConfig | None = None, source: str = "bundled",
                 tokenizer: CaptionTokenizer | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        _check_split(split)
        if num_clips is not None and (not isinstance(num_clips, int) or num_clips < 1):
            raise ValueError(f"num_clips must be a positive int or None, got {num_clips!r}")
        self.split, self.seed = split, seed
        self.num_clips = INFINITE if num_clips is None else num_clips
        self.config = MovingMNISTConfig() if config is None else config
        self.digits = load_digits(split, source)
        self.tokenizer = CaptionTokenizer() if tokenizer is None else tokenizer
        self.transform = transform

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, index: int) -> MovingMNISTBatch:
        """The generated clip `index` as a one-clip batch with every label."""
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        index %= self.num_clips
        # One independent stream per (seed, split, index): the clip never depends on which
        # other items were drawn before, or by which DataLoader worker.
        rng = np.random.default_rng([self.seed, _SPLIT_STREAM[self.split], index])
        return generate_clips(1, self.digits, self.config, rng)

    def __getitem__(self, index: int) -> dict:
        batch = self.clip(index)
        caption = captions_for(batch)[0]
        item = {
            "video": torch.from_numpy(batch.videos[0]),
            "digits": torch.from_numpy(batch.digits[0]),
            "positions": torch.from_numpy(batch.trajectories.positions[0].astype(np.float32)),
            "caption": caption,
            "caption_tokens": torch.tensor(self.tokenizer.encode(caption), dtype=torch.long),
            "index": index % self.num_clips,
        }
        return self.transform(item) if self.transform is not None else item


def batch_arrays(batch: MovingMNISTBatch, tokenizer: CaptionTokenizer | None = None) -> dict:
    """Every array of a generated batch, as stored in the .npz files (see `save_clips`)."""
    tokenizer = CaptionTokenizer() if tokenizer is None else tokenizer
    captions = captions_for(batch)
    trajectories = batch.trajectories
    return {
        "videos": batch.videos,  # uint8 (n, t, h, w)
        "digits": batch.digits,  # int64 (n, k)
        "captions": np.array(captions, dtype=f"<U{tokenizer.max_length * 12}"),
        "caption_tokens": tokenizer.encode_batch(captions).numpy(),  # int64 (n, L)
        "positions": trajectories.positions.astype(np.float32),  # (n, t, k, 2) float px
        "positions_int": trajectories.positions_int.astype(np.int16),  # pixel pasted at
        "velocities": trajectories.velocities.astype(np.float32),  # (n, t, k, 2) px/frame
        "directions": trajectories.directions.astype(np.int8),  # (n, t, k) compass index
        "bounces": trajectories.bounces,  # bool (n, t, k)
    }


def generate_arrays(num_clips: int, split: str = "train", seed: int = 0,
                    config: MovingMNISTConfig | None = None, source: str = "bundled",
                    chunk: int = 1000, progress: bool = True) -> dict:
    """Generate num_clips clips in chunks (bounded memory); the arrays of `batch_arrays`.

    One random stream per (seed, split), so these clips differ from `MovingMNIST`'s items.
    """
    _check_split(split)
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    config = MovingMNISTConfig() if config is None else config
    digits = load_digits(split, source)
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    parts = []
    with tqdm(total=num_clips, desc=f"moving mnist ({split})", unit="clip",
              disable=not progress) as bar:
        for start in range(0, num_clips, chunk):
            size = min(chunk, num_clips - start)
            parts.append(batch_arrays(generate_clips(size, digits, config, rng)))
            bar.update(size)
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    arrays["config"] = np.array(json.dumps(config.to_dict()))
    arrays["split"], arrays["seed"] = np.array(split), np.array(seed)
    return arrays


def save_clips(path: str | Path, arrays: dict) -> Path:
    """Write the arrays of `generate_arrays` to a compressed .npz (no pickles)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"out must end in .npz, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_clips(path: str | Path) -> dict:
    """Read an .npz of `save_clips` (or `python -m minivideo data`) into a dict of arrays."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    if "videos" not in arrays or arrays["videos"].ndim != 4 or arrays["videos"].dtype != np.uint8:
        raise ValueError(f"{path}: expected a 'videos' array of uint8 (n, t, h, w)")
    return arrays


class CachedMovingMNIST(Dataset):
    """Clips generated once into an .npz (or read from it if it exists), served from memory.

    An existing file is read as is: delete it after changing seed or config.
    """

    def __init__(self, path: str | Path, split: str = "train", num_clips: int = 10_000,
                 seed: int = 0, config: MovingMNISTConfig | None = None,
                 source: str = "bundled", progress: bool = False) -> None:
        path = Path(path)
        if not path.is_file():
            save_clips(path, generate_arrays(num_clips, split, seed, config, source,
                                             progress=progress))
        self.path = path
        self.arrays = load_clips(path)
        stored = len(self.arrays["videos"])
        if stored < num_clips:
            raise ValueError(f"{path} holds {stored} clips, fewer than num_clips={num_clips}; "
                             "delete it to regenerate")
        self.num_clips = num_clips

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict:
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        index %= self.num_clips
        a = self.arrays
        return {
            "video": torch.from_numpy(a["videos"][index]),
            "digits": torch.from_numpy(a["digits"][index].astype(np.int64)),
            "positions": torch.from_numpy(a["positions"][index]),
            "caption": str(a["captions"][index]),
            "caption_tokens": torch.from_numpy(a["caption_tokens"][index].astype(np.int64)),
            "index": index,
        }
