"""What the commands of `python -m minivideo` share: how many CPU threads torch may use.

The course's models are small: a sampling step is many tiny matrix products, so its cost is
per-op overhead, not arithmetic. Split over several threads, each op waits for every thread, and
a thread that shares its core with another busy process (a training run, a browser) stalls all
the others: on a 2-core machine beside one busy process, `demo` took 30-215 s with torch's
default threads and 6 s with one (issue 17). `benchmarks/threads.py` measures it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

# Measured by benchmarks/threads.py (benchmarks/results/threads-cpu-2026-12-04.txt): on a 2-core
# machine busy with a training run, the demo's clip took 2.3 s on one thread and 12 s to over 30 s
# on two (torch's default there); beside a second busy process, 8.5 s against over 30 s.
DEFAULT_THREADS = 1


def int_at_least(minimum: int):
    """An argparse type for integers >= minimum ("positive" for 1, "non-negative" for 0)."""
    what = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # e.g. --threads


def add_threads_option(parser: argparse.ArgumentParser, default: int = DEFAULT_THREADS) -> None:
    """Add --threads N: torch's CPU threads for this command (default: one, measured best)."""
    parser.add_argument(
        "--threads", type=positive_int, default=default, metavar="N",
        help=f"CPU threads for torch (default {default}: measured fastest for the course's "
             "small models when anything else uses the CPU; benchmarks/threads.py)")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch using `threads` CPU threads (None: leave them), then restore."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a positive int, got {threads!r}")
    import torch  # here, so that `python -m minivideo --help` stays quick

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
