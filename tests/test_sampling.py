"""Sampling: processors keep the right tokens, generation is seeded and cache-exact, likelihoods."""

import math

import pytest
import torch

from minivideo.sampling import (
    bits_per_token,
    classifier_free_guidance,
    generate,
    greedy_filter,
    kept_mass,
    make_processor,
    min_p_filter,
    sequence_nll,
    top_k_filter,
    top_p_filter,
)
from minivideo.transformer import GPT, GPTConfig


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=40, n_layer=2, n_head=2, n_embd=32)
    return GPT(config).eval()


HAND_LOGITS = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(1))
    out = top_k_filter(7)(logits)
    kept = torch.isfinite(out)
    assert (kept.sum(-1) == 7).all()
    assert torch.equal(kept, torch.zeros_like(kept).scatter(-1, logits.topk(7).indices, True))


@pytest.mark.parametrize(
    ("p", "expected_kept", "expected_mass"),
    [(0.5, 1, 0.5), (0.6, 2, 0.7), (0.85, 3, 0.85), (0.86, 4, 0.95), (1.0, 5, 1.0)],
)
def test_top_p_keeps_the_smallest_nucleus(p, expected_kept, expected_mass):
    out = top_p_filter(p)(HAND_LOGITS)
    assert int(torch.isfinite(out).sum()) == expected_kept
    assert kept_mass(HAND_LOGITS, top_p_filter(p)).item() == pytest.approx(expected_mass, abs=1e-6)


def test_min_p_is_relative_to_the_best_token():
    out = min_p_filter(0.3)(HAND_LOGITS)  # keep p >= 0.15
    assert torch.isfinite(out).tolist() == [[True, True, True, False, False]]


def test_sampled_tokens_never_leave_the_kept_set():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(256, 30, generator=gen)
    for processor in (top_k_filter(5), top_p_filter(0.7), min_p_filter(0.2), greedy_filter()):
        processed = processor(logits)
        draws = torch.multinomial(processed.softmax(-1), 20, replacement=True, generator=gen)
        assert torch.isfinite(processed.gather(-1, draws)).all()


def test_temperature_one_frequencies_match_the_softmax():
    """Chi-square goodness of fit of 20k draws against softmax(logits), 4 degrees of freedom."""
    logits = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0])
    probs = logits.softmax(-1)
    process = make_processor(temperature=1.0)
    n = 20_000
    draws = torch.multinomial(
        process(logits).softmax(-1), n, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    observed = torch.bincount(draws, minlength=5).float()
    chi2 = float(((observed - n * probs) ** 2 / (n * probs)).sum())
    assert chi2 < 18.47, f"chi-square {chi2:.2f} exceeds the 0.1% critical value for 4 dof"


def test_guidance_weight_zero_and_one_are_the_endpoints():
    cond, uncond = torch.randn(3, 9), torch.randn(3, 9)
    assert torch.allclose(classifier_free_guidance(cond, uncond, 0.0), uncond)
    assert torch.allclose(classifier_free_guidance(cond, uncond, 1.0), cond)
    assert torch.allclose(classifier_free_guidance(cond, uncond, 3.0), uncond + 3 * (cond - uncond))


def test_cached_and_uncached_generation_draw_the_same_tokens(model):
    prefix = torch.tensor([[1, 2], [3, 4], [5, 6]])
    cached = generate(model, prefix, 20, seed=7, progress=False, return_logprobs=True)
    full = generate(
        model, prefix, 20, seed=7, use_cache=False, progress=False, return_logprobs=True
    )
    assert torch.equal(cached.tokens, full.tokens)
    assert torch.allclose(cached.logprobs, full.logprobs, atol=1e-5)
    assert torch.equal(cached.tokens[:, :2], prefix)
    other = generate(model, prefix, 20, seed=8, progress=False)
    assert not torch.equal(other.tokens, cached.tokens)


def test_greedy_generation_follows_the_argmax(model):
    prefix = torch.tensor([[1, 2]])
    out = generate(model, prefix, 5, greedy=True, progress=False).tokens
    logits, _ = model(out[:, :-1])
    assert torch.equal(logits[:, 1:].argmax(-1), out[:, 2:])


def test_guided_generation_batches_both_passes_and_matches_the_endpoints(model):
    prefix, uncond = torch.tensor([[1, 2]]), torch.tensor([[0, 2]])
    plain = generate(model, prefix, 8, seed=1, progress=False).tokens
    guided_one = generate(
        model, prefix, 8, seed=1, uncond_prefix=uncond, guidance=1.0, progress=False
    )
    assert torch.equal(plain, guided_one.tokens)
    uncond_only = generate(model, uncond, 8, seed=1, progress=False).tokens
    guided_zero = generate(
        model, prefix, 8, seed=1, uncond_prefix=uncond, guidance=0.0, progress=False
    )
    assert torch.equal(uncond_only[:, 2:], guided_zero.tokens[:, 2:])


def test_allowed_tokens_constrain_each_position(model):
    prefix = torch.tensor([[1], [2]])
    only_high = torch.zeros(11, dtype=torch.bool)
    only_high[6:] = True
    out = generate(model, prefix, 15, allowed=only_high, temperature=2.0, progress=False).tokens
    assert (out[:, 1:] >= 6).all()

    def parity(position: int) -> torch.Tensor:
        return torch.arange(11) % 2 == position % 2

    out = generate(model, prefix, 10, allowed=parity, progress=False).tokens
    positions = torch.arange(out.shape[1])
    assert (out[:, 1:] % 2 == positions[1:] % 2).all()


def test_stop_token_ends_generation_cleanly(model):
    prefix = torch.tensor([[1], [2]])
    stop = 3
    everything_stops = torch.zeros(11, dtype=torch.bool)
    everything_stops[stop] = True
    out = generate(model, prefix, 12, allowed=everything_stops, stop_token=stop, progress=False)
    assert out.tokens.shape == (2, 13)
    assert (out.tokens[:, 1:] == stop).all()


def test_likelihood_matches_logprobs_of_sampled_tokens(model):
    prefix = torch.tensor([[1, 2], [3, 4]])
    out = generate(model, prefix, 10, seed=0, progress=False, return_logprobs=True)
    nll = sequence_nll(model, out.tokens, start=2)
    assert torch.allclose(nll, -out.logprobs.sum(-1), atol=1e-4)
    bpt = bits_per_token(model, out.tokens, start=2)
    assert bpt == pytest.approx(float(nll.mean()) / (10 * math.log(2)), rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"min_p": 2.0}, "min_p"),
    ],
)
def test_bad_sampling_arguments_are_named(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, torch.tensor([[1]]), 3, progress=False, **kwargs)


def test_bad_prefixes_are_named(model):
    with pytest.raises(ValueError, match="block_size"):
        generate(model, torch.ones(1, 30, dtype=torch.long), 20, progress=False)
    with pytest.raises(ValueError, match=r"prefix ids must lie in \[0, 11\)"):
        generate(model, torch.tensor([[11]]), 3, progress=False)
    with pytest.raises(ValueError, match="int64"):
        generate(model, torch.tensor([[1.0]]), 3, progress=False)
    with pytest.raises(ValueError, match="uncond_prefix"):
        generate(
            model, torch.tensor([[1, 2]]), 3, uncond_prefix=torch.tensor([[1]]), progress=False
        )
