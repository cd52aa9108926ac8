"""Datasets: on-the-fly clips seeded per index, the cached .npz variant, batching."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from minivideo.data.captions import CaptionTokenizer, parse_caption
from minivideo.data.datasets import CachedMovingMNIST, MovingMNIST, generate_arrays, load_clips
from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import MovingMNISTConfig


def test_item_i_is_always_the_same_clip():
    a, b = MovingMNIST("train", num_clips=50, seed=1), MovingMNIST("train", num_clips=50, seed=1)
    for i in (0, 17, 49):
        assert torch.equal(a[i]["video"], b[i]["video"]) and a[i]["caption"] == b[i]["caption"]
    assert not torch.equal(a[0]["video"], a[1]["video"])
    assert not torch.equal(a[0]["video"], MovingMNIST("train", num_clips=50, seed=2)[0]["video"])
    assert torch.equal(a[-1]["video"], a[49]["video"])
    with pytest.raises(IndexError):
        a[50]


def test_item_fields_and_consistency():
    ds = MovingMNIST("test", num_clips=10, config=MovingMNISTConfig(num_digits=3, num_frames=12))
    item = ds[3]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (12, 64, 64)
    assert item["digits"].dtype == torch.int64 and item["digits"].shape == (3,)
    assert item["positions"].shape == (12, 3, 2)
    assert [p.digit for p in parse_caption(item["caption"])] == item["digits"].tolist()
    assert CaptionTokenizer().decode(item["caption_tokens"]) == item["caption"]


def test_test_split_uses_only_test_digits():
    ds = MovingMNIST("test", num_clips=5, seed=0)
    test_images, _ = load_digits("test")
    np.testing.assert_array_equal(ds.digits[0], test_images)  # the pool clips draw from
    clip = ds.clip(2)
    y, x = clip.trajectories.positions_int[0, 0, 0]
    digit = test_images[clip.digit_ids[0, 0]]
    assert (clip.videos[0, 0, y:y + 28, x:x + 28] >= digit).all()  # that test digit is on screen


def test_infinite_dataset_and_default_collate():
    ds = MovingMNIST(num_clips=None)
    assert len(ds) >= 2**31 - 1
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["video"].shape == (4, 20, 64, 64) and batch["caption_tokens"].shape == (4, 26)
    assert isinstance(batch["caption"], list) and len(batch["caption"]) == 4


def test_cached_dataset_writes_then_reads(tmp_path):
    path = tmp_path / "clips.npz"
    first = CachedMovingMNIST(path, "train", num_clips=20, seed=3)
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    second = CachedMovingMNIST(path, "train", num_clips=20, seed=3)
    assert path.stat().st_mtime_ns == mtime  # read, not regenerated
    assert torch.equal(first[5]["video"], second[5]["video"]) and first[5]["caption"] == second[5]["caption"]
    arrays = load_clips(path)
    fresh = generate_arrays(20, "train", seed=3, progress=False)
    np.testing.assert_array_equal(arrays["videos"], fresh["videos"])
    with pytest.raises(ValueError, match="fewer"):
        CachedMovingMNIST(path, "train", num_clips=30)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        MovingMNIST("validation")
    with pytest.raises(ValueError, match="num_clips"):
        MovingMNIST(num_clips=0)
    with pytest.raises(ValueError, match="npz"):
        CachedMovingMNIST("/tmp/clips.h5", num_clips=2)
