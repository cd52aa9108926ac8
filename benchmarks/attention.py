"""Naive attention vs PyTorch SDPA vs the course's Triton FlashAttention, measured in one run.

    python benchmarks/attention.py                          # CUDA: bf16, seq 512..16k, d 64/128
    python benchmarks/attention.py --seqs 1024 4096 --head-dims 64 --no-causal
    python benchmarks/attention.py --device cpu             # CPU: naive vs sdpa, fp32, small

Each row reports milliseconds (median of --reps), achieved TFLOP/s, the peak extra memory the
call allocated (CUDA only) and ours/sdpa: our kernel's time divided by SDPA's on the same shape,
measured in this run (< 1 means ours is faster). Like the FlashAttention papers, the batch is
chosen so that batch x seq = --tokens and heads = --model-dim / d, so every row does the same
number of token-token interactions per sequence position. A size that runs out of memory
prints OOM instead of stopping the script. FLOPs: forward 4·b·h·L·S·d (two matmuls, halved when
causal); forward+backward counts 3.5x that (the backward does five matmuls to the forward's two).

On a CPU our kernel runs only under Triton's interpreter: it is checked for correctness at one
tiny size (its speed there means nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

if not torch.cuda.is_available():  # before triton is imported: kernels run in the interpreter
    os.environ.setdefault("TRITON_INTERPRET", "1")

from minivideo.attention import naive_attention  # noqa: E402
from minivideo.utils import pick_device  # noqa: E402

METHODS = ("naive", "sdpa", "ours")


def attention_fn(method: str):
    """The callable for one method, all with signature (q, k, v, is_causal)."""
    if method == "naive":
        return lambda q, k, v, causal: naive_attention(q, k, v, is_causal=causal)
    if method == "sdpa":
        return lambda q, k, v, causal: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=causal
        )
    from minivideo.kernels import flash_attention

    return lambda q, k, v, causal: flash_attention(q, k, v, is_causal=causal)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fn, q, k, v, causal: bool, backward: bool, reps: int) -> tuple[float, float | None]:
    """Median milliseconds of one call (and its backward), and peak extra MiB on CUDA."""
    device = q.device
    grad = torch.randn_like(q) if backward else None

    def step() -> None:
        out = fn(q, k, v, causal)
        if backward:
            out.backward(grad)
            q.grad = k.grad = v.grad = None

    step()  # warm-up: compiles Triton kernels, picks cuBLAS algorithms
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak


def flops(batch: int, heads: int, seq: int, d: int, causal: bool, backward: bool) -> float:
    """Matmul FLOPs of attention (see the module docstring)."""
    forward = 4 * batch * heads * seq * seq * d / (2 if causal else 1)
    return forward * (3.5 if backward else 1.0)


def is_oom(err: Exception) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def check_interpreted_kernel(device: torch.device) -> None:
    """On a CPU: one tiny shape through our kernel in the Triton interpreter, vs SDPA."""
    try:
        from minivideo.kernels import flash_attention, flash_unavailable_reason
    except ImportError as err:
        print(f"ours: skipped ({err})")
        return
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 64, generator=gen) for _ in range(3))
    reason = flash_unavailable_reason(q, k, v)
    if reason is not None:
        print(f"ours: skipped ({reason})")
        return
    for causal in (False, True):
        start = time.perf_counter()
        out = flash_attention(q, k, v, is_causal=causal)
        seconds = time.perf_counter() - start
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        print(f"ours under TRITON_INTERPRET=1, (1, 2, 64, 64) fp32, causal={causal}: "
              f"max |ours - sdpa| = {(out - want).abs().max():.1e}  "
              f"({seconds:.2f} s in the interpreter: correctness only, not a timing)")


def main() -> None:
    """Print one table row per (head dim, causal, seq, pass, method)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: best available)")
    parser.add_argument("--seqs", type=int, nargs="+", default=None,
                        help="sequence lengths (default CUDA 512..16384, CPU 128 256 512)")
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--tokens", type=int, default=None,
                        help="batch x seq (default CUDA 16384, CPU 1024)")
    parser.add_argument("--model-dim", type=int, default=None,
                        help="heads x head dim (default CUDA 2048, CPU 256)")
    parser.add_argument("--no-causal", action="store_true", help="only non-causal")
    parser.add_argument("--causal-only", action="store_true", help="only causal")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--forward-only", action="store_true")
    parser.add_argument("--reps", type=int, default=None, help="timed calls (default 10 / 3)")
    args = parser.parse_args()

    device = pick_device(args.device)
    cuda = device.type == "cuda"
    seqs = args.seqs or ([512, 1024, 2048, 4096, 8192, 16384] if cuda else [128, 256, 512])
    tokens = args.tokens or (16384 if cuda else 1024)
    model_dim = args.model_dim or (2048 if cuda else 256)
    reps = args.reps or (10 if cuda else 3)
    dtype = torch.bfloat16 if cuda else torch.float32
    methods = [m for m in args.methods if cuda or m != "ours"]  # ours: GPU only (see below)
    causal_modes = [c for c in (False, True) if not (args.no_causal and c)
                    and not (args.causal_only and not c)]
    passes = [False] if args.forward_only else [False, True]
    name = (torch.cuda.get_device_name() if cuda
            else f"cpu ({torch.get_num_threads()} threads)")
    print(f"device: {name}   dtype: {str(dtype).replace('torch.', '')}   torch {torch.__version__}")
    print(f"batch x seq = {tokens}, heads x d = {model_dim}, median of {reps} calls")
    header = (f"{'d':>4} {'causal':>6} {'seq':>6} {'b':>3} {'h':>3} {'pass':>8} {'method':>6} "
              f"{'ms':>9} {'TFLOP/s':>8} {'peak MiB':>9} {'ours/sdpa':>9}")
    print(header)
    print("-" * len(header))
    gen = torch.Generator().manual_seed(0)
    for d in args.head_dims:
        heads = max(1, model_dim // d)
        for causal in causal_modes:
            for seq in seqs:
                batch = max(1, tokens // seq)
                shape = (batch, heads, seq, d)
                q, k, v = (torch.randn(shape, generator=gen).to(device, dtype).requires_grad_()
                           for _ in range(3))
                for backward in passes:
                    times = {}
                    for method in methods:
                        try:
                            ms, peak = measure(attention_fn(method), q, k, v, causal, backward,
                                               reps)
                        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
                            if not is_oom(err):
                                raise
                            q.grad = k.grad = v.grad = None
                            torch.cuda.empty_cache()
                            print(f"{d:>4} {causal!s:>6} {seq:>6} {batch:>3} {heads:>3} "
                                  f"{'fwd+bwd' if backward else 'fwd':>8} {method:>6} {'OOM':>9}")
                            continue
                        times[method] = ms
                        tflops = flops(batch, heads, seq, d, causal, backward) / ms / 1e9
                        ratio = (f"{ms / times['sdpa']:.2f}" if method == "ours"
                                 and "sdpa" in times else "")
                        peak_text = f"{peak:.0f}" if peak is not None else "n/a"
                        print(f"{d:>4} {causal!s:>6} {seq:>6} {batch:>3} {heads:>3} "
                              f"{'fwd+bwd' if backward else 'fwd':>8} {method:>6} {ms:>9.2f} "
                              f"{tflops:>8.2f} {peak_text:>9} {ratio:>9}", flush=True)
                del q, k, v
                if cuda:
                    torch.cuda.empty_cache()
    if not cuda:
        check_interpreted_kernel(device)


if __name__ == "__main__":
    main()
