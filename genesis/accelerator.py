"""`torch.accelerator`'s questions (PyTorch 2.6+ examples pick their device with them): genesis
tensors live on the CPU only for now (see `genesis.cuda`), so no accelerator is available."""

from __future__ import annotations


def is_available() -> bool:
    return False


def current_accelerator(check_available: bool = False):
    """The accelerator genesis would use, as a device, or None: none yet."""
    return None


def device_count() -> int:
    return 0


__all__ = ["is_available", "current_accelerator", "device_count"]
