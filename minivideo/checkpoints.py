"""Checkpoints in one file, and manifests that say how each shipped checkpoint was made.

A checkpoint is one `torch.save` dict: the model's weights and the recipe to rebuild it
(`model_class` as "module:QualName" plus `model_config`), the optimiser and scheduler state, the
step, the training config, the RNG states and the loss history. The convention that makes
`build_model_from_checkpoint` work: every model class in the course has a `config` attribute (a
dataclass) and a classmethod `from_config(dict)`.

A manifest (NAME.json beside NAME.pt) records the sha256 of the file, the command that made it,
the git commit, the data seed, the training time and device, and the figures it reaches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT_VERSION = 1


def model_config_of(model: nn.Module) -> dict | None:
    """The model's config as a plain dict (None if it has no dataclass `config`)."""
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return None


def class_path(obj: object) -> str:
    """'module:QualName' of an object's class, the form `build_model_from_checkpoint` imports."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model  # DistributedDataParallel


def save_checkpoint(path: str | Path, *, model: nn.Module, **state: Any) -> Path:
    """Write model weights + rebuild recipe + any extra state to one file, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _unwrap(model)
    payload = {
        "format_version": FORMAT_VERSION,
        "model_class": class_path(model),
        "model_config": state.pop("model_config", None) or model_config_of(model),
        "model": model.state_dict(),
        **state,
    }
    return _save_atomically(payload, path)


def _save_atomically(payload: dict, path: Path) -> Path:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves half
    a file."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
) -> dict:
    """Read a checkpoint; load its weights into `model` and state into `optimizer` if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    payload = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{path} is not a minivideo checkpoint (no 'model' entry)")
    if model is not None:
        _unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return payload


def resolve_class(name: str) -> type:
    """The class a checkpoint names as "module:QualName" (`class_path`).

    A class moved to another module keeps loading from its old name as long as the old module
    still imports it (e.g. `minivideo.models.cogvideo:CogView`, now defined in `.model`).
    """
    module_name, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def build_model_from_checkpoint(path: str | Path, map_location="cpu") -> nn.Module:
    """Rebuild the model class named in the checkpoint from its config and load the weights."""
    payload = load_checkpoint(path, map_location=map_location)
    qualname = payload["model_class"].partition(":")[2]
    try:
        cls = resolve_class(payload["model_class"])
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{path}: cannot import model class {payload['model_class']!r}") from err
    if payload.get("model_config") is None or not hasattr(cls, "from_config"):
        raise ValueError(f"{path}: {qualname} needs a model_config and a from_config classmethod")
    model = cls.from_config(payload["model_config"])
    model.load_state_dict(payload["model"])
    return model


# What a resumable checkpoint holds that a shipped (sampling-only) copy does not need.
RESUME_ONLY = ("optimizer", "scaler", "rng")
HISTORY_STRIDE = 10


def export_weights(source: str | Path, target: str | Path, half: bool = False) -> Path:
    """Copy a checkpoint without its optimiser and RNG states: what sampling needs, a third of
    the size for Adam. The weights, config, step, evaluations and training config stay; the
    per-step history is thinned to every HISTORY_STRIDE-th step (a long run's would weigh MBs).

    half=True stores float32 weights as float16, half the bytes again: loading copies them back
    into the model's float32 parameters (a relative rounding of 2^-11, far below what sampling
    notices), so a prior twice as large still ships under 20 MB.
    """
    payload = load_checkpoint(source)
    kept = {k: v for k, v in payload.items() if k not in RESUME_ONLY}
    if half:
        kept["model"] = {k: v.half() if v.dtype == torch.float32 else v
                         for k, v in kept["model"].items()}
        kept["weights_dtype"] = "float16"
    if "history" in kept:
        kept["history"] = kept["history"][::HISTORY_STRIDE]
        kept["history_stride"] = HISTORY_STRIDE
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return _save_atomically(kept, target)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest_path(checkpoint_path: str | Path) -> Path:
    """NAME.json beside NAME.pt."""
    return Path(checkpoint_path).with_suffix(".json")


def write_manifest(
    checkpoint_path: str | Path,
    *,
    command: str,
    data_seed: int,
    train_seconds: float,
    device: str,
    metrics: dict,
    notes: str = "",
    tokenizer: dict | None = None,
) -> Path:
    """Write NAME.json beside the checkpoint: its hash, how it was made, and what it reaches.

    A prior also records `tokenizer` {name, sha256}: the codes it models are only meaningful to
    that exact tokenizer, and loading refuses another (`pretrained.check_tokenizer_pairing`).
    """
    checkpoint_path = Path(checkpoint_path)
    payload = load_checkpoint(checkpoint_path)
    manifest = {
        "file": checkpoint_path.name,
        "sha256": sha256_file(checkpoint_path),
        "size_bytes": checkpoint_path.stat().st_size,
        "model_class": payload["model_class"],
        "model_config": payload.get("model_config"),
        "train_config": payload.get("train_config"),
        "step": payload.get("step"),
        "command": command,
        "git_commit": _git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data_seed": data_seed,
        "train_seconds": round(float(train_seconds), 1),
        "device": device,
        "metrics": metrics,
        "notes": notes,
    }
    if tokenizer is not None:
        manifest["tokenizer"] = tokenizer
    return _write_manifest_file(manifest_path(checkpoint_path), manifest)


def _write_manifest_file(path: Path, manifest: dict) -> Path:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
    return path


def add_metrics(checkpoint_path: str | Path, metrics: dict, *, command: str,
                device: str) -> Path:
    """Put held-out figures measured after training into a checkpoint's manifest.

    For runs trained with `--no-eval` (a GPU lease is too short to spend on sampling): the
    manifest keeps how the weights were made, and gains `metrics` with the command and device
    that measured them.
    """
    path = manifest_path(checkpoint_path)
    manifest = json.loads(path.read_text())
    if manifest["sha256"] != sha256_file(checkpoint_path):
        raise ValueError(f"{checkpoint_path} does not match its manifest; not adding figures")
    manifest.update(metrics=metrics, metrics_command=command, metrics_device=device)
    return _write_manifest_file(path, manifest)


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint and its manifest under another name (e.g. into checkpoints/)."""
    source, target = Path(source), Path(target)
    manifest = verify_checkpoint(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    manifest["file"] = target.name
    _write_manifest_file(manifest_path(target), manifest)
    return target


def verify_checkpoint(path: str | Path) -> dict:
    """Check a checkpoint against its manifest (present, sha256, config); return the manifest."""
    path = Path(path)
    manifest_file = manifest_path(path)
    if not manifest_file.is_file():
        raise FileNotFoundError(f"no manifest {manifest_file.name} beside {path}")
    manifest = json.loads(manifest_file.read_text())
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} is missing; its manifest says it was made with: "
            f"{manifest['command']}"
        )
    actual = sha256_file(path)
    if actual != manifest["sha256"]:
        raise ValueError(
            f"checkpoint {path} is corrupt or was replaced: sha256 {actual} does not match the "
            f"manifest's {manifest['sha256']}; re-download it or re-run: {manifest['command']}"
        )
    payload = load_checkpoint(path)
    # compare in JSON form: the manifest stores tuples as lists
    stored = json.loads(json.dumps(payload.get("model_config"), default=str))
    if stored != manifest.get("model_config"):
        raise ValueError(
            f"checkpoint {path} holds model_config {payload.get('model_config')} but its manifest "
            f"says {manifest.get('model_config')}"
        )
    return manifest
