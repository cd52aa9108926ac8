"""The one training loop every model in the course uses.

    result = fit(model, loss_fn, dataset, TrainConfig(steps=2000, batch_size=32, lr=3e-4),
                 checkpoint="runs/vqvae.pt")

`loss_fn(model, batch) -> (loss, {name: float})` calls `model(...)` on a batch that is already on
the device. The loop adds what every real run needs: device choice (CUDA, then MPS, then CPU),
mixed precision on CUDA, gradient clipping, warm-up + cosine learning rate, a progress bar with the
live loss, periodic evaluation, and a single-file checkpoint that resumes exactly where it stopped.

Resuming is exact because the batches of step s are a pure function of (seed, s), and the
checkpoint holds the RNG states: an interrupted run continues the very same loss curve.

Several GPUs: the same code runs under `torchrun --nproc_per_node=N ...`. Each rank takes its
slice of every global batch and DistributedDataParallel averages the gradients, so N ranks compute
what one process computes with the same global batch; rank 0 writes the checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm import tqdm

from minivideo.checkpoints import load_checkpoint, save_checkpoint
from minivideo.utils import pick_device

LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainConfig:
    """How to train: length, batch, optimiser, schedule, checkpoints, seed, device."""

    steps: int = 1000
    batch_size: int = 32  # global: each of W ranks gets batch_size // W
    lr: float = 3e-4
    warmup_steps: int = 100  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_every: int = 0  # 0: evaluate only at the end (if an eval_fn is given)
    save_every: int = 0  # 0: save only at the end (if a checkpoint path is given)
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA (bf16 if supported, else fp16 + loss scaling)
    cpu_bf16: bool = False  # bf16 autocast on the CPU (measured 1.7-2× on AVX512-BF16)
    device: str | None = None  # None: CUDA, then MPS, then CPU
    num_workers: int = 0
    progress: bool = True
    # A time budget: `steps` becomes the most steps, and the schedule's real length is set once
    # from the measured speed of this sitting's steps 10-40 (see `fit`), so the learning rate
    # still decays to its floor when the time is up. The checkpoint records the steps chosen.
    minutes: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("warmup_steps", "eval_every", "save_every", "num_workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an int >= 0, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"TrainConfig.minutes must be > 0 or None, got {self.minutes!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip}")
        self.betas = tuple(self.betas)


@dataclass
class TrainResult:
    """The trained model (unwrapped), the last step, and what was logged."""

    model: nn.Module
    step: int
    history: list[dict] = field(default_factory=list)  # one entry per step
    evals: list[dict] = field(default_factory=list)  # one entry per evaluation
    seconds: float = 0.0


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- data order
class StepBatchSampler(Sampler[list[int]]):
    """This rank's indices for steps start..steps-1; step s's batch depends only on (seed, s).

    Small datasets are walked in a fresh permutation per epoch; huge (on-the-fly) ones are sampled
    with replacement from a generator seeded by (seed, step).
    """

    PERMUTE_UP_TO = 1 << 24

    def __init__(self, length: int, config: TrainConfig, start: int, rank: int, world: int):
        self.length, self.config, self.start = length, config, start
        self.rank, self.world = rank, world
        self.local = config.batch_size // world
        self._epoch, self._perm = -1, None

    def global_batch(self, step: int) -> torch.Tensor:
        """Indices of the whole (all ranks) batch of a step."""
        size, seed = self.config.batch_size, self.config.seed
        if self.length > self.PERMUTE_UP_TO:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
            return torch.randint(self.length, (size,), generator=gen)
        per_epoch = self.length // size
        epoch, position = divmod(step, per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.length, generator=gen)
        return self._perm[position * size : (position + 1) * size]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.config.steps):
            batch = self.global_batch(step)
            yield batch[self.rank * self.local : (self.rank + 1) * self.local].tolist()

    def __len__(self) -> int:
        return self.config.steps - self.start


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to the device."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


# --------------------------------------------------------------------------- distributed
def _distributed_setup(device: torch.device) -> tuple[int, int, bool, torch.device]:
    """(rank, world size, whether we created the group, this rank's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return 0, 1, False, device
    created = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), created, device


def _rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (code that uses the global RNG)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    # RNG states are CPU byte tensors, even when the checkpoint was mapped onto a GPU.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def default_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW that decays matrices but not biases and norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


