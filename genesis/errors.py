"""Turning a kernel's failure into an error that names the problem.

Eager dispatch does not run shape rules on the happy path (numpy finds the
shapes itself). When a kernel raises, the op's shape rule is run on the
inputs: it raises the precise error (which shapes, which dim, which index).
If the shape rule accepts the inputs, the kernel's error is wrapped with the
op's name and its inputs' shapes and dtypes.
"""

from __future__ import annotations


class ShapeError(ValueError):
    """Shapes that an op cannot take (broadcasting, reshape, matmul, cat...)."""


class IndexOutOfRangeError(IndexError):
    """An index tensor holds a position outside its dim. `index`, `size` and `dim` say which, so a
    caller (embedding, nll_loss) can name the problem in its own terms."""

    def __init__(self, index: int, size: int, dim: int, message: str | None = None):
        super().__init__(message or f"index {index} is out of range for dim {dim} with size {size}")
        self.index, self.size, self.dim = index, size, dim


class IntegerDivisionByZeroError(ZeroDivisionError):
    """An integer floor_divide, remainder or fmod whose divisor holds a 0 (float division gives inf or nan)."""


def describe_inputs(inputs) -> str:
    parts = []
    for x in inputs:
        if hasattr(x, "dtype") and hasattr(x, "shape"):
            parts.append(f"{x.dtype.name}{list(x.shape)}")
        else:
            parts.append(repr(x))
    return ", ".join(parts)


def explain_kernel_failure(op, inputs, attrs, error):
    """The error to raise in place of `error`, with its `__cause__` set: a shape rule's own
    error says everything, so numpy's traceback is dropped from under it; a wrapped kernel
    error keeps numpy's as its cause, since that is all there is to go on."""
    passed_through = (ShapeError, TypeError, IndexError, ZeroDivisionError)
    if isinstance(error, passed_through) and "genesis" in type(error).__module__:
        return error
    shapes = [tuple(x.shape) if hasattr(x, "shape") else () for x in inputs]
    try:
        op.shape(*shapes, **attrs)
    except (ValueError, TypeError, IndexError) as precise:
        precise.__cause__ = None
        return precise
    kind = IndexError if isinstance(error, IndexError) else RuntimeError
    wrapped = kind(f"{op.name} failed on ({describe_inputs(inputs)}) with {attrs or 'no attributes'}: {error}")
    wrapped.__cause__ = error
    return wrapped
