"""GPT: the cached forward equals the full one, masks and positions do what they say, it learns."""

import json
import math

import pytest
import torch

from minivideo.masks import prefix_mask
from minivideo.transformer import GPT, GPTCache, GPTConfig

VOCAB, BLOCK = 17, 22


def tiny(**overrides) -> GPT:
    """A seeded 2-layer GPT in eval mode (the sizes below are what every test uses)."""
    torch.manual_seed(0)
    config = dict(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32)
    return GPT(GPTConfig(**{**config, **overrides})).eval()


def ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def incremental(model: GPT, idx: torch.Tensor, chunks: list[int], **kwargs) -> torch.Tensor:
    """Logits of idx fed through one cache in pieces of the given sizes."""
    cache = model.new_cache()
    logits, start = [], 0
    for size in chunks:
        out, _ = model(idx[:, start : start + size], cache=cache, **kwargs)
        logits.append(out)
        start += size
        assert len(cache) == start
    return torch.cat(logits, dim=1)


# --------------------------------------------------------------------------- KV cache
CACHE_CASES = {
    "1d": dict(),
    "1d-naive": dict(backend="naive"),
    "1d+prefix-mask": dict(prefix_len=4),
    "3d+prefix": dict(pos_emb="3d", grid=(2, 3, 3), prefix_len=4),
    "3d+prefix+cross": dict(pos_emb="3d", grid=(2, 3, 3), prefix_len=4, context_dim=12),
}


@pytest.mark.parametrize("overrides", CACHE_CASES.values(), ids=CACHE_CASES.keys())
def test_cached_incremental_forward_equals_full_forward(overrides):
    model = tiny(**overrides)
    idx = ids(3, BLOCK)
    kwargs = {}
    if overrides.get("prefix_len"):
        kwargs["mask"] = prefix_mask(overrides["prefix_len"], BLOCK)
    if overrides.get("context_dim"):
        kwargs["context"] = torch.randn(3, 5, 12, generator=torch.Generator().manual_seed(2))
    full, _ = model(idx, **kwargs)
    # the prefix in one piece then token by token (how sampling feeds it), and ragged pieces
    prefix = overrides.get("prefix_len", 1)
    by_token = incremental(model, idx, [prefix] + [1] * (BLOCK - prefix), **kwargs)
    ragged = incremental(model, idx, [7, 5, 10], **kwargs)
    assert (by_token - full).abs().max() < 1e-5
    assert (ragged - full).abs().max() < 1e-5


def test_cache_reset_starts_over_and_cross_attention_keys_are_computed_once():
    model = tiny(context_dim=12)
    idx, context = ids(2, 6), torch.randn(2, 5, 12)
    cache = model.new_cache()
    first, _ = model(idx[:, :3], context=context, cache=cache)
    model(idx[:, 3:], context=context, cache=cache)
    _, cross_cache = cache.layers[0]
    assert len(cache) == 6 and len(cross_cache) == 5  # 5 context tokens, cached once
    cache.reset()
    assert len(cache) == 0 and cache.batch_size is None and len(cross_cache) == 0
    again, _ = model(idx[:, :3], context=context, cache=cache)
    assert torch.equal(first, again)


def test_cache_rejects_a_different_batch():
    model = tiny()
    cache = model.new_cache()
    model(ids(2, 3), cache=cache)
    with pytest.raises(ValueError, match="cache holds 2 sequences"):
        model(ids(3, 1), cache=cache)


# --------------------------------------------------------------------------- masks and context
def test_default_mask_is_causal():
    model = tiny()
    idx = ids(1, 10)
    changed = idx.clone()
    changed[0, 6] = (idx[0, 6] + 1) % VOCAB
    before, _ = model(idx)
    after, _ = model(changed)
    assert torch.equal(before[:, :6], after[:, :6])  # the past cannot see the future
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_prefix_mask_lets_the_prefix_see_itself_both_ways():
    model = tiny()
    idx = ids(1, 10)
    changed = idx.clone()
    changed[0, 3] = (idx[0, 3] + 1) % VOCAB
    mask = prefix_mask(4, BLOCK)  # the mask may be larger than the sequence: it is sliced
    before, _ = model(idx, mask=mask)
    after, _ = model(changed, mask=mask)
    assert not torch.allclose(before[:, 0], after[:, 0])  # token 0 sees prefix token 3


def test_cross_attention_reads_the_context():
    model = tiny(context_dim=12)
    idx = ids(2, 8)
    a, _ = model(idx, context=torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(3)))
    b, _ = model(idx, context=torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(4)))
    assert (a - b).abs().max() > 1e-3


