"""Sampling time by torch thread count, alone and beside a busy process, measured in one run.

    python benchmarks/threads.py                     # the demo's sampling; threads 1, 2, default
    python benchmarks/threads.py --threads 1 4 --limit 60

Why the CLI's `--threads` defaults to one (minivideo/cli/common.py, issue 17). The workload is
what `python -m minivideo demo` samples: CogVideo-mini's key frames, then the frames between
them, for the default prompt from the shipped checkpoints (seed 0). Each setting runs in a fresh
process (models loaded first, only the sampling timed):

* alone: nothing of ours runs beside it (the line "others" says how busy the rest of the
  machine was, from /proc/stat: a figure near 0 means idle);
* busy: beside a spawned process that multiplies matrices on every core, the way a training
  run or a browser competes for the CPU. It is bounded in time and stopped afterwards.

A setting "Np" runs N threads with OMP_WAIT_POLICY=PASSIVE: OpenMP's idle threads then sleep
instead of spinning, which is what a shared core needs (the training recipes in README use it).
A run longer than --limit seconds is stopped and shown as "> LIMIT". "default" is torch's own
choice (one thread per core; OMP_NUM_THREADS and MKL_NUM_THREADS are removed from the children's
environment so that it is torch's). The codes column shows whether each setting drew the same
clip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

PROMPT = "digit 3 moves left and digit 7 moves down"

SPIN = """
import os, sys, time
import torch
torch.set_num_threads(os.cpu_count() or 1)
a = torch.randn(1024, 1024)
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    a = torch.tanh(a @ a)  # tanh keeps the values finite
"""


def sample_once(threads: str) -> dict:
    """In a child process: load the demo's models, time one clip with `threads`, report as JSON."""
    import torch

    from minivideo.cli.common import torch_threads
    from minivideo.models import cogvideo
    from minivideo.pretrained import pretrained

    keyframes, interp = pretrained("cogvideo-keyframes"), pretrained("cogvideo-interp")
    caption = cogvideo.encode_prompt(PROMPT)[None]
    with torch_threads(None if threads == "default" else int(threads)):
        used = torch.get_num_threads()
        start = time.perf_counter()
        codes = cogvideo.text_to_video(keyframes, interp, caption, guidance=3.0, seed=0,
                                       progress=False)
        seconds = time.perf_counter() - start
    digest = hashlib.sha1(codes.cpu().numpy().tobytes()).hexdigest()[:10]
    return {"threads": used, "seconds": seconds, "codes": digest}


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine in clock ticks, from /proc/stat (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def run_child(threads: str, limit: float) -> dict:
    """Time one setting in a fresh process, and how many cores everything else kept busy."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    if threads.endswith("p"):  # passive OpenMP threads: sleep at a barrier instead of spinning
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        threads = threads[:-1]
    before, wall = cpu_jiffies(), time.monotonic()
    usage = os.times()
    try:
        done = subprocess.run([sys.executable, __file__, "--child", threads], env=env,
                              capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"threads": "-", "seconds": None, "codes": "-", "others": None}
    if done.returncode != 0:
        raise RuntimeError(f"child with --threads {threads} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    after, wall = cpu_jiffies(), time.monotonic() - wall
    own = (os.times().children_user - usage.children_user
           + os.times().children_system - usage.children_system)  # the child's CPU seconds
    if before is not None and after is not None and wall > 0:
        ticks = os.sysconf("SC_CLK_TCK")
        result["others"] = max(0.0, ((after[0] - before[0]) / ticks - own) / wall)
    else:
        result["others"] = None
    return result


def _ratio(seconds: float | None, limit: float, base: float | None) -> str:
    """seconds / base as "N.Nx" ("> N.Nx" for a stopped run, "-" without a base)."""
    if base is None:
        return "-"
    return f"> {limit / base:.1f}x" if seconds is None else f"{seconds / base:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", nargs="+", default=["1", "2", "2p", "default"],
                        help="thread settings to compare (ints, 'Np' for N passive threads, or "
                             "'default' for torch's)")
    parser.add_argument("--limit", type=float, default=30.0,
                        help="seconds after which a run is stopped (default 30)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(sample_once(args.child)))
        return

    import torch

    print(f"{time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, run limit {args.limit:g} s")
    print("command: python benchmarks/threads.py", " ".join(sys.argv[1:]))
    print(f"workload: the demo's sampling, {PROMPT!r}, seed 0 (key frames + interpolation)")
    if Path("/proc/loadavg").exists():
        print("load average before:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    rows = []
    for background in ("alone", "busy"):
        spinner = None
        if background == "busy":
            budget = len(args.threads) * (args.limit + 10) + 5  # outlives the runs, then stops
            spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(budget)])
            time.sleep(2)  # let it occupy every core
        try:
            for threads in args.threads:
                result = run_child(threads, args.limit)
                rows.append((background, threads, result))
                shown = (f"> {args.limit:g} (stopped)" if result["seconds"] is None
                         else f"{result['seconds']:.1f}")
                print(f"  {background:5s} threads={threads:7s} {shown} s", flush=True)
        finally:
            if spinner is not None:
                spinner.terminate()
                spinner.wait(timeout=30)

    print()
    print(f"{'beside':6s} {'threads':>8s} {'used':>5s} {'seconds':>14s} {'others':>7s} "
          f"{'vs alone':>9s} {'vs 1 thread':>12s} {'codes':>11s}")
    times = {(b, t): r["seconds"] for b, t, r in rows}
    for background, threads, result in rows:
        seconds = result["seconds"]
        shown = f"> {args.limit:g}" if seconds is None else f"{seconds:.1f}"
        alone, single = times.get(("alone", threads)), times.get((background, "1"))
        ratio = partial(_ratio, seconds, args.limit)
        others = "-" if result["others"] is None else f"{result['others']:.1f}"
        print(f"{background:6s} {threads:>8s} {result.get('threads', '-')!s:>5s} {shown:>14s} "
              f"{others:>7s} {ratio(alone) if background == 'busy' else '':>9s} "
              f"{ratio(single) if threads != '1' else '':>12s} {result['codes']:>11s}")
    print("\nothers: cores kept busy by every other process during the run (our busy process "
          "included), from /proc/stat")


if __name__ == "__main__":
    main()
