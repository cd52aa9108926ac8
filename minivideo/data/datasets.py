"""PyTorch datasets of Moving MNIST: generated on the fly (seeded per index) or cached to .npz.

Every item of `MovingMNIST` and `CachedMovingMNIST` is a dict::

    video              uint8 (t, 64, 64)        digits          int64 (k,)
    positions          float32 (t, k, 2) (y, x)  caption         str
    caption_tokens     int64 (max_length,)      index           int
    velocities         float32 (t, k, 2) px/frame carrying frame t to t + 1
    bounces            bool (t, k): a wall was hit on the way into frame t
    directions         int64 (t, k): compass index (see `COMPASS`) of each velocity
    motion_directions  int64 (k, t − 1): each digit's collapsed compass path, padded with -1
    motion_lengths     int64 (k,): real entries per row of motion_directions
    num_bounces        int64 (k,): walls hit by each digit

The motion fields are `summarize_motion` in fixed shapes (`item_motion` turns them back into
`DigitMotion`s). The default `torch.utils.data.default_collate` stacks these into a batch
(captions become a list of str), so no custom collate is needed. `OfficialMovingMNIST` serves
the paper's fixed test file (videos only: it has no labels).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm  # plain bars: no ipywidgets needed in notebooks

from minivideo.data.captions import MIN_FRAMES, CaptionTokenizer, captions_for
from minivideo.data.mnist import SPLITS, load_digits
from minivideo.data.moving_mnist import (
    DigitMotion,
    MovingMNISTBatch,
    MovingMNISTConfig,
    generate_clips,
    motion_arrays,
    motion_from_arrays,
    official_test_path,
    open_official_test_set,
)
from minivideo.data.video_files import read_npz

INFINITE = 2**31 - 1  # "num_clips=None": as many distinct clips as a DataLoader can index
_SPLIT_STREAM = {"train": 0, "test": 1}  # train and test clips come from disjoint seed streams


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _check_seed(seed: int) -> None:
    # numpy rejects negative seeds with a message that does not name the argument.
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _check_config(config: MovingMNISTConfig) -> MovingMNISTConfig:
    if not isinstance(config, MovingMNISTConfig):
        raise TypeError(f"config must be a MovingMNISTConfig, got {type(config).__name__}")
    if config.num_frames < MIN_FRAMES:
        raise ValueError(f"config.num_frames must be at least {MIN_FRAMES}: items are captioned "
                         f"by their motion and one frame shows none; got {config.num_frames}")
    return config


def _label_fields(velocities: np.ndarray, directions: np.ndarray, bounces: np.ndarray) -> dict:
    """The per-frame motion labels and motion summary of one clip, as tensors."""
    return {
        "velocities": torch.from_numpy(np.ascontiguousarray(velocities, dtype=np.float32)),
        "bounces": torch.from_numpy(np.ascontiguousarray(bounces, dtype=bool)),
        "directions": torch.from_numpy(np.ascontiguousarray(directions, dtype=np.int64)),
        **{key: torch.from_numpy(v) for key, v in motion_arrays(directions, bounces).items()},
    }


def item_motion(item: dict) -> list[DigitMotion]:
    """The per-digit `DigitMotion` summary of one dataset item (inverse of its motion fields)."""
    missing = [key for key in ("digits", "motion_directions", "motion_lengths", "bounces")
               if key not in item]
    if missing:
        raise ValueError(f"item lacks {missing}; expected an item of MovingMNIST or "
                         "CachedMovingMNIST")
    table, lengths = np.asarray(item["motion_directions"]), np.asarray(item["motion_lengths"])
    if table.ndim != 2:
        raise ValueError(f"item['motion_directions'] must be (k, s) for one item; got shape "
                         f"{table.shape} (a batch? pass one item)")
    return motion_from_arrays(np.asarray(item["digits"]), np.asarray(item["bounces"]), table,
                              lengths)


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
        _check_seed(seed)
        if num_clips is not None and (not isinstance(num_clips, int) or num_clips < 1):
            raise ValueError(f"num_clips must be a positive int or None, got {num_clips!r}")
        self.split, self.seed = split, seed
        self.num_clips = INFINITE if num_clips is None else num_clips
        self.config = _check_config(MovingMNISTConfig() if config is None else config)
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
        trajectories = batch.trajectories
        item = {
            "video": torch.from_numpy(batch.videos[0]),
            "digits": torch.from_numpy(batch.digits[0]),
            "positions": torch.from_numpy(trajectories.positions[0].astype(np.float32)),
            "caption": caption,
            "caption_tokens": torch.tensor(self.tokenizer.encode(caption), dtype=torch.long),
            "index": index % self.num_clips,
            **_label_fields(trajectories.velocities[0], trajectories.directions[0],
                            trajectories.bounces[0]),
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
    The arrays also record split, seed, source and config, which `CachedMovingMNIST` checks.
    """
    _check_split(split)
    _check_seed(seed)
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    config = _check_config(MovingMNISTConfig() if config is None else config)
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
    arrays["source"] = np.array(source)
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
    arrays = read_npz(path, "clips file", "expected an .npz written by save_clips")
    if "videos" not in arrays or arrays["videos"].ndim != 4 or arrays["videos"].dtype != np.uint8:
        raise ValueError(f"{path}: expected a 'videos' array of uint8 (n, t, h, w)")
    return arrays


