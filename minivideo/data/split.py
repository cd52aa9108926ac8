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
ink (within a window around the previous frame's position), and pastes.

Where the digits touch in every frame there is no such frame. Then each digit is still in
every frame, but the other one moves away from each of its pixels in some frame: the minimum
of the frames over a box that moves with one digit is that digit. Starting from the two halves
of the joint ink, both are tracked, fitted jointly (each frame redrawn as the max of the two
pasted, so neither is pulled off by the other's strokes), each re-cut as that minimum along
its path, and tracked again; the pair that redraws the frames best is kept if it misses them by
at most a tenth of their ink. A clip still not split is reported, and a caller falls back.

`redraw` pastes each template again where a model's drawing of its layer puts it.

    layers, ok = split_digits(frames)   # frames (b, t, H, W) → layers (b, 2, t, H, W), ok (b,)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MIN_PIXELS = 12  # a footprint region smaller than this is a speck, not a digit
MAX_SIZE = 28  # a digit's box (MovingMNISTConfig.digit_size): a larger region is two digits
WINDOW = 6  # px a digit may move between frames in the search (the generator moves ≤ 3.6)
STEADY = 0.01  # redraw: cost per squared px off the digit's pace; ink differences are ~1 a px
ROUNDS = 4  # touching digits: rounds of tracking both, then re-cutting each along its path
# touching digits: the best pair is kept if it redraws the frames within a tenth of their ink.
# On 3,000 validation clips (training digits, seed 7; `python docs/split_tolerance.py`) that
# keeps 397 of 455 touching clips, 98% of them on their true paths to 1 px and none off by
# more than 3; within 2% (the first value) kept 340, all within 1 px.
TOLERANCE = 0.1
EXACT = 0.02  # ... and a pair within 2% ends the search over starting frames
NEEDED = 0.2  # ... and if each alone leaves at least a fifth of the ink undrawn (two digits)
SWEEPS = 2  # touching digits: turns each template takes, per frame, in the joint fit


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
           start: torch.Tensor, reference: int, steady: float = 0.0) -> torch.Tensor:
    """Top-left corners (t, m, 2) of m templates (m, s, s), each of ink box `sizes` (m, 2) at
    its top-left, in frames (t, H, W): each starts at `start` (m, 2) in frame `reference` and
    is followed frame by frame, both ways, always whole inside the frame. `steady` > 0 adds
    steady · (squared px from where the last step's velocity leads) to every score, so where
    the frames say little (faint or missing ink) a digit keeps moving as it moved."""
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
        step = 1 if f > reference else -1
        previous = corners[f - step]
        # where the last step's velocity leads (no velocity yet next to the reference frame)
        ahead = previous if f - step == reference else 2 * previous - corners[f - 2 * step]
        for j in range(m):
            near = (((ys - previous[j, 0]).abs() <= WINDOW)
                    & ((xs - previous[j, 1]).abs() <= WINDOW)
                    & (ys <= height - sizes[j, 0]) & (xs <= width - sizes[j, 1]))
            cost = score[f, j]
            if steady > 0:
                cost = cost + steady * ((ys - ahead[j, 0]) ** 2 + (xs - ahead[j, 1]) ** 2)
            where = torch.where(near, cost, torch.full_like(cost, float("inf")))
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


def _fit_jointly(frames: torch.Tensor, templates: torch.Tensor, corners: torch.Tensor,
                 sweeps: int = SWEEPS) -> torch.Tensor:
    """Corners (t, 2, 2) of two S×S templates (2, S, S) refined so that, frame by frame, the max
    of the two pasted redraws the frame (t, H, W). `_track` scores each template on its own ink,
    so where the digits overlap the other's strokes pull it off; here each in turn moves (within
    WINDOW) to where, with the other held, the whole frame's squared difference is least."""
    t, height, width = frames.shape
    s = templates.shape[-1]
    corners = corners.clone()
    for f in range(t):
        frame = frames[f]
        for _ in range(sweeps):
            for j in range(2):
                other = torch.zeros(height, width)
                y, x = corners[f, 1 - j].tolist()
                other[y : y + s, x : x + s] = templates[1 - j]
                # the corners within WINDOW of the current one, as boxes of a crop of the frame
                cy, cx = corners[f, j].tolist()
                y0, x0 = max(cy - WINDOW, 0), max(cx - WINDOW, 0)
                y1, x1 = min(cy + WINDOW + s, height), min(cx + WINDOW + s, width)
                here = F.unfold(frame[None, None, y0:y1, x0:x1], s)[0]  # (S·S, corners)
                under = F.unfold(other[None, None, y0:y1, x0:x1], s)[0]
                # inside the box the max of the two; outside it the other alone
                inside = (torch.maximum(templates[j].reshape(-1, 1), under) - here).pow(2)
                cost = (other - frame).pow(2).sum() - (under - here).pow(2).sum(0) + inside.sum(0)
                best, across = int(cost.argmin()), x1 - x0 - s + 1
                corners[f, j] = torch.tensor([y0 + best // across, x0 + best % across])
    return corners


@dataclass(frozen=True)
class Templates:
    """What `find_templates` cuts out of clips of b two-digit clips, t frames each."""

    templates: torch.Tensor  # (b, 2, MAX_SIZE, MAX_SIZE): each digit's ink box, top-left aligned
    sizes: torch.Tensor  # (b, 2, 2) long: height and width of each ink box
    corners: torch.Tensor  # (b, t, 2, 2) long: each digit's top-left (y, x) in each frame
    ok: torch.Tensor  # (b,) bool: False where the two digits were not found (all zeros there)
    touching: torch.Tensor  # (b,) bool: found although they touch in every frame


def _two_centres(frames: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Each frame (of (t, H, W)) with ink, and the centres (2, 2) as (y, x) of the two parts its
    ink falls into: 2-means on the ink's pixel coordinates, weighted by brightness, started at
    the two ends of the ink's long axis. The frames whose parts lie furthest apart come first."""
    height, width = frames.shape[-2:]
    grid = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width),
                                      indexing="ij"), dim=-1).reshape(-1, 2).float()
    found = []
    for f in range(frames.shape[0]):
        weight = frames[f].reshape(-1)
        points, weight = grid[weight > 0], weight[weight > 0]
        if len(points) < 2 * MIN_PIXELS:
            continue
        mean = (points * weight[:, None]).sum(0) / weight.sum()
        spread = ((points - mean).T * weight) @ (points - mean) / weight.sum()
        along = (points - mean) @ torch.linalg.eigh(spread)[1][:, -1]
        centres = points[torch.stack([along.argmin(), along.argmax()])]
        for _ in range(10):
            part = torch.cdist(points, centres).argmin(dim=1)
            centres = torch.stack([(points[part == k] * weight[part == k, None]).sum(0)
                                   / weight[part == k].sum().clamp_min(1e-6) for k in range(2)])
        found.append((float((centres[0] - centres[1]).norm()), f, centres))
    return [(f, centres) for _, f, centres in sorted(found, key=lambda z: -z[0])]


def _along(frames: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """The minimum over frames of the MAX_SIZE box at each frame's corner (t, 2): what moves
    with the box. A frame is the max of the two digits, so the box's own digit is in every
    frame, and the other digit drops out wherever it has left a pixel in some frame."""
    return torch.stack([frames[f, y : y + MAX_SIZE, x : x + MAX_SIZE]
                        for f, (y, x) in enumerate(corners.tolist())]).amin(dim=0)


def _split_touching(frames: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    """Templates (2, S, S), sizes (2, 2) and corners (t, 2, 2) of two digits that touch in every
    frame (t, H, W), or None: the best pair (`_best_pair`) if it misses the frames by at most
    TOLERANCE of their ink."""
    found = _best_pair(frames)
    return found[1] if found is not None and found[0] <= TOLERANCE else None


def _best_pair(frames: torch.Tensor) -> tuple[float, tuple[torch.Tensor, ...]] | None:
    """The pair (miss, (templates, sizes, corners)) of `_follow_both` that misses the frames
    (t, H, W) least, started from the two halves of each frame's ink in turn, the frame where
    they lie furthest apart first, until one misses by at most EXACT; None if no start gives
    two digits."""
    best = None
    for f, centres in _two_centres(frames):
        found = _follow_both(frames, f, centres)
        if found is not None and (best is None or found[0] <= best[0]):
            best = found
            if best[0] <= EXACT:
                break
    return best


def _follow_both(frames: torch.Tensor, f: int, centres: torch.Tensor
                 ) -> tuple[float, tuple[torch.Tensor, ...]] | None:
    """Split frames (t, H, W) from the two halves of frame f's ink (around `centres`): ROUNDS
    times, track both templates, fit them jointly (`_fit_jointly`) and re-cut each as `_along`
    its path (so each round a template holds more of its own digit and less of the other).
    Returns how far the pasted pair is from the frames (as a share of their ink) and the
    templates, sizes and corners; None where one template alone redraws them (NEEDED)."""
    t, height, width = frames.shape
    start = (centres.round().long() - MAX_SIZE // 2).clamp(min=0)
    start = torch.minimum(start, torch.tensor([height - MAX_SIZE, width - MAX_SIZE]))
    cells = torch.stack(torch.meshgrid(torch.arange(MAX_SIZE), torch.arange(MAX_SIZE),
                                       indexing="ij"), dim=-1).float()
    templates = torch.zeros(2, MAX_SIZE, MAX_SIZE)
    for j in range(2):  # each box keeps the ink nearer its own centre
        where = cells + start[j].float()
        mine = (where - centres[j]).norm(dim=-1) <= (where - centres[1 - j]).norm(dim=-1)
        y, x = start[j].tolist()
        templates[j] = frames[f, y : y + MAX_SIZE, x : x + MAX_SIZE] * mine
    sizes = torch.full((2, 2), MAX_SIZE)
    for _ in range(ROUNDS):
        corners = _fit_jointly(frames, templates, _track(frames, templates, sizes, start, f))
        templates = torch.stack([_along(frames, corners[:, j]) for j in range(2)])
        start = corners[f]
    layers = _paste(templates, sizes, corners, height, width)
    ink = frames.sum()
    residual = float((layers.amax(dim=0) - frames).abs().sum() / ink)
    # digits that move as one are found as one template holding both: each alone redraws all
    if any((layers[j] - frames).abs().sum() < NEEDED * ink for j in range(2)):
        return None
    trimmed, shift = torch.zeros_like(templates), torch.zeros(2, 2, dtype=torch.long)
    for j in range(2):  # each template's ink box, top-left aligned, as a split template is
        if not (templates[j] > 0).any():
            return None
        y, x, h, w = _box(templates[j] > 0)
        trimmed[j, :h, :w] = templates[j, y : y + h, x : x + w]
        shift[j], sizes[j] = torch.tensor([y, x]), torch.tensor([h, w])
    return residual, (trimmed, sizes, corners + shift)


def _as_video(frames: torch.Tensor, name: str) -> torch.Tensor:
    if (not isinstance(frames, torch.Tensor) or frames.dim() != 4
            or min(frames.shape[-2:]) < MAX_SIZE):
        raise ValueError(f"{name} must be a (b, t, H, W) tensor of clips with H, W >= "
                         f"{MAX_SIZE}, got {getattr(frames, 'shape', type(frames).__name__)}")
    return frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()


@torch.no_grad()
def find_templates(frames: torch.Tensor, touching: bool = True) -> Templates:
    """Frames (b, t, H, W) of two-digit clips, uint8 or float [0, 1] → each digit's template and
    where it sits in every frame (digit 0 is the reference frame's region that comes first,
    top-left first). Where the digits touch in every frame, `touching` follows both from the two
    halves of their joint ink (`_split_touching`), kept only if they redraw the frames."""
    video = _as_video(frames, "frames")
    b, t, height, width = video.shape
    labels = components(video > 0)
    found = Templates(torch.zeros(b, 2, MAX_SIZE, MAX_SIZE), torch.zeros(b, 2, 2, dtype=torch.long),
                      torch.zeros(b, t, 2, 2, dtype=torch.long), torch.zeros(b, dtype=torch.bool),
                      torch.zeros(b, dtype=torch.bool))
    for i in range(b):
        reference = _reference_frame(labels[i])
        if reference is None:
            parts = _split_touching(video[i]) if touching else None
            if parts is not None:
                found.templates[i], found.sizes[i], found.corners[i] = parts
                found.ok[i] = found.touching[i] = True
            continue
        f, regions = reference
        start = torch.zeros(2, 2, dtype=torch.long)
        boxes = sorted(((*_box(labels[i, f] == r), r) for r in regions), key=lambda z: z[:2])
        for j, (y, x, h, w, r) in enumerate(boxes):
            cut = video[i, f] * (labels[i, f] == r)
            found.templates[i, j, :h, :w] = cut[y : y + h, x : x + w]
            start[j], found.sizes[i, j] = torch.tensor([y, x]), torch.tensor([h, w])
        found.corners[i] = _track(video[i], found.templates[i], found.sizes[i], start, f)
        found.ok[i] = True
    return found


@torch.no_grad()
def split_digits(frames: torch.Tensor, touching: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (b, t, H, W) of two-digit clips, uint8 or float [0, 1] → (layers float [0, 1]
    (b, 2, t, H, W), ok bool (b,)). Layer j holds digit j alone (in the order the reference
    frame's regions come, top-left first), and the maximum of the two layers redraws the clip.
    ok[i] is False where the digits were not found in clip i (they touch in every frame, and
    following both from halves of their ink did not redraw the frames); its layers are zeros."""
    found = find_templates(frames, touching)
    return layers_of(found, *frames.shape[-2:]), found.ok


def layers_of(found: Templates, height: int, width: int) -> torch.Tensor:
    """The layers (b, 2, t, H, W) that `found` describes: each template pasted where it sits."""
    b, t = found.corners.shape[:2]
    layers = torch.zeros(b, 2, t, height, width)
    for i in found.ok.nonzero()[:, 0].tolist():
        layers[i] = _paste(found.templates[i], found.sizes[i], found.corners[i], height, width)
    return layers


@torch.no_grad()
def redraw(found: Templates, drawn: torch.Tensor, steady: float = STEADY) -> torch.Tensor:
    """Each drawn layer redrawn with its digit's template: drawn (b, 2, n, H, W), float [0, 1],
    the n frames that follow the given ones, one layer per template of `found` → (b, 2, n, H, W),
    each frame the template pasted where it fits that layer's drawn frame best (tracked from
    the last given frame, within WINDOW px a frame, keeping its pace where the ink is faint).
    A model decides where each digit goes; its pixels are the given digit's, as in a video
    predictor that moves the input's pixels (Finn et al., 2016). Clips not ok are left as drawn."""
    if drawn.dim() != 5 or drawn.shape[:2] != (len(found.ok), 2):
        raise ValueError(f"drawn must be (b, 2, n, H, W) with b = {len(found.ok)}, got "
                         f"{tuple(drawn.shape)}")
    out = drawn.float().clone()
    _, _, n, height, width = drawn.shape
    for i in found.ok.nonzero()[:, 0].tolist():
        for j in range(2):
            frames = torch.cat([torch.zeros(1, height, width), drawn[i, j].float()])
            corners = _track(frames, found.templates[i, j : j + 1], found.sizes[i, j : j + 1],
                             found.corners[i, -1, j : j + 1], 0, steady)
            out[i, j] = _paste(found.templates[i, j : j + 1], found.sizes[i, j : j + 1],
                               corners[1:], height, width)[0]
    return out


def path_error(corners: torch.Tensor, positions: torch.Tensor) -> int:
    """Px by which two digits' found corners (t, 2, 2) miss their true positions (t, 2, 2), in
    the worst frame and the better of the two orders. Paths are compared by their moves from
    the first frame: a template's corner is its ink box's, not the digit box's."""
    moved, true = corners - corners[:1], positions - positions[:1]
    return int(min((moved - true).abs().max(), (moved - true.flip(1)).abs().max()))


__all__ = ["Templates", "components", "find_templates", "layers_of", "path_error", "redraw",
           "split_digits"]
