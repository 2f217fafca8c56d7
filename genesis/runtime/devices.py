"""`genesis.device`: names a place where tensors live.

"cpu", and "cuda" where a CUDA runtime is there: so far the simulated device
(`GENESIS_FAKE_CUDA=1`, runtime/cuda.py). Asking for "cuda" without one raises
an error that says what is missing, rather than failing later inside a kernel.
Devices are canonical: `device("cuda")` is `device("cuda:0")` (a tensor's
device always has its index), and each is one object, so dispatch compares
devices by identity.
"""

from __future__ import annotations

from genesis.runtime import cuda as cuda_runtime


class Device:
    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None = None):
        self.type = type
        self.index = index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    # one object per device, even through copies and pickles (dispatch compares by identity)
    def __copy__(self) -> Device:
        return self

    def __deepcopy__(self, memo) -> Device:
        return self

    def __reduce__(self):
        return (device, (str(self),))


cpu = Device("cpu")


def is_cuda_available() -> bool:
    """Whether tensors can live on a CUDA device: the simulated one, so far (runtime/cuda.py)."""
    return cuda_runtime.available()


_CUDA = {}  # index -> the one Device object for it


def _cuda(index: int) -> Device:
    found = _CUDA.get(index)
    if found is None:
        found = _CUDA[index] = Device("cuda", index)
    return found


def device(spec=None) -> Device:
    """Parse "cpu", "cuda", "cuda:0" or a Device; None means the CPU."""
    if spec is None or spec is cpu:
        return cpu
    if isinstance(spec, Device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise TypeError(f"a device is named by a string such as 'cpu' or 'cuda:0', got {spec!r}")
    kind, _, index = spec.partition(":")
    if kind == "cpu":
        return cpu
    if kind == "cuda":
        if not is_cuda_available():
            raise RuntimeError(
                f"device '{spec}' was requested, but genesis has no CUDA runtime here: the CUDA runtime "
                f"on a real GPU is not built yet; set {cuda_runtime.SIMULATED_VARIABLE}=1 for the simulated "
                "device, or use device='cpu'"
            )
        number = int(index) if index.isdigit() else 0 if not index else None
        if number is None or number >= cuda_runtime.device_count():
            raise RuntimeError(
                f"device '{spec}': there is no such CUDA device ({cuda_runtime.device_count()} device(s): cuda:0)"
            )
        return _cuda(number)
    raise ValueError(f"unknown device '{spec}': expected 'cpu' or 'cuda[:index]'")
