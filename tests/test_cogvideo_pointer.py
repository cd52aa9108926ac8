"""The key-frame stage's copy pointer: what it reads, what it copies, caching, learning, errors."""

import pytest
import torch

from minivideo.checkpoints import build_model_from_checkpoint, save_checkpoint
from minivideo.data.moving_mnist import COMPASS
from minivideo.models.cogvideo import (
    FRAME_STRIDES,
    CogVideo,
    CogView,
    CogViewConfig,
    encode_prompt,
    sequence_loss,
    training_pair,
    video_sequence,
)
from minivideo.models.cogvideo.pointer import clause_digits, path_slots

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

K, GRID = 64, 8  # codes of the untrained tiny tokenizer; cells per side


def tiny_cogview(seed: int = 0) -> CogView:
    torch.manual_seed(seed)
    return CogView(CogViewConfig.preset("tiny", K, "untrained-tiny"))


def ids(*prompts: str) -> torch.Tensor:
    return torch.stack([encode_prompt(p) for p in prompts])


def offset_index(rows: int, cols: int) -> int:
    """Index in the (2·grid − 1)² offset table of a key `rows, cols` cells from the query's."""
    return (rows + GRID - 1) * (2 * GRID - 1) + cols + GRID - 1


def frame_start(model: CogVideo, f: int) -> int:
    """Position of frame f's BOF token: its 64 queries predict the frame's 64 codes."""
    base = model.config.base
    return base.text_len + 1 + f * base.frame_len


def test_bad_pointer_options_raise_clear_errors():
    with pytest.raises(ValueError, match="pointer must be one of"):
        CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer="always")
    with pytest.raises(ValueError, match="needs stage='keyframes'"):
        CogVideo.from_cogview(tiny_cogview(), "interp", pointer="caption")
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer="caption")
    with pytest.raises(ValueError, match="pointer needs the whole prefix"):
        model(ids("digit 3 moves left")[:, :10] + K)


def test_path_slots_count_the_thens_of_each_clause():
    text = ids("digit 3 moves left then up then down and digit 7 moves down then up-left")
    num_codes = 100  # any offset: words are num_codes + their index
    slots = path_slots(text + num_codes, num_codes)[0].tolist()
    words = "digit 3 moves left then up then down and digit 7 moves down then up-left".split()
    by_word = dict(zip(range(len(words)), slots, strict=False))
    assert [by_word[i] for i in (3, 5, 7, 12, 14)] == [0, 1, 2, 0, 1]


def test_the_first_key_frame_is_the_plain_stage_and_later_ones_are_not():
    base = tiny_cogview()
    plain = CogVideo.from_cogview(base, "keyframes").eval()
    model = CogVideo.from_cogview(base, "keyframes", pointer="caption").eval()
    with torch.no_grad():
        for p in model.pointer.parameters():
            p.normal_()
    torch.manual_seed(1)
    sequence = video_sequence(model.config, ids("digit 3 moves left"), 4,
                              torch.randint(0, K, (1, 5, GRID, GRID)))
    reference = plain(sequence)[0].log_softmax(-1)
    got = model(sequence)[0]
    first = slice(0, frame_start(model, 1))  # the prefix and frame 0: nothing to copy from
    assert torch.allclose(got[:, first], reference[:, first], atol=1e-5)
    assert not torch.allclose(got[:, frame_start(model, 1) :], reference[:, frame_start(model, 1) :],
                              atol=1e-2)
    assert torch.allclose(got.exp().sum(-1), torch.ones(1, got.shape[1]), atol=1e-4)


@pytest.mark.parametrize("word, cols", [("left", 1), ("right", -1), ("up", 0)])
def test_the_pointer_copies_the_cell_the_caption_word_points_to(word, cols):
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer="caption").eval()
    rows = 1 if word == "up" else 0  # content moving up comes from the row below
    with torch.no_grad():
        model.pointer.query.weight.zero_()  # no content: only the offset tables decide
        model.pointer.gate.bias.fill_(30.0)  # g ≈ 1: the pointer alone
        rate, direction = FRAME_STRIDES.index(4), COMPASS.index(word)
        model.pointer.motion[rate, 0, 0, direction, offset_index(rows, cols)] = 60.0
    torch.manual_seed(2)
    codes = torch.randint(0, K, (1, 5, GRID, GRID))
    probs = model(video_sequence(model.config, ids(f"digit 3 moves {word}"), 4, codes))[0].exp()
    for f in (1, 4):
        start = frame_start(model, f)
        for r, c in ((2, 3), (5, 1), (6, 6)):
            query = start + r * GRID + c  # the token that predicts cell (r, c) of frame f
            source = codes[0, f - 1, r + rows, c + cols]
            assert probs[0, query, source] > 0.99, (f, r, c)


