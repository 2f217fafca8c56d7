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
from genesis.ops.native_kernels import with_gemm
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.ops.windows import C_KERNELS, NO_PADDING, col2im, conv_output_size, im2col
from genesis.runtime import memory
from genesis.runtime import native as runtime_native
from genesis.runtime.blocks import THREADS

MIN_COLUMNS = 256  # an item's product is at least this wide (images x Ho*Wo), where the batch allows
SCRATCH_BYTES = 1 << 21  # and its columns at most this big where that allows (a band of rows, else)

# Winograd's F(2x2, 3x3) (windows.c) for 3x3 convolutions of stride 1 with this many input and output
# channels or more (below, its 16 products are too thin to gain on im2col's one) and this many 2x2
# blocks of output per image. Measured on a 2-core AMD EPYC (Zen 4), batch 32, forward / input
# gradient / weight gradient in ms, im2col against Winograd: 512 channels at 4x4 17.4/17.1/18.2
# against 10.6/10.0/11.6 (PyTorch's oneDNN: 8.7/10.2/12.4), at 3x3 (4 blocks, 9 of whose 16 outputs
# are used) 12.1/12.5/12.5 against 10.8/10.0/11.3; 64 channels at 4x4 0.51/0.45/0.51 against
# 0.22/0.22/0.27. At 2x2 images (one block) the two tie and the weight gradient is slower. An item's
# 16 products are WINOGRAD_MIN_BLOCKS wide where the batch allows, and its transformed input and
# output at most WINOGRAD_SCRATCH (one image's, else im2col runs).
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_IMAGE_BLOCKS = 4
WINOGRAD_MIN_BLOCKS = 128
WINOGRAD_SCRATCH = 1 << 23


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
    found = with_gemm(C_KERNELS, "g_conv2d", dtype)
    return None if found is None or not runtime_native.pool_address() else found[1]


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
    address = gemm.address(dtype)
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


def _winograd_blocks(size, padding) -> tuple[tuple[int, int], int]:
    """The output size of a 3x3 convolution of stride 1 and its count of 2x2 blocks."""
    out = (size[0] + padding[0] + padding[1] - 2, size[1] + padding[2] + padding[3] - 2)
    return out, -(-out[0] // 2) * -(-out[1] // 2)


def _winograd_fits(x_shape, w_shape, stride, padding, dilation, dtype) -> bool:
    if tuple(w_shape[2:]) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
        return False
    channels, out_channels = x_shape[1], w_shape[0]
    out, blocks = _winograd_blocks(x_shape[2:], padding)
    scratch = 16 * (channels + out_channels) * blocks * np.dtype(dtype).itemsize
    wide = min(channels, out_channels) >= WINOGRAD_MIN_CHANNELS and blocks >= WINOGRAD_MIN_IMAGE_BLOCKS
    return wide and min(out) > 0 and scratch <= WINOGRAD_SCRATCH


def _winograd_plan(x_shape, out_channels, padding, dtype, gemm):
    """F(2x2, 3x3)'s sizes (windows.c's g) and its groups of images."""
    n, channels, h, width = x_shape
    out, blocks = _winograd_blocks((h, width), padding)
    per_image = 16 * (channels + out_channels) * blocks * np.dtype(dtype).itemsize  # its transforms' bytes
    per_group = max(1, min(-(-WINOGRAD_MIN_BLOCKS // blocks), n // THREADS, WINOGRAD_SCRATCH // per_image))
    address = gemm.address(dtype)
    sizes = [n, channels, h, width, out_channels, *out, padding[0], padding[2], per_group, address, int(gemm.ilp64)]
    return np.array(sizes, np.int64), -(-n // per_group)


def _winograd(x, w, padding, gemm, flipped=False):
    """conv2d of x (N, C, H, W) and a 3x3 w (O, C, 3, 3), stride 1, by F(2x2, 3x3) in C (windows.c);
    `flipped`: by w's filters transposed and turned half a turn (w (C, O, 3, 3)), the input gradient."""
    channels = x.shape[1]
    out_channels = w.shape[1] if flipped else w.shape[0]
    sizes, groups = _winograd_plan(x.shape, out_channels, padding, x.dtype, gemm)
    transformed = memory.empty((16, out_channels, channels), x.dtype)
    filters = (np.ascontiguousarray(w), transformed, np.array([out_channels, channels, int(flipped)], np.int64))
    _run("g_winograd_filters", filters, out_channels, min(out_channels, THREADS * 2), x.dtype)
    y = memory.empty((x.shape[0], out_channels, *sizes[5:7]), x.dtype)
    _run("g_winograd", (np.ascontiguousarray(x), transformed, y, sizes), groups, min(groups, THREADS * 2), x.dtype)
    return y


def _winograd_weight_grad(x, dy, padding, gemm):
    """conv2d_weight_grad of a 3x3 convolution of stride 1 by F(3x3, 2x2) in C (windows.c): one
    (16, O, C) partial per chunk of groups, added in chunk order and transformed into (O, C, 3, 3)."""
    channels, out_channels = x.shape[1], dy.shape[1]
    sizes, groups = _winograd_plan(x.shape, out_channels, padding, x.dtype, gemm)
    chunks = min(groups, THREADS)
    partials = np.empty((chunks, 16, out_channels, channels), x.dtype)
    arrays = (np.ascontiguousarray(x), np.ascontiguousarray(dy), partials, sizes)
    _run("g_winograd_weight_grad", arrays, groups, chunks, x.dtype)
    grad = memory.empty((out_channels, channels, 3, 3), x.dtype)
    counts = np.array([out_channels, channels, chunks], np.int64)
    _run("g_winograd_filter_grads", (partials, grad, counts), out_channels, min(out_channels, THREADS * 2), x.dtype)
    return grad


def _flipped_padding(padding):
    """The padding under which the input gradient of a 3x3 convolution of stride 1 is a convolution of
    dy with the flipped, transposed weight; None where one side would be negative."""
    flipped = tuple(2 - p for p in padding)
    return flipped if min(flipped) >= 0 else None


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
    if _winograd_fits(x.shape, w.shape, stride, padding, dilation, x.dtype):
        return _winograd(x, w, padding, gemm)
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
    turned = _flipped_padding(padding)  # dx is dy convolved with w's filters transposed and turned
    transposed = (w.shape[1], w.shape[0], *w.shape[2:])
    if turned is not None and _winograd_fits(dy.shape, transposed, stride, turned, dilation, dy.dtype):
        return _winograd(dy, w, turned, gemm, flipped=True)
    return _images_in_c("g_conv2d_input_grad", dy, w, shape, shape, (stride, padding, dilation), gemm)


def _weight_grad_kernel(x, dy, *, kernel, stride, padding, dilation):
    shape = _weight_grad_shape(x.shape, dy.shape, kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    gemm = _in_c(x.dtype)
    if gemm is None:
        columns = _columns(x, kernel, stride, padding, dilation)
        rows = dy.reshape(dy.shape[0], dy.shape[1], -1)
        return np.tensordot(rows, columns, axes=([0, 2], [0, 2])).astype(x.dtype, copy=False).reshape(shape)
    weight = (dy.shape[1], x.shape[1], *kernel)
    if _winograd_fits(x.shape, weight, stride, padding, dilation, x.dtype):
        return _winograd_weight_grad(x, dy, padding, gemm)
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
