"""Datasets: on-the-fly clips seeded per index, the cached .npz variant, the official file."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from minivideo.data.captions import CaptionTokenizer, caption_from_motion, parse_caption
from minivideo.data.datasets import (
    CachedMovingMNIST,
    MovingMNIST,
    OfficialMovingMNIST,
    generate_arrays,
    item_motion,
    load_clips,
    save_clips,
)
from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import COMPASS, MovingMNISTConfig, summarize_motion

LABEL_KEYS = ("velocities", "bounces", "directions", "motion_directions", "motion_lengths",
              "num_bounces")


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


def test_items_carry_velocities_bounces_and_the_motion_summary():
    config = MovingMNISTConfig(num_digits=3, num_frames=12)
    ds = MovingMNIST("train", num_clips=40, seed=5, config=config)
    seen_bounce = seen_then = False
    for i in range(40):
        item, clip = ds[i], ds.clip(i)
        t = clip.trajectories
        assert item["velocities"].dtype == torch.float32 and item["velocities"].shape == (12, 3, 2)
        assert item["bounces"].dtype == torch.bool and item["bounces"].shape == (12, 3)
        assert item["directions"].dtype == torch.int64 and item["directions"].shape == (12, 3)
        assert item["motion_directions"].shape == (3, 11) and item["num_bounces"].shape == (3,)
        np.testing.assert_allclose(item["velocities"].numpy(), t.velocities[0], rtol=1e-6)
        np.testing.assert_array_equal(item["bounces"].numpy(), t.bounces[0])
        np.testing.assert_array_equal(item["directions"].numpy(), t.directions[0])
        np.testing.assert_array_equal(item["num_bounces"].numpy(), t.bounces[0].sum(0))
        motion = item_motion(item)
        assert motion == summarize_motion(clip, 0)  # the same summary, rebuilt from tensors
        assert caption_from_motion(motion) == item["caption"]
        for slot, m in enumerate(motion):  # padding after the real entries, and only there
            row = item["motion_directions"][slot]
            assert int(item["motion_lengths"][slot]) == len(m.directions)
            assert [COMPASS[d] for d in row[: len(m.directions)]] == list(m.directions)
            assert (row[len(m.directions):] == -1).all()
        seen_bounce |= bool(item["bounces"].any())
        seen_then |= bool((item["motion_lengths"] > 1).any())
    assert seen_bounce and seen_then  # the checks above met bounces and turns


def test_motion_fields_collate_even_when_paths_differ_in_length():
    ds = MovingMNIST(num_clips=8, config=MovingMNISTConfig(num_frames=16, stochastic=True,
                                                           change_prob=0.5))
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["motion_directions"].shape == (8, 2, 15) and batch["bounces"].shape == (8, 16, 2)
    assert len(set(batch["motion_lengths"].flatten().tolist())) > 1
    with pytest.raises(ValueError, match="one item"):
        item_motion(batch)


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
        CachedMovingMNIST(path, "train", num_clips=30, seed=3)
    # Cached items carry the same labels as generated ones.
    item = first[7]
    assert set(LABEL_KEYS) <= set(item)
    np.testing.assert_array_equal(item["velocities"].numpy(), fresh["velocities"][7])
    np.testing.assert_array_equal(item["bounces"].numpy(), fresh["bounces"][7])
    assert caption_from_motion(item_motion(item)) == item["caption"]
    assert next(iter(DataLoader(first, batch_size=4)))["motion_directions"].shape == (4, 2, 19)


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": 4}, "seed 3 \\(requested 4\\)"),
    ({"split": "test"}, "split 'train' \\(requested 'test'\\)"),
    ({"config": MovingMNISTConfig(num_frames=10)}, "config"),
    ({"source": "mnist"}, "source 'bundled'"),
])
def test_cached_dataset_refuses_a_file_made_with_other_settings(tmp_path, kwargs, match):
    path = tmp_path / "clips.npz"
    CachedMovingMNIST(path, "train", num_clips=6, seed=3)
    mtime = path.stat().st_mtime_ns
    settings = {"split": "train", "num_clips": 6, "seed": 3, **kwargs}
    with pytest.raises(ValueError, match=match) as info:
        CachedMovingMNIST(path, **settings)
    assert "regenerate=True" in str(info.value)
    assert path.stat().st_mtime_ns == mtime  # refused, not overwritten


def test_cached_dataset_regenerates_only_when_asked(tmp_path):
    path = tmp_path / "clips.npz"
    old = CachedMovingMNIST(path, "train", num_clips=6, seed=3)
    new = CachedMovingMNIST(path, "test", num_clips=8, seed=4, regenerate=True)
    fresh = generate_arrays(8, "test", seed=4, progress=False)
    np.testing.assert_array_equal(load_clips(path)["videos"], fresh["videos"])
    assert len(new) == 8 and not torch.equal(old[0]["video"], new[0]["video"])
    assert str(load_clips(path)["split"]) == "test" and int(load_clips(path)["seed"]) == 4
    # A matching file is kept even with regenerate=True.
    mtime = path.stat().st_mtime_ns
    CachedMovingMNIST(path, "test", num_clips=8, seed=4, regenerate=True)
    assert path.stat().st_mtime_ns == mtime


def test_cached_dataset_refuses_a_file_without_metadata(tmp_path):
    arrays = generate_arrays(4, "train", seed=0, progress=False)
    path = save_clips(tmp_path / "bare.npz",
                      {k: v for k, v in arrays.items() if k not in ("seed", "config")})
    with pytest.raises(ValueError, match="no stored 'seed'.*no stored 'config'"):
        CachedMovingMNIST(path, "train", num_clips=4, seed=0)


def _official_file(path, clips):
    """Write clips (n, t, h, w) as the official file does: uint8, time first (t, n, h, w)."""
    np.save(path, np.ascontiguousarray(clips.transpose(1, 0, 2, 3)))
    return path


def test_official_dataset_reads_the_time_first_file(tmp_path, monkeypatch):
    clips = np.random.default_rng(0).integers(0, 256, size=(3, 20, 64, 64), dtype=np.uint8)
    path = _official_file(tmp_path / "mnist_test_seq.npy", clips)
    ds = OfficialMovingMNIST(path)
    assert len(ds) == 3 and OfficialMovingMNIST.available(path)
    for i in range(3):
        assert ds[i]["video"].dtype == torch.uint8 and ds[i]["index"] == i
        np.testing.assert_array_equal(ds[i]["video"].numpy(), clips[i])
    np.testing.assert_array_equal(ds[-1]["video"].numpy(), clips[2])
    with pytest.raises(IndexError):
        ds[3]
    batch = next(iter(DataLoader(OfficialMovingMNIST(path, num_frames=16), batch_size=3)))
    np.testing.assert_array_equal(batch["video"].numpy(), clips[:, :16])
    revived = pickle.loads(pickle.dumps(ds))  # as a DataLoader worker would receive it
    assert revived._array is None
    np.testing.assert_array_equal(revived[1]["video"].numpy(), clips[1])
    # With no path, the file in the cache folder is the one used.
    monkeypatch.setenv("MINIVIDEO_CACHE", str(tmp_path))
    assert OfficialMovingMNIST.available()
    np.testing.assert_array_equal(OfficialMovingMNIST()[0]["video"].numpy(), clips[0])
    clip_first = tmp_path / "nthw.npy"
    np.save(clip_first, clips)
    np.testing.assert_array_equal(OfficialMovingMNIST(clip_first, layout="nthw")[2]["video"].numpy(),
                                  clips[2])


def test_official_dataset_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVIDEO_CACHE", str(tmp_path))
    assert not OfficialMovingMNIST.available()
    with pytest.raises(FileNotFoundError, match="mnist_test_seq.npy"):
        OfficialMovingMNIST()
    path = _official_file(tmp_path / "mnist_test_seq.npy", np.zeros((2, 20, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="num_frames"):
        OfficialMovingMNIST(path, num_frames=21)
    with pytest.raises(ValueError, match="layout"):
        OfficialMovingMNIST(path, layout="nhwt")


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        MovingMNIST("validation")
    with pytest.raises(ValueError, match="num_clips"):
        MovingMNIST(num_clips=0)
    with pytest.raises(ValueError, match="npz"):
        CachedMovingMNIST("/tmp/clips.h5", num_clips=2)
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        MovingMNIST(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        generate_arrays(2, seed=-1, progress=False)
    one_frame = MovingMNISTConfig(num_frames=1)  # nothing moves, so nothing to caption
    with pytest.raises(ValueError, match="num_frames must be at least 2"):
        MovingMNIST(config=one_frame)
    with pytest.raises(ValueError, match="num_frames must be at least 2"):
        generate_arrays(2, config=one_frame, progress=False)
    with pytest.raises(ValueError, match="num_frames must be at least 2"):
        CachedMovingMNIST("/tmp/never-written.npz", num_clips=2, config=one_frame)
