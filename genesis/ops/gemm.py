"""Matrix products on genesis's C thread pool, as single-threaded BLAS calls (ops/native/gemm.c).

numpy's matmul hands each product to OpenBLAS, whose threads poll for the next product for about
0.1 s after each one: the C kernels that follow a product then find a core taken, and ran at the
speed of one (a CNN step's im2col, col2im and batch-norm kernels all took twice their time). Here
the pool's threads run the products too: a product is cut into items (the matrices of a stack, or
blocks of one matrix's output columns or rows), each item is one call of the BLAS's gemm on one
thread, and OpenBLAS itself is set to one thread (`runtime.blas.one_thread`). Items are
independent, so a core that a neighbour process slows down just takes fewer of them.

How a product is cut depends on its shapes alone, never on timing, so eager mode and a compiled
program get the same bits for the same product (OpenBLAS's edge and small-matrix kernels may round
a block's elements differently from the whole matrix's).

`GENESIS_GEMM=numpy` keeps numpy's matmul (and OpenBLAS's threads); so does a machine without the
ops' C library or whose numpy BLAS is not an OpenBLAS.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from genesis.ops.native_kernels import NativeKernels
from genesis.runtime import blas, memory
from genesis.runtime import native as runtime_native
from genesis.runtime.blocks import THREADS

KERNELS = NativeKernels("gemm.c", {"g_gemm": "ppppii", "g_gemm_run": "pppp"}, headers=("blas_call.h",))

# Below this many multiply-adds a product stays with numpy (one BLAS call on one thread): the pool's
# second thread then costs more than it saves. At 2^20 it depends on the shape (16x128 by 128x512:
# 20.6 us on the pool, 24.5 on one thread; 64x128 by 128x128: 24.5 against 19.2); an LSTM step's
# 1M-MAC gate products made 2^20 the better bound (compiled step 16.6 -> 16.0 ms against 2^21).
SHARED_FROM = 1 << 20
BLOCK_MULTIPLE = 16  # block sizes round up to this, a multiple of the gemm kernels' tile widths


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
    """a @ b for float32 or float64 matrices or stacks of them (batch dims broadcast), into `out`
    (whose rows must be contiguous) or a new array; None where the pool does not take it (other
    dtypes, vectors, an empty product, a small one, no C library or no OpenBLAS)."""
    layout = (a.shape, a.strides, a.dtype, b.shape, b.strides, b.dtype)
    layout += (None,) if out is None else (out.shape, out.strides, out.dtype)
    prepared = _PREPARED.get(layout)
    if prepared is None:
        if len(_PREPARED) >= MAX_PREPARED:
            _PREPARED.clear()
        prepared = _PREPARED[layout] = _prepare(a, b, out)
    if prepared is _DECLINED:
        return None
    copy_a, copy_b, function, arguments_at, out_shape, _ = prepared
    if copy_a:
        a = np.ascontiguousarray(a)
    if copy_b:
        b = np.ascontiguousarray(b)
    if out is None:
        out = memory.empty(out_shape, a.dtype)
    address = runtime_native.address
    if function(address(a), address(b), address(out), arguments_at):
        raise MemoryError("genesis: a matrix product could not run")  # the kernel has no failure of its own
    return out


# What `product` does for each layout of its arrays (shapes, strides, dtypes), decided once: a
# program makes the same products every step, and deciding took 4 us of a 16x128 by 128x512
# product's 17. At most this many layouts are kept (a program has a few dozen).
_PREPARED: dict = {}
MAX_PREPARED = 1024
_DECLINED = object()


def _prepare(a, b, out):
    """(copy a, copy b, the kernel, its arguments' address, the result's shape, the arguments kept
    alive), or _DECLINED."""
    dtype = a.dtype
    if dtype != b.dtype or dtype not in _SUFFIX or a.ndim < 2 or b.ndim < 2 or not blas.products_on_pool():
        return _DECLINED
    if out is not None and out.dtype != dtype:
        return _DECLINED
    one_batch = a.ndim == 2 or b.ndim == 2 or a.shape[:-2] == b.shape[:-2]
    if one_batch and max(a.size * b.shape[-1], b.size * a.shape[-2]) < SHARED_FROM:  # its multiply-adds
        return _DECLINED
    copy_a, copy_b = not _blas_ready(a), not _blas_ready(b)
    a_strides = _contiguous_strides(a.shape, dtype.itemsize) if copy_a else a.strides
    b_strides = _contiguous_strides(b.shape, dtype.itemsize) if copy_b else b.strides
    plan = _plan(a.shape, a_strides, b.shape, b_strides, None if out is None else (out.shape, out.strides), dtype)
    kernel = KERNELS.kernel("g_gemm_run", dtype) if plan is not None else None
    if kernel is None:
        return _DECLINED
    arguments, out_shape = plan
    blas.one_thread()
    return copy_a, copy_b, kernel[0], arguments.ctypes.data, out_shape, arguments


@functools.lru_cache(maxsize=512)
def _plan(a_shape, a_strides, b_shape, b_strides, out_layout, dtype):
    """(the kernel's int64 arguments, the result's shape) of one product's
    shapes and strides, or None where the pool does not take it. Cached: a program makes the same
    products every step, and planning one costs more than a small product."""
    (m, k), n = a_shape[-2:], b_shape[-1]
    if b_shape[-2] != k or min(m, n, k) == 0:
        return None
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        return None
    stack = math.prod(batch)
    gemm, pool = blas.gemm(), runtime_native.pool_address()
    if stack == 0 or stack * m * n * k < SHARED_FROM or gemm is None or not pool:
        return None
    size = dtype.itemsize
    out_shape = batch + (m, n)
    out_strides = out_layout[1] if out_layout is not None else _contiguous_strides(out_shape, size)
    if out_layout is not None and (out_layout[0] != out_shape or not _rows_contiguous(out_shape, out_strides, size)):
        return None
    a_trans, lda = _layout(a_shape, a_strides, size)
    b_trans, ldb = _layout(b_shape, b_strides, size)
    ldc = out_strides[-2] // size if m > 1 else n
    if not gemm.ilp64 and max(m, n, k, lda, ldb, ldc) >= 1 << 31:  # past a 32-bit BLAS's integers
        return None
    blocks, cut_rows, block = _blocks(stack, m, n)
    header = [gemm.address(dtype), int(gemm.ilp64), a_trans, b_trans, m, n, k, lda, ldb, ldc]
    header += [blocks, int(cut_rows), block, stack, pool, min(stack * blocks, THREADS)]
    offsets = [
        _offsets(batch, shape, strides, size)
        for shape, strides in ((a_shape, a_strides), (b_shape, b_strides), (out_shape, out_strides))
    ]
    return np.concatenate([np.array(header, np.int64), *offsets]), out_shape


_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _contiguous_strides(shape: tuple, size: int) -> tuple:
    strides, step = [], size
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _rows_contiguous(shape: tuple, strides: tuple, size: int) -> bool:
    rows, cols = shape[-2:]
    return (
        all(s >= 0 and s % size == 0 for s in strides)
        and (cols == 1 or strides[-1] == size)
        and (rows == 1 or strides[-2] >= cols * size)
    )


def _layout(shape: tuple, strides: tuple, size: int) -> tuple[int, int]:
    """(transposed, leading dimension) of a matrix whose rows or columns are contiguous (checked by
    `_blas_ready`)."""
    rows, cols = shape[-2:]
    row_stride, col_stride = strides[-2] // size, strides[-1] // size
    if (cols == 1 or col_stride == 1) and (rows == 1 or row_stride >= cols):
        return 0, max(row_stride if rows > 1 else cols, cols, 1)
    return 1, max(col_stride if cols > 1 else rows, rows, 1)


def _blas_ready(*arrays) -> bool:
    """Whether BLAS reads each matrix in place: rows or columns contiguous, strides positive."""
    for x in arrays:
        size = x.itemsize
        rows, cols = x.shape[-2:]
        if any(s < 0 or s % size for s in x.strides):
            return False
        row_stride, col_stride = x.strides[-2] // size, x.strides[-1] // size
        by_rows = (cols == 1 or col_stride == 1) and (rows == 1 or row_stride >= cols)
        by_cols = (rows == 1 or row_stride == 1) and (cols == 1 or col_stride >= rows)
        if not (by_rows or by_cols):
            return False
    return True


@functools.lru_cache(maxsize=256)
def _offsets(batch: tuple, shape: tuple, strides: tuple, size: int) -> np.ndarray:
    """Each matrix's first element, in elements, in an array of this shape and strides, for the
    broadcast batch (stride 0 where the array has size 1 or lacks the dim). Cached: a program
    makes the same products every step."""
    if not batch:
        return np.zeros(1, np.int64)
    lead = len(batch) - (len(shape) - 2)
    steps = [0 if d < lead or shape[d - lead] == 1 else strides[d - lead] // size for d in range(len(batch))]
    index = np.indices(batch, dtype=np.int64).reshape(len(batch), -1)
    return np.asarray(steps, np.int64) @ index


def _blocks(stack: int, m: int, n: int) -> tuple[int, bool, int]:
    """(blocks per matrix, whether they cut rows, rows or columns per block): enough items that
    every thread gets one, cutting the output's longer side (measured on 2 cores: 64x784 by 784x256
    takes 140 us cut by columns and 186 cut by rows, 2048x128 by 128x384 0.74 ms cut by rows and
    0.97 by columns)."""
    cut_rows = m >= n
    dim = m if cut_rows else n
    wanted = -(-THREADS // stack) if stack < THREADS else 1
    block = -(-dim // wanted)
    block = min(dim, -(-block // BLOCK_MULTIPLE) * BLOCK_MULTIPLE)
    return -(-dim // block), cut_rows, block
