"""Moving MNIST generation rate (clips per minute), measured in one run.

    python benchmarks/moving_mnist.py                     # 10,000 clips of 20 frames, 2 digits
    python benchmarks/moving_mnist.py --clips 2000 --threads 2

The target of the course is at least 10,000 twenty-frame clips per minute on 2 CPU cores. The
generator is numpy (one core); "with captions" adds the labels and captions that the
`python -m minivideo data` command writes.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    """Time the generator and print clips/minute and the ratio to the 10,000/min target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import numpy as np  # after the thread variables, which numpy reads at import

    from minivideo.data.datasets import batch_arrays
    from minivideo.data.mnist import load_digits
    from minivideo.data.moving_mnist import MovingMNISTConfig, generate_clips

    digits = load_digits("train")
    config = MovingMNISTConfig(num_digits=args.digits, num_frames=args.frames)
    rng = np.random.default_rng(0)
    generate_clips(100, digits, config, rng)  # warm-up
    target = 10_000
    chunk = 1000
    for label, with_captions in (("videos + trajectories", False), ("with captions", True)):
        start = time.perf_counter()
        for first in range(0, args.clips, chunk):
            batch = generate_clips(min(chunk, args.clips - first), digits, config, rng)
            if with_captions:
                batch_arrays(batch)
        seconds = time.perf_counter() - start
        per_minute = args.clips / seconds * 60
        print(f"{label:>22}: {args.clips} clips in {seconds:.2f} s = {per_minute:,.0f} clips/min "
              f"({per_minute / target:.1f}x the {target:,}/min target)")


if __name__ == "__main__":
    main()
