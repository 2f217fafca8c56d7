"""Padding layers: zero and constant, reflection, replication and circular, over the last 1, 2 or 3
dims (nn.functional.pad). Non-constant modes take any input rank here (PyTorch wants a batch or
channel dim beside the padded ones)."""

from __future__ import annotations

from genesis.nn import functional as F
from genesis.nn.modules.module import Module


class _PadNd(Module):
    _dims = 1
    _mode = "constant"

    def __init__(self, padding, value: float | None = None):
        super().__init__()
        self.padding = (padding,) * (2 * self._dims) if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 2 * self._dims:
            raise ValueError(f"{type(self).__name__} takes an int or {2 * self._dims} paddings, got {padding!r}")
        self.value = value

    def forward(self, x):
        return F.pad(x, self.padding, self._mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}" + (f", value={self.value}" if self.value is not None else "")


class _ZeroPadNd(_PadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding, value)


class _ReflectionPadNd(_PadNd):
    _mode = "reflect"


class _ReplicationPadNd(_PadNd):
    _mode = "replicate"


class _CircularPadNd(_PadNd):
    _mode = "circular"


def _over(base, name: str, dims: int):
    """`base` over the last `dims` dims, named as PyTorch names it."""
    return type(name, (base,), {"_dims": dims, "__module__": __name__, "__qualname__": name})


ZeroPad1d, ZeroPad2d, ZeroPad3d = (_over(_ZeroPadNd, f"ZeroPad{n}d", n) for n in (1, 2, 3))
ConstantPad1d, ConstantPad2d, ConstantPad3d = (_over(_ConstantPadNd, f"ConstantPad{n}d", n) for n in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (
    _over(_ReflectionPadNd, f"ReflectionPad{n}d", n) for n in (1, 2, 3)
)
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (
    _over(_ReplicationPadNd, f"ReplicationPad{n}d", n) for n in (1, 2, 3)
)
CircularPad1d, CircularPad2d, CircularPad3d = (_over(_CircularPadNd, f"CircularPad{n}d", n) for n in (1, 2, 3))

__all__ = [
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReflectionPad3d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ReplicationPad3d",
    "CircularPad1d",
    "CircularPad2d",
    "CircularPad3d",
]
