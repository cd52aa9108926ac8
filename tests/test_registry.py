"""The registry: one table of named models that the commands, the loader and the shipped files
agree with; a prior refuses a tokenizer other than the one it was trained on."""

import json
from pathlib import Path

import pytest
import torch

from minivideo import registry
from minivideo.checkpoints import save_checkpoint, sha256_file, write_manifest
from minivideo.cli import sample, train
from minivideo.pretrained import (
    CHECKPOINTS_VARIABLE,
    check_tokenizer_pairing,
    checkpoints_dir,
    pretrained,
    pretrained_prior,
    prior_tokenizer,
    tokenizer_record,
)
from minivideo.train import Target
from minivideo.vqvae import FrameTokenizer, FrameTokenizerConfig

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"


def test_every_string_names_an_object_of_the_right_kind():
    for name, row in registry.MODELS.items():
        target = registry.resolve(row.target)
        assert isinstance(target, Target) or callable(target), name
        if row.evaluation is not None:
            assert callable(registry.resolve(row.evaluation)), name
        if row.tokenizer is not None:  # a tokenizer is itself a shipped model of the table
            assert registry.entry(row.tokenizer).checkpoint == row.tokenizer, name


def test_the_commands_read_the_table():
    assert train.resolve_target("vqvae-frame") is registry.resolve(
        registry.MODELS["vqvae-frame"].target)
    assert set(sample.SAMPLE) == set(registry.SAMPLERS) == {"image-prior", "videogpt", "cogvideo",
                                                            "cogview"}
    assert registry.SAMPLERS["cogvideo"] == ("cogvideo-layer-keyframes", "cogvideo-layer-interp")
    assert registry.SAMPLERS["videogpt"] == ("videogpt", "videogpt-layers")
    with pytest.raises(ValueError, match="unknown model 'nope'; known: vqvae-frame"):
        registry.entry("nope")


def test_the_table_and_the_shipped_files_agree():
    files = {p.stem for p in SHIPPED.glob("*.pt")}
    assert files == {row.checkpoint for row in registry.MODELS.values() if row.checkpoint}


@pytest.mark.parametrize("name", [n for n, r in registry.MODELS.items()
                                  if r.checkpoint and r.tokenizer])
def test_shipped_priors_record_their_tokenizer(name, monkeypatch):
    monkeypatch.delenv(CHECKPOINTS_VARIABLE, raising=False)
    row = registry.MODELS[name]
    recorded = json.loads((SHIPPED / f"{row.checkpoint}.json").read_text())["tokenizer"]
    assert recorded == {"name": row.tokenizer,
                        "sha256": sha256_file(SHIPPED / f"{row.tokenizer}.pt")}
    check_tokenizer_pairing(SHIPPED / f"{row.checkpoint}.pt", row.tokenizer)  # no error
    with pytest.raises(ValueError, match=f"trained on tokenizer '{row.tokenizer}'"):
        check_tokenizer_pairing(SHIPPED / f"{row.checkpoint}.pt", "vqvae-clip")


def _tokenizer(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    path = save_checkpoint(folder / "vqvae-frame.pt",
                           model=FrameTokenizer(FrameTokenizerConfig.preset("tiny")))
    write_manifest(path, command="test", data_seed=0, train_seconds=0, device="cpu", metrics={})
    return path


def test_a_prior_refuses_a_retrained_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv(CHECKPOINTS_VARIABLE, str(tmp_path))
    assert checkpoints_dir() == tmp_path
    _tokenizer(tmp_path, seed=0)
    prior = save_checkpoint(tmp_path / "prior.pt", model=torch.nn.Linear(2, 2))
    write_manifest(prior, command="test", data_seed=0, train_seconds=0, device="cpu",
                   metrics={}, tokenizer=tokenizer_record("vqvae-frame"))
    assert isinstance(prior_tokenizer(prior, "vqvae-frame"), FrameTokenizer)
    _tokenizer(tmp_path, seed=1)  # same name, other weights: the codes mean something else
    with pytest.raises(ValueError, match="prior.pt was trained on tokenizer 'vqvae-frame'"):
        prior_tokenizer(prior, "vqvae-frame")
    assert isinstance(pretrained("vqvae-frame"), FrameTokenizer)  # the tokenizer alone loads


def test_a_shipped_prior_comes_with_its_tokenizer(monkeypatch):
    monkeypatch.delenv(CHECKPOINTS_VARIABLE, raising=False)
    prior, tokenizer = pretrained_prior("image-prior")
    assert isinstance(tokenizer, FrameTokenizer) and not prior.training
    assert sha256_file(SHIPPED / "vqvae-frame.pt") == json.loads(
        (SHIPPED / "image-prior.json").read_text())["tokenizer"]["sha256"]
    with pytest.raises(ValueError, match="'judge' is not a shipped prior; the shipped priors: "
                                         "image-prior, videogpt"):
        pretrained_prior("judge")
