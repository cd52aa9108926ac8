"""The shared training loop: learns, resumes exactly, runs under DDP; the train command."""

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import Toy, ToyConfig, ToyData, mse
from torch.utils.data import default_collate

from minivideo.__main__ import build_parser
from minivideo.__main__ import main as cli
from minivideo.cli import train as train_command
from minivideo.train import (
    StepBatchSampler,
    Target,
    TrainConfig,
    batch_loss_eval,
    fit,
    learning_rate,
)


def _config(**overrides) -> TrainConfig:
    base = dict(steps=60, batch_size=16, lr=1e-2, warmup_steps=5, progress=False, device="cpu")
    return TrainConfig(**{**base, **overrides})


def test_a_toy_model_learns():
    torch.manual_seed(0)
    result = fit(Toy(ToyConfig(dropout=0.0)), mse, ToyData(), _config(steps=150))
    first = sum(h["loss"] for h in result.history[:10]) / 10
    last = sum(h["loss"] for h in result.history[-10:]) / 10
    assert last < 0.3 * first and last < 0.35, (first, last)  # measured: 1.28 -> 0.30


def test_resume_continues_the_same_loss_curve(tmp_path):
    torch.manual_seed(0)
    straight = fit(Toy(ToyConfig()), mse, ToyData(), _config(steps=40))

    def crash_at_step_25(step, record):
        if step == 25:
            raise KeyboardInterrupt  # the student closes the laptop

    path = tmp_path / "run.pt"
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(
            Toy(ToyConfig()),
            mse,
            ToyData(),
            _config(steps=40, save_every=10),
            checkpoint=path,
            on_step=crash_at_step_25,
        )
    assert torch.load(path, weights_only=False)["step"] == 20
    torch.manual_seed(99)  # resuming must not depend on the caller's RNG or fresh weights
    resumed = fit(
        Toy(ToyConfig()),
        mse,
        ToyData(),
        _config(steps=40, save_every=10),
        checkpoint=path,
        resume=True,
    )
    losses = lambda r: torch.tensor([h["loss"] for h in r.history])  # noqa: E731
    assert len(resumed.history) == 40
    assert torch.allclose(losses(straight), losses(resumed), atol=1e-6, rtol=0)
    for a, b in zip(
        straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6)


def test_checkpoint_holds_what_resuming_needs(tmp_path):
    path = tmp_path / "toy.pt"
    fit(Toy(ToyConfig()), mse, ToyData(), _config(steps=5), checkpoint=path)
    state = torch.load(path, weights_only=False)
    for key in (
        "model",
        "optimizer",
        "step",
        "train_config",
        "model_config",
        "rng",
        "history",
        "model_class",
    ):
        assert key in state, key
    assert state["step"] == 5 and state["model_config"] == {"width": 16, "dropout": 0.1}
    assert state["model_class"].endswith(":Toy")


def test_periodic_eval_and_checkpoints(tmp_path):
    calls = []

    def evaluate(model):
        assert not model.training
        calls.append(1)
        return {"val": 1.0}

    result = fit(
        Toy(ToyConfig()), mse, ToyData(), _config(steps=30, eval_every=10), eval_fn=evaluate
    )
    assert [e["step"] for e in result.evals] == [10, 20, 30]
    assert result.model.training


def test_learning_rate_schedule():
    config = _config(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert learning_rate(0, config) == pytest.approx(0.1)
    assert learning_rate(9, config) == pytest.approx(1.0)
    assert learning_rate(100, config) == pytest.approx(0.1)
    rates = [learning_rate(s, config) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))


def test_batches_depend_only_on_seed_and_step():
    config = _config(steps=100, batch_size=8)
    a = StepBatchSampler(50, config, start=0, rank=0, world=1)
    b = StepBatchSampler(50, config, start=37, rank=0, world=1)
    assert list(a)[37:] == list(b)
    halves = [list(StepBatchSampler(50, config, 0, r, 2)) for r in (0, 1)]
    assert [x + y for x, y in zip(*halves, strict=True)] == list(a)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": -1}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
    ],
)
def test_bad_configs_are_named(overrides, match):
    with pytest.raises(ValueError, match=match):
        _config(**overrides)


def test_dataset_smaller_than_a_batch_is_rejected():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        fit(Toy(ToyConfig()), mse, ToyData(8), _config())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", "--master_addr=127.0.0.1",
        str(Path(__file__).parent / "ddp_worker.py"), str(out),
    ]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    config = TrainConfig(
        steps=20, batch_size=16, lr=1e-2, warmup_steps=2, progress=False, device="cpu"
    )
    torch.manual_seed(0)
    single = fit(Toy(ToyConfig(dropout=0.0)), mse, ToyData(), config).model.state_dict()
    distributed = torch.load(out)
    for name, value in single.items():
        assert torch.allclose(value, distributed[name], atol=1e-5), name


# --------------------------------------------------------------------------- periodic evaluation
def _noisy_mse(model, batch):
    """A loss that draws random numbers, as masked or noised objectives do."""
    noise = 1e-3 * torch.randn(batch["y"].shape)
    loss = (model(batch["x"]) - batch["y"] - noise).square().mean()
    return loss, {"noise": float(noise.abs().mean())}


