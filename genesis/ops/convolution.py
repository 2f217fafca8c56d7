"""Convolution as op records: conv2d and its two gradients, each the other two's adjoint.

`conv2d(x, w)`: x (N, C, H, W), w (O, C, kh, kw) -> (N, O, Ho, Wo), with stride, dilation and
zero padding (top, bottom, left, right). `conv2d_input_grad(dy, w, size=(H, W))` is its gradient
for x, `conv2d_weight_grad(x, dy, kernel=(kh, kw))` its gradient for w. All three are linear in
each input, so each one's vjp is made of the three (the gradient of the input gradient for dy is
conv2d again, and so on): second derivatives need nothing more.

In C (ops/native/windows.c), where numpy's BLAS is OpenBLAS and products run on genesis's pool
(ops/gemm.py): each item is a group of images whose columns are made in a scratch buffer the size of
a cache (im2col) and multiplied there (one gemm), so the columns never exist as an array
(C*kh*kw by N*Ho*Wo: 75 MB for a ResNet's first stage at batch 32, written and read three times a
step). A group is enough images for a wide product (`MIN_COLUMNS`) without leaving the other
threads idle. The weight gradient sums its groups into one partial per chunk, added in chunk order.
Elsewhere the same ops run im2col and matmul over the whole batch in numpy.
"""

from __future__ import annotations

import math

import numpy as np

from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.ops.windows import C_KERNELS, NO_PADDING, col2im, conv_output_size, im2col
from genesis.runtime import blas, memory
from genesis.runtime import native as runtime_native
from genesis.runtime.blocks import THREADS

MIN_COLUMNS = 256  # an item's product is at least this wide (images x Ho*Wo), where the batch allows
SCRATCH_BYTES = 1 << 21  # and its columns at most this big where that allows (a band of rows, else)


def _windows(stride, padding, dilation) -> dict:
    return dict(stride=stride, padding=padding, dilation=dilation)


def _output_size(name, size, kernel, stride, padding, dilation) -> tuple[int, int]:
    totals = (padding[0] + padding[1], padding[2] + padding[3])
    out = tuple(conv_output_size(*args) for args in zip(size, kernel, stride, totals, dilation))
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(
            f"{name}: the output size ({out[0]}x{out[1]}) is too small: input {list(size)}, kernel "
            f"{kernel[0]}x{kernel[1]}, padding {padding} (top, bottom, left, right), stride {stride}, "
            f"dilation {dilation}"
        )
    return out


def _four_dims(name, what, shape) -> None:
    if len(shape) != 4:
        raise ShapeError(f"{name} expects a 4-D {what}, got shape {list(shape)}")


def _conv2d_shape(x, w, *, stride, padding, dilation):
    _four_dims("conv2d", "input (N, C, H, W)", x)
    _four_dims("conv2d", "weight (O, C, kh, kw)", w)
    if x[1] != w[1]:
        raise ShapeError(f"conv2d: weight {list(w)} expects {w[1]} input channels, got input {list(x)}")
    return (x[0], w[0], *_output_size("conv2d", x[2:], w[2:], stride, padding, dilation))


def _input_grad_shape(dy, w, *, size, stride, padding, dilation):
    _four_dims("conv2d_input_grad", "gradient (N, O, Ho, Wo)", dy)
    _four_dims("conv2d_input_grad", "weight (O, C, kh, kw)", w)
    expected = (dy[0], w[0], *_output_size("conv2d_input_grad", size, w[2:], stride, padding, dilation))
    if tuple(dy) != expected:
        raise ShapeError(f"conv2d_input_grad: gradient {list(dy)} is not conv2d's output {list(expected)}")
    return (dy[0], w[1], *size)