def test_timed_tables_follow_the_key_frame_and_the_path_slot():
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer="timed").eval()
    rate = FRAME_STRIDES.index(4)
    with torch.no_grad():  # the first word ("left", slot 0) points right in key frame 1 only
        model.pointer.motion[rate, 1, 0, COMPASS.index("left"), offset_index(0, 1)] = 5.0
    prefix = video_sequence(model.config, ids("digit 3 moves left then up"), 4,
                            torch.zeros(1, 5, GRID, GRID).long())
    table = model.pointer.tables(prefix, 5)  # (b, frames, offsets)
    assert table[0, 1, offset_index(0, 1)] == 5.0
    assert table[0, 2].abs().sum() == 0 and table[0, 1].abs().sum() == 5.0
    # "left" after a "then" (slot 1) is another table: it stays 0 here
    later = video_sequence(model.config, ids("digit 3 moves up then left"), 4,
                           torch.zeros(1, 5, GRID, GRID).long())
    assert model.pointer.tables(later, 5).abs().sum() == 0


@pytest.mark.parametrize("pointer", ["caption", "timed", "bound"])
def test_kv_cached_pointer_matches_full_recompute(pointer):
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", relative_bias=True,
                                  caption_offsets=True, pointer=pointer).eval()
    with torch.no_grad():
        model.gate.normal_(std=0.5)
        for p in model.pointer.parameters():
            p.normal_()
    sequence = video_sequence(model.config, ids("digit 3 moves left then up"), 4,
                              torch.randint(0, K, (1, 5, GRID, GRID)))
    full, _ = model(sequence)
    cache = model.new_cache()
    parts = [model(sequence[:, :40], cache=cache)[0]]
    parts += [model(sequence[:, i : i + 1], cache=cache)[0] for i in range(40, 130)]
    assert torch.allclose(torch.cat(parts, 1), full[:, :130], atol=1e-4)
    # a reset cache starts over: another caption's tables, not the last one's
    other = video_sequence(model.config, ids("digit 5 moves right"), 4,
                           torch.randint(0, K, (1, 5, GRID, GRID)))
    cache.reset()
    again = torch.cat([model(other[:, :40], cache=cache)[0],
                       model(other[:, 40:140], cache=cache)[0]], 1)
    assert torch.allclose(again, model(other)[0][:, :140], atol=1e-4)


def test_checkpoint_round_trip_keeps_the_pointer(tmp_path):
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer="timed")
    with torch.no_grad():
        for p in model.pointer.parameters():
            p.normal_()
    again = build_model_from_checkpoint(save_checkpoint(tmp_path / "keys.pt", model=model))
    sequence = video_sequence(model.config, ids("digit 3 moves down"), 2,
                              torch.randint(0, K, (1, 5, GRID, GRID)))
    assert torch.allclose(model.eval()(sequence)[0], again.eval()(sequence)[0])


def _shifting_batch(model: CogVideo, n: int, generator: torch.Generator) -> dict:
    """Clips whose every key frame is the last one moved one cell as their caption says."""
    words = ("left", "right", "up", "down")
    moves = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
    picks = torch.randint(len(words), (n,), generator=generator).tolist()
    frames = [torch.randint(0, K, (GRID, GRID), generator=generator) for _ in range(n)]
    codes = torch.stack([  # roll by (dr, dc): the code at (r, c) goes to (r + dr, c + dc)
        torch.stack([f.roll((k * moves[words[w]][0], k * moves[words[w]][1]), (0, 1))
                     for k in range(5)])
        for f, w in zip(frames, picks, strict=True)])
    sequence = video_sequence(model.config, ids(*[f"digit 3 moves {words[w]}" for w in picks]),
                              4, codes)
    return training_pair(sequence, frame_start(model, 1), K)  # the later key frames only


