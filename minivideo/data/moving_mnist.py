"""Moving MNIST (Srivastava, Mansimov & Salakhutdinov, 2015), vectorised with numpy.

The recipe of the paper's generator, reproduced here:

* a 64×64 black canvas and 28×28 MNIST digits, so a digit's top-left corner lives in the
  *free canvas* [0, 36]²; positions are kept as fractions p ∈ [0, 1]² of it;
* p₀ uniform on [0, 1]², direction θ uniform on the circle, velocity v = (sin θ, cos θ) (y, x);
* each frame p ← p + 0.1·v — a step of 0.1 × 36 = 3.6 px — and when a coordinate leaves
  [0, 1] that velocity component flips sign (a bounce off the wall);
* the digit is pasted at ⌊36·p⌋ and overlapping digits are combined by the pixel-wise maximum.

Two bounce rules: ``"clamp"`` (the paper's code: the coordinate is set to the wall) and
``"mirror"`` (reflect the overshoot, so every step is exactly 3.6 px). Frame 0 is the initial
position. With ``stochastic=True`` each digit draws a fresh direction with probability
``change_prob`` per frame (the stochastic variant of Denton & Fergus, 2018).

``directions="compass"`` replaces the uniform angle by the 8 compass directions a caption names:
each coordinate moves by −1, 0 or +1 step per frame (a king's move; diagonals are √2 faster), on
a lattice of whole steps (p₀ on it too, ``bounce="mirror"``, exact in integers). With a step of
4 px, key frames 4 apart differ by whole 8-px cells, walls included (a bounce at the wall L
turns p into 2L − p), so a tokenizer of stride 8 gives the moved digit its codes again, shifted:
CogVideo-mini's motion lever (lesson 08). On the lattice a digit can land exactly on a wall;
it turns there, so the velocity (and the caption word) recorded at that frame is the move it
makes next, never one into the wall that the clip does not show.

Axes: ``n`` clips, ``t`` frames, ``k`` digits, ``c`` = (y, x). Directions are indices into
`COMPASS`, measured with *up* meaning decreasing row index, as a person reads the screen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from minivideo.data.mnist import cache_dir

# Bumped when a config's labels change while its pixels do not, so caches of labelled clips
# made by an older generator are not reused (2: a mirror digit turns where it meets a wall).
LABELS_VERSION = 2

# Index i is the compass direction at angle i·45° counter-clockwise from "right" (screen up).
COMPASS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
# The king's move (dy, dx) of each compass direction, in steps; dy < 0 is up the screen.
KING_MOVES = np.array([(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)],
                      dtype=np.float64)
OFFICIAL_TEST_NAME = "mnist_test_seq.npy"
OFFICIAL_TEST_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"


@dataclass(frozen=True)
class MovingMNISTConfig:
    """Every knob of the generator; the defaults are the paper's."""

    canvas_size: int = 64
    digit_size: int = 28
    num_digits: int = 2
    num_frames: int = 20
    step_length: float = 0.1  # fraction of the free canvas per frame: 0.1 × 36 px = 3.6 px
    bounce: str = "clamp"  # "clamp" (paper's code) or "mirror"
    stochastic: bool = False  # Denton & Fergus: random direction changes
    change_prob: float = 0.1  # per digit and frame, used when stochastic
    directions: str = "any"  # "any" angle (the paper) or "compass": the 8 king's moves

    def __post_init__(self) -> None:
        for name in ("canvas_size", "digit_size", "num_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.num_digits, int) or not 1 <= self.num_digits <= 3:
            raise ValueError(f"num_digits must be 1, 2 or 3, got {self.num_digits!r}")
        if self.digit_size >= self.canvas_size:
            raise ValueError(f"digit_size ({self.digit_size}) must be smaller than "
                             f"canvas_size ({self.canvas_size})")
        if not 0 < self.step_length <= 1:
            raise ValueError(f"step_length must be in (0, 1], got {self.step_length}")
        if self.bounce not in ("clamp", "mirror"):
            raise ValueError(f"bounce must be 'clamp' or 'mirror', got {self.bounce!r}")
        if self.directions not in ("any", "compass"):
            raise ValueError(f"directions must be 'any' or 'compass', got {self.directions!r}")
        if self.directions == "compass" and self.bounce != "mirror":
            raise ValueError(f"directions='compass' needs bounce='mirror' (steps stay on the "
                             f"lattice), got bounce={self.bounce!r}")
        if self.directions == "compass" and abs(self.lattice * self.step_length - 1) > 1e-9:
            raise ValueError(f"directions='compass' needs step_length = 1/L for a whole number "
                             f"L of steps across the free canvas, got {self.step_length}")
        if not 0 <= self.change_prob <= 1:
            raise ValueError(f"change_prob must be in [0, 1], got {self.change_prob}")

    @property
    def free_size(self) -> int:
        """Pixels the top-left corner can travel along each axis: canvas − digit (36)."""
        return self.canvas_size - self.digit_size

    @property
    def lattice(self) -> int:
        """Steps across the free canvas, L = 1 / step_length rounded: compass digits sit at the
        L + 1 positions 0, …, L steps from the top-left wall on each axis."""
        return max(1, round(1 / self.step_length))

    @property
    def speed_px(self) -> float:
        """Pixels moved per frame away from walls (3.6 by default); with compass directions,
        per coordinate (a diagonal move is √2 longer)."""
        return self.step_length * self.free_size

    def to_dict(self) -> dict:
        """Plain dict, e.g. to store beside generated clips."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MovingMNISTConfig:
        """Inverse of `to_dict`, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass
class Trajectories:
    """Where every digit is at every frame (n, t, k, ...), in pixels of the canvas."""

    positions: np.ndarray  # float64 (n, t, k, 2): top-left (y, x), in [0, free_size]
    velocities: np.ndarray  # float64 (n, t, k, 2): px/frame carrying frame t to t + 1
    # bool (n, t, k): a wall was hit on the way into frame t (mirror: or reached exactly at
    # frame t, where the digit turns; so velocities[t] is always the move out of frame t)
    bounces: np.ndarray

    @property
    def positions_int(self) -> np.ndarray:
        """int64 (n, t, k, 2): the pixel where each digit is pasted (the paper truncates)."""
        return np.floor(self.positions).astype(np.int64)

    @property
    def directions(self) -> np.ndarray:
        """int64 (n, t, k): compass index (see `COMPASS`) of the velocity at each frame."""
        return compass_direction(self.velocities)


@dataclass
class MovingMNISTBatch:
    """Generated clips with every label needed for captions, checks and metrics."""

    videos: np.ndarray  # uint8 (n, t, h, w)
    digits: np.ndarray  # int64 (n, k): the class of each digit
    digit_ids: np.ndarray  # int64 (n, k): row of each digit in the digit images used
    trajectories: Trajectories
    config: MovingMNISTConfig

    def __len__(self) -> int:
        return len(self.videos)

    def motion(self, i: int) -> list[DigitMotion]:
        """Per-digit motion summary of clip i."""
        return summarize_motion(self, i)


@dataclass(frozen=True)
class DigitMotion:
    """What one digit does in one clip, in words a caption can use."""

    digit: int
    initial_direction: str
    directions: tuple[str, ...]  # compass directions in order, repeats collapsed
    bounce_frames: tuple[int, ...]  # frames reached by hitting a wall


def compass_direction(velocity: np.ndarray) -> np.ndarray:
    """Index into `COMPASS` of velocities (..., 2) given as (vy, vx) with y pointing down."""
    velocity = np.asarray(velocity, dtype=np.float64)
    if velocity.shape[-1:] != (2,):
        raise ValueError(f"velocity must have shape (..., 2) as (vy, vx); got {velocity.shape}")
    angle = np.arctan2(-velocity[..., 0], velocity[..., 1])  # minus: screen up is y decreasing
    return np.rint(angle / (np.pi / 4)).astype(np.int64) % 8


def sample_trajectories(num_clips: int, config: MovingMNISTConfig,
                        rng: np.random.Generator) -> Trajectories:
    """Random bouncing trajectories for num_clips × num_digits digits (vectorised over both)."""
    n, t_max, k = num_clips, config.num_frames, config.num_digits
    # Units: "any" moves fractions of the free canvas (wall at 1, step_length per frame);
    # "compass" moves whole steps on the lattice 0 … L (wall at L), exactly, in integers.
    if config.directions == "compass":
        wall, step = config.lattice, 1
        p = rng.integers(0, wall + 1, size=(n, k, 2)).astype(np.float64)
    else:
        wall, step = 1.0, config.step_length
        p = rng.random((n, k, 2))  # (y, x)
    v = _draw_velocities(n, k, config, rng)  # (n, k, 2), in steps per frame
    positions = np.empty((n, t_max, k, 2))
    velocities = np.empty((n, t_max, k, 2))
    bounces = np.zeros((n, t_max, k), dtype=bool)
    if config.bounce == "mirror":
        v, _ = _turn_at_walls(p, v, wall)  # a digit drawn on a wall starts moving off it
    positions[:, 0], velocities[:, 0] = p, v
    for t in range(1, t_max):  # a loop over 20 frames; everything inside is vectorised
        p = p + step * v
        low, high = p < 0, p > wall
        if config.bounce == "clamp":
            p = np.clip(p, 0.0, wall)
        else:
            p = np.where(low, -p, np.where(high, 2.0 * wall - p, p))
        hit = low | high
        v = np.where(hit, -v, v)
        bounces[:, t] = hit.any(axis=-1)
        if config.stochastic:
            change = rng.random((n, k)) < config.change_prob
            v = np.where(change[..., None], _draw_velocities(n, k, config, rng), v)
        if config.bounce == "mirror":
            v, touched = _turn_at_walls(p, v, wall)
            bounces[:, t] |= touched
        positions[:, t], velocities[:, t] = p, v
    scale = config.free_size / wall
    return Trajectories(positions * scale, velocities * step * scale, bounces)


def _turn_at_walls(p: np.ndarray, v: np.ndarray, wall: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn the velocity components of digits that sit exactly on a wall and point into it.

    The mirror rule leaves the positions unchanged (the next step, 2L − (L + 1) = L − 1, is the
    same either way), but without the turn the recorded velocity at such a frame points into the
    wall while the digit moves away from it, so a caption read from velocities would name a
    direction the clip never shows (on the compass lattice: 15% of the digits at frame 0 at
    4 px a step, 8% at 2 px, and every wall contact after it). Returns (v, per-digit flags).
    """
    into = ((p <= 0.0) & (v < 0)) | ((p >= wall) & (v > 0))
    return np.where(into, -v, v), into.any(axis=-1)


def _draw_velocities(n: int, k: int, config: MovingMNISTConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """(n, k, 2) velocities in steps per frame: a unit vector at a uniform angle, or a king's
    move of a uniform compass direction."""
    if config.directions == "compass":
        return KING_MOVES[rng.integers(len(COMPASS), size=(n, k))]
    theta = rng.random((n, k)) * 2 * np.pi
    return np.stack([np.sin(theta), np.cos(theta)], axis=-1)


def render(digit_images: np.ndarray, positions_int: np.ndarray,
           canvas_size: int = 64) -> np.ndarray:
    """Paste digits (n, k, s, s) at top-left corners (n, t, k, 2) on black canvases, by maximum."""
    if digit_images.ndim != 4 or digit_images.shape[2] != digit_images.shape[3]:
        raise ValueError(f"digit_images must have shape (n, k, s, s); got {digit_images.shape}")
    n, k, s, _ = digit_images.shape
    if positions_int.ndim != 4 or positions_int.shape[0] != n or positions_int.shape[2:] != (k, 2):
        raise ValueError(
            f"positions_int must have shape ({n}, t, {k}, 2); got {positions_int.shape}"
        )
    t = positions_int.shape[1]
    if positions_int.min(initial=0) < 0 or positions_int.max(initial=0) > canvas_size - s:
        raise ValueError(f"positions must lie in [0, {canvas_size - s}] so digits stay inside")
    videos = np.zeros((n, t, canvas_size, canvas_size), dtype=np.uint8)
    flat = videos.reshape(-1)  # a view: writing through flat indices fills videos
    # Flat index of pixel (r, c) of the digit pasted at (y, x) in frame (i, j):
    # ((i·t + j)·H + y + r)·W + x + c. One digit slot at a time, so no index repeats inside
    # one assignment and read-max-write is exact.
    frame = (np.arange(n)[:, None] * t + np.arange(t)[None, :]) * canvas_size**2  # (n, t)
    patch = (np.arange(s)[:, None] * canvas_size + np.arange(s)[None, :]).reshape(-1)  # (s·s,)
    for slot in range(k):
        y, x = positions_int[:, :, slot, 0], positions_int[:, :, slot, 1]
        corner = frame + y * canvas_size + x  # (n, t)
        index = corner[:, :, None] + patch  # (n, t, s·s)
        pixels = np.broadcast_to(digit_images[:, None, slot].reshape(n, 1, s * s), index.shape)
        flat[index] = np.maximum(flat[index], pixels)
    return videos


def generate_clips(num_clips: int, digits: tuple[np.ndarray, np.ndarray],
                   config: MovingMNISTConfig | None = None,
                   seed: int | np.random.Generator = 0) -> MovingMNISTBatch:
    """Generate num_clips clips from digits = (images uint8 (m, s, s), labels (m,)) and a seed."""
    config = MovingMNISTConfig() if config is None else config
    if not isinstance(num_clips, int) or num_clips < 0:
        raise ValueError(f"num_clips must be a non-negative int, got {num_clips!r}")
    images, labels = digits
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.shape[1:] != (config.digit_size,) * 2:
        raise ValueError(f"digit images must be uint8 (m, {config.digit_size}, "
                         f"{config.digit_size}); got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or len(images) == 0:
        raise ValueError(f"labels must have shape ({len(images)},) and be non-empty; "
                         f"got {labels.shape}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ids = rng.integers(len(images), size=(num_clips, config.num_digits))
    trajectories = sample_trajectories(num_clips, config, rng)
    videos = render(images[ids], trajectories.positions_int, config.canvas_size)
    return MovingMNISTBatch(videos, labels[ids].astype(np.int64), ids.astype(np.int64),
                            trajectories, config)


def _collapse(sequence: np.ndarray) -> tuple[int, ...]:
    """Run-length collapse: [4, 4, 2, 2, 4] -> (4, 2, 4)."""
    keep = np.ones(len(sequence), dtype=bool)
    keep[1:] = sequence[1:] != sequence[:-1]
    return tuple(int(d) for d in sequence[keep])


def summarize_motion(batch: MovingMNISTBatch, i: int) -> list[DigitMotion]:
    """Per-digit summary of clip i: initial compass direction, directions in order, bounces."""
    trajectories = batch.trajectories
    return motion_from_arrays(batch.digits[i], trajectories.bounces[i],
                              **motion_arrays(trajectories.directions[i], trajectories.bounces[i]))


def motion_from_arrays(digits: np.ndarray, bounces: np.ndarray, motion_directions: np.ndarray,
                       motion_lengths: np.ndarray, num_bounces: np.ndarray | None = None
                       ) -> list[DigitMotion]:
    """`DigitMotion`s of one clip from its digits (k,), bounce flags (t, k) and `motion_arrays`."""
    summary = []
    for slot in range(len(motion_directions)):
        path = tuple(COMPASS[int(d)] for d in motion_directions[slot, : int(motion_lengths[slot])])
        summary.append(DigitMotion(
            digit=int(digits[slot]), initial_direction=path[0], directions=path,
            bounce_frames=tuple(int(f) for f in np.flatnonzero(bounces[:, slot])),
        ))
    return summary


def motion_arrays(directions: np.ndarray, bounces: np.ndarray) -> dict[str, np.ndarray]:
    """One clip's per-digit motion summary as fixed-shape arrays (collate-friendly).

    From compass indices (t, k) and bounce flags (t, k) of one clip: ``motion_directions``
    int64 (k, max(1, t − 1)) the collapsed compass sequence of `summarize_motion`, padded with
    -1; ``motion_lengths`` int64 (k,) how many entries of each row are real; ``num_bounces``
    int64 (k,) the walls hit. Shapes depend only on (t, k), so clips of one config stack.
    """
    directions, bounces = np.asarray(directions), np.asarray(bounces)
    if directions.ndim != 2 or bounces.shape != directions.shape:
        raise ValueError(f"directions and bounces must both have shape (t, k); got "
                         f"{directions.shape} and {bounces.shape}")
    t, k = directions.shape
    # As in summarize_motion: the last frame's velocity never moves a digit on screen.
    shown = directions[: max(1, t - 1)]
    table = np.full((k, len(shown)), -1, dtype=np.int64)
    lengths = np.zeros(k, dtype=np.int64)
    for slot in range(k):
        sequence = _collapse(shown[:, slot])
        table[slot, : len(sequence)] = sequence
        lengths[slot] = len(sequence)
    return {"motion_directions": table, "motion_lengths": lengths,
            "num_bounces": bounces.sum(axis=0).astype(np.int64)}


def official_test_path(path: str | Path | None = None) -> Path:
    """Where the official test set is looked for: path, else $MINIVIDEO_CACHE/mnist_test_seq.npy."""
    return Path(path) if path is not None else cache_dir() / OFFICIAL_TEST_NAME


def open_official_test_set(path: str | Path | None = None, layout: str = "tnhw") -> np.ndarray:
    """The official test file memory-mapped and checked, in its stored layout (nothing loaded)."""
    if layout not in ("tnhw", "nthw"):
        raise ValueError(f"layout must be 'tnhw' (the official file) or 'nthw', got {layout!r}")
    path = official_test_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; download {OFFICIAL_TEST_URL} and pass its path or put it in "
            f"{cache_dir()} (set MINIVIDEO_CACHE to choose that folder)"
        )
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.ndim != 4 or array.shape[2] != array.shape[3]:
        raise ValueError(f"{path}: expected a 4-d array ({layout}) of square frames, like the "
                         f"official (20, 10000, 64, 64); got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 pixels, got {array.dtype}")
    return array


def load_official_test_set(path: str | Path | None = None, layout: str = "tnhw") -> np.ndarray:
    """The paper's test set mnist_test_seq.npy (20, 10000, 64, 64) as uint8 (n, t, h, w).

    ``path`` defaults to ``$MINIVIDEO_CACHE/mnist_test_seq.npy``; download it from
    `OFFICIAL_TEST_URL`. ``layout="nthw"`` accepts a file already stored clip-first. The whole
    file is read into memory; `minivideo.data.datasets.OfficialMovingMNIST` reads clip by clip.
    """
    array = open_official_test_set(path, layout)
    if layout == "tnhw":
        array = np.swapaxes(array, 0, 1)  # (t, n, h, w) -> (n, t, h, w)
    return np.ascontiguousarray(array)
