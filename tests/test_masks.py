"""Mask builders are exactly what their definitions say, checked against brute-force loops."""

import itertools

import pytest
import torch

from minivideo import masks


def _coords(grid):
    return list(itertools.product(*(range(n) for n in grid)))  # raster order over (t, h, w)


def test_causal_and_prefix_masks():
    assert torch.equal(masks.causal_mask(4), torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    prefix = masks.prefix_mask(2, 5)
    expected = [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
    ]
    assert prefix.int().tolist() == expected
    assert torch.equal(masks.prefix_mask(0, 4), masks.causal_mask(4))


def test_padding_mask_blocks_keys_past_each_length():
    mask = masks.padding_mask(torch.tensor([3, 1]), 4)
    assert mask.shape == (2, 1, 1, 4)
    assert mask[:, 0, 0].int().tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]


def test_axial_mask_on_a_small_grid_by_hand():
    # grid (2, 2, 2): token index = 4 t + 2 y + x
    along_t = masks.axial_mask((2, 2, 2), "t")
    assert along_t[0].nonzero().flatten().tolist() == [0, 4]
    assert along_t[3].nonzero().flatten().tolist() == [3, 7]
    along_w = masks.axial_mask((2, 2, 2), "w")
    assert along_w[5].nonzero().flatten().tolist() == [4, 5]
    causal_h = masks.axial_mask((2, 2, 2), "h", causal=True)
    assert causal_h[6].nonzero().flatten().tolist() == [4, 6]


@pytest.mark.parametrize("axis", ["t", "h", "w"])
def test_axial_mask_against_brute_force(axis):
    grid = (3, 2, 4)
    coords = _coords(grid)
    keep = [i for i in range(3) if i != "thw".index(axis)]
    expected = torch.tensor([[all(a[j] == b[j] for j in keep) for b in coords] for a in coords])
    assert torch.equal(masks.axial_mask(grid, axis), expected)


@pytest.mark.parametrize(
    ("window", "shift"),
    [
        ((1, 2, 2), (0, 0, 0)),
        ((2, 2, 2), (1, 1, 1)),
        ((4, 4, 4), (2, 2, 2)),
        ((2, 3, 1), (1, 2, 0)),
    ],
)
def test_local_windows_and_shifted_windows_against_brute_force(window, shift):
    grid = (4, 4, 4)
    coords = _coords(grid)

    def window_of(c):
        return tuple((c[i] + shift[i]) // window[i] for i in range(3))

    expected = torch.tensor([[window_of(a) == window_of(b) for b in coords] for a in coords])
    assert torch.equal(masks.local_window_mask(grid, window, shift), expected)
    causal = masks.local_window_mask(grid, window, shift, causal=True)
    assert torch.equal(causal, expected & masks.causal_mask(64))


def _swin_mask(grid, window, shift):
    """Swin Transformer's recipe: roll the grid by -shift, cut windows, block pairs of tokens that
    come from different regions (the ones the roll wrapped around)."""
    index = torch.arange(grid[0] * grid[1] * grid[2]).reshape(grid)
    rolled = torch.roll(index, shifts=[-s for s in shift], dims=(0, 1, 2))
    region = torch.zeros(grid, dtype=torch.long)
    cuts = [
        (slice(0, -w), slice(-w, -s), slice(-s, None)) if s > 0 else (slice(None),)
        for w, s in zip(window, shift, strict=True)
    ]
    for label, block in enumerate(itertools.product(*cuts)):
        region[block] = label
    out = torch.zeros(index.numel(), index.numel(), dtype=torch.bool)
    for corner in itertools.product(*(range(0, n, w) for n, w in zip(grid, window, strict=True))):
        block = tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True))
        tokens, labels = rolled[block].flatten(), region[block].flatten()
        out[tokens[:, None], tokens[None, :]] = labels[:, None] == labels[None, :]
    return out


@pytest.mark.parametrize(
    ("window", "swin_shift"),
    [
        ((2, 2, 2), (1, 1, 1)),
        ((4, 2, 6), (2, 1, 3)),
        ((2, 4, 3), (1, 1, 2)),
        ((4, 4, 3), (0, 3, 1)),
    ],
)
def test_shifted_windows_equal_swins_cyclic_shift_and_mask(window, swin_shift):
    grid = (4, 4, 6)
    ours = tuple((w - s) % w for w, s in zip(window, swin_shift, strict=True))
    assert torch.equal(
        masks.local_window_mask(grid, window, ours), _swin_mask(grid, window, swin_shift)
    )
    if all(2 * s == w or s == 0 for w, s in zip(window, swin_shift, strict=True)):
        # Swin's usual half-window shift: the very same numbers
        assert torch.equal(
            masks.local_window_mask(grid, window, swin_shift), _swin_mask(grid, window, swin_shift)
        )


def test_shifted_windows_cross_the_previous_borders():
    plain = masks.local_window_mask((1, 4, 4), (1, 2, 2))
    shifted = masks.local_window_mask((1, 4, 4), (1, 2, 2), (0, 1, 1))
    # tokens (y=1, x=1) and (y=2, x=2) sit in different plain windows but share a shifted one
    a, b = 1 * 4 + 1, 2 * 4 + 2
    assert not plain[a, b] and shifted[a, b]
    # the corner token's shifted window holds it alone (an edge window is smaller)
    assert shifted[0].sum() == 1
    # both tilings cover every token exactly once: each row's window contains the token itself
    assert plain.diagonal().all() and shifted.diagonal().all()


def test_combine_and_density():
    both = masks.combine_masks(masks.causal_mask(4), masks.prefix_mask(2, 4))
    assert torch.equal(both, masks.causal_mask(4))
    assert masks.mask_density(masks.causal_mask(4)) == pytest.approx(10 / 16)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: masks.causal_mask(0), "n must be a positive int"),
        (lambda: masks.prefix_mask(5, 4), "prefix_len"),
        (lambda: masks.axial_mask((2, 2, 2), "x"), "axis must be one of"),
        (lambda: masks.axial_mask((2, 2), "t"), "grid must be a"),
        (lambda: masks.local_window_mask((2, 2, 2), (0, 1, 1)), r"window\[0\]"),
        (lambda: masks.local_window_mask((2, 2, 2), (2, 2, 2), (2, 0, 0)), r"shift\[0\]"),
        (lambda: masks.padding_mask(torch.tensor([5]), 4), "lengths must lie in"),
        (lambda: masks.combine_masks(), "at least one"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
