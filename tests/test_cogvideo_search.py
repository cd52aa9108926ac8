"""Key frames by move search: blobs, proposals, guided scores, and a stage that learns to choose."""

import numpy as np
import pytest
import torch

from minivideo.models.cogvideo import (
    CogVideo,
    CogView,
    CogViewConfig,
    encode_prompt,
    sequence_loss,
    training_pair,
    video_sequence,
)
from minivideo.models.cogvideo.layout import digit_free
from minivideo.models.cogvideo.search import (
    blobs,
    candidate_log_likelihood,
    chain_scores,
    frame_log_likelihood,
    proposals,
    search_keyframes,
    search_text_to_video,
    split,
)

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

K, GRID = 64, 8
MOVES = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def tiny_stage(seed: int = 0, **options) -> CogVideo:
    torch.manual_seed(seed)
    base = CogView(CogViewConfig.preset("tiny", K, "untrained-tiny"))
    return CogVideo.from_cogview(base, "keyframes", **options)


def ids(*prompts: str) -> torch.Tensor:
    return torch.stack([encode_prompt(p) for p in prompts])


def test_blobs_label_digits_largest_first_and_specks_join_the_nearest():
    grid = np.zeros((GRID, GRID), dtype=np.int64)
    grid[1:4, 1:4] = 5  # 9 cells
    grid[5:7, 5:7] = 7  # 4 cells
    grid[7, 0] = 9  # a speck, 4 cells from the first blob and 5 from the second
    labels = blobs(grid)
    assert set(np.unique(labels[1:4, 1:4])) == {1} and set(np.unique(labels[5:7, 5:7])) == {2}
    assert labels[7, 0] == 1
    assert (labels[grid == 0] == 0).all()


def test_one_blob_of_touching_digits_is_split_in_space():
    grid = np.zeros((GRID, GRID), dtype=np.int64)
    grid[2:5, 0:3] = 3
    grid[2:5, 3:6] = 4  # touching: one 8-connected blob, 3 × 6
    labels = blobs(grid)
    assert len(np.unique(labels[2:5, 0:3])) == 1 and len(np.unique(labels[2:5, 3:6])) == 1
    assert labels[2, 0] != labels[2, 5]
    assert (split(np.argwhere(grid > 0), 2) == split(np.argwhere(grid > 0), 2)).all()


def test_proposals_shift_each_blob_and_keep_ink_on_the_grid():
    grid = np.zeros((GRID, GRID), dtype=np.int64)
    grid[0:2, 2:4] = 5  # touches the top edge: no move up
    frames, moves = proposals(grid, blobs(grid, max_blobs=1))
    assert len(frames) == 6  # 9 moves, less the three with dy = -1
    assert all(m[0][0] != -1 for m in moves)
    right = frames[moves.index(((0, 1),))]
    assert (right[0:2, 3:5] == 5).all() and right.sum() == grid.sum()
    two = grid.copy()
    two[5:7, 5:7] = 7
    frames, moves = proposals(two, blobs(two))
    assert len(frames) == 6 * 9 and all(len(m) == 2 for m in moves)
    near = grid.copy()
    near[0:3, 5:7] = 7  # the larger blob (label 1), one empty column to the right
    frames, moves = proposals(near, blobs(near))
    assert ((0, -1), (0, 1)) not in moves  # toward each other: both would land on column 4
    assert ((0, 1), (0, 1)) in moves and ((0, 1), (0, -1)) in moves
    assert all((f > 0).sum() == (near > 0).sum() for f in frames)  # no cell lost to a collision