def _held_out_loss(pointer: str, make_batch, generator: torch.Generator, steps: int,
                   held_out: dict) -> float:
    """A tiny stage with this pointer, trained on `steps` fresh batches of 8 (fresh frames every
    step: only a rule can be learned), then its loss on the held-out batch."""
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer=pointer, bias_scale=10.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(steps):
        loss, _ = sequence_loss(model, make_batch(model, 8, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(sequence_loss(model.eval(), held_out)[0])


def test_the_pointer_learns_to_copy_what_the_caption_moves_where_the_stage_cannot():
    generator = torch.Generator().manual_seed(0)
    held_out = _shifting_batch(CogVideo.from_cogview(tiny_cogview(), "keyframes"), 16,
                               torch.Generator().manual_seed(99))
    losses = {pointer: _held_out_loss(pointer, _shifting_batch, generator, 40, held_out)
              for pointer in ("none", "caption")}
    # random codes cost ln 64 = 4.16 nats to a stage that cannot copy them
    assert losses["none"] > 3.5, losses
    assert losses["caption"] < 1.0, losses


def test_clause_digits_find_each_clause_and_its_digit():
    text = ids("digit 3 moves left then up and digit 7 moves down", "digit 5 moves right")
    clause, digits = clause_digits(text + 100, 100)
    assert digits.tolist() == [[3, 7, -1], [5, -1, -1]]
    words = "digit 3 moves left then up and digit 7 moves down".split()
    assert clause[0, : len(words)].tolist() == [0] * 7 + [1] * 4  # "and" closes clause 0


def test_bound_tables_apply_to_the_cells_their_digit_drew():
    model = CogVideo.from_cogview(tiny_cogview(), "keyframes", pointer="bound").eval()
    rate = FRAME_STRIDES.index(4)
    with torch.no_grad():  # "left" (slot 0) points one column right in key frame 1
        model.pointer.motion[rate, 1, 0, COMPASS.index("left"), offset_index(0, 1)] = 5.0
    prefix = video_sequence(model.config, ids("digit 3 moves left and digit 7 moves up"), 4,
                            torch.zeros(1, 5, GRID, GRID).long())
    table = model.pointer.tables(prefix, 5)  # (b, rate + 3 clauses, frames, offsets)
    assert table.shape == (1, 4, 5, (2 * GRID - 1) ** 2)
    assert table[0, 1, 1, offset_index(0, 1)] == 5.0 and table[0, 2].abs().sum() == 0
    hidden = torch.randn(1, 6, model.config.base.n_embd)
    digits = clause_digits(prefix[:, : model.config.base.text_len], K)[1]
    with torch.no_grad():  # the reader says "7" for cells 0-2 and "3" for cells 3-5
        model.pointer.binder.weight.zero_()
        model.pointer.binder.bias.zero_()
        hidden[0, :3, 0], hidden[0, 3:, 0] = -1.0, 1.0
        model.pointer.binder.weight[3, 0], model.pointer.binder.weight[7, 0] = 40.0, -40.0
    weights = model.pointer.binding(hidden, digits)[0]  # (m, rate + 3 clauses)
    assert torch.allclose(weights[:3], torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(3, -1))
    assert torch.allclose(weights[3:], torch.tensor([1.0, 1.0, 0.0, 0.0]).expand(3, -1))
    # a caption-free side names no clause: the frame rate's table alone, never NaN
    free = model.pointer.binding(hidden, torch.full_like(digits, -1))[0]
    assert torch.equal(free, torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(6, -1))


def _two_digit_batch(model: CogVideo, n: int, generator: torch.Generator) -> dict:
    """Two "digits" drawn from their own codes (3: codes 0-7, 7: codes 8-15), in rows 0-3 and
    4-7 (either way round), each rolling one cell a key frame along its own clause's word."""
    moves = {"left": -1, "right": 1}
    frames, prompts = [], []
    for _ in range(n):
        words = [("left", "right")[int(i)] for i in torch.randint(2, (2,), generator=generator)]
        top = int(torch.randint(2, (1,), generator=generator))  # which digit holds rows 0-3
        halves = []
        for digit in (3, 7) if top == 0 else (7, 3):
            low = 0 if digit == 3 else 8
            cells = torch.randint(low, low + 8, (GRID // 2, GRID), generator=generator)
            step = moves[words[0 if digit == 3 else 1]]
            halves.append(torch.stack([cells.roll(k * step, 1) for k in range(5)]))
        frames.append(torch.cat(halves, 1))  # (5, h, w): rows 0-3, then rows 4-7
        prompts.append(f"digit 3 moves {words[0]} and digit 7 moves {words[1]}")
    sequence = video_sequence(model.config, ids(*prompts), 4, torch.stack(frames))
    return training_pair(sequence, frame_start(model, 1), K)


def test_the_bound_pointer_moves_each_digit_its_own_way_where_the_timed_one_cannot():
    held_out = _two_digit_batch(CogVideo.from_cogview(tiny_cogview(), "keyframes"), 16,
                                torch.Generator().manual_seed(99))
    losses = {pointer: _held_out_loss(pointer, _two_digit_batch,  # both see the same clips
                                      torch.Generator().manual_seed(0), 160, held_out)
              for pointer in ("timed", "bound")}
    # Half the captions send the digits opposite ways: without binding a copier can only split
    # its bet between the two cells (ln 2 = 0.69 nats on those codes at best).
    assert losses["timed"] > 0.25, losses
    # The bound one breaks below that floor. How far in 160 steps depends on the machine's
    # float arithmetic (0.229 on a 2-core AMD EPYC on one thread, 0.144 on two; below 0.15 on
    # the AVX512 machine this test was written on), and binding is not learned from every
    # start: with training seeds 1-3 it stayed at the floor for 480 steps (stop 34). So this
    # shows that it can be learned, from this seed, not how reliably.
    assert losses["bound"] < losses["timed"] - 0.05, losses
