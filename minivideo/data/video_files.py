"""Video files: read an `.npz` of clips safely, with one clear line for every kind of bad file.

Every command that reads clips (`sample --frames`, `edit`, `eval`) reads them here. The file is
an `.npz` (a zip archive of `.npy` arrays, as `np.savez` and `python -m minivideo data` write it)
holding `videos`, a uint8 array N×T×64×64. Nothing is unpickled: object arrays are refused, and
so is anything that is not such an archive (a plain `.npy`, a text file, random bytes, a
truncated download), with a `ValueError` that names the file and says what was expected.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from minivideo.utils import UsageError

SIDE = 64  # every clip of the course is 64×64 pixels
MADE_BY = "as `python -m minivideo data --out FILE.npz` writes"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first member, or an empty archive
NPY_MAGIC = b"\x93NUMPY"


def expected_videos(frames: int | None = None, floats: bool = False) -> str:
    """What a video file must hold, in words: the end of every error message here."""
    t = "T" if frames is None else str(frames)
    kind = "uint8 (or float in [0, 1])" if floats else "uint8"
    return f"expected an .npz holding 'videos', a {kind} array N×{t}×{SIDE}×{SIDE}, {MADE_BY}"


def _what_it_is(head: bytes) -> str:
    """A guess at what a file that is not a zip archive holds, from its first bytes."""
    if head.startswith(NPY_MAGIC):
        return "a plain .npy array, not an .npz archive (save with np.savez(path, videos=array))"
    if not head:
        return "empty"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an .npz archive (its first bytes are not a zip header)"
    return "a text file, not an .npz archive"


class VideoFileError(UsageError):
    """A file that cannot be used as clips; the message names it and says what was expected."""


def read_npz(path: str | Path, what: str = "video file",
             expected: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz as {name: array}, read without unpickling; VideoFileError if not.

    `what` names the file in messages (e.g. "--frames", "SAMPLES"); `expected` ends them.
    """
    path = Path(path)
    expected = expected_videos() if expected is None else expected

    def fail(problem: str) -> VideoFileError:
        return VideoFileError(f"{what} {str(path)!r}: {problem}; {expected}")

    if not path.exists():
        raise VideoFileError(f"{what} file not found: {str(path)!r}; {expected}")
    if not path.is_file():
        raise fail("is a directory, not a file")
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except OSError as err:
        raise fail(f"cannot be read ({err.strerror or err})") from None
    if not head.startswith(ZIP_MAGIC):
        raise fail(f"is {_what_it_is(head)}")
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue  # np.load would hand such members back as raw bytes: not arrays
                name = member[: -len(".npy")]
                with archive.open(member) as stream:  # the header first: refuse pickles unread
                    version = np.lib.format.read_magic(stream)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    if header(stream)[2].hasobject:
                        raise fail(f"array {name!r} holds Python objects, which are never "
                                   "unpickled here")
                with archive.open(member) as stream:
                    arrays[name] = np.lib.format.read_array(stream, allow_pickle=False)
    except VideoFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            NotImplementedError, ValueError) as err:  # ValueError: a garbled .npy header
        raise fail(f"is a damaged or truncated .npz ({type(err).__name__}: {err})") from None
    return arrays


def load_video_file(path: str | Path, what: str = "video file", *, frames: int | None = None,
                    min_frames: int = 1, floats: bool = False,
                    single_clip: bool = False) -> dict[str, np.ndarray]:
    """The arrays of a video file, checked: 'videos' is (N ≥ 1, T, 64, 64), uint8.

    `frames` asks for exactly that many frames, `min_frames` for at least that many; `floats`
    also accepts floating-point videos in [0, 1]; `single_clip` accepts one clip (T, 64, 64) as
    N = 1. Any other file raises a one-line VideoFileError (a ValueError) naming `what`, the
    path and the problem.
    """
    path = Path(path)
    expected = expected_videos(frames, floats)
    arrays = read_npz(path, what, expected)

    def fail(problem: str) -> VideoFileError:
        return VideoFileError(f"{what} {str(path)!r}: {problem}; {expected}")

    if "videos" not in arrays:
        held = ", ".join(repr(k) for k in sorted(arrays)) or "nothing"
        raise fail(f"has no 'videos' array (it holds {held})")
    videos = arrays["videos"]
    if single_clip and videos.ndim == 3:
        videos = arrays["videos"] = videos[None]  # one clip (T, 64, 64)
    if not (videos.dtype == np.uint8 or (floats and videos.dtype.kind == "f")):
        raise fail(f"'videos' is {videos.dtype}")
    if videos.ndim != 4 or videos.shape[2:] != (SIDE, SIDE):
        raise fail(f"'videos' has shape {videos.shape}")
    if len(videos) == 0:
        raise fail(f"'videos' holds no clips (shape {videos.shape})")
    if frames is not None and videos.shape[1] != frames:
        raise fail(f"'videos' has {videos.shape[1]} frames per clip")
    if videos.shape[1] < min_frames:
        raise fail(f"'videos' has {videos.shape[1]} frames per clip, fewer than {min_frames}")
    if videos.dtype.kind == "f" and (not np.isfinite(videos).all() or videos.min() < 0
                                     or videos.max() > 1):
        raise fail(f"float 'videos' must hold finite values in [0, 1], got range "
                   f"[{np.nanmin(videos):.3g}, {np.nanmax(videos):.3g}]")
    return arrays
