"""Sampling: processors keep the right tokens, generation is seeded and cache-exact, likelihoods."""

import math
from types import SimpleNamespace

import pytest
import torch

from minivideo.sampling import (
    bits_per_token,
    classifier_free_guidance,
    compose,
    generate,
    greedy_filter,
    kept_mass,
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


class BigramPrior(torch.nn.Module):
    """A stub prior with known logits: the next token's logits are table[last token]."""

    def __init__(self, table: torch.Tensor, block_size: int = 64) -> None:
        super().__init__()
        self.table = table  # (V, V): row a holds the logits of the token that follows a
        self.config = SimpleNamespace(vocab_size=table.shape[0], block_size=block_size)

    def new_cache(self) -> None:
        """No state: the logits depend only on the token fed at each position."""
        return None

    def forward(self, idx: torch.Tensor, **kwargs) -> tuple[torch.Tensor, None]:
        """Logits (b n V) = table[idx]."""
        return self.table[idx], None


class CountingPrior(torch.nn.Module):
    """Wraps a prior and records the input of every forward call."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.config, self.calls = inner, inner.config, []
        self.eval()  # generate restores this mode, so the wrapped fixture stays in eval

    def new_cache(self):
        """The wrapped prior's cache."""
        return self.inner.new_cache()

    def forward(self, idx: torch.Tensor, **kwargs):
        """Record idx, then run the wrapped prior."""
        self.calls.append(idx.clone())
        return self.inner(idx, **kwargs)


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(1))
    out = top_k_filter(7)(logits)
    kept = torch.isfinite(out)
    assert (kept.sum(-1) == 7).all()
    assert torch.equal(kept, torch.zeros_like(kept).scatter(-1, logits.topk(7).indices, True))


@pytest.mark.parametrize(
    ("k", "expected_mass"), [(1, 0.5), (2, 0.7), (3, 0.85), (4, 0.95), (5, 1.0), (9, 1.0)]
)
def test_top_k_keeps_the_mass_of_the_k_likeliest(k, expected_mass):
    # the same probabilities in two orders: what is kept depends on the values, not the positions
    logits = torch.cat([HAND_LOGITS, HAND_LOGITS[:, [3, 0, 4, 1, 2]]])
    assert (torch.isfinite(top_k_filter(k)(logits)).sum(-1) == min(k, 5)).all()
    mass = kept_mass(logits, top_k_filter(k))
    assert torch.allclose(mass, torch.full((2,), expected_mass), atol=1e-6)
    # generate renormalises over the kept set: a drawn token's log-prob is log(p / kept mass)
    prior = BigramPrior(HAND_LOGITS.expand(5, 5).contiguous())
    out = generate(prior, torch.zeros(64, 1, dtype=torch.long), 4, top_k=k, progress=False,
                   return_logprobs=True)  # fmt: skip
    expected = HAND_LOGITS[0, out.tokens[:, 1:]] - math.log(expected_mass)
    assert torch.allclose(out.logprobs, expected, atol=1e-5)


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


@pytest.mark.parametrize(
    ("kwargs", "processor"),
    [
        ({"top_k": 4}, top_k_filter(4)),
        ({"top_p": 0.6}, top_p_filter(0.6)),
        ({"top_k": 6, "top_p": 0.8}, compose(top_k_filter(6), top_p_filter(0.8))),
        ({"min_p": 0.2}, min_p_filter(0.2)),
        ({"greedy": True}, greedy_filter()),
    ],
    ids=["top_k", "top_p", "top_k+top_p", "min_p", "greedy"],
)
def test_generated_tokens_never_leave_the_kept_set(kwargs, processor):
    """Every token `generate` draws after token a lies in the processor's kept set of table[a]."""
    vocab = 30
    table = 2 * torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(3))
    prefix = torch.arange(vocab).repeat(40)[:, None]  # every token starts 40 sequences
    out = generate(BigramPrior(table), prefix, 10, seed=0, progress=False, **kwargs).tokens
    kept = torch.isfinite(processor(table))  # kept[a, c]: c may follow a
    assert kept[out[:, :-1], out[:, 1:]].all()
    # and it samples within the set rather than picking one token of it: among the 40 first
    # draws after each token, every kept token of renormalised probability >= 0.2 appears
    drawn = torch.zeros_like(kept)
    drawn[out[:, 0], out[:, 1]] = True
    likely = processor(table).softmax(-1) >= 0.2
    assert drawn[likely].all()
    assert likely.sum() > vocab or kwargs.get("greedy")  # several likely tokens after some a