def _weight_grad_shape(x, dy, *, kernel, stride, padding, dilation):
    _four_dims("conv2d_weight_grad", "input (N, C, H, W)", x)
    _four_dims("conv2d_weight_grad", "gradient (N, O, Ho, Wo)", dy)
    expected = (x[0], dy[1], *_output_size("conv2d_weight_grad", x[2:], kernel, stride, padding, dilation))
    if tuple(dy) != expected:
        raise ShapeError(f"conv2d_weight_grad: gradient {list(dy)} is not conv2d's output {list(expected)}")
    return (dy[1], x[1], *kernel)


def _in_c(dtype):
    """The C kernels' library and numpy's gemm, where the pool runs products; else None."""
    if not blas.products_on_pool() or C_KERNELS.kernel("g_conv2d", dtype) is None:
        return None
    gemm = blas.gemm()
    if gemm is None or not runtime_native.pool_address():
        return None
    blas.one_thread()
    return gemm


def _plan(x_shape, out_channels, kernel, stride, padding, dilation, dtype, gemm):
    """The C kernels' sizes and their groups of images: (int64 sizes, groups)."""
    n, c, h, w = x_shape
    out = _output_size("conv2d", (h, w), kernel, stride, padding, dilation)
    plane = out[0] * out[1]
    row_bytes = c * kernel[0] * kernel[1] * out[1] * np.dtype(dtype).itemsize  # one output row's columns
    per_group = max(1, min(-(-MIN_COLUMNS // plane), n // THREADS, SCRATCH_BYTES // max(1, row_bytes * out[0])))
    band = out[0]
    if per_group == 1:  # one image an item, in bands of rows whose columns fit the scratch
        band = max(1, min(out[0], max(-(-MIN_COLUMNS // out[1]), SCRATCH_BYTES // max(1, row_bytes))))
    address = gemm.sgemm if np.dtype(dtype) == np.float32 else gemm.dgemm
    sizes = np.array(
        [n, c, h, w, *kernel, *stride, *dilation, *out, 0, padding[0], padding[2], out_channels, per_group, band]
        + [address, int(gemm.ilp64)],
        np.int64,
    )
    return sizes, -(-n // per_group)


def _run(stem, arrays, groups, chunks, dtype):
    function, entry = C_KERNELS.kernel(stem, dtype)
    bounds = [groups * i // chunks for i in range(chunks + 1)]
    runtime_native.run_native(function, arrays, (), list(zip(bounds[:-1], bounds[1:])), entry)


def _images_in_c(stem, first, w, x_shape, result_shape, windows, gemm):
    """conv2d or its input gradient in C: `first` (x or dy) and the weight w into a new result, the
    items (groups of images) in a few chunks per thread."""
    first, w = np.ascontiguousarray(first), np.ascontiguousarray(w)
    sizes, groups = _plan(x_shape, w.shape[0], w.shape[2:], *windows, first.dtype, gemm)
    result = memory.empty(result_shape, first.dtype)
    _run(stem, (first, w, result, sizes), groups, min(groups, THREADS * 2), first.dtype)
    return result


def _columns(x, kernel, stride, padding, dilation):
    """numpy's path: x's columns (N, C*kh*kw, Ho*Wo)."""
    columns = im2col.kernel(x, kernel=kernel, stride=stride, dilation=dilation, batch_inside=False, padding=padding)
    return columns.reshape(columns.shape[0], -1, columns.shape[-2] * columns.shape[-1])


def _conv2d_kernel(x, w, *, stride, padding, dilation):
    shape = _conv2d_shape(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation)
    gemm = _in_c(x.dtype)
    if gemm is None:
        product = np.matmul(w.reshape(w.shape[0], -1), _columns(x, w.shape[2:], stride, padding, dilation))
        return np.ascontiguousarray(product).reshape(shape)
    return _images_in_c("g_conv2d", x, w, x.shape, shape, (stride, padding, dilation), gemm)


def _input_grad_kernel(dy, w, *, size, stride, padding, dilation):
    shape = _input_grad_shape(dy.shape, w.shape, size=size, stride=stride, padding=padding, dilation=dilation)
    gemm = _in_c(dy.dtype)
    if gemm is None:
        kernel = tuple(w.shape[2:])
        weight = w.reshape(w.shape[0], -1)
        columns = np.matmul(weight.T, dy.reshape(dy.shape[0], dy.shape[1], -1)).reshape(
            shape[0], shape[1], kernel[0] * kernel[1], *dy.shape[2:]
        )
        return col2im.kernel(
            columns, size=size, kernel=kernel, stride=stride, dilation=dilation, batch_inside=False, padding=padding
        )
    return _images_in_c("g_conv2d_input_grad", dy, w, shape, shape, (stride, padding, dilation), gemm)


def _weight_grad_kernel(x, dy, *, kernel, stride, padding, dilation):
    shape = _weight_grad_shape(x.shape, dy.shape, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    gemm = _in_c(x.dtype)
    if gemm is None:
        columns = _columns(x, kernel, stride, padding, dilation)
        rows = dy.reshape(dy.shape[0], dy.shape[1], -1)
        return np.tensordot(rows, columns, axes=([0, 2], [0, 2])).astype(x.dtype, copy=False).reshape(shape)
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    sizes, groups = _plan(x.shape, dy.shape[1], kernel, stride, padding, dilation, x.dtype, gemm)
    chunks = min(groups, THREADS)
    partials = np.empty((chunks, math.prod(shape)), x.dtype)
    _run("g_conv2d_weight_grad", (x, dy, partials, sizes), groups, chunks, x.dtype)
    total = partials[0]
    for partial in partials[1:]:  # in chunk order: the same bits however the threads ran
        total = total + partial
    return total.reshape(shape)


def _conv2d_grad_x(g, out, x, w, *, stride, padding, dilation):
    return conv2d_input_grad(g, w, size=tuple(x.shape[2:]), **_windows(stride, padding, dilation))


def _conv2d_grad_w(g, out, x, w, *, stride, padding, dilation):
    return conv2d_weight_grad(x, g, kernel=tuple(w.shape[2:]), **_windows(stride, padding, dilation))


def _input_grad_grad_dy(g, out, dy, w, *, size, stride, padding, dilation):
    return conv2d(g, w, **_windows(stride, padding, dilation))


def _input_grad_grad_w(g, out, dy, w, *, size, stride, padding, dilation):
    return conv2d_weight_grad(g, dy, kernel=tuple(w.shape[2:]), **_windows(stride, padding, dilation))


def _weight_grad_grad_x(g, out, x, dy, *, kernel, stride, padding, dilation):
    return conv2d_input_grad(dy, g, size=tuple(x.shape[2:]), **_windows(stride, padding, dilation))


def _weight_grad_grad_dy(g, out, x, dy, *, kernel, stride, padding, dilation):
    return conv2d(x, g, **_windows(stride, padding, dilation))


def _record(name, kernel, shape, vjp) -> Op:
    return register(
        Op(
            name=name,
            kind=Kind.OPAQUE,
            kernel=kernel,
            shape=shape,
            dtype=dt.require_floating(name, dt.matmul),
            vjp=vjp,
            autocast=Autocast.LOW_PRECISION,
            contiguous_result=True,
        )
    )


conv2d = _record("conv2d", _conv2d_kernel, _conv2d_shape, (_conv2d_grad_x, _conv2d_grad_w))
conv2d_input_grad = _record(
    "conv2d_input_grad", _input_grad_kernel, _input_grad_shape, (_input_grad_grad_dy, _input_grad_grad_w)
)
conv2d_weight_grad = _record(
    "conv2d_weight_grad", _weight_grad_kernel, _weight_grad_shape, (_weight_grad_grad_x, _weight_grad_grad_dy)
)

__all__ = ["conv2d", "conv2d_input_grad", "conv2d_weight_grad", "NO_PADDING"]
