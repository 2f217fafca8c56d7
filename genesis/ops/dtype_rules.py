"""Dtype rules: from an op's inputs to (compute dtype, output dtype).

Inputs are tensors (anything with `.dtype` and `.ndim`, so symbolic tensors
work too) or Python scalars. The compute dtype is what the kernel's array
inputs are cast to; None means "leave the inputs as they are".
"""

from __future__ import annotations

from genesis import dtypes
from genesis.dtypes import BOOL, FLOAT, INT, default_dtype_for_category, float32, int64, result_type, scalar_category

_SCALAR_TYPES = (bool, int, float)


def promoted(inputs) -> dtypes.DType:
    """PyTorch promotion over tensors and Python scalars."""
    if len(inputs) == 2:  # the commonest calls, two tensors or a tensor and a Python number: no tiers
        a, b = inputs
        a_number, b_number = type(a) in _SCALAR_TYPES, type(b) in _SCALAR_TYPES
        if not (a_number or b_number):
            if a.dtype is b.dtype:
                return a.dtype
        elif not a_number:
            return _with_scalar(a.dtype, b)
        elif not b_number:
            return _with_scalar(b.dtype, a)
    first = None
    uniform = True
    for x in inputs:
        if isinstance(x, _SCALAR_TYPES):
            uniform = False
            break
        if first is None:
            first = x.dtype
        elif x.dtype is not first:
            uniform = False
            break
    if uniform:
        return first
    dimensioned, zero_dim, scalars = [], [], []
    for x in inputs:
        if isinstance(x, _SCALAR_TYPES):
            scalars.append(x)
        elif x.ndim:
            dimensioned.append(x.dtype)
        else:
            zero_dim.append(x.dtype)
    return result_type(dimensioned, zero_dim, scalars)


def _with_scalar(dtype, scalar) -> dtypes.DType:
    """A tensor's dtype against a Python number: the tensor's, unless the number is of a higher
    category (a float with an integer tensor): then that category's default dtype."""
    category = scalar_category(scalar)
    return dtype if category <= dtype.category else default_dtype_for_category(category)


def same(inputs, **attrs):
    """Arithmetic that keeps the promoted dtype (add, mul, maximum, where's values)."""
    dt = promoted(inputs)
    return dt, dt


def floating(inputs, **attrs):
    """Ops defined on reals (exp, div, sqrt): integers and bools become the default float."""
    dt = promoted(inputs)
    if dt.category != FLOAT:
        dt = dtypes.get_default_dtype()
    return dt, dt


def compare(inputs, **attrs):
    return promoted(inputs), dtypes.bool_


def predicate(inputs, **attrs):
    """isnan and friends: a bool per element, computed on the input as it is."""
    return None, dtypes.bool_


def logical(inputs, **attrs):
    return None, dtypes.bool_


def first_input(inputs, **attrs):
    """Views and data movement: the output has the first input's dtype; nothing is cast
    (other inputs, such as index tensors, keep their dtype)."""
    return None, inputs[0].dtype


def sum_like(inputs, **attrs):
    """sum and prod: integers and bools accumulate in int64, as PyTorch does."""
    dt = inputs[0].dtype
    if dt.category in (BOOL, INT):
        return int64, int64
    return dt, dt


def index_result(inputs, **attrs):
    """argmax and argmin: int64 positions."""
    dt = inputs[0].dtype
    if dt.category == BOOL:
        raise TypeError("argmax/argmin are not defined for bool tensors; cast to an integer dtype first")
    return dt, int64


def not_bool(inputs, **attrs):
    """amax, amin, sort-like ops: every dtype keeps its own (bool too, as PyTorch allows amax of bools)."""
    dt = inputs[0].dtype
    return dt, dt


def cast(inputs, *, dtype, **attrs):
    return None, dtype


def matmul(inputs, **attrs):
    a, b = inputs
    if a.dtype is not b.dtype:
        raise TypeError(f"matmul needs both operands to have the same dtype, got {a.dtype.name} and {b.dtype.name}")
    if a.dtype.category == BOOL:
        raise TypeError("matmul is not defined for bool tensors")
    return a.dtype, a.dtype


def require_floating(name: str, rule):
    """Wrap a rule to refuse non-floating inputs with an error that names the op."""

    def checked(inputs, **attrs):
        for x in inputs:
            if not isinstance(x, _SCALAR_TYPES) and x.dtype.category != FLOAT:
                raise TypeError(f"{name} needs a floating-point tensor, got {x.dtype.name}")
        return rule(inputs, **attrs)

    return checked


__all__ = [
    "promoted",
    "same",
    "floating",
    "compare",
    "predicate",
    "logical",
    "first_input",
    "sum_like",
    "index_result",
    "not_bool",
    "cast",
    "matmul",
    "require_floating",
    "float32",
]
