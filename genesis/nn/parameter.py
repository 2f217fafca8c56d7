"""`Parameter`: a tensor that a `Module` registers as one of its parameters.

A Parameter is a `Tensor` subclass, as in PyTorch, so it goes anywhere a
tensor goes; what it adds is identity: `Module.__setattr__` sees the type and
records it in `_parameters`. It shares its buffer (and version counter) with
the tensor it wraps, and defaults to `requires_grad=True`. Ops on a Parameter
return plain tensors, because dispatch builds results with `Tensor._make`.
"""

from __future__ import annotations

from genesis import dtypes
from genesis.creation import empty
from genesis.functional.shape import clone
from genesis.grad_mode import no_grad
from genesis.tensor import Tensor


class Parameter(Tensor):
    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a genesis.Tensor, got {type(data).__name__}")
        param = object.__new__(cls)
        param._init(data._data, data.dtype, data.device, False)
        param._version = data._version  # one buffer, one version counter
        if requires_grad and data.dtype.category != dtypes.FLOAT:
            raise RuntimeError(
                f"only floating-point tensors can require gradients, got a {data.dtype.name} "
                "Parameter; pass requires_grad=False"
            )
        param.requires_grad = bool(requires_grad)
        return param

    def __init__(self, data=None, requires_grad=True):
        pass  # everything happens in __new__ (Tensor.__init__ would copy the data)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]

        with no_grad():
            copied = Parameter(clone(self.detach()), self.requires_grad)
        if self.grad is not None:
            with no_grad():
                copied.grad = clone(self.grad)
        memo[id(self)] = copied
        return copied

    def __reduce_ex__(self, protocol):
        with no_grad():
            data = clone(self.detach())
        return (Parameter, (data, self.requires_grad))


class Buffer(Tensor):
    """Marks a tensor as a buffer when assigned to a Module attribute (PyTorch's `nn.Buffer`)."""

    def __new__(cls, data, *, persistent=True):
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer expects a genesis.Tensor, got {type(data).__name__}")
        buffer = object.__new__(cls)
        buffer._init(data._data, data.dtype, data.device, data.requires_grad)
        buffer._version = data._version
        buffer.persistent = persistent
        return buffer

    def __init__(self, data, *, persistent=True):
        pass


__all__ = ["Parameter", "Buffer"]