# logits at the last position; the prefix's first token gets the reverse, so a sampler that
# reads the wrong position draws from the wrong distribution
LOGITS5 = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sampling_frequencies_match_the_softmax(temperature):
    """Chi-square of 20k tokens drawn by `generate` against softmax(logits / T), 4 dof."""
    table = torch.stack([LOGITS5] + [LOGITS5.flip(0)] * 4)  # after token 0: LOGITS5
    n = 20_000
    prefix = torch.tensor([[1, 0]]).repeat(n, 1)
    out = generate(BigramPrior(table), prefix, 1, temperature=temperature, seed=0, progress=False)
    observed = torch.bincount(out.tokens[:, -1], minlength=5).float()
    expected = n * (LOGITS5 / temperature).softmax(-1)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
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


def test_guided_generation_matches_the_endpoints(model):
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


@pytest.mark.parametrize("use_cache", [True, False])
def test_guidance_runs_both_passes_as_one_batched_forward_per_step(model, use_cache):
    prefix, uncond = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[0, 2], [0, 4]])
    counted = CountingPrior(model)
    out = generate(counted, prefix, 6, seed=0, uncond_prefix=uncond, guidance=3.0,
                   use_cache=use_cache, progress=False, return_logprobs=True)  # fmt: skip
    assert not model.training
    assert len(counted.calls) == 6  # one forward per new token
    assert torch.equal(counted.calls[0], torch.cat([prefix, uncond]))  # batch 2b: cond, uncond
    drawn = out.tokens[:, 2:]
    for step, idx in enumerate(counted.calls[1:]):
        assert idx.shape == (4, 1 if use_cache else 3 + step)
        # both halves are fed the token drawn for their row
        assert torch.equal(idx[:, -1], torch.cat([drawn[:, step], drawn[:, step]]))
    # the drawn tokens' log-probs are those of the mixed logits uncond + 3 (cond - uncond)
    cond_logits, _ = model(out.tokens[:, :-1])
    uncond_logits, _ = model(torch.cat([uncond, drawn], dim=1)[:, :-1])
    mixed = classifier_free_guidance(cond_logits[:, 1:], uncond_logits[:, 1:], 3.0)
    expected = mixed.log_softmax(-1).gather(-1, drawn[..., None])[..., 0]
    assert torch.allclose(out.logprobs, expected, atol=1e-4)


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
    with pytest.raises(ValueError, match="prefix must be an int64"):
        generate(model, torch.tensor([[1.0]]), 3, progress=False)
    with pytest.raises(ValueError, match="prefix must hold at least one token"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3, progress=False)


PAIR = torch.tensor([[1, 2]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"uncond_prefix": torch.tensor([[1]])}, r"uncond_prefix must have the prefix's shape"),
        ({"uncond_prefix": torch.tensor([[11, 2]])}, r"^uncond_prefix ids must lie in \[0, 11\)"),
        ({"uncond_prefix": torch.tensor([[-1, 2]])}, r"^uncond_prefix ids must lie in \[0, 11\)"),
        ({"uncond_prefix": torch.tensor([[1.0, 2.0]])}, r"^uncond_prefix must be an int64"),
        ({"uncond_prefix": [[1, 2]]}, r"^uncond_prefix must be an int64"),
        ({"guidance": 3.0}, r"guidance=3.0 needs an uncond_prefix"),
        ({"guidance": "3", "uncond_prefix": PAIR}, r"^guidance must be a number"),
        ({"uncond_context": torch.zeros(1, 2, 4)}, r"^uncond_context needs an uncond_prefix"),
        ({"uncond_context": torch.zeros(1, 2, 4), "uncond_prefix": PAIR}, r"^uncond_context needs a context"),
        ({"uncond_context": torch.zeros(1, 3, 4), "uncond_prefix": PAIR, "context": torch.zeros(1, 2, 4)}, r"^uncond_context must have the context's shape"),
        ({"stop_token": 11}, r"^stop_token must be an int in \[0, 11\)"),
        ({"stop_token": -1}, r"^stop_token must be an int"),
        ({"allowed": torch.ones(5, dtype=torch.bool)}, r"^allowed must give a bool tensor"),
        ({"allowed": torch.zeros(11, dtype=torch.bool)}, r"^allowed leaves no token"),
    ],
)
def test_bad_generate_arguments_are_named(model, kwargs, match):
    """Each bad argument fails before any forward pass, with a message that starts with its name."""
    counted = CountingPrior(model)
    with pytest.raises(ValueError, match=match):
        generate(counted, PAIR, 3, progress=False, **kwargs)
    if "allowed" not in kwargs:  # allowed is checked per position, after the first forward
        assert counted.calls == []


@pytest.mark.parametrize("num_tokens", [-1, True, 2.0])
def test_bad_num_tokens_is_named(model, num_tokens):
    with pytest.raises(ValueError, match="^num_tokens must be an int >= 0"):
        generate(model, PAIR, num_tokens, progress=False)


def test_a_model_without_a_config_is_named():
    with pytest.raises(TypeError, match="^model must have .config.vocab_size"):
        generate(torch.nn.Linear(2, 2), PAIR, 3, progress=False)
