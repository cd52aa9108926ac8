"""CogView's self-reranking: the caption score is the plain path's, and best of K keeps its best."""

import pytest
import torch
import torch.nn.functional as F

from minivideo.data.captions import CaptionTokenizer
from minivideo.models.cogvideo import CogView, CogViewConfig, sample_images
from minivideo.models.cogvideo.generation import caption_free
from minivideo.models.cogvideo.layout import cogview_sequence
from minivideo.models.cogvideo.selfrank import (
    best_of_images,
    caption_scores,
    image_log_likelihoods,
)

CAPTIONS = ["digit 3 up-left and digit 7 down-right", "digit 0 up-right and digit 5 down-left"]


def _cogview(seed: int = 0) -> CogView:
    torch.manual_seed(seed)
    return CogView(CogViewConfig.preset("tiny", 64, "untrained-tiny")).eval()


def _ids(texts: list[str]) -> torch.Tensor:
    return CaptionTokenizer().encode_batch(texts)


def _plain_log_likelihood(model: CogView, tokens: torch.Tensor) -> torch.Tensor:
    """Code by code: each code's log-probability given every token before it, one forward each."""
    n = model.config.grid ** 2
    total = torch.zeros(len(tokens))
    for position in range(tokens.shape[1] - n, tokens.shape[1]):
        logits, _ = model(tokens[:, :position])
        logp = F.log_softmax(logits[:, -1].float(), dim=-1)
        total += logp.gather(-1, tokens[:, position, None])[:, 0]
    return total


def test_log_likelihoods_are_the_code_by_code_sums_with_and_without_caption():
    model = _cogview()
    ids = _ids(CAPTIONS)
    codes = sample_images(model, ids, seed=1)
    with_caption, without = image_log_likelihoods(model, ids, codes)
    sequence = cogview_sequence(ids, codes, model.config.num_codes)
    assert torch.allclose(with_caption, _plain_log_likelihood(model, sequence), atol=1e-4)
    assert torch.allclose(without, _plain_log_likelihood(model, caption_free(sequence,
                                                                             model.config)),
                          atol=1e-4)
    assert not torch.allclose(with_caption, without)  # the caption matters even untrained
    scores = caption_scores(model, ids, codes)
    assert torch.allclose(scores, with_caption - without)


def test_best_of_k_keeps_the_best_scored_of_the_k_drawn_frames():
    model = _cogview()
    ids = _ids(CAPTIONS)
    k = 4
    many = ids.repeat_interleave(k, dim=0)
    candidates = sample_images(model, many, guidance=2.0, seed=5).view(2, k, 8, 8)
    scores = caption_scores(model, many, candidates.view(-1, 8, 8)).view(2, k)
    best = best_of_images(model, ids, k, guidance=2.0, seed=5)
    for i in range(2):
        assert torch.equal(best[i], candidates[i, scores[i].argmax()])
        # the K candidates differ, so keeping the best is a choice (not all the same frame)
        assert len({tuple(c.flatten().tolist()) for c in candidates[i]}) > 1
    # ranked by log p(image | caption) alone, the pick is that score's best
    with_caption, _ = image_log_likelihoods(model, many, candidates.view(-1, 8, 8))
    typical = best_of_images(model, ids, k, guidance=2.0, seed=5, score="likelihood")
    for i in range(2):
        assert torch.equal(typical[i], candidates[i, with_caption.view(2, k)[i].argmax()])
    # best of 1 is plain sampling, draw for draw
    assert torch.equal(best_of_images(model, ids, 1, seed=5), sample_images(model, ids, seed=5))


def test_self_reranking_rejects_bad_input():
    model = _cogview()
    ids = _ids(CAPTIONS)
    with pytest.raises(ValueError, match="best_of must be a positive int"):
        best_of_images(model, ids, 0)
    with pytest.raises(ValueError, match="score must be one of"):
        best_of_images(model, ids, 2, score="clip")
    with pytest.raises(ValueError, match="codes must be"):
        image_log_likelihoods(model, ids, torch.zeros(3, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="model must be a CogView"):
        image_log_likelihoods(torch.nn.Linear(2, 2), ids, torch.zeros(2, 8, 8, dtype=torch.long))
