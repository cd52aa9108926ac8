"""Test-session set-up shared by every test module."""

import os

import matplotlib
import torch

# Figures in tests draw off-screen. (Set in-process, not through MPLBACKEND, which the notebook
# kernels started by nbval in the same run would inherit.)
matplotlib.use("Agg")

# Without a GPU, Triton kernels run (slowly, exactly) in Triton's CPU interpreter; this must be
# set before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))
