"""Command line: `python -m minivideo COMMAND ...` (data, train, sample, eval, edit, demo,
assignments): the one front door of the course."""

from __future__ import annotations

import argparse
import importlib
import sys

from minivideo.cli.common import UsageError, torch_threads

# Each command lives in minivideo/cli/<name>.py with `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "data": "Generate Moving MNIST clips with labels and captions to an .npz file.",
    "train": "Train a model (tokenizers, priors, judge) with the shared training loop.",
    "sample": "Sample videos from a trained model.",
    "eval": "Measure clips (eval samples), tokenizers, VideoGPT or CogVideo (eval KIND).",
    "edit": "Edit clips: re-sample a region or a digit's path with a VideoGPT prior.",
    "demo": "Generate a text-to-video clip from a shipped checkpoint.",
    "assignments": "Release, grade or check the course's assignments (teachers).",
}
EVAL_KINDS = ("samples", "tokenizer", "videogpt", "cogvideo")  # cli/eval.py's sub-commands


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per available command."""
    parser = argparse.ArgumentParser(prog="python -m minivideo", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"minivideo.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"minivideo.cli.{name}":
                raise
            continue  # a command that a later lesson adds
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; user errors exit with status 2."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"] and len(argv) > 1 and argv[1] not in (*EVAL_KINDS, "-h", "--help"):
        argv.insert(1, "samples")  # `eval SAMPLES.npz ...`: the first kind, and the oldest
    args = parser.parse_args(argv)
    try:
        # every command's --threads (minivideo.cli.common), restored afterwards for callers
        # that run commands in-process (tests, notebooks)
        with torch_threads(getattr(args, "threads", None)):
            return int(args.run(args) or 0)
    except UsageError as err:
        # Bad input (a wrong option value, a missing or unusable file) is a one-line error.
        # Anything else, a ValueError from deep in the code included, is a bug and keeps its
        # traceback.
        parser.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
