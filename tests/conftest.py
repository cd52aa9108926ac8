"""Test-session set-up shared by every test module."""

import os

import torch

# Without a GPU, Triton kernels run (slowly, exactly) in Triton's CPU interpreter; this must be
# set before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))
