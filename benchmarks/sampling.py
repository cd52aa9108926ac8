"""Tokens per second with and without the KV cache, measured in one run.

    python benchmarks/sampling.py                      # 256, 512, 1024 tokens; batch 1 and 16
    python benchmarks/sampling.py --lengths 256 --batches 1 --layers 2
    python benchmarks/sampling.py --threads 1             # one CPU thread (a shared machine)
    python benchmarks/sampling.py --windows 16            # finer cost-by-position profile

Without a cache every new token re-runs the model over the whole prefix (cost per token grows
with the sequence); with the cache only the new token is run (cost per token stays flat). After
the table, the cached sampler's cost per step is printed by position (windows of the longest
sequence), so its flatness can be read off. The model is an untrained GPT of the size of the
course's image prior: speed does not depend on weights.
"""

from __future__ import annotations

import argparse
import time

import torch

from minivideo.sampling import generate
from minivideo.transformer import GPT, GPTConfig
from minivideo.utils import pick_device


def tokens_per_second(model: GPT, batch: int, length: int, use_cache: bool, device) -> float:
    """Generate `length` tokens after a one-token prefix and return the rate in tokens/s."""
    prefix = torch.zeros(batch, 1, dtype=torch.long, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    generate(model, prefix, length, use_cache=use_cache, seed=0, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * length / (time.perf_counter() - start)


class StepTimer(torch.nn.Module):
    """Wraps a prior and records the time at which each forward call (one sampling step) ends."""

    def __init__(self, inner: GPT, device: torch.device) -> None:
        super().__init__()
        self.inner, self.config, self.device = inner, inner.config, device
        self.stamps: list[float] = []
        self.eval()

    def new_cache(self):
        """The wrapped prior's KV cache."""
        return self.inner.new_cache()

    def forward(self, idx: torch.Tensor, **kwargs):
        """Run the wrapped prior, then stamp the time (after the device has finished)."""
        out = self.inner(idx, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        return out


def cost_by_position(model: GPT, batch: int, length: int, windows: int, device) -> list[tuple]:
    """Cached sampling of `length` tokens: (first, last, median ms per step) for each window."""
    timer = StepTimer(model, device)
    prefix = torch.zeros(batch, 1, dtype=torch.long, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    generate(timer, prefix, length, use_cache=True, seed=0, progress=False)
    # step i covers drawing token i - 1 and the forward pass that scores position i
    steps = torch.tensor([start, *timer.stamps], dtype=torch.float64).diff() * 1e3
    edges = torch.linspace(0, length, windows + 1).round().long().tolist()
    spans = [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]
    return [(lo + 1, hi, float(steps[lo:hi].median())) for lo, hi in spans]


def main() -> None:
    """Print a table of cached vs uncached sampling speed and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=513)  # 512 codes + BOS
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument(
        "--windows", type=int, default=8, help="position windows in the cost-by-position profile"
    )
    args = parser.parse_args()
    if args.windows < 1:
        parser.error(f"--windows must be >= 1, got {args.windows}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=args.vocab,
        block_size=max(args.lengths) + 1,
        n_layer=args.layers,
        n_head=args.heads,
        n_embd=args.width,
    )
    model = GPT(config).to(device).eval()
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{device} ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; model: {args.layers} layers, width {args.width}, vocab {args.vocab}")
    print(f"{'batch':>5} {'tokens':>6} {'cached tok/s':>13} {'uncached tok/s':>15} {'speed-up':>9}")
    generate(
        model, torch.zeros(1, 1, dtype=torch.long, device=device), 8, progress=False
    )  # warm-up
    for batch in args.batches:
        for length in args.lengths:
            cached = tokens_per_second(model, batch, length, True, device)
            uncached = tokens_per_second(model, batch, length, False, device)
            ratio = cached / uncached
            print(f"{batch:>5} {length:>6} {cached:>13.0f} {uncached:>15.0f} {ratio:>8.1f}x")

    length = max(args.lengths)
    profiles = [cost_by_position(model, b, length, args.windows, device) for b in args.batches]
    print(f"\ncached sampler, {length} tokens: median ms per step (one new token per sequence)")
    print(f"{'positions':>11}" + "".join(f"{f'batch {b}':>10}" for b in args.batches))
    for i, (lo, hi, _) in enumerate(profiles[0]):
        print(f"{f'{lo}-{hi}':>11}" + "".join(f"{p[i][2]:>10.2f}" for p in profiles))
    print(f"{'last/first':>11}" + "".join(f"{p[-1][2] / p[0][2]:>9.2f}x" for p in profiles))

if __name__ == "__main__":
    main()
