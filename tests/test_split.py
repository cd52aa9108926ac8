"""Splitting Moving MNIST frames into one layer per digit (minivideo.data.split)."""

import numpy as np
import pytest
import torch

from minivideo.data import MovingMNISTConfig, generate_clips, load_digits
from minivideo.data.moving_mnist import render
from minivideo.data.split import components, split_digits


@pytest.fixture(scope="module")
def batch():
    return generate_clips(48, load_digits("test"), MovingMNISTConfig(num_frames=8), seed=3)


def digit_alone(batch, slot: int) -> torch.Tensor:
    """Each clip's digit `slot` rendered on its own, float [0, 1] (n, t, H, W)."""
    images, _ = load_digits("test")
    positions = batch.trajectories.positions_int[:, :, slot : slot + 1]
    alone = render(images[batch.digit_ids[:, slot : slot + 1]], positions)
    return torch.from_numpy(alone).float() / 255


def test_components_label_each_8_connected_region_once():
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region
    mask[4:6, 3:6] = True
    labels = components(mask)
    assert labels[0, 0] == labels[1, 1] != labels[4, 3]
    assert (labels[~mask] == 0).all()
    assert len(labels[mask].unique()) == 2


def test_split_layers_are_the_digits_the_generator_pasted(batch):
    layers, ok = split_digits(torch.from_numpy(batch.videos))
    assert ok.float().mean() > 0.7  # most clips have a frame where the digits stand apart
    first, second = digit_alone(batch, 0), digit_alone(batch, 1)
    for i in ok.nonzero()[:, 0].tolist():
        straight = (layers[i, 0] - first[i]).abs().amax() + (layers[i, 1] - second[i]).abs().amax()
        swapped = (layers[i, 0] - second[i]).abs().amax() + (layers[i, 1] - first[i]).abs().amax()
        # exact up to the order of the layers, except where the digits overlap in every frame
        # near the reference one: allow a rare pixel off
        assert min(straight, swapped) < 0.6, i
    exact = [min((layers[i, 0] - first[i]).abs().sum() + (layers[i, 1] - second[i]).abs().sum(),
                 (layers[i, 0] - second[i]).abs().sum() + (layers[i, 1] - first[i]).abs().sum())
             for i in ok.nonzero()[:, 0].tolist()]
    assert np.mean([e == 0 for e in exact]) > 0.9
    redrawn = layers[ok].amax(dim=1)
    video = torch.from_numpy(batch.videos[ok.numpy()]).float() / 255
    assert (redrawn - video).abs().mean() < 1e-3


def test_digits_that_overlap_in_every_frame_are_reported_not_split():
    images, _ = load_digits("test")
    positions = np.zeros((1, 4, 2, 2), dtype=np.int64)
    positions[0, :, 0] = [[10, 10], [11, 11], [12, 12], [13, 13]]
    positions[0, :, 1] = [[12, 12], [13, 13], [14, 14], [15, 15]]  # always on top of the first
    video = torch.from_numpy(render(images[None, :2], positions))
    layers, ok = split_digits(video)
    assert not ok[0] and layers.abs().sum() == 0


def test_split_rejects_what_is_not_a_batch_of_clips():
    with pytest.raises(ValueError, match="frames must be a \\(b, t, H, W\\)"):
        split_digits(torch.zeros(8, 64, 64))
