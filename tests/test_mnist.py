"""Digits: the bundled 5k file, the fixed split, IDX parsing and the offline download path."""

import gzip
import hashlib
import io
import struct
import urllib.error

import numpy as np
import pytest

from minivideo.data import mnist


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as MNIST writes it: magic (0, 0, 0x08, ndim), big-endian sizes, uint8 data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture()
def mirror(tmp_path):
    """A fake MNIST mirror on disk (served by file:// URLs) with small train/test IDX files."""
    rng = np.random.default_rng(0)
    served = tmp_path / "mirror"
    served.mkdir()
    arrays = {}
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        image_name, label_name = mnist.MNIST_FILES[split]
        (served / image_name).write_bytes(_idx_bytes(images))
        (served / label_name).write_bytes(_idx_bytes(labels))
        arrays[split] = (images, labels)
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    return served.as_uri() + "/", sha, arrays


def test_bundled_digits_are_5000_real_mnist_digits_500_per_class():
    images, labels = mnist.load_bundled()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [500] * 10
    assert mnist._content_sha256(images, labels) == mnist.BUNDLED_CONTENT_SHA256
    # Real handwriting: dark background, bright strokes covering roughly a fifth of the image.
    ink = (images > 127).mean()
    assert images[:, 0, :].max() == 0 and 0.08 < ink < 0.25, ink
    assert mnist.bundled_path().stat().st_size < 3 * 2**20


def test_fixed_split_is_400_train_100_test_per_class_and_disjoint():
    train_x, train_y = mnist.load_digits("train")
    test_x, test_y = mnist.load_digits("test")
    assert np.bincount(train_y).tolist() == [400] * 10 and np.bincount(test_y).tolist() == [100] * 10
    train_hashes = {hashlib.sha1(x.tobytes()).hexdigest() for x in train_x}
    assert not any(hashlib.sha1(x.tobytes()).hexdigest() in train_hashes for x in test_x)
    again_x, _ = mnist.load_digits("test")
    np.testing.assert_array_equal(again_x, test_x)  # fixed, not re-drawn


def test_env_var_overrides_the_bundled_path(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.BUNDLED_VARIABLE, str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="MINIVIDEO_DIGITS"):
        mnist.load_digits("train")


def test_parse_idx_reads_shapes_and_rejects_garbage():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(mnist.parse_idx(_idx_bytes(array)), array)
    np.testing.assert_array_equal(mnist.parse_idx(gzip.decompress(_idx_bytes(array))), array)
    with pytest.raises(ValueError, match="magic"):
        mnist.parse_idx(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="truncated"):
        mnist.parse_idx(gzip.decompress(_idx_bytes(array))[:-1])


def test_fetch_mnist_downloads_checks_caches_and_parses(mirror, tmp_path):
    url, sha, arrays = mirror
    cache = tmp_path / "cache"
    images, labels = mnist.fetch_mnist("test", root=cache, mirrors=["file:///nowhere/", url], sha256=sha)
    np.testing.assert_array_equal(images, arrays["test"][0])
    np.testing.assert_array_equal(labels, arrays["test"][1])
    assert labels.dtype == np.int64
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(mnist.MNIST_FILES["test"])
    # Cached: a second call needs no mirror at all.
    again, _ = mnist.fetch_mnist("test", root=cache, mirrors=[], sha256=sha)
    np.testing.assert_array_equal(again, images)


