"""Video files (`minivideo.data.video_files`): good files load; every bad one gets one clear line.

Issue 17: a truncated .npz gave a 30-line zipfile traceback, a text file or random bytes gave
numpy's advice to unpickle (unsafe, and not what was wrong), a plain .npy gave "'numpy.ndarray'
object does not support the context manager protocol".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minivideo.__main__ import main
from minivideo.cli.sample import load_context
from minivideo.data import VideoFileError, load_clips, load_video_file, read_npz
from minivideo.pretrained import available_pretrained

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = "expected an .npz holding 'videos', a uint8 array N×T×64×64"


def clips(n: int = 2, t: int = 16, dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, t, 64, 64)).astype(dtype)


def savez(path: Path, **arrays) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def write(path: Path, data: bytes | str | None) -> Path:
    """A file holding data (bytes or text), or a folder for None."""
    if data is None:
        path.mkdir()
    elif isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


# name → function(folder) writing a bad file and returning its path, and what the message says
BAD_FILES = {
    "missing": (lambda d: d / "missing.npz", "file not found"),
    "directory": (lambda d: write(d / "folder.npz", None), "is a directory"),
    "empty": (lambda d: write(d / "empty.npz", b""), "is empty"),
    "text": (lambda d: write(d / "notes.txt", "clip ideas:\n- digit 3 moves left\n"),
             "is a text file, not an .npz archive"),
    "random bytes": (lambda d: write(d / "noise.npz", np.random.default_rng(1).integers(
        0, 256, 4096, dtype=np.uint8).tobytes()), "not an .npz archive"),
    "plain .npy": (lambda d: _npy(d / "plain.npy"), r"is a plain \.npy array, not an \.npz archive"),
    "plain .npy named .npz": (lambda d: _npy(d / "plain.npz"), r"is a plain \.npy array"),
    "truncated": (lambda d: _truncated(d), "is a damaged or truncated .npz"),
    "corrupted": (lambda d: _corrupted(d), "is a damaged or truncated .npz"),
    "no videos": (lambda d: savez(d / "novideos.npz", clips=clips()),
                  r"has no 'videos' array \(it holds 'clips'\)"),
    "empty archive": (lambda d: savez(d / "nothing.npz"), r"has no 'videos' array \(it holds nothing\)"),
    "float videos": (lambda d: savez(d / "float.npz", videos=clips(dtype=np.float32) / 255),
                     "'videos' is float32"),
    "int64 videos": (lambda d: savez(d / "int.npz", videos=clips(dtype=np.int64)), "'videos' is int64"),
    "small frames": (lambda d: savez(d / "small.npz", videos=clips()[..., :32, :32]),
                     r"'videos' has shape \(2, 16, 32, 32\)"),
    "one clip": (lambda d: savez(d / "one.npz", videos=clips()[0]), r"'videos' has shape \(16, 64, 64\)"),
    "five axes": (lambda d: savez(d / "five.npz", videos=clips()[:, :, None]),
                  r"'videos' has shape \(2, 16, 1, 64, 64\)"),
    "no clips": (lambda d: savez(d / "none.npz", videos=clips()[:0]), "'videos' holds no clips"),
    "object videos": (lambda d: _objects(d, "videos"), "array 'videos' holds Python objects"),
    "object extra": (lambda d: _objects(d, "notes"), "array 'notes' holds Python objects"),
}


def _npy(path: Path) -> Path:
    with path.open("wb") as file:  # np.save would add .npy to a name ending in .npz
        np.save(file, clips())
    return path


def _truncated(folder: Path) -> Path:
    whole = savez(folder / "whole.npz", videos=clips()).read_bytes()
    path = folder / "truncated.npz"
    path.write_bytes(whole[: len(whole) // 2])  # an interrupted download or copy
    return path


def _corrupted(folder: Path) -> Path:
    data = bytearray(savez(folder / "whole.npz", videos=clips()).read_bytes())
    start = len(data) // 3
    data[start : start + 64] = bytes(64)  # zeros in the middle of the compressed array
    path = folder / "corrupted.npz"
    path.write_bytes(bytes(data))
    return path


def _objects(folder: Path, key: str) -> Path:
    arrays = {"videos": clips(), key: np.array([{"a": 1}, None], dtype=object)}
    path = folder / f"objects-{key}.npz"
    np.savez(path, **arrays)  # numpy pickles object arrays when it writes them
    return path


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_each_bad_file_gets_one_clear_line(tmp_path, case):
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(VideoFileError) as info:
        load_video_file(path, "CLIPS.npz")
    text = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in text, text
    assert text.startswith("CLIPS.npz ") and repr(str(path)) in text, text
    assert EXPECTED in text, text
    assert "pickle" not in text.replace("unpickled", ""), text  # never the advice to unpickle
    assert re.search(message, text), text


def test_good_files_load_with_every_array(tmp_path):
    videos = clips()
    captions = np.array(["digit 3 moves left", "digit 7 moves down"])
    path = savez(tmp_path / "good.npz", videos=videos, captions=captions)
    arrays = load_video_file(path, frames=16)
    np.testing.assert_array_equal(arrays["videos"], videos)
    assert arrays["captions"].tolist() == captions.tolist()
    assert read_npz(path).keys() == {"videos", "captions"}
    np.savez(tmp_path / "plain.npz", videos=videos)  # uncompressed archives too
    np.testing.assert_array_equal(load_video_file(tmp_path / "plain.npz")["videos"], videos)


def test_the_options_frames_floats_and_single_clip(tmp_path):
    path = savez(tmp_path / "clips.npz", videos=clips(t=10))
    with pytest.raises(ValueError, match="'videos' has 10 frames per clip; expected .*N×16×64×64"):
        load_video_file(path, frames=16)
    with pytest.raises(ValueError, match="10 frames per clip, fewer than 12"):
        load_video_file(path, min_frames=12)
    floats = savez(tmp_path / "floats.npz", videos=clips(dtype=np.float32) / 255)
    assert load_video_file(floats, floats=True)["videos"].dtype == np.float32
    too_bright = savez(tmp_path / "bright.npz", videos=clips(dtype=np.float32))
    with pytest.raises(ValueError, match=r"finite values in \[0, 1\], got range \[0, 255\]"):
        load_video_file(too_bright, floats=True)
    one = savez(tmp_path / "one.npz", videos=clips()[0])
    assert load_video_file(one, single_clip=True)["videos"].shape == (1, 16, 64, 64)


def test_the_loaders_of_the_commands_use_it(tmp_path, capsys):
    text = BAD_FILES["text"][0](tmp_path)
    with pytest.raises(ValueError, match="--frames .*is a text file"):
        load_context(text, 8, num=1)
    one = savez(tmp_path / "one.npz", videos=clips()[0])
    assert load_context(one, 8, num=3).shape == (3, 8, 64, 64)  # one clip, cycled
    truncated = BAD_FILES["truncated"][0](tmp_path)
    with pytest.raises(ValueError, match="clips file .*is a damaged or truncated .npz"):
        load_clips(truncated)  # the dataset cache's reader, too
    for argv in (["edit", str(truncated), "--region", "0,3", "--out", str(tmp_path / "x.npz")],
                 ["eval", str(truncated)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a damaged or truncated .npz" in err, err


@pytest.mark.skipif(not {"videogpt", "videogpt-frames"} & set(available_pretrained()),
                    reason="needs a shipped VideoGPT prior that predicts")
@pytest.mark.parametrize("case", ["text", "plain .npy"])
def test_the_command_line_prints_one_line_not_a_traceback(tmp_path, case):
    path = BAD_FILES[case][0](tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "minivideo", "sample", "videogpt", "--cond", "frames", "--frames",
         str(path), "--out", str(tmp_path / "pred.npz"), "--num", "1", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: --frames {str(path)!r}: "), result.stderr
    assert EXPECTED in result.stderr and "allow_pickle" not in result.stderr
    assert not (tmp_path / "pred.npz").exists()
