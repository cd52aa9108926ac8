"""GPT: the cached forward equals the full one, positions factorise, a tiny model learns."""

import pytest
import torch

from minivideo.masks import prefix_mask
from minivideo.transformer import GPT, GPTConfig


def _incremental(model, idx, chunks, **kwargs):
    cache = model.new_cache()
    logits, start = [], 0
    for size in chunks:
        out, _ = model(idx[:, start : start + size], cache=cache, **kwargs)
        logits.append(out)
        start += size
    assert len(cache) == idx.shape[1]
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize(
    "config",
    [
        dict(pos_emb="1d"),
        dict(pos_emb="3d", grid=(2, 3, 3), prefix_len=4),
        dict(pos_emb="3d", grid=(2, 3, 3), prefix_len=4, context_dim=12),
    ],
    ids=["1d", "3d+prefix", "3d+prefix+cross"],
)
def test_cached_incremental_forward_equals_full_forward(config):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=17, block_size=22, n_layer=2, n_head=2, n_embd=32, **config))
    model.eval()
    idx = torch.randint(0, 17, (3, 22))
    kwargs = {}
    if config.get("prefix_len"):
        kwargs["mask"] = prefix_mask(config["prefix_len"], 22)
    if config.get("context_dim"):
        kwargs["context"] = torch.randn(3, 5, 12)
    full, _ = model(idx, **kwargs)
    chunks = [4] + [1] * 18 if config.get("prefix_len") else [1] * 22
    assert torch.allclose(_incremental(model, idx, chunks, **kwargs), full, atol=1e-5)
    assert torch.allclose(_incremental(model, idx, [7, 5, 10], **kwargs), full, atol=1e-5)


def test_tiny_model_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, block_size=16, n_layer=2, n_head=2, n_embd=64))
    data = torch.randint(0, 10, (8, 17), generator=torch.Generator().manual_seed(1))
    optimizer = model.configure_optimizers(weight_decay=0.0, lr=3e-3)
    for _ in range(200):
        _, loss = model(data[:, :-1], data[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"loss {loss.item():.3f} did not fall below 0.05 in 200 steps"


def test_ignored_targets_do_not_count():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=16))
    idx = torch.randint(0, 10, (2, 8))
    targets = torch.randint(0, 10, (2, 8))
    masked = targets.clone()
    masked[:, :4] = -100
    logits, loss = model(idx, masked)
    expected = torch.nn.functional.cross_entropy(
        logits[:, 4:].reshape(-1, 10), targets[:, 4:].reshape(-1)
    )
    assert torch.allclose(loss, expected)


def test_weight_tying_shares_storage():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=16))
    assert model.head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    untied = GPT(
        GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=16, tie_weights=False)
    )
    assert untied.head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    assert untied.num_parameters() == model.num_parameters() + 10 * 16


def test_3d_positions_factorise_over_t_h_w():
    model = GPT(
        GPTConfig(
            vocab_size=5,
            block_size=2 + 24,
            n_embd=16,
            n_head=2,
            pos_emb="3d",
            grid=(2, 3, 4),
            prefix_len=2,
        )
    )
    pos = model.position_embeddings(0, 26, "cpu")
    video = pos[2:].reshape(2, 3, 4, 16)
    t, h, w = model.t_emb.weight, model.h_emb.weight, model.w_emb.weight
    expected = t[:, None, None] + h[None, :, None] + w[None, None, :]
    assert torch.allclose(video, expected)
    assert torch.allclose(pos[:2], model.prefix_pos_emb.weight[:2])


def test_configure_optimizers_decays_only_matrices():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16))
    decay, no_decay = model.configure_optimizers(weight_decay=0.1, lr=1e-3).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(
        p.dim() < 2 for p in no_decay["params"]
    )
    n_params = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n_params == model.num_parameters()


def test_from_config_round_trip():
    model = GPT(
        GPTConfig(
            vocab_size=10,
            block_size=12,
            n_embd=16,
            n_head=2,
            pos_emb="3d",
            grid=(1, 2, 5),
            prefix_len=2,
        )
    )
    clone = GPT.from_config(model.config_dict())
    assert clone.config == model.config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_embd=30, n_head=4), "divisible"),
        (dict(pos_emb="2d"), "pos_emb"),
        (dict(pos_emb="3d"), "grid"),
        (dict(pos_emb="3d", grid=(4, 4, 4)), "exceeds block_size"),
        (dict(vocab_size=0), "vocab_size"),
    ],
)
def test_bad_configs_are_named(kwargs, match):
    base = dict(vocab_size=10, block_size=16, n_embd=32, n_head=2)
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**base, **kwargs})


def test_bad_inputs_are_named():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=16))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.randn(1, 4))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[3, 10]]))
    with pytest.raises(ValueError, match="block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 6, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="6 cached"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="no cross-attention"):
        model(torch.zeros(1, 3, dtype=torch.long), context=torch.randn(1, 2, 4))
    crossing = GPT(
        GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=16, context_dim=4)
    )
    with pytest.raises(ValueError, match="pass context"):
        crossing(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"context must have shape \(1, m, 4\)"):
        crossing(torch.zeros(1, 3, dtype=torch.long), context=torch.randn(1, 2, 5))
