"""`python -m minivideo train TARGET --config {tiny,small,full} --out FILE.pt`: train a model.

Every trainable model of the course is a `minivideo.train.Target` (model, data, loss, schedule
per preset, held-out evaluation) defined in its own module and named in `minivideo.registry`. This
command trains it with the shared loop, then writes the manifest NAME.json beside the checkpoint:
the exact command, commit, seed, time, device and the held-out figures.

    python -m minivideo train vqvae-frame --config small --out checkpoints/vqvae-frame.pt
    python -m minivideo train vqvae-frame --config small --out runs/frame.pt --resume
    python -m minivideo train videogpt --cond frames --config small --out runs/videogpt.pt
    torchrun --nproc_per_node=2 -m minivideo train judge --config full --out runs/judge.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import time
from pathlib import Path

import torch
import torch.distributed as dist

from minivideo import registry
from minivideo.checkpoints import (
    add_metrics,
    build_model_from_checkpoint,
    export_weights,
    save_checkpoint,
    write_manifest,
)
from minivideo.cli.common import UsageError, user_input
from minivideo.pretrained import tokenizer_record
from minivideo.train import Target, fit
from minivideo.utils import pick_device

CONFIGS = ("tiny", "small", "full")
CONDITIONS = ("none", "class", "frames")


def resolve_evaluation(name: str, target: Target):
    """The held-out evaluation of a target: the registry's, else the target's own."""
    evaluation = registry.entry(name).evaluation
    return registry.resolve(evaluation) if evaluation else target.evaluate


def resolve_target(name: str, cond: str | None = None) -> Target:
    """The Target the registry names (built for `cond` where it takes one)."""
    try:
        found = registry.resolve(registry.entry(name).target)
    except (ModuleNotFoundError, AttributeError) as err:
        raise UsageError(f"target {name!r} is not available yet ({err})") from err
    if isinstance(found, Target):
        if cond not in (None, "none"):
            raise UsageError(f"--cond is not an option of target {name!r}")
        return found
    return found(cond or "none")


def tokenizer_record_of(name: str, model: torch.nn.Module) -> dict | None:
    """For a prior's manifest: the tokenizer whose codes it models, by name and sha256 (the
    model's own config names it where it can; else the registry)."""
    config = getattr(model, "config", None)
    tokenizer = (getattr(config, "tokenizer", None)
                 or getattr(getattr(config, "base", None), "tokenizer", None)
                 or registry.entry(name).tokenizer)
    return tokenizer_record(tokenizer) if isinstance(tokenizer, str) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the train command."""
    parser.add_argument("target", choices=list(registry.MODELS), help="what to train")
    parser.add_argument("--config", choices=CONFIGS, default="small",
                        help="model size and schedule: tiny (tests), small (CPU), full (GPU)")
    parser.add_argument("--out", required=True, help="checkpoint file to write, FILE.pt")
    parser.add_argument("--cond", choices=CONDITIONS, default=None,
                        help="conditioning, for targets that take one (videogpt)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --out if it exists, exactly where it stopped (keep the "
                             "same --steps: they set the learning-rate schedule)")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--minutes", type=float, default=None,
                        help="a time budget for this sitting: --steps becomes the most steps, and "
                             "the schedule's length is set from the speed of steps 10-40 (the "
                             "steps chosen are in the manifest; resume with those as --steps "
                             "and without --minutes)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate")
    parser.add_argument("--seed", type=int, default=0, help="data and init seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast on the CPU (1.7-2x faster on CPUs with AVX512-BF16 "
                             "or AMX; benchmarks/cpu_training.py measures it)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader worker processes that make batches (default 0)")
    parser.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps")
    parser.add_argument("--keep-every", type=int, default=0,
                        help="also keep the weights every N steps as OUT-stepNNNNNN.pt, with "
                             "the training seconds so far (for learning curves; default 0)")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="every N steps, the loss on a fixed held-out batch (the target's "
                             "eval_batch; else a fixed training batch), shown in the progress "
                             "bar and stored in the checkpoint's evals (default 0: never)")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the held-out evaluation written to the manifest")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--export", default=None,
                        help="also write a weights-only copy FILE.pt (no optimiser state; for "
                             "shipping) with its own manifest")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="train nothing: measure the existing --out (trained with --no-eval, "
                             "e.g. on a GPU) and add the held-out figures to its manifest")
    parser.add_argument("--export-half", action="store_true",
                        help="--export stores the weights as float16 (half the size; loading "
                             "turns them back into float32)")


# Options that do not change what the run writes, left out of the manifest's command: a resumed
# run continues the very same loss curve, so the command that made the file is the one without
# --resume (running it again from scratch reproduces the checkpoint).
NOT_RECORDED = ("resume",)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for the manifest: every option that was set."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # under torchrun: record the launcher and its process count too
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        nodes = f" --nnodes={world // per_node}" if world != per_node else ""
        parts = [f"torchrun{nodes} --nproc_per_node={per_node} -m minivideo train", args.target,
                 "--config", args.config]
    else:
        parts = ["python -m minivideo train", args.target, "--config", args.config]
    for action in parser._actions:
        name = action.dest
        if not action.option_strings or name in ("help", "config", "out", *NOT_RECORDED):
            continue
        value = getattr(args, name, action.default)
        if value is None or value == action.default:
            continue
        flag = action.option_strings[0]
        parts += [flag] if action.nargs == 0 else [flag, str(value)]  # nargs 0: store_true
    return " ".join([*(shlex.quote(p) if i > 0 else p for i, p in enumerate(parts)), "--out",
                     shlex.quote(str(args.out))])


def keep_path(out: Path, step: int) -> Path:
    """Where `--keep-every` keeps the weights of a step: OUT-stepNNNNNN.pt beside OUT."""
    return out.with_name(f"{out.stem}-step{step:06d}.pt")


def _keeper(out: Path, model: torch.nn.Module, model_config: dict | None, every: int):
    """An `on_step` hook that keeps the weights every `every` steps (None when every is 0)."""
    if not every:
        return None

    def keep(step: int, record: dict) -> None:
        done = step + 1
        if done % every == 0 and (not dist.is_initialized() or dist.get_rank() == 0):
            save_checkpoint(keep_path(out, done), model=model, model_config=model_config,
                            step=done, seconds=record["seconds"])

    return keep


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"


def _held_out(evaluate, model: torch.nn.Module) -> dict:
    """The target's held-out figures of a model (in eval mode, no gradients), printed."""
    model.eval()
    with torch.no_grad():
        metrics = evaluate(model)
    print("held-out: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                                   if isinstance(v, (int, float))))
    return metrics


def evaluate_only(args: argparse.Namespace, target: Target, out: Path) -> int:
    """`--evaluate-only`: the held-out figures of an existing checkpoint, into its manifest."""
    if not out.is_file():
        raise UsageError(f"--out {args.out} does not exist: --evaluate-only measures a "
                         "checkpoint")
    evaluate = resolve_evaluation(args.target, target)
    if evaluate is None:
        raise UsageError(f"target {args.target!r} has no held-out evaluation")
    device = pick_device(args.device)
    with user_input("--out"):
        model = build_model_from_checkpoint(out)
    metrics = _held_out(evaluate, model.to(device))
    path = add_metrics(out, metrics, command=command_line(args), device=_device_name(device))
    print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Build the model and data, train with `minivideo.train.fit`, write --out and its manifest."""
    out = Path(args.out)
    if out.suffix != ".pt":
        raise UsageError(f"--out must be a file name ending in .pt, got {args.out!r}")
    if args.export is not None and (Path(args.export).suffix != ".pt"
                                    or Path(args.export).resolve() == out.resolve()):
        raise UsageError(f"--export must be another file name ending in .pt, got "
                         f"{args.export!r}")
    for flag in ("steps", "batch_size", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive int, got {value}")
    for flag in ("workers", "save_every", "eval_every", "keep_every"):
        value = getattr(args, flag)
        if value < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be an int >= 0, got {value}")
    if args.export_half and args.export is None:
        raise UsageError("--export-half needs --export FILE.pt")
    if args.minutes is not None and not args.minutes > 0:
        raise UsageError(f"--minutes must be a positive number, got {args.minutes}")
    target = resolve_target(args.target, args.cond)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.evaluate_only:
        return evaluate_only(args, target, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    config = target.train_config(
        args.config, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        device=args.device, save_every=args.save_every, eval_every=args.eval_every,
        num_workers=args.workers, progress=not args.no_progress, cpu_bf16=args.bf16,
        minutes=args.minutes,
    )  # fmt: skip
    torch.manual_seed(args.seed)  # the model's initial weights
    model = target.build_model(args.config)
    dataset = target.build_dataset(args.config, args.seed)
    model_config = model.config_dict() if hasattr(model, "config_dict") else None
    if model_config is None and dataclasses.is_dataclass(getattr(model, "config", None)):
        model_config = dataclasses.asdict(model.config)
    # Only with --eval-every: otherwise the run does exactly what it did before the option existed.
    eval_fn = (target.periodic_eval(args.config, config.batch_size, dataset)
               if args.eval_every else None)
    began = time.perf_counter()
    keeper = _keeper(out, model, model_config, args.keep_every)
    result = fit(model, target.loss_fn, dataset, config, checkpoint=out, resume=args.resume,
                 eval_fn=eval_fn, model_config=model_config, collate_fn=target.collate_fn,
                 **({"on_step": keeper} if keeper else {}))
    seconds = time.perf_counter() - began
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return 0
    last = result.history[-1] if result.history else {}
    print(f"wrote {out} at step {result.step} after {seconds:.0f} s: "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "lr")))
    if result.evals:
        print(f"periodic eval at step {result.evals[-1]['step']}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in result.evals[-1].items() if k != "step"))
    metrics: dict = {}
    evaluate = resolve_evaluation(args.target, target)
    if evaluate is not None and not args.no_eval:
        metrics = _held_out(evaluate, result.model)
    total = result.history[-1].get("seconds", seconds) if result.history else seconds
    exported = [export_weights(out, args.export, half=args.export_half)] if args.export else []
    tokenizer = tokenizer_record_of(args.target, result.model)
    for path in [out, *exported]:
        manifest = write_manifest(path, command=command_line(args), data_seed=args.seed,
                                  train_seconds=total,
                                  device=_device_name(pick_device(args.device)), metrics=metrics,
                                  notes=target.notes, tokenizer=tokenizer)
        print(f"wrote {manifest}")
    return 0
