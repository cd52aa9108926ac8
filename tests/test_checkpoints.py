"""Checkpoints round-trip, manifests catch corrupt or missing files, pretrained() loads by name."""

import json

import pytest
import torch
from ddp_worker import Toy, ToyConfig

from minivideo.checkpoints import (
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
    write_manifest,
)
from minivideo.pretrained import available_pretrained, pretrained


def _shipped(folder, name="toy"):
    torch.manual_seed(0)
    model = Toy(ToyConfig(width=8))
    path = save_checkpoint(folder / f"{name}.pt", model=model, step=3)
    write_manifest(
        path,
        command="python make_toy.py",
        data_seed=7,
        train_seconds=1.5,
        device="cpu",
        metrics={"mse": 0.1},
    )
    return model, path


def test_round_trip_rebuilds_the_model_from_its_config(tmp_path):
    model, path = _shipped(tmp_path)
    rebuilt = build_model_from_checkpoint(path)
    assert isinstance(rebuilt, Toy) and rebuilt.config == model.config
    for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = Toy(ToyConfig(width=8))
    state = load_checkpoint(path, other)
    assert state["step"] == 3 and torch.equal(other.net[0].weight, model.net[0].weight)


def test_manifest_records_how_the_checkpoint_was_made(tmp_path):
    _, path = _shipped(tmp_path)
    manifest = json.loads(path.with_suffix(".json").read_text())
    for key in (
        "sha256",
        "command",
        "git_commit",
        "data_seed",
        "train_seconds",
        "device",
        "metrics",
        "model_config",
    ):
        assert key in manifest
    assert manifest["model_config"] == {"width": 8, "dropout": 0.1}
    assert verify_checkpoint(path)["metrics"] == {"mse": 0.1}


def test_a_replaced_checkpoint_fails_its_sha256(tmp_path):
    _, path = _shipped(tmp_path)
    save_checkpoint(path, model=Toy(ToyConfig(width=8)), step=4)
    with pytest.raises(ValueError, match="corrupt or was replaced"):
        verify_checkpoint(path)


def test_a_missing_checkpoint_says_how_to_make_it(tmp_path):
    _, path = _shipped(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="python make_toy.py"):
        verify_checkpoint(path)


def test_a_config_mismatch_is_caught(tmp_path):
    _, path = _shipped(tmp_path)
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["model_config"]["width"] = 32
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="model_config"):
        verify_checkpoint(path)


def test_pretrained_loads_by_name_and_lists_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVIDEO_CHECKPOINTS", str(tmp_path))
    model, _ = _shipped(tmp_path, "toy-a")
    assert available_pretrained() == ["toy-a"]
    loaded = pretrained("toy-a")
    assert not loaded.training
    assert torch.equal(loaded.net[0].weight, model.net[0].weight)
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'.*toy-a"):
        pretrained("nope")