def _metadata_mismatches(arrays: dict, expected: dict) -> list[str]:
    """What differs between the metadata stored in an .npz and the requested one."""
    problems = []
    for key, want in expected.items():
        if key not in arrays:
            problems.append(f"no stored {key!r}")
            continue
        stored = arrays[key]
        if key == "config":
            got = json.loads(str(stored))
        elif key == "seed":
            got = int(stored)
        else:
            got = str(stored)
        if got != want:
            problems.append(f"{key} {got!r} (requested {want!r})")
    return problems


class CachedMovingMNIST(Dataset):
    """Clips generated once into an .npz (or read from it if it exists), served from memory.

    The file records the split, seed, digit source and config it was made with. An existing
    file made with other settings (or holding too few clips) raises ValueError, unless
    ``regenerate=True``, which overwrites it with freshly generated clips.
    """

    def __init__(self, path: str | Path, split: str = "train", num_clips: int = 10_000,
                 seed: int = 0, config: MovingMNISTConfig | None = None,
                 source: str = "bundled", progress: bool = False,
                 regenerate: bool = False) -> None:
        _check_split(split)
        _check_seed(seed)
        if not isinstance(num_clips, int) or num_clips < 1:
            raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
        config = _check_config(MovingMNISTConfig() if config is None else config)
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"path must end in .npz, got {str(path)!r}")
        expected = {"split": split, "seed": int(seed), "source": source,
                    "config": config.to_dict()}
        problems = []
        if path.is_file():
            arrays = load_clips(path)
            problems = _metadata_mismatches(arrays, expected)
            if len(arrays["videos"]) < num_clips:
                problems.append(f"{len(arrays['videos'])} clips, fewer than "
                                f"num_clips={num_clips}")
        if problems and not regenerate:
            raise ValueError(f"{path} does not match the requested clips: "
                             f"{'; '.join(problems)}. Pass regenerate=True to overwrite it "
                             "(or delete it, or choose another path)")
        if problems or not path.is_file():
            save_clips(path, generate_arrays(num_clips, split, seed, config, source,
                                             progress=progress))
            arrays = load_clips(path)
        self.path, self.arrays = path, arrays
        self.split, self.seed, self.source, self.config = split, seed, source, config
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
            **_label_fields(a["velocities"][index], a["directions"][index], a["bounces"][index]),
        }


class OfficialMovingMNIST(Dataset):
    """The paper's fixed test set mnist_test_seq.npy, read clip by clip from a memory map.

    Items are ``{"video": uint8 (t, 64, 64), "index": int}`` (the file has no labels).
    ``path`` defaults to ``$MINIVIDEO_CACHE/mnist_test_seq.npy``; `available` says whether it
    is there. ``num_frames`` keeps the first frames of each clip (all 20 by default).
    """

    def __init__(self, path: str | Path | None = None, layout: str = "tnhw",
                 num_frames: int | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        self.path, self.layout = official_test_path(path), layout
        array = open_official_test_set(self.path, layout)
        if layout == "tnhw":
            total_frames, self.num_clips = array.shape[:2]
        else:
            self.num_clips, total_frames = array.shape[:2]
        if num_frames is None:
            num_frames = total_frames
        if not isinstance(num_frames, int) or not 1 <= num_frames <= total_frames:
            raise ValueError(f"num_frames must be an int in [1, {total_frames}] (the file's "
                             f"frames) or None, got {num_frames!r}")
        self.num_frames, self.transform = num_frames, transform
        self._array: np.ndarray | None = array

    @staticmethod
    def available(path: str | Path | None = None) -> bool:
        """True when the official file exists at path (default: the cache location)."""
        return official_test_path(path).is_file()

    def __len__(self) -> int:
        return self.num_clips

    def __getstate__(self) -> dict:
        # DataLoader workers may pickle the dataset: send the path, never the mapped array.
        return {**self.__dict__, "_array": None}

    def __getitem__(self, index: int) -> dict:
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        index %= self.num_clips
        if self._array is None:
            self._array = open_official_test_set(self.path, self.layout)
        clip = self._array[:, index] if self.layout == "tnhw" else self._array[index]
        item = {"video": torch.from_numpy(np.array(clip[: self.num_frames])), "index": index}
        return self.transform(item) if self.transform is not None else item