# --------------------------------------------------------------------------- positions
def test_3d_positions_factorise_over_t_h_w():
    model = tiny(pos_emb="3d", grid=(2, 3, 4), prefix_len=2, block_size=2 + 24)
    pos = model.position_embeddings(0, 26)
    t, h, w = model.t_emb.weight, model.h_emb.weight, model.w_emb.weight
    expected = t[:, None, None] + h[None, :, None] + w[None, None, :]  # (t h w c)
    assert torch.equal(pos[2:].reshape(2, 3, 4, -1), expected)
    assert torch.equal(pos[:2], model.prefix_pos_emb.weight)
    # any window of positions (what a cached forward asks for) is a slice of the full table
    for start, length in [(0, 1), (1, 3), (2, 24), (13, 5), (25, 1)]:
        assert torch.equal(model.position_embeddings(start, length), pos[start : start + length])


def test_3d_positions_count_t_plus_h_plus_w_vectors():
    flat = tiny(block_size=64)
    factorised = tiny(block_size=64, pos_emb="3d", grid=(4, 4, 4))
    assert flat.pos_emb.weight.shape == (64, 32)
    difference = flat.num_parameters() - factorised.num_parameters()
    assert difference == (64 - (4 + 4 + 4)) * 32
    assert factorised.num_parameters(non_embedding=True) == flat.num_parameters(non_embedding=True)


def test_positions_past_the_3d_grid_are_refused():
    model = tiny(pos_emb="3d", grid=(1, 2, 5), prefix_len=2, block_size=20)
    model(ids(1, 12))
    with pytest.raises(ValueError, match="exceeds the 12 positions"):
        model(ids(1, 13))


