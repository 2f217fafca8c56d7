"""matmul: batched and broadcast, with PyTorch's 1-D rules.

fp16/bf16 operands are multiplied in fp32 and the result rounded once (fp32
accumulation), as autocast's matmul-class ops require. Broadcast batch dims
are summed back by the autograd engine.

A stack of matrices times one matrix (a linear layer over a batch of
sequences) is one BLAS product over all the stack's rows, forward and for the
matrix's gradient, rather than a product per matrix (and, for the gradient, a
sum of them): numpy's matmul loops over a stack in C but calls BLAS once per
matrix.
"""

from __future__ import annotations

import math

import numpy as np

from genesis.ops import dtype_rules as dt
from genesis.ops import gemm, shape_rules
from genesis.ops.movement import sum_to
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.runtime.blocks import THREADS, in_parts

# Where the C pool does not take products (ops/gemm.py: no C library, GENESIS_GEMM=numpy, not
# OpenBLAS): in a stack of small products (attention's batch * heads matrices of tokens x head dim),
# numpy calls BLAS once per matrix, and BLAS keeps a product under about 2^18 multiply-adds on one thread, so the
# whole stack ran on one core. Parts of the stack on the kernel pool's threads use every core, and each
# matrix is still the same one BLAS call: the same bits. Below 2^21 multiply-adds in all, handing a
# part to a thread costs more than it saves. (32 x 4 products of 64x32 by 32x64, on 2 cores under
# load: 0.71 -> 0.50 ms.)
SMALL_PRODUCT = 1 << 18
MIN_SHARED_STACK = 1 << 21


def _as_matrices(g, a, b):
    """Lift 1-D operands (and the gradient) to matrices so one rule covers every case.

    The gradient gets its column dim back first: with two vectors it is 0-d, and
    only after that does a row dim at -2 exist to insert.
    """
    if b.ndim == 1:
        b = b.unsqueeze(-1)
        g = g.unsqueeze(-1)
    if a.ndim == 1:
        a = a.unsqueeze(0)
        g = g.unsqueeze(-2)
    return g, a, b


def _grad_a(g, out, a, b):
    g2, a2, b2 = _as_matrices(g, a, b)
    grad = matmul(g2, b2.transpose(-1, -2))
    return sum_to(grad, a2.shape).reshape(a.shape) if a.ndim == 1 else grad


def _grad_b(g, out, a, b):
    g2, a2, b2 = _as_matrices(g, a, b)
    if b2.ndim == 2 and a2.ndim > 2:  # one matrix for a stack: a^T g over all the stack's rows at once
        rows = math.prod(a2.shape[:-1])
        a2, g2 = a2.reshape(rows, a2.shape[-1]), g2.reshape(rows, g2.shape[-1])
    if b2.ndim == 2 and a2.ndim == 2 and _held_transposed(b2):
        return matmul(g2.transpose(0, 1), a2).transpose(0, 1)
    grad = matmul(a2.transpose(-1, -2), g2)
    return sum_to(grad, b2.shape).reshape(b.shape) if b.ndim == 1 else grad


def _held_transposed(b) -> bool:
    """Whether eager holds the matrix `b` as the transpose of a row-major one: a linear layer's
    `weight.T`. Its gradient is then computed as (g^T a)^T, in b's own layout, so the transpose's
    backward hands the weight a row-major gradient, which the engine copies as one block where it
    must, instead of a transposing copy (256x784 float32: 30 against 218 us). A traced value keeps
    a^T g: the compiler lays out its buffers itself."""
    data = b._data
    return type(data) is np.ndarray and not data.flags.c_contiguous and data.T.flags.c_contiguous


def matmul_kernel(a, b, out=None, casting="same_kind"):
    """np.matmul, with a stack times one matrix as one product over the stack's rows (measured for
    (64, 32, 128) @ (128, 384): 0.78 ms against 1.14; with a copy of a strided stack, still faster),
    and float32/float64 products on genesis's thread pool (ops/gemm.py). The eager kernel and the
    line generated programs run."""
    if a.ndim > 2 and b.ndim == 2 and (out is None or out.flags.c_contiguous):
        rows = math.prod(a.shape[:-1])
        flat_out = None if out is None else out.reshape(rows, out.shape[-1])
        product = _product(a.reshape(rows, a.shape[-1]), b, flat_out, casting)
        return product.reshape(*a.shape[:-1], b.shape[-1]) if out is None else out
    return _product(a, b, out, casting)


def _product(a, b, out, casting):
    pooled = gemm.product(a, b, out)
    if pooled is not None:
        return pooled
    if _shares_the_stack(a, b, out):
        return _stack_on_threads(a, b, out, casting)
    if out is None:  # numpy lays out a stack of matrix-vector products transposed; results are contiguous
        product = np.matmul(a, b, casting=casting)
        return product if np.ndim(product) == 0 else np.ascontiguousarray(product)
    return np.matmul(a, b, out=out, casting=casting)


def _shares_the_stack(a, b, out) -> bool:
    if THREADS < 2 or a.ndim < 3 or b.ndim != a.ndim or a.shape[:-2] != b.shape[:-2]:
        return False
    if a.shape[0] < 2 or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        return False
    if out is not None and out.dtype != a.dtype:
        return False
    per_matrix = a.shape[-2] * a.shape[-1] * b.shape[-1]
    return per_matrix < SMALL_PRODUCT and per_matrix * math.prod(a.shape[:-2]) >= MIN_SHARED_STACK


def _stack_on_threads(a, b, out, casting):
    """np.matmul over parts of the leading dim (slices of it are views, whatever the strides)."""
    if out is None:
        out = np.empty(a.shape[:-1] + b.shape[-1:], a.dtype)

    def part(lo, hi):
        np.matmul(a[lo:hi], b[lo:hi], out=out[lo:hi], casting=casting)

    in_parts(part, a.shape[0], min(THREADS, a.shape[0]))
    return out


matmul = register(
    Op(
        name="matmul",
        kind=Kind.MATMUL,
        kernel=matmul_kernel,
        shape=shape_rules.matmul,
        dtype=dt.matmul,
        vjp=(_grad_a, _grad_b),
        autocast=Autocast.LOW_PRECISION,
        codegen={"numpy": "matmul_kernel({0}, {1}, out={out}, casting='unsafe')"},
        contiguous_result=True,
    )
)
