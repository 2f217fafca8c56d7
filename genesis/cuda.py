"""`torch.cuda`'s questions a ported program asks before it picks a device.

genesis has no eager CUDA runtime yet (`genesis.device("cuda")` says so), so
CUDA is not available to genesis tensors even on a machine with a GPU: the
usual `"cuda" if genesis.cuda.is_available() else "cpu"` picks the CPU, and
the program runs. Compiled programs can still target a GPU through Triton
(`genesis.compile(fn, backend="triton")`).
"""

from __future__ import annotations


def is_available() -> bool:
    """Whether genesis tensors can live on a CUDA GPU: not until genesis's CUDA runtime exists."""
    return False


def device_count() -> int:
    """How many CUDA GPUs genesis tensors can use (none yet, see `is_available`)."""
    return 0


__all__ = ["is_available", "device_count"]
