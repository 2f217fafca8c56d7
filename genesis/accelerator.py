"""`torch.accelerator`'s questions (PyTorch 2.6+ examples pick their device with them): the CUDA
device where genesis has one (see `genesis.cuda`), else none."""

from __future__ import annotations

from genesis import cuda
from genesis.runtime.devices import device


def is_available() -> bool:
    return cuda.is_available()


def current_accelerator(check_available: bool = False):
    """The accelerator genesis would use, as a device, or None."""
    return device("cuda") if cuda.is_available() else None


def device_count() -> int:
    return cuda.device_count()


__all__ = ["is_available", "current_accelerator", "device_count"]
