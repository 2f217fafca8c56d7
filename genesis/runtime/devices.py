"""`genesis.device`: names a place where tensors live.

Only the CPU runtime exists today. Asking for "cuda" checks for a usable GPU
runtime and raises an error that says what is missing, rather than failing
later inside a kernel.
"""

from __future__ import annotations

from functools import lru_cache


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


cpu = Device("cpu")


@lru_cache(maxsize=1)
def is_cuda_available() -> bool:
    """A GPU needs Triton's CUDA driver to find a device; none here means no GPU runtime."""
    try:
        from triton.runtime import driver

        return bool(driver.active.get_current_device() is not None)
    except Exception:
        return False


def device(spec=None) -> Device:
    """Parse "cpu", "cuda", "cuda:0" or a Device; None means the CPU."""
    if spec is None:
        return cpu
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a device is named by a string such as 'cpu' or 'cuda:0', got {spec!r}")
    kind, _, index = spec.partition(":")
    if kind == "cpu":
        return cpu
    if kind == "cuda":
        if not is_cuda_available():
            raise RuntimeError(
                f"device '{spec}' was requested, but genesis found no CUDA GPU runtime on this machine "
                "(no GPU or no CUDA driver visible to Triton); use device='cpu'"
            )
        raise NotImplementedError(
            f"device '{spec}': the eager CUDA runtime is not built yet; compile to Triton with genesis.compile"
        )
    raise ValueError(f"unknown device '{spec}': expected 'cpu' or 'cuda[:index]'")
