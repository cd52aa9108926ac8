"""Seeing videos: inline animations in a notebook, GIF/MP4/PNG files, and frame strips.

Every function takes videos as uint8 or float in [0, 1], numpy or torch, shaped (t, h, w) for
one clip or (b, t, h, w) for several (one channel, as everywhere in the course).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from einops import rearrange
from PIL import Image

from minivideo import utils


def to_uint8(video: np.ndarray | torch.Tensor, name: str = "video") -> np.ndarray:
    """A uint8 numpy copy of a uint8 or float-in-[0, 1] video/batch (values clipped to [0, 1])."""
    if len(video.shape) not in (3, 4):
        raise ValueError(f"{name} must have shape (t, h, w) or (b, t, h, w); "
                         f"got {tuple(video.shape)}")
    return utils.to_uint8(video, name)


def tile(videos: np.ndarray | torch.Tensor, ncols: int | None = None, gap: int = 2) -> np.ndarray:
    """Lay a batch (b, t, h, w) out as one video (t, H, W) on a grid with gray gaps."""
    videos = to_uint8(videos, "videos")
    if videos.ndim == 3:
        return videos
    b, t, h, w = videos.shape
    ncols = b if ncols is None else max(1, min(ncols, b))
    nrows = -(-b // ncols)
    canvas = np.full((nrows * ncols, t, h + gap, w + gap), 96, dtype=np.uint8)
    canvas[:b, :, :h, :w] = videos
    grid = rearrange(canvas, "(r c) t h w -> t (r h) (c w)", r=nrows, c=ncols)
    return grid[:, : grid.shape[1] - gap, : grid.shape[2] - gap]  # no gap after the last


def _upscale(video: np.ndarray, scale: int) -> np.ndarray:
    # Nearest-neighbour: 64 px frames stay crisp when a browser shows them bigger.
    return video.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else video


def gif_bytes(video: np.ndarray | torch.Tensor, fps: float = 10, scale: int = 1) -> bytes:
    """An animated, looping GIF of one clip (t, h, w) (or a tiled batch) as bytes."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = _upscale(tile(video), scale)
    images = [Image.fromarray(frame) for frame in frames]  # 2-d uint8 arrays give mode "L"
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def _img_tag(video, fps: float, scale: int) -> str:
    # Embed at native size and let the browser enlarge it without smoothing: scale² fewer bytes.
    width = tile(video).shape[2] * scale
    data = base64.b64encode(gif_bytes(video, fps)).decode("ascii")
    return (f'<img src="data:image/gif;base64,{data}" width="{width}" '
            'style="image-rendering: pixelated"/>')


class _HTML:
    """Minimal rich-display object (what IPython.display.HTML does), so no IPython import."""

    def __init__(self, markup: str) -> None:
        self.data = markup

    def _repr_html_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return f"<HTML animation, {len(self.data)} characters>"


def show_video(video: np.ndarray | torch.Tensor, fps: float = 10, scale: int = 3,
               title: str | None = None) -> _HTML:
    """Inline looping animation of one clip (t, h, w), or of a batch tiled on a grid."""
    caption = f"<div>{html.escape(title)}</div>" if title else ""
    return _HTML(f'<div style="display:inline-block">{_img_tag(video, fps, scale)}{caption}</div>')


def show_videos(videos: np.ndarray | torch.Tensor, titles: Sequence[str] | None = None,
                fps: float = 10, scale: int = 2, ncols: int = 8) -> _HTML:
    """Inline grid of clips (b, t, h, w), each animated, with optional titles below them."""
    videos = to_uint8(videos, "videos")
    if videos.ndim == 3:
        videos = videos[None]
    if titles is not None and len(titles) != len(videos):
        raise ValueError(f"titles must have one entry per video ({len(videos)}); got {len(titles)}")
    cells = []
    for i, clip in enumerate(videos):
        label = f"<div style='font-size:small'>{html.escape(titles[i])}</div>" if titles else ""
        cells.append(f"<div style='margin:4px;max-width:{64 * scale * 2}px'>"
                     f"{_img_tag(clip, fps, scale)}{label}</div>")
    style = f"display:grid;grid-template-columns:repeat({min(ncols, len(videos))}, auto)"
    return _HTML(f"<div style='{style}'>{''.join(cells)}</div>")


def show_rows(rows: Mapping[str, np.ndarray | torch.Tensor], fps: float = 10,
              scale: int = 2) -> _HTML:
    """Labelled rows of clips side by side, e.g. {"real": x, "reconstruction": y, "sample": z}.

    Each row is a batch (b, t, h, w) played as one synchronised animation.
    """
    if not rows:
        raise ValueError("rows must hold at least one labelled batch of videos")
    lines = [
        f"<tr><td style='text-align:right;padding-right:8px'><b>{html.escape(str(label))}</b>"
        f"</td><td>{_img_tag(tile(videos), fps, scale)}</td></tr>"
        for label, videos in rows.items()
    ]
    return _HTML(f"<table>{''.join(lines)}</table>")


def save_video(video: np.ndarray | torch.Tensor, path: str | Path, fps: float = 10,
               scale: int = 1) -> Path:
    """Write one clip (or a tiled batch) to .gif or .mp4 with moviepy, chosen by extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"path must end in .gif or .mp4, got {str(path)!r}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = _upscale(tile(video), scale)
    from moviepy import ImageSequenceClip  # imported here: it is slow to import

    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        # H.264 in yuv420p needs even sides; pad with black rather than resample.
        t, h, w = frames.shape
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2)))
    rgb = list(np.repeat(frames[..., None], 3, axis=-1))  # moviepy wants (h, w, 3) frames
    clip = ImageSequenceClip(rgb, fps=fps)
    try:
        if suffix == ".gif":
            clip.write_gif(str(path), fps=fps, logger=None)
        else:
            clip.write_videofile(str(path), fps=fps, codec="libx264", audio=False,
                                 pixel_format="yuv420p", logger=None)
    finally:
        clip.close()
    return path


def frame_strip(video: np.ndarray | torch.Tensor, titles: Sequence[str] | None = None,
                every: int = 1, frame_size: float = 0.9) -> plt.Figure:
    """A matplotlib figure: the frames of a clip in a row, or one row per clip of a batch."""
    videos = to_uint8(video)
    if videos.ndim == 3:
        videos = videos[None]
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if titles is not None and len(titles) != len(videos):
        raise ValueError(f"titles must have one entry per row ({len(videos)}); got {len(titles)}")
    videos = videos[:, ::every]
    b, t, h, w = videos.shape
    height = frame_size * b + (0.3 * b if titles is not None else 0.0)
    # frame_size is a frame's height: a tiled (wider) frame gets a wider panel, not white bands
    fig, axes = plt.subplots(b, t, figsize=(frame_size * t * w / h, height), squeeze=False)
    for i in range(b):
        for j in range(t):
            ax = axes[i, j]
            ax.imshow(videos[i, j], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t={j * every}", fontsize=7)
        if titles is not None:
            axes[i, 0].set_ylabel(titles[i], fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.2)
    return fig


def save_frame_strip(video: np.ndarray | torch.Tensor, path: str | Path, **kwargs) -> Path:
    """Save `frame_strip(video, **kwargs)` as a PNG."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    fig = frame_strip(video, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