# --------------------------------------------------------------------------- the loop
def fit(
    model: nn.Module,
    loss_fn: LossFn,
    dataset: Dataset,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    model_config: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    collate_fn: Callable | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train `model` for `config.steps` steps (from a checkpoint's step when resuming)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if len(dataset) < config.batch_size:
        raise ValueError(
            f"dataset has {len(dataset)} items, fewer than batch_size={config.batch_size}"
        )
    config = dataclasses.replace(config)  # a time budget may shorten `steps`: not the caller's
    device = pick_device(config.device)
    rank, world, created_group, device = _distributed_setup(device)
    if config.batch_size % world:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the {world} ranks")

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)  # noqa: NPY002
    model = model.to(device)
    optimizer = optimizer or default_optimizer(model, config)
    use_amp = (config.amp and device.type == "cuda") or (config.cpu_bf16 and device.type == "cpu")
    amp_dtype = (torch.bfloat16 if device.type == "cpu" or (use_amp and
                 torch.cuda.is_bf16_supported()) else torch.float16)
    # Loss scaling only for fp16: bf16 has float32's exponent range.
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16
                                  and device.type == "cuda")

    start, history, evals, before = 0, [], [], 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume and checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, model, optimizer, map_location=device)
        start, history, evals = state["step"], state.get("history", []), state.get("evals", [])
        before = float(state.get("seconds", 0.0))  # training time of the earlier sittings
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])

    wrapped = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def save(step: int) -> None:
        if checkpoint is None or rank != 0:
            return
        save_checkpoint(
            checkpoint,
            model=model,
            model_config=model_config,
            optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict() if scaler.is_enabled() else None,
            step=step,
            train_config=dataclasses.asdict(config),
            rng=_rng_state(),
            history=history,
            evals=evals,
            seconds=before + time.perf_counter() - began,
        )

    shown: dict[str, str] = {}  # the latest evaluation's headline figure, kept in the bar

    def evaluate(step: int) -> None:
        if eval_fn is None or rank != 0:
            return
        model.eval()
        with torch.no_grad():
            evals.append({"step": step, **eval_fn(model)})
        model.train()
        figures = {k: v for k, v in evals[-1].items()
                   if k != "step" and isinstance(v, (int, float))}
        if figures and not bar.disable:
            headline = next(iter(figures))
            shown.clear()
            shown[headline] = f"{figures[headline]:.4g}"
            bar.set_postfix({**postfix, **shown})
            bar.write(f"eval at step {step}: "
                      + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))

    sampler = StepBatchSampler(len(dataset), config, start, rank, world)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn or default_collate,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        # its own generator: drawing worker seeds from the global RNG would shift it on resume
        generator=torch.Generator().manual_seed(config.seed),
    )
    bar = tqdm(
        total=config.steps,
        initial=start,
        desc="training",
        disable=not config.progress or rank != 0,
        dynamic_ncols=True,
    )
    began = time.perf_counter()
    model.train()
    step = start
    postfix: dict[str, str] = {}
    timed: dict[int, float] = {}  # with a time budget: when this sitting's steps 10 and 40 ended
    try:
        for step, batch in enumerate(loader, start=start):
            if step >= config.steps:  # a time budget shortened the run
                break
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss, logs = loss_fn(wrapped, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            record = {"step": step, "loss": float(loss.detach()), "lr": lr, **logs,
                      "seconds": before + time.perf_counter() - began}  # since step 0
            history.append(record)
            if on_step is not None:
                on_step(step, record)
            bar.update(1)
            postfix = {"loss": f"{record['loss']:.4f}", "lr": f"{lr:.2e}"}
            bar.set_postfix({**postfix, **shown})
            done = step + 1
            if config.minutes is not None and done - start in (10, 40):
                timed[done - start] = time.perf_counter()
                if done - start == 40:
                    _fit_to_budget(config, done, timed, began, bar)
            if config.eval_every and done % config.eval_every == 0 and done < config.steps:
                evaluate(done)
            if config.save_every and done % config.save_every == 0 and done < config.steps:
                save(done)
        final = config.steps
        if eval_fn is not None and (not evals or evals[-1]["step"] != final):
            evaluate(final)
        save(final)
    finally:
        bar.close()
        if created_group:
            dist.destroy_process_group()
    return TrainResult(
        model=model, step=config.steps, history=history, evals=evals,
        seconds=time.perf_counter() - began,
    )  # fmt: skip


def _fit_to_budget(config: TrainConfig, done: int, timed: dict[int, float], began: float,
                   bar: tqdm) -> None:
    """Set `config.steps` so the run ends within `config.minutes` of this sitting's start.

    Steps 10-40 time the loop without its first steps (a GPU's lazy start-up, autotuning).
    """
    per_step = (timed[40] - timed[10]) / 30
    left = config.minutes * 60 - (timed[40] - began)
    # Periodic saves and evaluations take time too: keep 5% in hand.
    config.steps = max(done + 1, min(config.steps, done + int(0.95 * left / per_step)))
    bar.total = config.steps
    bar.refresh()
    bar.write(f"time budget {config.minutes:g} min at {per_step * 1000:.0f} ms a step: "
              f"{config.steps} steps")


# --------------------------------------------------------------------------- periodic evaluation
def batch_loss_eval(
    loss_fn: LossFn, batch: Any, prefix: str = "val_"
) -> Callable[[nn.Module], dict[str, float]]:
    """An `eval_fn` for `fit`: `loss_fn` on one fixed batch, leaving every RNG as it was.

    Cheap enough to run every few hundred steps, and the same batch every time, so the figures
    form a smooth curve. Saving and restoring the RNG states keeps the training run's numerics
    identical with or without periodic evaluation, even for a loss that draws random numbers.
    """

    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(iter(model.parameters()), torch.empty(0)).device
        state = _rng_state()
        try:
            loss, logs = loss_fn(model, to_device(batch, device))
        finally:
            _set_rng_state(state)
        figures = {"loss": float(loss.detach()), **logs}
        return {f"{prefix}{k}": float(v) for k, v in figures.items()
                if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)}

    return evaluate


