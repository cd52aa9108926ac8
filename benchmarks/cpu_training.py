"""Which CPU settings train the course's models fastest: bf16 autocast, torch.compile, threads.

One training step (forward, backward, AdamW) of the compact VideoGPT prior (`small`: 6 layers of
width 256, 256 codes + 2 label tokens per clip) and of the compact clip tokenizer (`small`), timed
in one run under each setting, so the ratios compare like with like on this machine:

    python benchmarks/cpu_training.py                 # all settings, both models
    python benchmarks/cpu_training.py --no-compile    # skip torch.compile (slow first step)

bf16 autocast needs a CPU with native bf16 (AVX512-BF16 or AMX) to pay off; elsewhere it can
be slower than float32. The quantizer always computes its distances in float32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minivideo.models.videogpt import VideoGPT, VideoGPTConfig
from minivideo.models.videogpt_compact import SIZES
from minivideo.vqvae import ClipTokenizer, ClipTokenizerConfig


def prior_step(batch: int):
    """(model, loss function) of one compact-prior step on random codes."""
    torch.manual_seed(0)
    model = VideoGPT(VideoGPTConfig.preset("small", "class", num_codes=256, grid=(4, 8, 8),
                                           tokenizer="vqvae-compact", null_class=True,
                                           class_dropout=0.1, **SIZES["small"]))
    codes = torch.randint(0, 256, (batch, 4, 8, 8))
    digits = torch.randint(0, 10, (batch, 2))
    return model, lambda m: m(codes, digits=digits)[1]


def tokenizer_step(batch: int):
    """(model, loss function) of one compact-tokenizer step on random sparse frames."""
    torch.manual_seed(0)
    model = ClipTokenizer(ClipTokenizerConfig.compact("small"))
    video = (torch.rand(batch, 16, 64, 64) > 0.8).float()
    return model, lambda m: m(video)[1]["loss"]


def seconds_per_step(build, batch: int, *, bf16: bool, compiled: bool, threads: int,
                     steps: int) -> float:
    """Median seconds of `steps` timed training steps (after two warm-up steps)."""
    torch.set_num_threads(threads)
    model, loss_of = build(batch)
    model.train()
    runner = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 2):
        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(runner)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def sequence_length_cost(threads: int, steps: int) -> None:
    """Milliseconds of one bf16 training step per clip of the same prior at 256, 512 and 1024
    codes per clip (4×8×8, 8×8×8, 4×16×16): what a shorter token stream buys a CPU."""
    print("\nthe same prior (6 layers, width 256), bf16, per clip of a training step:")
    base = None
    for grid, batch in (((4, 8, 8), 16), ((8, 8, 8), 8), ((4, 16, 16), 4)):
        def build(b, grid=grid):
            torch.manual_seed(0)
            model = VideoGPT(VideoGPTConfig.preset(
                "small", "class", num_codes=256, grid=grid, tokenizer="vqvae-compact",
                null_class=True, class_dropout=0.1, **SIZES["small"]))
            codes = torch.randint(0, 256, (b, *grid))
            digits = torch.randint(0, 10, (b, 2))
            return model, lambda m: m(codes, digits=digits)[1]

        seconds = seconds_per_step(build, batch, bf16=True, compiled=False, threads=threads,
                                   steps=steps)
        per_clip = 1000 * seconds / batch
        base = base or per_clip
        tokens = grid[0] * grid[1] * grid[2]
        print(f"  {tokens:5d} codes per clip, batch {batch:2d}: {per_clip:6.1f} ms per clip "
              f"({per_clip / base:4.1f}x of 256)")


def main() -> None:
    """Print seconds per step and speed-ups over float32 for each setting."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per setting")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    cores = torch.get_num_threads()
    print(f"torch {torch.__version__}, {cores} threads available")
    settings = [("float32", False, False, cores), ("bf16 autocast", True, False, cores),
                ("float32, 1 thread", False, False, 1), ("bf16, 1 thread", True, False, 1)]
    if not args.no_compile:
        settings += [("torch.compile float32", False, True, cores),
                     ("torch.compile bf16", True, True, cores)]
    for name, build, batch in (("compact prior (small)", prior_step, 16),
                               ("compact tokenizer (small)", tokenizer_step, 8)):
        print(f"\n{name}, batch {batch}: seconds per training step")
        base = None
        for label, bf16, compiled, threads in settings:
            try:
                seconds = seconds_per_step(build, batch, bf16=bf16, compiled=compiled,
                                           threads=threads, steps=args.steps)
            except Exception as error:  # noqa: BLE001 (a compiler missing is a result)
                print(f"  {label:24s} failed: {type(error).__name__}: {str(error)[:80]}")
                continue
            base = base or seconds
            print(f"  {label:24s} {seconds:7.3f} s   {base / seconds:5.2f}x of float32")
        torch.set_num_threads(cores)
    sequence_length_cost(cores, args.steps)


if __name__ == "__main__":
    main()