def test_guided_scores_are_the_log_likelihood_arithmetic():
    model = tiny_stage().eval()
    with torch.no_grad():
        model.gate.normal_(std=0.5)
    torch.manual_seed(1)
    frames = torch.randint(0, K, (2, 3, GRID, GRID))
    captions = ids("digit 3 moves left", "digit 5 moves up")
    conditional = frame_log_likelihood(model, captions, frames)
    pads = torch.zeros_like(captions)  # all pads: the caption-free score
    unconditional = frame_log_likelihood(model, pads, frames)
    guided = frame_log_likelihood(model, captions, frames, guidance=3.0)
    assert torch.allclose(guided, conditional + 2 * (conditional - unconditional), atol=1e-3)
    # the score is the sum of the last frame's code log-probabilities, as the loss counts them
    sequence = video_sequence(model.config, captions, 4, frames)
    pair = training_pair(sequence, sequence.shape[1] - GRID * GRID, K)
    with torch.no_grad():
        loss, _ = sequence_loss(model, pair)
    assert abs(float(-conditional.mean() / GRID**2) - float(loss)) < 1e-4


@pytest.mark.parametrize("options", [{}] + [
    {"relative_bias": True, "caption_offsets": True, "pointer": p} for p in ("timed", "bound")])
def test_cached_candidate_scores_match_whole_sequences(options):
    model = tiny_stage(**options).eval()
    with torch.no_grad():
        model.gate.normal_(std=0.5)
        for p in model.parameters():
            if p.requires_grad and p is not model.gate:
                p.add_(0.3 * torch.randn_like(p))
    torch.manual_seed(3)
    captions = ids("digit 3 moves left then up", "digit 5 moves down and digit 1 moves right")
    history = torch.randint(0, K, (2, 2, GRID, GRID))
    owner = torch.tensor([0, 1, 1, 0, 1])
    candidates = torch.randint(0, K, (5, GRID, GRID))
    for w in (1.0, 3.0):
        fast = candidate_log_likelihood(model, captions, history, candidates, owner, guidance=w,
                                        batch_size=2)  # chunks of two: the cache is copied
        plain = frame_log_likelihood(model, captions[owner],
                                     torch.cat([history[owner], candidates[:, None]], 1),
                                     guidance=w)
        assert torch.allclose(fast, plain, atol=1e-3), (fast, plain)


def _moving_blob(word: str, generator: torch.Generator) -> torch.Tensor:
    """Five key frames (5, h, w): a 2 × 2 blob of random codes moving one cell a frame."""
    dy, dx = MOVES[word]
    # a start with room for four moves: a 2 × 2 blob needs 2 + 4 of the 8 cells along a move
    starts = [(0, 2) if d > 0 else (4, 6) if d < 0 else (0, 6) for d in (dy, dx)]
    y, x = (int(torch.randint(lo, hi + 1, (1,), generator=generator)) for lo, hi in starts)
    blob = torch.randint(1, K, (2, 2), generator=generator)
    frames = torch.zeros(5, GRID, GRID, dtype=torch.long)
    for k in range(5):
        frames[k, y + k * dy : y + k * dy + 2, x + k * dx : x + k * dx + 2] = blob
    return frames


def _batch(model: CogVideo, n: int, generator: torch.Generator) -> dict:
    words = [list(MOVES)[int(i)] for i in torch.randint(len(MOVES), (n,), generator=generator)]
    codes = torch.stack([_moving_blob(w, generator) for w in words])
    sequence = video_sequence(model.config, ids(*[f"digit 3 moves {w}" for w in words]), 4,
                              codes)
    return training_pair(sequence, model.config.base.text_len + 1 + model.config.base.frame_len,
                         K)


