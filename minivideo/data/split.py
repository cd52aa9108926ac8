"""Split Moving MNIST frames into one layer per digit, from pixels alone.

A Moving MNIST frame is the pixel-wise maximum of digits pasted at whole-pixel positions
(`moving_mnist.render`), and a digit never changes its look. So where the two digits of a clip
stand apart in some frame, that frame shows each digit whole: its footprint (pixels brighter
than black) is a connected region of its own. Cut out there, a digit is a *template*; in every
other frame it sits somewhere near where it sat a frame before (a digit moves 3.6 px a frame),
and there the frame's pixels under the template's ink match the template, apart from what the
other digit covers. Each frame of a layer is then the template pasted where it fits best,
exactly the digit the generator pasted.

`split_digits` finds the frame whose footprint falls into exactly two digit-sized regions,
cuts the two templates, tracks each through the clip by the least squared difference on its
ink (within a window around the previous frame's position), and pastes. A clip whose digits
touch in every frame cannot be split this way; it is reported, and a caller falls back.

    layers, ok = split_digits(frames)   # frames (b, t, H, W) → layers (b, 2, t, H, W), ok (b,)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_PIXELS = 12  # a footprint region smaller than this is a speck, not a digit
MAX_SIZE = 28  # a digit's box (MovingMNISTConfig.digit_size): a larger region is two digits
WINDOW = 6  # px a digit may move between frames in the search (the generator moves ≤ 3.6)


def components(mask: torch.Tensor) -> torch.Tensor:
    """Labels (..., H, W) of the 8-connected regions of a bool mask: 0 off the mask, and each
    region the largest flat index + 1 among its pixels (label propagation by 3×3 max-pooling)."""
    shape = mask.shape
    flat = mask.reshape(-1, 1, *shape[-2:])
    ids = torch.arange(1, flat[0].numel() + 1, dtype=torch.float32).reshape(flat.shape[1:])
    labels = torch.where(flat, ids, torch.zeros(()))
    while True:
        grown = F.max_pool2d(labels, 3, stride=1, padding=1) * flat
        if torch.equal(grown, labels):
            return labels.reshape(shape).long()
        labels = grown


def _digit_regions(labels: torch.Tensor) -> list[torch.Tensor]:
    """The labels of a frame's digit-sized regions (≥ MIN_PIXELS pixels)."""
    ids, counts = labels[labels > 0].unique(return_counts=True)
    return [i for i, c in zip(ids, counts, strict=True) if c >= MIN_PIXELS]


def _box(region: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a bool mask's pixels."""
    rows, cols = region.any(1).nonzero()[:, 0], region.any(0).nonzero()[:, 0]
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _reference_frame(labels: torch.Tensor) -> tuple[int, list[torch.Tensor]] | None:
    """The first frame (of labels (t, H, W)) with exactly two digit-sized regions, each inside
    a digit's box, and those regions; None if no frame has them."""
    for f in range(labels.shape[0]):
        regions = _digit_regions(labels[f])
        if len(regions) == 2 and all(max(_box(labels[f] == r)[2:]) <= MAX_SIZE for r in regions):
            return f, regions
    return None


def _track(frames: torch.Tensor, templates: torch.Tensor, sizes: torch.Tensor,
           start: torch.Tensor, reference: int) -> torch.Tensor:
    """Top-left corners (t, m, 2) of m templates (m, s, s), each of ink box `sizes` (m, 2) at
    its top-left, in frames (t, H, W): each starts at `start` (m, 2) in frame `reference` and
    is followed frame by frame, both ways, always whole inside the frame."""
    t, height, width = frames.shape
    m, s, _ = templates.shape
    ink = (templates > 0).float()[:, None]
    # squared difference on the template's ink at every corner: Σ ink·F² − 2 Σ T·F + Σ T²
    padded = F.pad(frames[:, None], (0, s - 1, 0, s - 1))
    score = (F.conv2d(padded**2, ink) - 2 * F.conv2d(padded, templates[:, None])
             + (templates**2).sum((1, 2))[None, :, None, None])  # (t, m, H, W)
    ys = torch.arange(height)[:, None].expand(height, width)
    xs = torch.arange(width)[None, :].expand(height, width)
    corners = torch.zeros(t, m, 2, dtype=torch.long)
    corners[reference] = start
    order = [*range(reference + 1, t), *range(reference - 1, -1, -1)]
    for f in order:
        previous = corners[f - 1] if f > reference else corners[f + 1]
        for j in range(m):
            near = (((ys - previous[j, 0]).abs() <= WINDOW)
                    & ((xs - previous[j, 1]).abs() <= WINDOW)
                    & (ys <= height - sizes[j, 0]) & (xs <= width - sizes[j, 1]))
            where = torch.where(near, score[f, j], torch.full_like(score[f, j], float("inf")))
            best = int(where.argmin())
            corners[f, j] = torch.tensor([best // width, best % width])
    return corners


def _paste(templates: torch.Tensor, sizes: torch.Tensor, corners: torch.Tensor, height: int,
           width: int) -> torch.Tensor:
    """Layers (m, t, H, W): template j's ink box pasted at corners[f, j] in frame f."""
    t, m, _ = corners.shape
    layers = torch.zeros(m, t, height, width)
    for f in range(t):
        for j in range(m):
            (y, x), (h, w) = corners[f, j].tolist(), sizes[j].tolist()
            layers[j, f, y : y + h, x : x + w] = templates[j, :h, :w]
    return layers


@torch.no_grad()
def split_digits(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (b, t, H, W) of two-digit clips, uint8 or float [0, 1] → (layers float [0, 1]
    (b, 2, t, H, W), ok bool (b,)). Layer j holds digit j alone (in the order the reference
    frame's regions come, top-left first), and the maximum of the two layers redraws the clip.
    ok[i] is False where the digits touch in every frame of clip i; its layers are zeros."""
    if (not isinstance(frames, torch.Tensor) or frames.dim() != 4
            or min(frames.shape[-2:]) < MAX_SIZE):
        raise ValueError(f"frames must be a (b, t, H, W) tensor of clips with H, W >= "
                         f"{MAX_SIZE}, got {getattr(frames, 'shape', type(frames).__name__)}")
    video = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
    b, t, height, width = video.shape
    labels = components(video > 0)
    layers = torch.zeros(b, 2, t, height, width)
    ok = torch.zeros(b, dtype=torch.bool)
    for i in range(b):
        found = _reference_frame(labels[i])
        if found is None:
            continue
        f, regions = found
        templates = torch.zeros(2, MAX_SIZE, MAX_SIZE)
        start = torch.zeros(2, 2, dtype=torch.long)
        sizes = torch.zeros(2, 2, dtype=torch.long)
        boxes = sorted(((*_box(labels[i, f] == r), r) for r in regions), key=lambda z: z[:2])
        for j, (y, x, h, w, r) in enumerate(boxes):
            cut = video[i, f] * (labels[i, f] == r)
            templates[j, :h, :w] = cut[y : y + h, x : x + w]
            start[j], sizes[j] = torch.tensor([y, x]), torch.tensor([h, w])
        corners = _track(video[i], templates, sizes, start, f)
        layers[i] = _paste(templates, sizes, corners, height, width)
        ok[i] = True
    return layers, ok


__all__ = ["components", "split_digits"]
