"""Tokens per second with and without the KV cache, measured in one run.

    python benchmarks/sampling.py                      # 256, 512, 1024 tokens; batch 1 and 16
    python benchmarks/sampling.py --lengths 256 --batches 1 --layers 2
    python benchmarks/sampling.py --threads 1             # one CPU thread (a shared machine)

Without a cache every new token re-runs the model over the whole prefix (cost per token grows
with the sequence); with the cache only the new token is run (cost per token stays flat). The
model is an untrained GPT of the size of the course's image prior: speed does not depend on weights.
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
