"""Hand-written GPU kernels: FlashAttention in Triton, and its plain-PyTorch tiled twin.

Importing this package never fails: without Triton (macOS, Windows, a CPU-only install)
`flash_unavailable_reason` says so and `flash_attention` raises that sentence.
"""

from __future__ import annotations

import torch

from minivideo.kernels.tiled_reference import online_softmax, tiled_attention

try:
    from minivideo.kernels.flash_attention import flash_attention
    from minivideo.kernels.flash_attention import (
        flash_unavailable_reason as _kernel_unavailable_reason,
    )

    TRITON_IMPORT_ERROR: str | None = None
except ImportError as err:  # Triton is an optional dependency (pip install 'minivideo[gpu]')
    if (getattr(err, "name", None) or "").split(".")[0] == "triton":
        TRITON_IMPORT_ERROR = "triton is not installed"
    else:
        TRITON_IMPORT_ERROR = f"the Triton kernel failed to import ({type(err).__name__}: {err})"

    def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args, **kwargs):
        """Placeholder raising the reason the Triton kernel is unavailable."""
        raise RuntimeError(flash_unavailable_reason(q, k, v))


def flash_unavailable_reason(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> str | None:
    """None if the Triton kernel can run on these inputs, else a sentence saying why not."""
    if TRITON_IMPORT_ERROR is not None:
        return (
            f"{TRITON_IMPORT_ERROR} (pip install 'minivideo[gpu]' on Linux with an NVIDIA GPU); "
            "use backend='sdpa'"
        )
    return _kernel_unavailable_reason(q, k, v, mask)


__all__ = ["flash_attention", "flash_unavailable_reason", "online_softmax", "tiled_attention"]
