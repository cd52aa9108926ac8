"""Test-session set-up shared by every test module."""

import os

import matplotlib
import pytest
import torch

from minivideo.cli.common import torch_threads  # the commands' own: set, then restore

# Figures in tests draw off-screen. (Set in-process, not through MPLBACKEND, which the notebook
# kernels started by nbval in the same run would inherit.)
matplotlib.use("Agg")

# Without a GPU, Triton kernels run (slowly, exactly) in Triton's CPU interpreter; this must be
# set before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """Train on one thread: tiny models run faster without OpenMP hand-offs, a lot faster when
    the cores are shared with other work (up to 30× on a busy 2-core machine); the thread count
    is restored afterwards."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_per_module():
    """`one_thread` for a whole test file: `pytestmark = pytest.mark.usefixtures(...)`."""
    with torch_threads(1):
        yield


@pytest.fixture
def fed_prefixes():
    """A function (model, codes, digits) → the prefixes (b, 2) a VideoGPT's GPT is fed by one
    training-mode forward pass (condition dropout applied), spying on `model.gpt.forward`."""
    def fed(model, codes, digits):
        seen = []
        original = model.gpt.forward

        def spy(tokens, *args, **kwargs):
            seen.append(tokens[:, :2].clone())
            return original(tokens, *args, **kwargs)

        model.gpt.forward = spy
        try:
            model(codes, digits=digits)
        finally:
            model.gpt.forward = original
        return seen[0]

    return fed