# --------------------------------------------------------------------------- recipes
@dataclass
class Target:
    """What `python -m minivideo train NAME` needs: model, data, loss, schedules, evaluation.

    A lesson adds a trainable model by defining one `Target` in its own module and naming it in
    `minivideo.cli.train.TARGETS`; the command line, checkpoints and manifests come for free.
    """

    description: str
    build_model: Callable[[str], nn.Module]  # preset name → fresh model
    build_dataset: Callable[[str, int], Dataset]  # (preset, seed) → training data
    loss_fn: LossFn
    schedules: dict[str, dict]  # preset → TrainConfig fields (steps, batch_size, lr, ...)
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None  # held-out figures
    collate_fn: Callable | None = None
    notes: str = ""  # for the manifest: what the figures are measured on
    # (preset, size) → a small fixed batch of held-out items for the periodic loss (`--eval-every`)
    eval_batch: Callable[[str, int], Any] | None = None

    def train_config(self, preset: str, **overrides: Any) -> TrainConfig:
        """The preset's schedule as a TrainConfig, with overrides (None values are ignored)."""
        if preset not in self.schedules:
            raise ValueError(f"config must be one of {sorted(self.schedules)}, got {preset!r}")
        fields = {**self.schedules[preset],
                  **{k: v for k, v in overrides.items() if v is not None}}
        fields["warmup_steps"] = min(fields.get("warmup_steps", 0), fields["steps"])
        return TrainConfig(**fields)

    def periodic_eval(
        self, preset: str, batch_size: int, dataset: Dataset | None = None
    ) -> Callable[[nn.Module], dict[str, float]]:
        """A cheap `eval_fn` for `--eval-every`: the loss on one fixed batch of `batch_size` items.

        The batch is the target's held-out `eval_batch` (figures `val_*`) where it defines one;
        otherwise the first items of the training `dataset` (figures `batch_*`: a fixed batch in
        eval mode, which tracks fitting but not generalisation). The full held-out evaluation of
        the manifest (`evaluate`) can take minutes, so it runs only once, at the end.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        state = _rng_state()  # building the batch must not shift the run's random numbers
        try:
            if self.eval_batch is not None:
                batch, prefix = self.eval_batch(preset, batch_size), "val_"
            elif dataset is not None:
                count = min(batch_size, len(dataset))
                collate = self.collate_fn or default_collate
                batch, prefix = collate([dataset[i] for i in range(count)]), "batch_"
            else:
                raise ValueError("dataset is needed: this target defines no held-out eval_batch")
        finally:
            _set_rng_state(state)
        return batch_loss_eval(self.loss_fn, batch, prefix)
