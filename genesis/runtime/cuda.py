"""The CUDA device's memory: buffers, transfers, synchronisation and what they cost.

Only the simulated device is built so far. `GENESIS_FAKE_CUDA=1` gives one CUDA device, "cuda:0",
whose memory is host memory that only device code may read: a tensor there holds a
`SimulatedArray`, which refuses numpy (an implicit host read, such as a CPU kernel handed device
memory, raises `HostReadError` naming what asked). Device code (compiler/device_ops.py: Triton
kernels under the interpreter, the "cuBLAS" products done by numpy) reads the memory through
`device_memory`. What a real device would pay is counted in `stats`: copies each way with their
bytes, synchronisations, ops that had no device kernel and made a host round trip, and the bytes
allocated (now and at the peak). The real device, CuPy's memory pool and streams behind the same
functions, comes with the first test run on a GPU; until then `available()` is the simulated
device alone, so a ported program's `"cuda" if genesis.cuda.is_available() else "cpu"` keeps
picking the CPU on a machine with a GPU.

Transfers are synchronous, as PyTorch's to a pageable host buffer: a copy to the host waits for the
device (one synchronisation counted), and returns memory the host owns.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, fields

import numpy as np

SIMULATED_VARIABLE = "GENESIS_FAKE_CUDA"


class HostReadError(RuntimeError):
    """Device memory was read as host memory without an explicit copy (.cpu(), .item(), ...)."""


def simulated() -> bool:
    """Whether the simulated CUDA device is on (read at each call, so tests can switch it)."""
    return os.environ.get(SIMULATED_VARIABLE) == "1"


def available() -> bool:
    return simulated()


def device_count() -> int:
    return 1 if simulated() else 0


@dataclass
class Stats:
    """What the device did since the last `reset_stats` (bytes allocated: since the process began)."""

    host_to_device: int = 0  # copies
    host_to_device_bytes: int = 0
    device_to_host: int = 0
    device_to_host_bytes: int = 0
    synchronizations: int = 0
    host_round_trips: int = 0  # ops with no device kernel: their inputs went to the host and back
    allocated_bytes: int = 0
    peak_allocated_bytes: int = 0

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


stats = Stats()


def reset_stats() -> None:
    """Zero the counters of copies, synchronisations and round trips; the peak restarts from now."""
    allocated = stats.allocated_bytes
    for f in fields(stats):
        setattr(stats, f.name, 0)
    stats.allocated_bytes = stats.peak_allocated_bytes = allocated


def reset_peak() -> None:
    stats.peak_allocated_bytes = stats.allocated_bytes


class SimulatedArray:
    """A buffer in the simulated device's memory: the shape, dtype and layout of a numpy array, and
    numpy's refusal to read it (see the module)."""

    __slots__ = ("_memory", "__weakref__")

    def __init__(self, memory: np.ndarray):
        self._memory = memory

    shape = property(lambda self: self._memory.shape)
    dtype = property(lambda self: self._memory.dtype)
    strides = property(lambda self: self._memory.strides)
    ndim = property(lambda self: self._memory.ndim)
    size = property(lambda self: self._memory.size)
    itemsize = property(lambda self: self._memory.itemsize)
    nbytes = property(lambda self: self._memory.nbytes)
    flags = property(lambda self: self._memory.flags)
    base = property(lambda self: self._memory.base)  # not None: a view of another buffer

    def __array__(self, dtype=None, copy=None):
        raise HostReadError(
            f"genesis: a {self.dtype} buffer of shape {list(self.shape)} in cuda memory was read as host "
            "memory; copy it first with .cpu() (or read one value with .item())"
        )

    def copy(self) -> SimulatedArray:
        """A device-to-device copy (an in-place write's old values), in the same layout."""
        return adopt(np.array(self._memory, order="K", copy=True))

    # device-to-device writes, as CuPy's arrays take them (a compiled call's writebacks)
    def __setitem__(self, key, value) -> None:
        self._memory[key] = _on_device(value)

    def __iadd__(self, other) -> SimulatedArray:
        self._memory += _on_device(other)
        return self

    def host_read(self, asked_for: str) -> np.ndarray:
        """The values, copied to the host for `asked_for` (tensor.py's host reads)."""
        return to_host(self)

    def __len__(self) -> int:
        return len(self._memory)

    def __repr__(self) -> str:
        return f"SimulatedArray({self.dtype}, shape={list(self.shape)})"


def _on_device(value):
    """The operand of a device write: a device buffer's memory, or a Python number; a host array
    would be an implicit copy to the device, refused as its reverse is."""
    if type(value) is SimulatedArray:
        return value._memory
    if isinstance(value, np.ndarray):
        raise HostReadError("genesis: a host array was written into cuda memory; move it with .to('cuda') first")
    return value


def _release(nbytes: int) -> None:
    stats.allocated_bytes -= nbytes


def adopt(memory: np.ndarray, owns: bool = True) -> SimulatedArray:
    """`memory`, which device code just wrote, as a device buffer; `owns`: it is an allocation of
    its own (not a view of another buffer), counted until the buffer is dropped."""
    buffer = SimulatedArray(memory)
    if owns and memory.nbytes:
        stats.allocated_bytes += memory.nbytes
        stats.peak_allocated_bytes = max(stats.peak_allocated_bytes, stats.allocated_bytes)
        weakref.finalize(buffer, _release, memory.nbytes)
    return buffer


def device_memory(buffer: SimulatedArray) -> np.ndarray:
    """The memory behind a device buffer, for device code only."""
    return buffer._memory


def is_device_buffer(data) -> bool:
    return type(data) is SimulatedArray


def memory_of(data):
    """A buffer's memory, where it is: a device buffer's, or a host array itself (for questions of
    layout and overlap, never for host reads)."""
    return data._memory if type(data) is SimulatedArray else data


def to_device(array: np.ndarray) -> SimulatedArray:
    """A copy of host `array` in device memory, in its layout where it is dense (a transpose stays
    one, as PyTorch's `.to` preserves it), else compacted."""
    memory = np.array(array, order="K", copy=True)
    stats.host_to_device += 1
    stats.host_to_device_bytes += memory.nbytes
    return adopt(memory)


def to_host(buffer: SimulatedArray) -> np.ndarray:
    """A host copy of a device buffer, once the device has finished writing it."""
    synchronize()
    stats.device_to_host += 1
    stats.device_to_host_bytes += buffer.nbytes
    return np.array(buffer._memory, order="K", copy=True)


def synchronize() -> None:
    """Wait for the device's queued work (the simulated device runs each kernel to its end, so
    this only counts)."""
    stats.synchronizations += 1


def transfer(data, to_device_type: str):
    """`data` (a host array or a device buffer) moved to a device of type `to_device_type`."""
    on_device = is_device_buffer(data)
    if to_device_type == "cuda":
        return data if on_device else to_device(data)
    return to_host(data) if on_device else data
