"""Video display and files: GIF/MP4 through moviepy, PNG strips, inline HTML, input checks."""

import numpy as np
import pytest
import torch
from PIL import Image

from minivideo import viz


@pytest.fixture()
def clip():
    video = np.zeros((6, 64, 64), dtype=np.uint8)
    for t in range(6):
        video[t, 10:20, 5 + 8 * t:15 + 8 * t] = 255  # a square moving right
    return video


def test_to_uint8_accepts_uint8_float_and_torch(clip):
    np.testing.assert_array_equal(viz.to_uint8(clip), clip)
    np.testing.assert_array_equal(viz.to_uint8(clip / 255.0), clip)
    np.testing.assert_array_equal(viz.to_uint8(torch.from_numpy(clip).float() / 255), clip)
    assert viz.to_uint8(np.full((1, 2, 2), 7.0)).max() == 255  # clipped to [0, 1]
    with pytest.raises(ValueError, match=r"\(t, h, w\) or \(b, t, h, w\)"):
        viz.to_uint8(np.zeros((64, 64)))
    with pytest.raises(TypeError, match="uint8 or float"):
        viz.to_uint8(np.zeros((2, 4, 4), dtype=np.int32))


def test_tile_lays_out_a_grid(clip):
    batch = np.stack([clip, 255 - clip, clip])
    grid = viz.tile(batch, ncols=2, gap=2)
    assert grid.shape == (6, 64 * 2 + 2, 64 * 2 + 2)
    np.testing.assert_array_equal(grid[:, :64, 66:], 255 - clip)
    np.testing.assert_array_equal(grid[:, 66:, :64], clip)


def test_save_gif_round_trips_frames(clip, tmp_path):
    path = viz.save_video(clip, tmp_path / "clip.gif", fps=5)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.size == (64, 64)
        gif.seek(3)
        frame = np.asarray(gif.convert("L"))
    assert np.abs(frame.astype(int) - clip[3]).max() <= 8


def test_save_mp4_with_moviepy(clip, tmp_path):
    path = viz.save_video(np.stack([clip, clip]) / 255.0, tmp_path / "clips.mp4", fps=8)
    data = path.read_bytes()
    assert len(data) > 500 and b"ftyp" in data[:32]  # an MP4 container
    from moviepy import VideoFileClip

    with VideoFileClip(str(path)) as video:
        assert tuple(video.size) == (130, 64)  # (w, h): two clips side by side
        assert video.fps == pytest.approx(8)
        assert abs(video.duration - 6 / 8) < 0.2


def test_save_video_rejects_other_extensions(clip, tmp_path):
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        viz.save_video(clip, tmp_path / "clip.avi")


def test_frame_strip_and_png(clip, tmp_path):
    fig = viz.frame_strip(np.stack([clip, clip]), titles=["real", "sample"], every=2)
    assert len(fig.axes) == 2 * 3
    path = viz.save_frame_strip(clip, tmp_path / "strip.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="png"):
        viz.save_frame_strip(clip, tmp_path / "strip.jpg")


def test_inline_html_is_deterministic_and_labelled(clip):
    one = viz.show_video(clip, title="a square")
    assert one._repr_html_().count("data:image/gif;base64,") == 1 and "a square" in one._repr_html_()
    assert viz.show_video(clip)._repr_html_() == viz.show_video(clip)._repr_html_()
    grid = viz.show_videos(np.stack([clip] * 3), titles=["x", "y", "z"])._repr_html_()
    assert grid.count("<img") == 3 and all(f">{t}<" in grid for t in "xyz")
    rows = viz.show_rows({"real": np.stack([clip] * 2), "reconstruction": np.stack([clip] * 2)})
    assert rows._repr_html_().count("<tr>") == 2 and "reconstruction" in rows._repr_html_()
    with pytest.raises(ValueError, match="titles"):
        viz.show_videos(np.stack([clip] * 3), titles=["x"])