def test_a_fixed_batch_eval_leaves_the_training_run_unchanged():
    data = ToyData()
    batch = default_collate([data[i] for i in range(8)])
    config = _config(steps=30, eval_every=7)
    torch.manual_seed(0)
    plain = fit(Toy(ToyConfig()), _noisy_mse, data, config)  # dropout: the RNG matters
    torch.manual_seed(0)
    evaluated = fit(Toy(ToyConfig()), _noisy_mse, data, config,
                    eval_fn=batch_loss_eval(_noisy_mse, batch))
    assert [e["step"] for e in evaluated.evals] == [7, 14, 21, 28, 30]
    assert set(evaluated.evals[0]) == {"step", "val_loss", "val_noise"}
    assert evaluated.evals[-1]["val_loss"] < evaluated.evals[0]["val_loss"]
    assert [h["loss"] for h in evaluated.history] == [h["loss"] for h in plain.history]


def test_a_target_without_a_held_out_batch_evaluates_a_fixed_training_batch():
    target = Target(description="toy", build_model=lambda preset: Toy(ToyConfig()),
                    build_dataset=lambda preset, seed: ToyData(), loss_fn=mse,
                    schedules={"tiny": dict(steps=5, batch_size=8)})
    model = Toy(ToyConfig()).eval()
    figures = target.periodic_eval("tiny", 8, ToyData())(model)
    with torch.no_grad():
        expected = (model(ToyData().x[:8]) - ToyData().y[:8]).square().mean()
    assert figures == {"batch_loss": pytest.approx(float(expected))}
    with pytest.raises(ValueError, match="dataset is needed"):
        target.periodic_eval("tiny", 8)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        target.periodic_eval("tiny", 0, ToyData())


def test_evaluations_are_shown_in_the_progress_log(capsys):
    fit(Toy(ToyConfig()), mse, ToyData(), _config(steps=20, eval_every=10, progress=True),
        eval_fn=lambda model: {"val_loss": 0.125, "val_other": 2.0})
    out = capsys.readouterr()
    assert "eval at step 10: val_loss 0.125, val_other 2" in out.out
    assert "eval at step 20: val_loss 0.125" in out.out
    assert "val_loss=0.125" in out.err  # in the bar's postfix, beside the live loss


# --------------------------------------------------------------------------- the train command
@pytest.fixture
def restore_threads():
    """`--threads` sets torch's thread count for the whole process: put it back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_train_command_evaluates_periodically_without_changing_the_run(
    tmp_path, capsys, restore_threads
):
    common = ["train", "vqvae-frame", "--config", "tiny", "--steps", "6", "--no-eval",
              "--threads", "1", "--out"]
    assert cli([*common, str(tmp_path / "plain.pt")]) == 0
    assert cli([*common, str(tmp_path / "eval.pt"), "--eval-every", "3"]) == 0
    out = capsys.readouterr().out
    assert "eval at step 3: val_loss" in out and "periodic eval at step 6: val_loss" in out
    plain = torch.load(tmp_path / "plain.pt", weights_only=False)
    evaluated = torch.load(tmp_path / "eval.pt", weights_only=False)
    assert plain["evals"] == [] and [e["step"] for e in evaluated["evals"]] == [3, 6]
    first, last = evaluated["evals"]
    assert {"val_loss", "val_recon_loss", "val_perplexity"} <= set(first)
    assert 0 < last["val_recon_loss"] < first["val_recon_loss"]  # learning, on held-out clips
    assert [h["loss"] for h in evaluated["history"]] == [h["loss"] for h in plain["history"]]
    manifest = json.loads((tmp_path / "eval.json").read_text())
    assert "--eval-every 3" in manifest["command"]


def _parse(argv: list[str]) -> dict:
    args = vars(build_parser().parse_args(argv))
    return {k: v for k, v in args.items() if k not in ("run", "resume")}


@pytest.mark.parametrize("argv", [
    ["vqvae-clip", "--out", "runs/clip.pt"],
    ["videogpt", "--config", "full", "--cond", "frames", "--out", "runs/my run.pt", "--resume",
     "--steps", "4000", "--batch-size", "16", "--lr", "0.0003", "--seed", "7", "--device", "cpu",
     "--threads", "3", "--workers", "5", "--save-every", "250", "--eval-every", "100",
     "--no-eval", "--no-progress"],
], ids=["defaults", "every-option"])
def test_the_recorded_command_reproduces_the_runs_arguments(argv):
    args = build_parser().parse_args(["train", *argv])
    command = train_command.command_line(args)
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "minivideo", "train"]
    assert "--resume" not in words  # resuming continues the same run: not part of its recipe
    assert _parse(["train", *words[4:]]) == _parse(["train", *argv])
    if len(argv) > 3:
        for flag in ("--workers 5", "--save-every 250", "--threads 3", "--eval-every 100",
                     "--device cpu", "--seed 7", "--no-progress"):
            assert flag in command, flag
    else:
        assert command == "python -m minivideo train vqvae-clip --config small --out runs/clip.pt"


def test_the_recorded_command_names_torchrun_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    args = build_parser().parse_args(["train", "judge", "--config", "full", "--out", "j.pt"])
    assert train_command.command_line(args) == (
        "torchrun --nproc_per_node=2 -m minivideo train judge --config full --out j.pt")


@pytest.mark.parametrize(("flag", "value"), [("--eval-every", "-1"), ("--workers", "-2"),
                                             ("--save-every", "-5"), ("--threads", "0")])
def test_the_train_command_names_a_bad_option(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        cli(["train", "vqvae-frame", "--config", "tiny", "--out", str(tmp_path / "x.pt"),
             flag, value])
    assert exit_info.value.code == 2
    assert f"error: {flag} must be" in capsys.readouterr().err
