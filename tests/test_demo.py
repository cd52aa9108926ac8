"""The front door: `python -m minivideo demo` makes a text-to-video GIF from shipped checkpoints."""

import subprocess
import sys

import numpy as np
from PIL import Image


def test_demo_writes_a_gif_of_a_whole_clip(tmp_path):
    out = tmp_path / "demo.gif"
    done = subprocess.run(
        [sys.executable, "-m", "minivideo", "demo", "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo.gif" in done.stdout
    with Image.open(out) as gif:
        frames = [np.asarray(frame.convert("L")) for frame in _frames(gif)]
    assert len(frames) == 17  # 5 key frames, interpolated twice: 5 → 9 → 17
    assert frames[0].shape == (64, 64)
    assert max(frame.max() for frame in frames) > 128  # something was drawn, not a black clip


def test_demo_rejects_a_prompt_outside_the_grammar(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "minivideo", "demo", "--prompt", "a cat jumps",
         "--out", str(tmp_path / "x.gif")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr and "digit" in done.stderr
    assert "Traceback" not in done.stderr


def _frames(gif: Image.Image):
    for index in range(gif.n_frames):
        gif.seek(index)
        yield gif.copy()
