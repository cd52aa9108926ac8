"""The generator: physics of the paper, determinism, labels that agree with the pixels."""

import dataclasses

import numpy as np
import pytest

from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import (
    COMPASS,
    KING_MOVES,
    MovingMNISTConfig,
    compass_direction,
    generate_clips,
    load_official_test_set,
    render,
    summarize_motion,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits("train")


@pytest.fixture(scope="module")
def batch(digits):
    return generate_clips(300, digits, MovingMNISTConfig(), seed=0)


def test_shapes_dtypes_and_defaults_of_the_paper(batch):
    assert batch.videos.shape == (300, 20, 64, 64) and batch.videos.dtype == np.uint8
    assert batch.digits.shape == (300, 2) and batch.digits.dtype == np.int64
    assert batch.trajectories.positions.shape == (300, 20, 2, 2)
    assert MovingMNISTConfig().speed_px == pytest.approx(3.6)


def test_speed_is_3_6_px_per_frame_away_from_walls(batch):
    steps = np.linalg.norm(np.diff(batch.trajectories.positions, axis=1), axis=-1)  # (n, t-1, k)
    free = ~batch.trajectories.bounces[:, 1:]
    np.testing.assert_allclose(steps[free], 3.6, atol=1e-9)
    assert (steps[~free] <= 3.6 + 1e-9).all()  # a clamped bounce step is shorter, never longer
    speed = np.linalg.norm(batch.trajectories.velocities, axis=-1)
    np.testing.assert_allclose(speed, 3.6, atol=1e-9)


def test_mirror_bounce_reflects_the_overshoot(digits):
    b = generate_clips(200, digits, MovingMNISTConfig(bounce="mirror"), seed=1)
    pos, vel = b.trajectories.positions, b.trajectories.velocities
    ahead = pos[:, :-1] + vel[:, :-1]  # where the digit would be without walls
    mirrored = np.where(ahead < 0, -ahead, np.where(ahead > 36, 72 - ahead, ahead))
    np.testing.assert_allclose(pos[:, 1:], mirrored, atol=1e-9)
    assert b.trajectories.bounces.any() and pos.min() >= 0 and pos.max() <= 36


def test_digits_stay_inside_and_bounces_reverse_the_velocity(batch):
    pos = batch.trajectories.positions
    assert pos.min() >= 0 and pos.max() <= 36
    ints = batch.trajectories.positions_int
    assert ints.min() >= 0 and ints.max() <= 36
    assert batch.trajectories.bounces.mean() > 0.02  # walls are hit often in 20 frames
    # Where a bounce happens, at least one velocity component flips sign.
    v = batch.trajectories.velocities
    flipped = (np.sign(v[:, 1:]) != np.sign(v[:, :-1])).any(-1)
    np.testing.assert_array_equal(flipped, batch.trajectories.bounces[:, 1:])


def test_initial_positions_and_directions_are_uniform(digits):
    b = generate_clips(4000, digits, MovingMNISTConfig(num_digits=1), seed=2)
    start = b.trajectories.positions[:, 0, 0] / 36
    assert abs(start.mean() - 0.5) < 0.02 and abs(start.std() - np.sqrt(1 / 12)) < 0.02
    counts = np.bincount(b.trajectories.directions[:, 0, 0], minlength=8)
    assert counts.min() > 400  # each of 8 sectors near 500 of 4000


def test_pixels_are_the_maximum_of_the_digits_at_their_positions(batch, digits):
    images = digits[0]
    i, t = 7, 11
    canvas = np.zeros((64, 64), dtype=np.uint8)
    for slot in range(2):
        y, x = batch.trajectories.positions_int[i, t, slot]
        np.maximum(canvas[y:y + 28, x:x + 28], images[batch.digit_ids[i, slot]],
                   out=canvas[y:y + 28, x:x + 28])
    np.testing.assert_array_equal(batch.videos[i, t], canvas)
    assert (batch.digits == digits[1][batch.digit_ids]).all()


def test_render_rejects_positions_outside_the_canvas():
    with pytest.raises(ValueError, match="positions"):
        render(np.zeros((1, 1, 28, 28), np.uint8), np.full((1, 2, 1, 2), 37), 64)


def test_same_seed_same_clips_other_seed_other_clips(digits):
    a = generate_clips(5, digits, seed=3)
    b = generate_clips(5, digits, seed=3)
    c = generate_clips(5, digits, seed=4)
    np.testing.assert_array_equal(a.videos, b.videos)
    assert not np.array_equal(a.videos, c.videos)


def test_compass_directions_use_screen_up():
    v = np.array([[0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1], [1, 0], [1, 1]], float)
    assert [COMPASS[d] for d in compass_direction(v)] == list(COMPASS)


def test_motion_summary_agrees_with_the_trajectory(batch):
    for i in range(20):
        for slot, motion in enumerate(summarize_motion(batch, i)):
            assert motion.digit == batch.digits[i, slot]
            # The first direction names the actual first displacement on screen.
            dy, dx = batch.trajectories.positions[i, 1, slot] - batch.trajectories.positions[i, 0, slot]
            if not batch.trajectories.bounces[i, 1, slot]:
                assert motion.initial_direction == COMPASS[compass_direction(np.array([dy, dx]))]
            assert list(motion.bounce_frames) == list(np.flatnonzero(batch.trajectories.bounces[i, :, slot]))
            # Direction changes only happen at bounces in the deterministic generator.
            assert len(motion.directions) <= len(motion.bounce_frames) + 1


def test_stochastic_variant_changes_direction_without_walls(digits):
    config = MovingMNISTConfig(stochastic=True, change_prob=0.3)
    b = generate_clips(200, digits, config, seed=5)
    v = b.trajectories.velocities
    turned = (np.abs(v[:, 1:] - v[:, :-1]).sum(-1) > 1e-9) & ~b.trajectories.bounces[:, 1:]
    assert 0.2 < turned.mean() < 0.4
    steps = np.linalg.norm(np.diff(b.trajectories.positions, axis=1), axis=-1)
    np.testing.assert_allclose(steps[~b.trajectories.bounces[:, 1:]], 3.6, atol=1e-9)


def test_compass_directions_are_the_eight_kings_moves(digits):
    config = MovingMNISTConfig(num_digits=1, directions="compass", step_length=4 / 36,
                               bounce="mirror")
    b = generate_clips(2000, digits, config, seed=3)
    v = b.trajectories.velocities / 4  # in steps: every component -1, 0 or +1, never both 0
    np.testing.assert_allclose(v, np.rint(v), atol=1e-9)
    assert set(np.unique(np.rint(v))) == {-1.0, 0.0, 1.0} and (np.abs(v).sum(-1) > 0).all()
    counts = np.bincount(b.trajectories.directions[:, 0, 0], minlength=8)
    assert counts.min() > 200  # each of 8 directions near 250 of 2000
    # the caption's word is exactly the motion: the king's move of its own compass index
    free = ~b.trajectories.bounces[:, 1:, 0]
    steps = np.diff(b.trajectories.positions[:, :, 0], axis=1) / 4
    words = b.trajectories.directions[:, :-1, 0]
    np.testing.assert_allclose(steps[free], KING_MOVES[words[free]], atol=1e-9)


def test_compass_words_name_the_next_move_on_walls_too(digits):
    # A digit that sits on a wall turns there: the word recorded at that frame is the move it
    # makes next, so a caption never names a direction its clip does not show. Frame 0 counts:
    # a digit drawn on a wall, pointing into it, starts by moving off it.
    config = MovingMNISTConfig(num_digits=1, directions="compass", step_length=4 / 36,
                               bounce="mirror")
    b = generate_clips(2000, digits, config, seed=3)
    pos = b.trajectories.positions[:, :, 0] / 4  # in steps, on the lattice 0 … 9
    on_wall = ((pos == 0) | (pos == 9)).any(-1)[:, :-1]
    assert on_wall[:, 0].mean() > 0.1 and on_wall.mean() > 0.1  # the case is common
    words = b.trajectories.directions[:, :-1, 0]
    np.testing.assert_allclose(np.diff(pos, axis=1), KING_MOVES[words], atol=1e-9)
    # the turn is a bounce of the frame where the wall is reached, and only there
    turned = (np.diff(b.trajectories.velocities[:, :, 0], axis=1) != 0).any(-1)
    np.testing.assert_array_equal(turned, b.trajectories.bounces[:, 1:, 0])


def test_compass_clips_move_whole_cells_between_key_frames(digits):
    # on the 4-px lattice, 4 frames apart: whole 8-px cells, across walls too (2L − p)
    config = MovingMNISTConfig(directions="compass", step_length=4 / 36, bounce="mirror")
    b = generate_clips(300, digits, config, seed=4)
    pos = b.trajectories.positions
    np.testing.assert_array_equal(pos, np.rint(pos))  # exact integers, so floor never slips
    assert set(np.unique(pos)) == set(range(0, 37, 4))
    moved = pos[:, 4:] - pos[:, :-4]
    assert set(np.unique(moved)) == {-16, -8, 0, 8, 16}  # ±8 and 0 only after a wall
    assert b.trajectories.bounces.mean() > 0.05
    # the control at the paper's 3.6 px is a lattice too, but its key frames leave the cells
    unaligned = generate_clips(300, digits, dataclasses.replace(config, step_length=0.1), seed=4)
    assert (np.diff(unaligned.trajectories.positions_int[:, ::4], axis=1) % 8 != 0).mean() > 0.5


def test_one_and_three_digits_and_frames(digits):
    for k in (1, 3):
        b = generate_clips(4, digits, MovingMNISTConfig(num_digits=k, num_frames=7), seed=0)
        assert b.videos.shape == (4, 7, 64, 64) and b.digits.shape == (4, k)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_digits": 0}, "num_digits"), ({"num_digits": 4}, "num_digits"),
    ({"num_frames": 0}, "num_frames"), ({"digit_size": 64}, "digit_size"),
    ({"step_length": 0}, "step_length"), ({"bounce": "wrap"}, "bounce"),
    ({"directions": "north"}, "directions"), ({"directions": "compass"}, "mirror"),
    ({"directions": "compass", "bounce": "mirror", "step_length": 0.15}, "1/L"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MovingMNISTConfig(**kwargs)


def test_bad_digits_input():
    with pytest.raises(ValueError, match="uint8"):
        generate_clips(2, (np.zeros((3, 28, 28), np.float32), np.zeros(3)))
    with pytest.raises(ValueError, match="num_clips"):
        generate_clips(-1, (np.zeros((3, 28, 28), np.uint8), np.zeros(3)))


def test_official_test_set_loader_reads_time_first_layout(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(3, 20, 64, 64), dtype=np.uint8)  # (n, t, h, w)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, np.ascontiguousarray(clips.transpose(1, 0, 2, 3)))  # stored (t, n, h, w)
    np.testing.assert_array_equal(load_official_test_set(path), clips)
    monkeypatch.setenv("MINIVIDEO_CACHE", str(tmp_path))
    np.testing.assert_array_equal(load_official_test_set(), clips)


def test_official_test_set_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist_test_seq"):
        load_official_test_set(tmp_path / "nope.npy")
    np.save(tmp_path / "flat.npy", np.zeros((20, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="4-d"):
        load_official_test_set(tmp_path / "flat.npy")
    np.save(tmp_path / "float.npy", np.zeros((20, 2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_official_test_set(tmp_path / "float.npy")