# --------------------------------------------------------------------------- learning
def test_tiny_model_overfits_a_fixed_batch():
    """Bound: mean cross-entropy < 0.05 nats after 200 AdamW steps (from ~2.3 = ln 10)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, block_size=16, n_layer=2, n_head=2, n_embd=32))
    data = torch.randint(0, 10, (8, 17), generator=torch.Generator().manual_seed(1))
    optimizer = model.configure_optimizers(weight_decay=0.0, lr=3e-3)
    _, initial = model(data[:, :-1], data[:, 1:])
    assert abs(initial.item() - math.log(10)) < 0.1  # small init: a near-uniform start
    for _ in range(200):
        _, loss = model(data[:, :-1], data[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"loss {loss.item():.3f} did not fall below 0.05 in 200 steps"


def test_ignored_targets_do_not_count():
    model = tiny()
    idx, targets = ids(2, 8), ids(2, 8, seed=5)
    masked = targets.clone()
    masked[:, :4] = -100
    logits, loss = model(idx, masked)
    expected = torch.nn.functional.cross_entropy(
        logits[:, 4:].reshape(-1, VOCAB), targets[:, 4:].reshape(-1)
    )
    assert torch.allclose(loss, expected)
    assert model(idx)[1] is None
    assert torch.equal(model(idx.to(torch.uint8))[0], logits)  # any integer dtype of ids


def test_dropout_is_active_in_training_only():
    model = tiny(dropout=0.5)
    idx = ids(2, 8)
    assert torch.equal(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])


# --------------------------------------------------------------------------- parameters
def test_weight_tying_shares_storage():
    model = tiny()
    assert model.head.weight is model.tok_emb.weight
    assert model.head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    untied = tiny(tie_weights=False)
    assert untied.head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    assert untied.num_parameters() == model.num_parameters() + VOCAB * 32


def test_residual_projections_get_the_gpt2_scaled_init():
    model = tiny(n_layer=8, n_embd=64, block_size=8)
    block = model.blocks[3]
    expected = 0.02 / math.sqrt(2 * 8)
    for weight in (block.attn.out_proj.weight, block.mlp.proj.weight):
        assert abs(weight.std().item() - expected) < 0.15 * expected
    assert abs(block.mlp.fc.weight.std().item() - 0.02) < 0.1 * 0.02


def test_configure_optimizers_decays_only_matrices():
    model = tiny(context_dim=12)
    decay, no_decay = model.configure_optimizers(weight_decay=0.1, lr=1e-3).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(
        p.dim() < 2 for p in no_decay["params"]
    )
    # each parameter in exactly one group, the tied embedding/head once
    in_groups = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(in_groups) == len(set(in_groups)) == len(list(model.parameters()))
    assert id(model.tok_emb.weight) in {id(p) for p in decay["params"]}
    assert id(model.norm.weight) in {id(p) for p in no_decay["params"]}
    assert sum(p.numel() for p in decay["params"] + no_decay["params"]) == model.num_parameters()


def test_from_config_round_trip_through_json():
    model = tiny(pos_emb="3d", grid=(2, 2, 4), prefix_len=2, block_size=18, context_dim=6)
    saved = json.loads(json.dumps(model.config_dict()))  # the grid comes back as a list
    clone = GPT.from_config(saved)
    assert clone.config == model.config and clone.config.grid == (2, 2, 4)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    idx, context = ids(2, 18), torch.randn(2, 3, 6)
    assert torch.equal(clone(idx, context=context)[0], model(idx, context=context)[0])
    with pytest.raises(ValueError, match="does not know: \\['n_heads'\\]"):
        GPT.from_config({**saved, "n_heads": 2})


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(n_embd=30, n_head=4), "n_embd=30 must be divisible by n_head=4"),
        (dict(vocab_size=0), "vocab_size must be a positive int"),
        (dict(block_size=2.5), "block_size must be a positive int"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (dict(pos_emb="2d"), "pos_emb must be one of"),
        (dict(pos_emb="3d"), r"needs grid=\(t, h, w\)"),
        (dict(pos_emb="3d", grid=(2, 0, 2)), r"needs grid=\(t, h, w\)"),
        (dict(pos_emb="3d", grid=(4, 4, 4)), "prefix_len 0 \\+ t\\*h\\*w 64 exceeds block_size 16"),
        (dict(pos_emb="3d", grid=(2, 2, 3), prefix_len=5), "exceeds block_size 16"),
        (dict(grid=(2, 2, 2)), "only used with pos_emb='3d'"),
        (dict(prefix_len=-1), "prefix_len must be an int in"),
        (dict(context_dim=0), "context_dim must be a positive int or None"),
        (dict(backend="cuda"), "backend must be one of"),
    ],
)
def test_bad_configs_are_named(overrides, match):
    base = dict(vocab_size=10, block_size=16, n_embd=32, n_head=2)
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**base, **overrides})


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, c: m(torch.randn(1, 4)), TypeError, "idx must be an integer tensor"),
        (lambda m, c: m([[1, 2]]), TypeError, "idx must be an integer tensor"),
        (lambda m, c: m(torch.zeros(4, dtype=torch.long)), ValueError, r"idx must have shape \(b, n\)"),
        (lambda m, c: m(torch.zeros(1, 0, dtype=torch.long)), ValueError, "b, n >= 1"),
        (lambda m, c: m(torch.tensor([[3, 17]])), ValueError, r"ids in \[3, 17\], outside the vocabulary \[0, 17\)"),
        (lambda m, c: m(torch.tensor([[-1, 3]])), ValueError, "outside the vocabulary"),
        (lambda m, c: m(torch.zeros(1, 23, dtype=torch.long)), ValueError, "0 cached \\+ 23 new tokens exceeds block_size=22"),
        (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long)), ValueError, "targets must have idx's shape"),
        (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4)), TypeError, "targets must be an integer tensor"),
        (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), mask=torch.ones(4, 4)), TypeError, "mask must be a bool"),
        (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), mask=torch.ones(3, 3, dtype=torch.bool)), ValueError, "N >= 4"),
        (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), context=torch.randn(1, 2, 12)), ValueError, "no cross-attention"),
        (lambda m, c: c(torch.zeros(1, 4, dtype=torch.long)), ValueError, r"pass context \(1, m, 12\)"),
        (lambda m, c: c(torch.zeros(1, 4, dtype=torch.long), context=torch.randn(1, 2, 5)), ValueError, r"context must have shape \(1, m, 12\), got \(1, 2, 5\)"),
        (lambda m, c: c(torch.zeros(2, 4, dtype=torch.long), context=torch.randn(1, 2, 12)), ValueError, r"context must have shape \(2, m, 12\)"),
        (lambda m, c: c(torch.zeros(1, 4, dtype=torch.long), context=torch.ones(1, 2, 12, dtype=torch.long)), TypeError, "context must be a float tensor"),
        (lambda m, c: m(torch.zeros(1, 4, dtype=torch.long), cache=c.new_cache()), TypeError, "cache must come from this model"),
    ],
)
def test_bad_inputs_are_named(call, error, match):
    plain, crossing = tiny(), tiny(context_dim=12, n_layer=1)
    with pytest.raises(error, match=match):
        call(plain, crossing)


def test_cache_overflow_is_named():
    model = tiny()
    cache = model.new_cache()
    model(ids(1, 20), cache=cache)
    with pytest.raises(ValueError, match="20 cached \\+ 3 new tokens exceeds block_size=22"):
        model(ids(1, 3), cache=cache)
    assert len(cache) == 20  # the refused call left the cache as it was


def test_gpt_needs_a_config_object():
    with pytest.raises(TypeError, match="from_config takes a dict"):
        GPT(dict(vocab_size=10, block_size=8))
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        GPTCache(0)
