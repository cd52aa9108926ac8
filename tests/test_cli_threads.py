"""Every command of `python -m minivideo` chooses torch's CPU threads deliberately (issue 17).

With torch's default (one thread per core), sampling beside any other busy process crawled:
`demo` took 30-215 s instead of 6 s on a 2-core machine. The commands take `--threads N`, one by
default (benchmarks/threads.py measures why), and put the caller's setting back afterwards.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from minivideo.__main__ import build_parser, main
from minivideo.cli.common import DEFAULT_THREADS, torch_threads

# the options each command needs to parse (train keeps its own --threads, default: torch's)
COMMANDS = {
    "data": ["--num", "1", "--out", "clips.npz"],
    "sample": ["videogpt", "--out", "out.npz"],
    "eval": ["samples", "samples.npz"],  # `eval samples.npz` too, through main()
    "edit": ["clips.npz", "--region", "0,3", "--out", "out.npz"],
    "demo": [],
}


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not the commands' default, so that a change shows
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_threads_defaulting_to_one(command):
    parser = build_parser()
    assert parser.parse_args([command, *COMMANDS[command]]).threads == DEFAULT_THREADS == 1
    assert parser.parse_args([command, *COMMANDS[command], "--threads", "3"]).threads == 3


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("option", [[], ["--threads", "3"]])
def test_the_command_runs_with_its_threads_and_restores_them(monkeypatch, command, option):
    seen = []
    module = importlib.import_module(f"minivideo.cli.{command}")
    monkeypatch.setattr(module, "run", lambda args: seen.append(torch.get_num_threads()) or 0)
    assert main([command, *COMMANDS[command], *option]) == 0
    assert seen == [int(option[1]) if option else DEFAULT_THREADS]
    assert torch.get_num_threads() == 2  # the caller's setting is back


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_thread_count_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["data", *COMMANDS["data"], "--threads", value])
    assert exit_.value.code == 2
    assert "--threads: must be a positive integer" in capsys.readouterr().err


def test_torch_threads_restores_even_after_an_error():
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("the command failed")
    assert torch.get_num_threads() == 2
    with torch_threads(None):  # train's default: leave torch alone
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="--threads must be a positive int, got 0"), torch_threads(0):
        pass
