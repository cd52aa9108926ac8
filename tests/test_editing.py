"""In-filling with a left-to-right prior, and the masks that map pixels to code cells."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from einops import repeat
from torch import nn

from minivideo.data import MovingMNISTConfig, generate_clips
from minivideo.editing import (
    changed_fraction,
    forcing_allowed,
    infill,
    region_mask,
    sequence_mask,
    trajectory_mask,
)
from minivideo.transformer import GPT, GPTConfig


class FavouritePrior(nn.Module):
    """A stand-in prior whose next-token logits always put (almost) all mass on one token."""

    def __init__(self, vocab: int, block: int, favourite: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab, block_size=block)
        self.favourite = favourite

    def new_cache(self) -> None:
        return None

    def forward(self, idx, targets=None, *, mask=None, context=None, cache=None):
        logits = torch.zeros(*idx.shape, self.config.vocab_size)
        logits[..., self.favourite] = 30.0  # e^-30: the others are never drawn
        return logits, None


def test_kept_tokens_unchanged_and_edited_ones_resampled():
    vocab, n = 12, 40
    prior = FavouritePrior(vocab, n, favourite=7)
    tokens = torch.randint(0, 7, (3, n), generator=torch.Generator().manual_seed(0))
    edit = torch.zeros(3, n, dtype=torch.bool)
    edit[0, 5:9] = True
    edit[1, 20:35] = True
    edit[2, [3, 17, 39]] = True  # scattered, down to the last position
    out = infill(prior, tokens, edit, seed=1)
    assert out.tokens.shape == tokens.shape and out.tokens.dtype == torch.long
    assert torch.equal(out.tokens[~edit], tokens[~edit])
    assert (out.tokens[edit] == 7).all()  # every edited token changed (none was 7 before)
    assert changed_fraction(tokens, out.tokens, edit) == 1.0
    assert changed_fraction(tokens, out.tokens, ~edit) == 0.0


def test_edited_positions_take_only_allowed_ids():
    vocab, n = 12, 30
    prior = FavouritePrior(vocab, n, favourite=11)  # a "BOS" the edit must never write
    tokens = torch.randint(0, 10, (4, n), generator=torch.Generator().manual_seed(1))
    edit = torch.zeros(n, dtype=torch.bool)
    edit[10:20] = True
    allowed_ids = torch.zeros(vocab, dtype=torch.bool)
    allowed_ids[:10] = True
    out = infill(prior, tokens, edit, allowed_ids=allowed_ids, seed=0)
    assert (out.tokens[:, edit] < 10).all()
    assert torch.equal(out.tokens[:, ~edit], tokens[:, ~edit])


def test_seeded_and_empty_mask(one_thread):
    prior = GPT(GPTConfig(vocab_size=9, block_size=20, n_layer=1, n_head=1, n_embd=8))
    tokens = torch.randint(0, 9, (2, 20), generator=torch.Generator().manual_seed(2))
    edit = torch.zeros(20, dtype=torch.bool)
    edit[4:16] = True
    a, b = infill(prior, tokens, edit, seed=3), infill(prior, tokens, edit, seed=3)
    c = infill(prior, tokens, edit, seed=4)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    none = infill(prior, tokens, torch.zeros(20, dtype=torch.bool))
    assert torch.equal(none.tokens, tokens) and none.tokens is not tokens


def test_forcing_allowed_admits_only_the_kept_token():
    tokens = torch.tensor([[1, 2, 3], [4, 0, 2]])
    edit = torch.tensor([[False, True, False], [False, False, True]])
    free = torch.tensor([True, True, False, False, False])
    allowed = forcing_allowed(tokens, edit, free)
    assert allowed(1).tolist() == [[True, True, False, False, False],  # edited: free ids
                                   [True, False, False, False, False]]  # kept: its token 0
    assert allowed(2).tolist() == [[False, False, False, True, False], free.tolist()]


def _train_copy_prior(steps: int = 200) -> tuple[GPT, float]:
    """A tiny GPT on [BOS, a, a, a, a]: the first code is uniform, the rest copy it."""
    torch.manual_seed(0)
    bos = 4
    model = GPT(GPTConfig(vocab_size=5, block_size=5, n_layer=1, n_head=2, n_embd=32))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        a = torch.randint(0, 4, (64, 1), generator=gen)
        seq = torch.cat([torch.full((64, 1), bos), repeat(a, "b 1 -> b n", n=4)], dim=1)
        _, loss = model(seq[:, :-1], seq[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), float(loss.detach())


def test_rounds_make_the_region_agree_with_the_kept_future(one_thread):
    # Re-sample only the first code of [BOS, ?, 2, 2, 2]: the left-to-right pass draws it from
    # p(x1 | BOS), uniform, blind to the 2s after it; the Metropolis-Hastings rounds score the
    # whole sequence, and only x1 = 2 makes the kept future likely.
    model, loss = _train_copy_prior()
    assert loss < 0.45  # the floor is log(4) / 4 = 0.347 nats: only x1 is uncertain
    tokens = repeat(torch.tensor([4, 0, 2, 2, 2]), "n -> b n", b=64).clone()
    edit = torch.tensor([False, True, False, False, False])
    codes = torch.tensor([True, True, True, True, False])
    blind = infill(model, tokens, edit, allowed_ids=codes, seed=0)
    fixed = infill(model, tokens, edit, allowed_ids=codes, rounds=10, seed=0)
    assert float((blind.tokens[:, 1] == 2).float().mean()) < 0.5  # about 1/4
    assert float((fixed.tokens[:, 1] == 2).float().mean()) > 0.85  # 1 − 0.75^11 ≈ 0.96
    assert torch.equal(fixed.tokens[:, [0, 2, 3, 4]], tokens[:, [0, 2, 3, 4]])
    assert (fixed.accepted >= 0).all() and fixed.accepted.sum() > 0
    assert (fixed.log_weight >= blind.log_weight.min() - 1e-4).float().mean() > 0.85


# --------------------------------------------------------------------------- masks
def test_region_mask_on_the_clip_grid():
    # clip tokenizer: 4 frames × 4×4 px per code; frames 4..11 are code steps 1 and 2
    mask = region_mask((4, 16, 16), num_frames=16, frames=(4, 11), box=(8, 12, 24, 40))
    expected = torch.zeros(4, 16, 16, dtype=torch.bool)
    expected[1:3, 2:6, 3:10] = True  # rows 8..23 → cells 2..5; columns 12..39 → cells 3..9
    assert torch.equal(mask, expected)
    # a box that straddles cell borders takes every cell it touches
    mask = region_mask((4, 16, 16), num_frames=16, frames=(3, 4), box=(7, 0, 9, 1))
    assert mask.nonzero().tolist() == [[0, 1, 0], [0, 2, 0], [1, 1, 0], [1, 2, 0]]
    assert region_mask((4, 16, 16), num_frames=16).all()


def test_region_mask_on_the_frame_grid():
    # frame tokenizer: one frame per code step, 8×8 px per code
    mask = region_mask((17, 8, 8), num_frames=17, frames=(3, 3), box=(0, 0, 9, 9))
    assert mask.nonzero().tolist() == [[3, 0, 0], [3, 0, 1], [3, 1, 0], [3, 1, 1]]


def test_trajectory_mask_on_hand_made_paths():
    positions = np.zeros((16, 2))
    positions[4:] = 36  # frames 0..3 top-left, 4..15 bottom-right
    mask = trajectory_mask((4, 16, 16), positions)
    expected = torch.zeros(4, 16, 16, dtype=torch.bool)
    expected[0, 0:7, 0:7] = True  # pixels 0..27 → cells 0..6
    expected[1:, 9:16, 9:16] = True  # pixels 36..63 → cells 9..15
    assert torch.equal(mask, expected)
    # a code step takes the union of its frames' boxes; floats are floored like the renderer
    positions = np.array([[0.0, 0.0], [0.0, 3.9], [0.0, 4.0], [0.0, 4.0]] * 4)
    mask = trajectory_mask((4, 16, 16), positions)
    assert mask[0, 0].nonzero().flatten().tolist() == list(range(8))  # x 0..31
    assert not mask[0, 7].any()
    grown = trajectory_mask((4, 16, 16), positions, margin=4)
    assert grown[0, 7, :9].all() and grown.sum() > mask.sum()


def test_trajectory_mask_covers_every_pixel_of_a_rendered_digit():
    images = np.zeros((1, 28, 28), dtype=np.uint8)
    images[0, 1:27, 1:27] = 255  # a digit that fills its box (but the border)
    config = MovingMNISTConfig(num_frames=16, num_digits=1)
    clips = generate_clips(3, (images, np.array([5])), config, seed=0)
    for clip in range(3):
        positions = clips.trajectories.positions[clip, :, 0]
        for grid, num in (((4, 16, 16), 16), ((16, 8, 8), 16)):
            mask = trajectory_mask(grid, positions)
            time_down, cell = num // grid[0], 64 // grid[1]
            pixels = repeat(mask, "t h w -> (t a) (h y) (w x)", a=time_down, y=cell, x=cell)
            lit = torch.from_numpy(clips.videos[clip] > 0)
            assert pixels[lit].all()  # every lit pixel lies in a masked cell
            assert not pixels.all()  # and the mask is not the whole clip


def test_sequence_mask_follows_raster_order_after_the_prefix():
    code = torch.zeros(4, 16, 16, dtype=torch.bool)
    code[1, 0, 2] = True
    seq = sequence_mask(code, prefix_len=2)
    assert seq.shape == (2 + 1024,)
    assert seq.nonzero().flatten().tolist() == [2 + 1 * 256 + 0 * 16 + 2]
    batch = sequence_mask(repeat(code, "t h w -> b t h w", b=3), prefix_len=1)
    assert batch.shape == (3, 1025) and not batch[:, 0].any()


# --------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors():
    prior = FavouritePrior(10, 16, favourite=3)
    tokens = torch.zeros(2, 16, dtype=torch.long)
    edit = torch.zeros(16, dtype=torch.bool)
    edit[5] = True
    with pytest.raises(ValueError, match=r"edit_mask must have shape \(16,\)"):
        infill(prior, tokens, torch.zeros(15, dtype=torch.bool))
    with pytest.raises(TypeError, match="edit_mask must be a bool tensor"):
        infill(prior, tokens, edit.long())
    with pytest.raises(TypeError, match="tokens must be an int64 tensor"):
        infill(prior, tokens.int(), edit)
    with pytest.raises(ValueError, match="False at position 0"):
        infill(prior, tokens, torch.ones(16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 10\)"):
        infill(prior, tokens + 10, edit)
    with pytest.raises(TypeError, match=r"allowed_ids must be a bool tensor \(10,\)"):
        infill(prior, tokens, edit, allowed_ids=torch.ones(9, dtype=torch.bool))
    with pytest.raises(ValueError, match="rounds must be an int >= 0"):
        infill(prior, tokens, edit, rounds=-1)
    with pytest.raises(TypeError, match="model must be a GPT prior"):
        infill(nn.Linear(2, 2), tokens, edit)
    with pytest.raises(ValueError, match="box must be"):
        region_mask((4, 16, 16), num_frames=16, box=(10, 0, 5, 8))
    with pytest.raises(ValueError, match="frames must be"):
        region_mask((4, 16, 16), num_frames=16, frames=(3, 16))
    with pytest.raises(ValueError, match="num_frames must be a positive multiple"):
        region_mask((4, 16, 16), num_frames=10)
    with pytest.raises(ValueError, match=r"positions must have shape \(T, 2\)"):
        trajectory_mask((4, 16, 16), np.zeros((16, 3)))
    with pytest.raises(ValueError, match="positions must lie in"):
        trajectory_mask((4, 16, 16), np.full((16, 2), 40.0))
    with pytest.raises(TypeError, match="code_mask must be a bool tensor"):
        sequence_mask(torch.zeros(4, 16, 16), prefix_len=1)


def test_context_reaches_a_cross_attending_prior(one_thread):
    torch.manual_seed(0)
    prior = GPT(GPTConfig(vocab_size=9, block_size=12, n_layer=1, n_head=1, n_embd=8,
                          context_dim=4)).eval()
    tokens = torch.randint(0, 9, (2, 12), generator=torch.Generator().manual_seed(5))
    edit = torch.zeros(12, dtype=torch.bool)
    edit[3:9] = True
    one, other = torch.randn(2, 2, 3, 4, generator=torch.Generator().manual_seed(6)) * 3
    a = infill(prior, tokens, edit, context=one, seed=0)
    b = infill(prior, tokens, edit, context=other, seed=0)
    assert torch.equal(a.tokens[:, ~edit], tokens[:, ~edit])
    assert not torch.allclose(a.log_weight, b.log_weight)  # the context changed the scores
