"""`torch.cuda`'s functions: is a CUDA device there, how many, wait for it, seed it, its memory.

The CUDA runtime built so far is the simulated device (`GENESIS_FAKE_CUDA=1`, runtime/cuda.py), so
on a machine with a GPU but without it, `is_available()` is False and the usual
`"cuda" if genesis.cuda.is_available() else "cpu"` picks the CPU, and the program runs.
Compiled programs can still target a GPU through Triton (`genesis.compile(fn, backend="triton")`).
"""

from __future__ import annotations

from genesis.random import manual_seed as _manual_seed
from genesis.runtime import cuda as _runtime
from genesis.runtime.devices import device as _device


def is_available() -> bool:
    """Whether genesis tensors can live on a CUDA device."""
    return _runtime.available()


def device_count() -> int:
    return _runtime.device_count()


def current_device() -> int:
    return 0


def set_device(device) -> None:
    """Make `device` the current one: genesis has one CUDA device, cuda:0."""
    _device(device if not isinstance(device, int) else f"cuda:{device}")  # refuses any other


def get_device_name(device=None) -> str:
    _device("cuda")  # refuses where there is no CUDA device, as PyTorch does
    return "genesis simulated CUDA device"


def get_device_capability(device=None) -> tuple[int, int]:
    """The compute capability the simulated device stands for: an H100's (the Triton kernels'
    ahead-of-time target, sm_90)."""
    _device("cuda")
    return (9, 0)


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return _runtime.available()


def empty_cache() -> None:
    """Give cached device memory back: the simulated device caches none."""


def synchronize(device=None) -> None:
    """Wait until the device has finished the work queued so far."""
    _runtime.synchronize()


def manual_seed(seed: int) -> None:
    """Seed the device's random numbers: genesis draws them from its one generator, so this is
    `genesis.manual_seed` (a CUDA tensor's rand gives the CPU's values for the same seed)."""
    _manual_seed(seed)


manual_seed_all = manual_seed


def memory_reserved(device=None) -> int:
    """Bytes the device's allocator holds: what tensors hold, as nothing is cached."""
    return _runtime.stats.allocated_bytes


def memory_allocated(device=None) -> int:
    """Bytes of device memory held by tensors now."""
    return _runtime.stats.allocated_bytes


def max_memory_allocated(device=None) -> int:
    """The most bytes of device memory held by tensors at once since the start or the last
    `reset_peak_memory_stats`."""
    return _runtime.stats.peak_allocated_bytes


def reset_peak_memory_stats(device=None) -> None:
    _runtime.reset_peak()


def transfer_stats() -> dict:
    """What the device did since `reset_transfer_stats`: copies each way and their bytes,
    synchronisations, ops that made a host round trip (no device kernel yet), memory."""
    return _runtime.stats.as_dict()


def reset_transfer_stats() -> None:
    _runtime.reset_stats()


__all__ = [
    "is_available",
    "device_count",
    "current_device",
    "set_device",
    "get_device_name",
    "get_device_capability",
    "is_bf16_supported",
    "empty_cache",
    "memory_reserved",
    "synchronize",
    "manual_seed",
    "manual_seed_all",
    "memory_allocated",
    "max_memory_allocated",
    "reset_peak_memory_stats",
    "transfer_stats",
    "reset_transfer_stats",
]
