"""`python -m minivideo data`: arguments, the written .npz, and clear errors."""

import subprocess
import sys

import numpy as np
import pytest

from minivideo.__main__ import main
from minivideo.data.captions import CaptionTokenizer, parse_caption


def test_writes_videos_labels_and_captions(tmp_path, capsys):
    out = tmp_path / "clips.npz"
    assert main(["data", "--split", "test", "--num", "12", "--out", str(out), "--seed", "4",
                 "--frames", "8", "--digits", "3", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as data:
        videos, digits, captions = data["videos"], data["digits"], data["captions"]
        assert videos.shape == (12, 8, 64, 64) and videos.dtype == np.uint8
        assert digits.shape == (12, 3) and data["positions"].shape == (12, 8, 3, 2)
        assert str(data["split"]) == "test" and int(data["seed"]) == 4
        tokens = data["caption_tokens"]
    for caption, row, tok in zip(captions, digits, tokens, strict=True):
        assert [p.digit for p in parse_caption(str(caption))] == row.tolist()
        assert CaptionTokenizer().decode(tok.tolist()) == str(caption)
    again = tmp_path / "again.npz"
    main(["data", "--split", "test", "--num", "12", "--out", str(again), "--seed", "4",
          "--frames", "8", "--digits", "3", "--no-progress"])
    np.testing.assert_array_equal(np.load(again)["videos"], videos)  # same seed, same file


@pytest.mark.parametrize("args, message", [
    (["--num", "0"], "--num must be a positive"),
    (["--digits", "4"], "--num-digits must be 1, 2 or 3"),  # the older spelling still parses
    (["--num-frames", "0"], "--num-frames must be at least 2"),
    (["--frames", "1"], "--num-frames must be at least 2"),  # one frame: no motion to caption
    (["--seed", "-1"], "argument --seed: must be a non-negative integer, got -1"),
    (["--seed", "abc"], "argument --seed: must be a non-negative integer, got 'abc'"),
    (["--out", "clips.h5"], "--out must be a file name ending in .npz"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, args, message):
    base = {"--num": "2", "--out": str(tmp_path / "x.npz")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["data", "--no-progress"] + [s for kv in base.items() for s in kv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_two_frames_is_the_shortest_clip(tmp_path):
    out = tmp_path / "two.npz"
    assert main(["data", "--num", "5", "--out", str(out), "--frames", "2", "--no-progress"]) == 0
    with np.load(out) as data:
        assert data["videos"].shape == (5, 2, 64, 64)
        for caption in data["captions"]:  # one step shown: exactly one direction per digit
            assert all(len(p.directions) == 1 for p in parse_caption(str(caption)))


def test_module_entry_point_runs(tmp_path):
    out = tmp_path / "cli.npz"
    result = subprocess.run([sys.executable, "-m", "minivideo", "data", "--num", "3", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert np.load(out)["videos"].shape == (3, 20, 64, 64)


def test_stochastic_flag_reaches_the_generator(tmp_path):
    out = tmp_path / "stochastic.npz"
    main(["data", "--num", "40", "--out", str(out), "--stochastic", "--no-progress"])
    with np.load(out) as data:
        v, hit = data["velocities"], data["bounces"]
        config = data["config"]
    turned = (np.abs(np.diff(v, axis=1)).sum(-1) > 1e-4) & ~hit[:, 1:]
    assert turned.any() and '"stochastic": true' in str(config)
