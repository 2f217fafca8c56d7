"""Matrix products, and the scaled sums with an added term (addmm, baddbmm, addmv) built on them."""

from __future__ import annotations

from genesis import dtypes
from genesis.creation import full
from genesis.dispatch import apply
from genesis.errors import ShapeError
from genesis.functional.elementwise import where
from genesis.ops import matmul as _matmul_op


def matmul(a, b):
    return apply(_matmul_op.matmul, a, b)


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm expects 2-D tensors, got shapes {list(a.shape)} and {list(b.shape)}")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"bmm expects 3-D tensors, got shapes {list(a.shape)} and {list(b.shape)}")
    return matmul(a, b)


def outer(a, b):
    return matmul(a.reshape(-1, 1), b.reshape(1, -1))


def dot(a, b):
    return matmul(a, b)


def mv(matrix, vector):
    if matrix.ndim != 2 or vector.ndim != 1:
        raise ShapeError(
            f"mv expects a 2-D matrix and a 1-D vector, got shapes {list(matrix.shape)} and {list(vector.shape)}"
        )
    return matmul(matrix, vector)


def _scaled_sum(name, term, product, beta, alpha):
    """beta * term + alpha * product, as PyTorch: with beta == 0 the term is ignored (NaN in it too)."""
    if tuple(term.shape) != tuple(product.shape):
        try:
            term = term.expand(product.shape)
        except ShapeError:
            raise ShapeError(
                f"{name}: input of shape {list(term.shape)} does not broadcast to the product's shape "
                f"{list(product.shape)}"
            ) from None
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:  # a select, not a product, so a NaN in the term stays out while its gradient is 0
        return where(full((), False, dtype=dtypes.bool_), term.to(scaled.dtype), scaled)
    return (term if beta == 1 else term * beta) + scaled


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2)."""
    return _scaled_sum("addmm", input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * (batch1 @ batch2), batch by batch."""
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec)."""
    return _scaled_sum("addmv", input, mv(mat, vec), beta, alpha)


__all__ = [
    "matmul",
    "mm",
    "bmm",
    "outer",
    "dot",
    "mv",
    "addmm",
    "baddbmm",
    "addmv",
]