def test_load_digits_mnist_uses_the_cache_dir_variable(mirror, tmp_path, monkeypatch):
    url, sha, arrays = mirror
    monkeypatch.setenv(mnist.CACHE_VARIABLE, str(tmp_path / "env-cache"))
    images, _ = mnist.load_digits("train", source="mnist", mirrors=[url], sha256=sha)
    np.testing.assert_array_equal(images, arrays["train"][0])
    assert (tmp_path / "env-cache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_bad_checksum_raises_and_leaves_no_partial_file(mirror, tmp_path):
    url, sha, _ = mirror
    name = "t10k-images-idx3-ubyte.gz"
    dest = tmp_path / "cache" / name
    with pytest.raises(ValueError, match="checksum mismatch"):
        mnist.download(url + name, dest, "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline_warns_then_falls_back_to_bundled(tmp_path):
    def offline(url):
        raise urllib.error.URLError("no network in tests")

    with pytest.raises(urllib.error.URLError, match="no network"):
        mnist.download("https://example.invalid/x.gz", tmp_path / "x.gz", "0" * 64, opener=offline)
    with pytest.warns(UserWarning, match="falling back to the bundled"):
        images, labels = mnist.load_digits("test", source="mnist", root=tmp_path,
                                           mirrors=["file:///definitely/not/here/"])
    bundled, _ = mnist.load_digits("test", source="bundled")
    np.testing.assert_array_equal(images, bundled)


class FakeMirrors:
    """A stand-in for urlopen: serves bytes per URL, records each request, never the network."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, []

    def __call__(self, url: str) -> io.BytesIO:
        self.requests.append(url)
        if url not in self.files:
            raise urllib.error.URLError(f"fake mirror has no {url}")
        return io.BytesIO(self.files[url])


def _small_mnist(split: str, seed: int = 1) -> tuple[dict[str, bytes], dict[str, str]]:
    """IDX bytes of a small split of fake MNIST and their sha256, by canonical file name."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6).astype(np.uint8)
    data = dict(zip(mnist.MNIST_FILES[split], (_idx_bytes(images), _idx_bytes(labels)), strict=True))
    return data, {name: hashlib.sha256(blob).hexdigest() for name, blob in data.items()}


def test_checksum_mismatch_tries_the_next_mirror(tmp_path):
    good, sha = _small_mnist("test")
    bad = {name: blob[:-3] + b"xyz" for name, blob in good.items()}  # corrupt, same length
    fake = FakeMirrors({**{"https://bad/" + n: b for n, b in bad.items()},
                        **{"https://good/" + n: b for n, b in good.items()}})
    images, labels = mnist.fetch_mnist("test", root=tmp_path, mirrors=["https://bad/", "https://good/"],
                                       sha256=sha, opener=fake)
    assert fake.requests == [m + n for n in mnist.MNIST_FILES["test"] for m in ("https://bad/", "https://good/")]
    np.testing.assert_array_equal(images, mnist.parse_idx(good["t10k-images-idx3-ubyte.gz"]))
    assert labels.dtype == np.int64 and len(labels) == 6
    cached = sorted((tmp_path / "mnist").iterdir())
    assert [p.name for p in cached] == sorted(mnist.MNIST_FILES["test"])  # no .part left
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == sha[p.name] for p in cached)


def test_all_mirrors_corrupt_falls_back_to_bundled_and_keeps_nothing(tmp_path):
    good, sha = _small_mnist("train")
    fake = FakeMirrors({m + n: b"not the file" for n in good for m in ("https://a/", "https://b/")})
    with pytest.warns(UserWarning, match="checksum mismatch.*falling back to the bundled"):
        images, labels = mnist.load_digits("train", source="mnist", root=tmp_path, sha256=sha,
                                           mirrors=["https://a/", "https://b/"], opener=fake)
    bundled_images, bundled_labels = mnist.load_digits("train", source="bundled")
    np.testing.assert_array_equal(images, bundled_images)
    np.testing.assert_array_equal(labels, bundled_labels)
    assert list((tmp_path / "mnist").iterdir()) == []  # no corrupt file, no partial file


def test_a_corrupt_cached_file_is_deleted_and_downloaded_again(tmp_path):
    good, sha = _small_mnist("test")
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / name).write_bytes(b"truncated")
    fake = FakeMirrors({"https://m/" + n: b for n, b in good.items()})
    mnist.fetch_mnist("test", root=tmp_path, mirrors=["https://m/"], sha256=sha, opener=fake)
    assert (tmp_path / "mnist" / name).read_bytes() == good[name]
    # Offline with a corrupt cache: the corrupt file goes, and the bundled digits are used.
    (tmp_path / "mnist" / name).write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="falling back"):
        mnist.load_digits("test", source="mnist", root=tmp_path, sha256=sha, mirrors=["https://m/"],
                          opener=FakeMirrors({}))
    assert not (tmp_path / "mnist" / name).exists()


def test_rebuild_bundled_reproduces_the_file_from_the_csv(tmp_path):
    images, labels = mnist.load_bundled()
    table = np.concatenate([images.reshape(5000, -1), labels[:, None]], axis=1)
    csv = tmp_path / "mnist_5k.csv.gz"
    text = "\n".join(",".join(map(str, row)) for row in table)
    csv.write_bytes(gzip.compress(text.encode()))
    out = mnist.rebuild_bundled(csv, tmp_path / "rebuilt.npz")
    assert out.read_bytes() == mnist.bundled_path().read_bytes()  # byte-identical, same sha256


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        mnist.load_digits("val")
    with pytest.raises(ValueError, match="source"):
        mnist.load_digits("train", source="emnist")