def test_a_trained_stage_moves_the_blob_as_its_caption_says_and_a_fresh_one_does_not():
    generator = torch.Generator().manual_seed(0)
    trained = tiny_stage(pointer="caption", bias_scale=10.0)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(40):  # fresh blobs every step
        loss, _ = sequence_loss(trained, _batch(trained, 8, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    words = list(MOVES) * 2
    given = torch.stack([_moving_blob(w, torch.Generator().manual_seed(50 + i))[:1]
                         for i, w in enumerate(words)])
    captions = ids(*[f"digit 3 moves {w}" for w in words])
    right = {}
    for name, model in (("trained", trained), ("fresh", tiny_stage(pointer="caption"))):
        frames, chosen = search_keyframes(model.eval(), captions, given=given, seed=0,
                                          max_blobs=1)
        assert frames.shape == (len(words), 5, GRID, GRID)
        assert (frames[:, 0] == given[:, 0]).all()
        for k in range(1, 5):  # every key frame holds the same blob: shapes never break
            assert torch.equal(frames[:, k].flatten(1).sort(-1).values,
                               frames[:, 0].flatten(1).sort(-1).values)
        hits = [move == (MOVES[w],) for w, clip in zip(words, chosen, strict=True)
                for move in clip]
        right[name] = sum(hits) / len(hits)
    assert right["trained"] >= 0.9, right
    assert right["fresh"] < 0.6, right


def test_bad_search_options_raise_clear_errors():
    model = tiny_stage()
    with pytest.raises(ValueError, match="move_temperature must be > 0"):
        search_keyframes(model, ids("digit 3 moves left"), move_temperature=0.0)
    with pytest.raises(ValueError, match="guidance must be a number"):
        search_keyframes(model, ids("digit 3 moves left"), guidance=-1.0)
    with pytest.raises(ValueError, match="max_blobs must be a positive int"):
        search_keyframes(model, ids("digit 3 moves left"), max_blobs=0)
    with pytest.raises(ValueError, match="given must be first key frames"):
        search_keyframes(model, ids("digit 3 moves left"), given=torch.zeros(1, GRID, GRID))
    with pytest.raises(TypeError, match="model must be a CogVideo of stage 'keyframes'"):
        search_keyframes(CogVideo.from_cogview(model.base, "interp"), ids("digit 3 moves left"))


def test_search_text_to_video_keeps_the_searched_key_frames_and_fills_the_middles():
    keys_model = tiny_stage().eval()
    interp = CogVideo.from_cogview(keys_model.base, "interp").eval()
    captions = ids("digit 3 moves left and digit 7 moves down")
    video = search_text_to_video(keys_model, interp, captions, seed=4)
    keys, _ = search_keyframes(keys_model, captions, seed=4)
    assert video.shape == (1, 17, GRID, GRID)
    assert torch.equal(video[:, ::4], keys)  # the hierarchy keeps its key frames
    assert torch.equal(video, search_text_to_video(keys_model, interp, captions, seed=4))


@pytest.mark.parametrize("digit_dropout", [0.0, 0.5])
def test_a_chain_scores_its_first_key_frame_and_moves_and_reranking_keeps_the_best(
        digit_dropout):
    model = tiny_stage(digit_dropout=digit_dropout).eval()
    with torch.no_grad():
        model.gate.fill_(0.5)  # the temporal channel counts
    captions = ids("digit 3 moves left", "digit 8 moves up")
    many = captions.repeat_interleave(3, 0)
    frames, chosen, scores = chain_scores(model, many, guidance=2.0, seed=5, max_blobs=1)
    # the plain path: each key frame's guided log-likelihood on whole sequences, summed
    movers = digit_free(many) if digit_dropout else many
    plain = frame_log_likelihood(model, many, frames[:, :1], guidance=2.0) + sum(
        frame_log_likelihood(model, movers, frames[:, : k + 1], guidance=2.0)
        for k in range(1, 5))
    assert torch.allclose(scores, plain, atol=1e-3)
    assert len({tuple(f.flatten().tolist()) for f in frames[:, 0]}) > 2  # chains differ
    kept, kept_moves = search_keyframes(model, captions, guidance=2.0, seed=5, max_blobs=1,
                                        rerank=3)
    best = scores.view(2, 3).argmax(1) + torch.tensor([0, 3])
    assert torch.equal(kept, frames[best]) and kept_moves == [chosen[int(i)] for i in best]
    with pytest.raises(ValueError, match="rerank must be a positive int"):
        search_keyframes(model, captions, rerank=0)
