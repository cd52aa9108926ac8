"""Splitting a trained codebook (LBG) and growing a prior's vocabulary to follow it."""

import pytest
import torch

from minivideo.codebook import parent_codes, split_codebook, split_quantizer
from minivideo.models.videogpt import VideoGPT, VideoGPTConfig
from minivideo.models.videogpt_compact import grow_vocabulary
from minivideo.vqvae import ClipTokenizer, ClipTokenizerConfig, VectorQuantizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _clusters(n: int, centres: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(centres), (n,), generator=g)
    return centres[picks] + 0.05 * torch.randn(n, centres.shape[1], generator=g)


def _error(q: VectorQuantizer, z: torch.Tensor) -> float:
    return float((q.embedding[q.nearest(z)] - z).pow(2).sum(1).mean())


def test_split_children_learn_the_finer_clusters_their_parent_averaged():
    # four clusters in pairs: two codes each sit between a pair; split to four, EMA training
    # moves every child onto a cluster of its own and the error falls to the noise floor
    torch.manual_seed(0)
    centres = torch.tensor([[1.0, 0], [1.0, 0.6], [-1.0, 0], [-1.0, 0.6]])
    q = VectorQuantizer(2, 2, restart_dead=False).train()
    q(_clusters(256, centres, 0))  # data-dependent init
    q.embedding.copy_(torch.tensor([[1.0, 0.3], [-1.0, 0.3]]))
    q.embed_sum.copy_(q.embedding.clone())
    coarse = _error(q, _clusters(512, centres, 1))
    bigger, parents = split_quantizer(q, seed=0, noise=0.2)
    assert bigger.num_codes == 4 and parents.tolist() == [0, 1, 0, 1]
    for step in range(60):
        bigger(_clusters(256, centres, 10 + step))
    fine = _error(bigger, _clusters(512, centres, 1))
    assert coarse > 0.08 and fine < 0.02  # 0.09 (half the pair gap, squared) vs 2·0.05²
    # each child stays on its parent's side
    assert (torch.sign(bigger.embedding[:, 0]) == torch.tensor([1.0, -1, 1, -1])).all()


def test_split_keeps_the_empty_code_and_every_cells_parent():
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny", time_down=2)).train()
    video = torch.rand(2, 8, 64, 64) * (torch.rand(2, 8, 64, 64) > 0.7)
    video[:, :, :, :32] = 0  # empty cells
    tokenizer(video)  # initialise the codebook
    tokenizer.eval()
    bigger, parents = split_codebook(tokenizer, seed=0, noise=0.01)
    k = tokenizer.num_codes
    assert bigger.num_codes == 2 * k and len(parents) == 2 * k
    assert torch.equal(parents[:k], torch.arange(k)) and bool((parents[k:] > 0).all())
    assert torch.equal(bigger.quantizer.embedding[0], torch.zeros(tokenizer.config.code_dim))
    old, new = tokenizer.encode(video), bigger.encode(video)
    assert (new[old == 0] == 0).all()
    assert float((parent_codes(new, parents) == old).float().mean()) > 0.97
    assert float(bigger.quantizer.cluster_size[1:].sum()) == pytest.approx(
        float(tokenizer.quantizer.cluster_size[1:].sum()) * 1.0, rel=0.02, abs=1.0)
    # decoded through the children, the clip is (almost) what the parents gave
    assert float((bigger.decode(new) - tokenizer.decode(old)).abs().max()) < 0.1


def test_split_refuses_bad_input():
    with pytest.raises(ValueError, match="noise"):
        split_quantizer(VectorQuantizer(4, 2), noise=2.0)
    with pytest.raises(ValueError, match="initialized"):
        split_quantizer(VectorQuantizer(4, 2))
    with pytest.raises(TypeError, match="Tokenizer"):
        split_codebook(torch.nn.Linear(2, 2))


def _prior(num_codes: int) -> VideoGPT:
    torch.manual_seed(0)
    return VideoGPT(VideoGPTConfig.preset("tiny", "class", num_codes=num_codes, grid=(2, 2, 2),
                                          num_frames=4, null_class=True, n_layer=1, n_head=1,
                                          n_embd=16)).eval()


def test_grown_prior_gives_children_their_parents_logits():
    prior = _prior(8)
    parents = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 3, 1, 2, 3, 4, 5, 6, 7])
    grown = grow_vocabulary(prior, parents)
    assert grown.config.num_codes == 16 and grown.gpt.head.weight is grown.gpt.tok_emb.weight
    codes, digits = torch.randint(0, 8, (3, 2, 2, 2)), torch.tensor([[1, 2], [3, 4], [5, 6]])
    with torch.no_grad():
        old, _ = prior(codes, digits=digits)
        new, _ = grown(codes, digits=digits)
    assert torch.allclose(new[..., :8], old[..., :8], atol=1e-5)
    assert torch.allclose(new[..., 8:16], old[..., parents[8:]], atol=1e-5)
    assert torch.allclose(new[..., 16:], old[..., 8:], atol=1e-5)  # class tokens, BOS, NULL
    with pytest.raises(ValueError, match="parents"):
        grow_vocabulary(prior, torch.tensor([1, 0, 2, 3, 4, 5, 6, 7, 0]))


def test_compact_loss_encodes_with_the_tokenizer_it_is_given():
    # the carried-over prior trains on a refined tokenizer that is not the shipped one
    from minivideo.metrics.reconstruction import reconstruct
    from minivideo.models.videogpt import videogpt_loss
    from minivideo.models.videogpt_compact import compact_loss

    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny", time_down=2)).eval()
    video = (torch.rand(3, 16, 64, 64) > 0.8).float()
    prior = VideoGPT(VideoGPTConfig.preset(
        "tiny", "class", num_codes=tokenizer.num_codes, grid=tuple(tokenizer.latent_shape(16)),
        num_frames=16, null_class=True, n_layer=1, n_head=1, n_embd=16)).eval()
    digits = torch.tensor([[1, 2], [3, 4], [5, 6]])
    loss, _ = compact_loss(prior, {"video": video, "digits": digits}, tokenizer=tokenizer)
    expected, _ = videogpt_loss(prior, {"codes": tokenizer.encode(video), "digits": digits})
    assert torch.allclose(loss, expected)
    # batched reconstruction is the tokenizer's own decode(encode(.)), batch size aside
    assert torch.allclose(reconstruct(tokenizer, video, batch_size=2),
                          tokenizer.decode(tokenizer.encode(video)), atol=1e-5)
