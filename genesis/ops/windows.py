"""Sliding windows over the last two dims: im2col, col2im and max-pooling.

A convolution is im2col + matmul and a pooling is a reduction over windows
(nn/functional/conv.py, pooling.py). Built from kh*kw strided slices and a
stack, the columns cost a copy per slice, and their backward a zeros tensor
and a scatter per slice; max-pooling took an argmax over a stacked copy and
scattered its gradient with np.add.at (together 85 of the 134 ms of a CNN step
in benchmarks/train_step.py). These three ops do the same work directly, in C
where the ops' C library can be had (ops/native/windows.c, ops/native_kernels.py),
else in numpy, with the same bits:

- `im2col(x)`: x (N, C, H, W), already padded, to the columns (N, C, kh*kw,
  Ho, Wo), row-major over the kernel: one strided view, one copy. Its vjp is
  col2im. With `batch_inside` the columns are (C, kh*kw, N, Ho, Wo) instead, the
  same copy in another order: flattened to (C*kh*kw, N*Ho*Wo) they make a
  convolution one GEMM over the whole batch, and its weight gradient one GEMM
  too, where (N, C*kh*kw, Ho*Wo) takes N small products and a sum.
- `col2im(cols, size=(H, W))`: the adjoint, summing each window position's
  values back into an (N, C, H, W) zeros array (in float32 for fp16/bf16, then
  rounded once), from either layout. Its vjp is im2col.
- `max_pool2d_indices(x)`: for each window, the position of its maximum in the
  H*W plane (PyTorch's `return_indices`), with PyTorch's rule: the first
  maximum in window order wins, and a NaN wins over numbers (the last NaN).
  Padding never wins. Integer, no gradient: with `return_indices` the values
  are a gather of the plane at these positions, whose vjp scatters the
  gradient back.
- `max_pool2d(x)`: the values at those positions, in one pass over x. Its
  vjp is `max_pool2d_backward(dy, x)`, which finds the positions again from
  x and adds dy there (in window order, as the scatter would), so a forward
  keeps only its input; that op's own vjp reads its gradient at the positions.

Attributes are tuples (kh, kw), (sh, sw), (dh, dw), and for the pooling op
(ph, pw) and ceil_mode; the shape rules check what the functional layer
checks, so a traced program fails with the same message.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from genesis.dtypes import BOOL, int64
from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops.movement import gather
from genesis.ops.native_kernels import NativeKernels, geometry, run
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.runtime import memory

# the three ops' kernels in C (ops/native/windows.c), where a library can be had
C_KERNELS = NativeKernels(
    "windows.c",
    {
        "g_im2col": "pppii",
        "g_col2im": "pppii",
        "g_max_pool2d_positions": "pppii",
        "g_max_pool2d": "pppii",
        "g_max_pool2d_backward": "ppppii",
        "g_conv2d": "ppppii",
        "g_conv2d_input_grad": "ppppii",
        "g_conv2d_weight_grad": "ppppii",
        "g_winograd": "ppppii",
        "g_winograd_filters": "pppii",
        "g_winograd_weight_grad": "ppppii",
        "g_winograd_filter_grads": "pppii",
    },
    headers=("blas_call.h",),
)


def conv_output_size(size: int, kernel: int, stride: int, padding_total: int, dilation: int) -> int:
    return (size + padding_total - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape: with ceil_mode, the last window must start inside input + left pad."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _four_dims(name, shape) -> None:
    if len(shape) != 4:
        raise ShapeError(f"{name} expects a 4-D (N, C, H, W) tensor, got shape {list(shape)}")


NO_PADDING = (0, 0, 0, 0)


def _window_counts(name, shape, kernel, stride, dilation, padding=NO_PADDING) -> tuple[int, int]:
    _four_dims(name, shape)
    totals = (padding[0] + padding[1], padding[2] + padding[3])
    out = tuple(conv_output_size(*args) for args in zip(shape[2:], kernel, stride, totals, dilation))
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(
            f"{name}: a {kernel[0]}x{kernel[1]} kernel with dilation {dilation} does not fit in an input of "
            f"shape {list(shape)}" + (f" padded by {padding} (top, bottom, left, right)" if any(padding) else "")
        )
    return out


def _windows(x, kernel, stride, dilation, out):
    """The strided view (N, C, kh, kw, Ho, Wo) of every window of x."""
    n, c = x.shape[:2]
    s0, s1, s2, s3 = x.strides
    shape = (n, c, kernel[0], kernel[1], out[0], out[1])
    strides = (s0, s1, s2 * dilation[0], s3 * dilation[1], s2 * stride[0], s3 * stride[1])
    return as_strided(x, shape, strides, writeable=False)


_BATCH_INSIDE = (1, 2, 3, 0, 4, 5)  # (N, C, kh, kw, Ho, Wo) -> (C, kh, kw, N, Ho, Wo)


def _im2col_shape(shape, *, kernel, stride, dilation, batch_inside, padding=NO_PADDING):
    out = _window_counts("im2col", shape, kernel, stride, dilation, padding)
    n, c, kk = shape[0], shape[1], kernel[0] * kernel[1]
    return (c, kk, n, *out) if batch_inside else (n, c, kk, *out)


def _im2col_kernel(x, *, kernel, stride, dilation, batch_inside, padding=NO_PADDING):
    out = _window_counts("im2col", x.shape, kernel, stride, dilation, padding)
    windows = dict(kernel=kernel, stride=stride, dilation=dilation, batch_inside=batch_inside, padding=padding)
    shape = _im2col_shape(x.shape, **windows)
    native = C_KERNELS.kernel("g_im2col", x.dtype)
    if native is not None:
        x = np.ascontiguousarray(x)
        columns = memory.empty(shape, x.dtype)
        sizes = _window_geometry(x.shape, kernel, stride, dilation, out, batch_inside, padding)
        run(native, (x, columns, sizes), x.shape[0] * x.shape[1], columns.size // max(1, x.shape[0] * x.shape[1]))
        return columns
    if any(padding):
        top, bottom, left, right = padding
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    windows = _windows(x, kernel, stride, dilation, out)
    columns = np.ascontiguousarray(windows.transpose(_BATCH_INSIDE) if batch_inside else windows)
    return columns.reshape(shape)


def _window_geometry(shape, kernel, stride, dilation, out, batch_inside, padding):
    return geometry(*shape, *kernel, *stride, *dilation, *out, int(batch_inside), padding[0], padding[2])


def _col2im_shape(shape, *, size, kernel, stride, dilation, batch_inside, padding=NO_PADDING):
    layout = "(C, kh*kw, N, Ho, Wo)" if batch_inside else "(N, C, kh*kw, Ho, Wo)"
    if len(shape) != 5:
        raise ShapeError(f"col2im expects 5-D columns {layout}, got shape {list(shape)}")
    full = (shape[2], shape[0], *size) if batch_inside else (shape[0], shape[1], *size)
    windows = dict(kernel=kernel, stride=stride, dilation=dilation, batch_inside=batch_inside, padding=padding)
    if _im2col_shape(full, **windows) != tuple(shape):
        raise ShapeError(
            f"col2im: columns {layout} of shape {list(shape)} are not the windows of a {list(full)} input with "
            f"kernel {kernel}, stride {stride}, dilation {dilation} and padding {padding}"
        )
    return full


def _col2im_kernel(columns, *, size, kernel, stride, dilation, batch_inside, padding=NO_PADDING):
    native = C_KERNELS.kernel("g_col2im", columns.dtype)
    if native is not None:
        columns = np.ascontiguousarray(columns)
        n, c = (columns.shape[2], columns.shape[0]) if batch_inside else columns.shape[:2]
        image = memory.empty((n, c, *size), columns.dtype)
        sizes = _window_geometry(image.shape, kernel, stride, dilation, columns.shape[3:], batch_inside, padding)
        run(native, (columns, image, sizes), n * c, columns.size // max(1, n * c))
        return image
    top, bottom, left, right = padding
    padded = (size[0] + top + bottom, size[1] + left + right)
    # The image is summed in the columns' own order of channels and batch, so every add reads the
    # columns contiguously; batch-inside columns make a (C, N, H, W) image, transposed once at the end
    # (one copy, against strided reads in all kh*kw adds: 24 against 37 ms for 64x32x16x16, 3x3).
    if batch_inside:  # (C, kh*kw, N, Ho, Wo) -> (kh, kw, C, N, Ho, Wo): a view
        c, _, n, ho, wo = columns.shape
        columns = columns.reshape(c, kernel[0], kernel[1], n, ho, wo).transpose(1, 2, 0, 3, 4, 5)
    else:  # (N, C, kh*kw, Ho, Wo) -> (kh, kw, N, C, Ho, Wo)
        n, c, _, ho, wo = columns.shape
        columns = columns.reshape(n, c, kernel[0], kernel[1], ho, wo).transpose(2, 3, 0, 1, 4, 5)
    image = np.zeros((c, n, *padded) if batch_inside else (n, c, *padded), columns.dtype)
    for i in range(kernel[0]):
        row = i * dilation[0]
        for j in range(kernel[1]):
            column = j * dilation[1]
            image[
                :,
                :,
                row : row + (ho - 1) * stride[0] + 1 : stride[0],
                column : column + (wo - 1) * stride[1] + 1 : stride[1],
            ] += columns[i, j]
    image = image[:, :, top : top + size[0], left : left + size[1]]
    return np.ascontiguousarray(image.transpose(1, 0, 2, 3) if batch_inside else image)


def pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode):
    """(Ho, Wo) of pooling (N, C, H, W) and how far right/bottom the last window reaches past the input
    and its padding (ceil_mode may reach past the padding)."""
    out = tuple(
        pool_output_size(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation)
    )
    extra = tuple(
        max(0, (o - 1) * s + d * (k - 1) + 1 - n - p)
        for o, s, d, k, n, p in zip(out, stride, dilation, kernel, shape[2:], padding)
    )
    return out, extra


def _max_pool_shape(shape, *, kernel, stride, padding, dilation, ceil_mode):
    _four_dims("max_pool2d", shape)
    out, _ = pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode)
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(f"max_pool2d: the output size {out} is too small for input {list(shape)} and kernel {kernel}")
    return (shape[0], shape[1], *out)


def _lowest(dtype):
    return np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf  # bfloat16's kind is "V"


def _max_pool_indices_kernel(x, *, kernel, stride, padding, dilation, ceil_mode):
    native = C_KERNELS.kernel("g_max_pool2d_positions", x.dtype)
    if native is None:
        return _numpy_positions(x, kernel, stride, padding, dilation, ceil_mode)
    x = np.ascontiguousarray(x)
    out, _ = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    positions = memory.empty((*x.shape[:2], *out), np.int64)
    _run_pool(native, (x, positions), x, kernel, stride, padding, dilation, out)
    return positions


def _run_pool(native, arrays, x, kernel, stride, padding, dilation, out) -> None:
    """A pooling kernel of windows.c over the (n, c) planes of x, its geometry last among its arrays."""
    sizes = geometry(*x.shape[2:], *kernel, *stride, *padding, *dilation, *out)
    planes = x.shape[0] * x.shape[1]
    run(native, (*arrays, sizes), planes, out[0] * out[1] * kernel[0] * kernel[1])


def _max_pool_kernel(x, *, kernel, stride, padding, dilation, ceil_mode):
    """Each window's maximum: the value at its position, from one pass over x in C."""
    native = C_KERNELS.kernel("g_max_pool2d", x.dtype)
    if native is None:
        positions = _numpy_positions(x, kernel, stride, padding, dilation, ceil_mode)
        planes = x.reshape(*x.shape[:2], -1)
        return np.take_along_axis(planes, positions.reshape(*x.shape[:2], -1), axis=2).reshape(positions.shape)
    x = np.ascontiguousarray(x)
    out, _ = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    values = memory.empty((*x.shape[:2], *out), x.dtype)
    _run_pool(native, (x, values), x, kernel, stride, padding, dilation, out)
    return values


def _max_pool_backward_kernel(g, x, *, kernel, stride, padding, dilation, ceil_mode):
    """g added into zeros of x's shape at each window's position (found again from x), window after
    window; fp16/bf16 add in float32."""
    dtype = np.float32 if g.dtype.itemsize == 2 else g.dtype
    g = g.astype(dtype, copy=False)
    out, _ = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    native = C_KERNELS.kernel("g_max_pool2d_backward", dtype) if x.dtype == dtype else None
    grad = memory.empty(x.shape, dtype)
    if native is not None:
        arrays = (np.ascontiguousarray(g), np.ascontiguousarray(x), grad)
        _run_pool(native, arrays, x, kernel, stride, padding, dilation, out)
        return grad
    positions = _numpy_positions(x, kernel, stride, padding, dilation, ceil_mode)
    planes, area = x.shape[0] * x.shape[1], x.shape[2] * x.shape[3]
    flat = positions.reshape(planes, -1) + (np.arange(planes, dtype=np.int64) * area)[:, None]
    grad.fill(0)
    np.add.at(grad.reshape(-1), flat.reshape(-1), g.reshape(-1))
    return grad


def _numpy_positions(x, kernel, stride, padding, dilation, ceil_mode):
    w = x.shape[3]
    out, extra = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    widths = ((0, 0), (0, 0), (padding[0], padding[0] + extra[0]), (padding[1], padding[1] + extra[1]))
    padded = np.pad(x, widths, constant_values=_lowest(x.dtype)) if any(map(any, widths)) else x
    windows = _windows(padded, kernel, stride, dilation, out)
    top, left = _window_starts(out, stride, padding)
    corner = top.reshape(-1, 1) * w + left
    offsets = [i * dilation[0] * w + j * dilation[1] for i in range(kernel[0]) for j in range(kernel[1])]
    winner, best = _window_winners(windows, kernel, offsets, nan_wins=False)
    if x.dtype.kind not in "iu" and np.isnan(best).any():  # np.maximum carried a NaN: find the last one
        winner, _ = _window_winners(windows, kernel, offsets, nan_wins=True)
    positions = np.add(winner, corner, dtype=np.int64)
    # a window of the lowest value only gives its first position inside the image, as PyTorch's does
    first_top, first_left = (np.where(starts < 0, starts % d, starts) for starts, d in zip((top, left), dilation))
    return np.where(best == _lowest(x.dtype), first_top.reshape(-1, 1) * w + first_left, positions)


def _window_starts(out, stride, padding):
    """Where each row and column of windows starts, padding counted negative."""
    return [np.arange(o) * s - p for o, s, p in zip(out, stride, padding)]


def _window_winners(windows, kernel, offsets, nan_wins):
    """Per window, the offset (in the H*W plane, from its corner) of its first maximum in window order,
    or with `nan_wins` of its last NaN; and the maxima. Each window position's values are copied out
    of the strided view once, and every pass is a vectorised ufunc: masked copies (np.copyto's
    `where`) cost 5 ns an element. Offsets grow with the window position unless the dilation is wide
    against a narrow input, so the running winner is a running maximum of `wins * offset`;
    otherwise it is the position's number, looked up at the end."""
    increasing = all(a < b for a, b in itertools.pairwise(offsets))
    best = np.ascontiguousarray(windows[:, :, 0, 0])
    winner = np.zeros(best.shape, np.int32)
    for k in range(1, len(offsets)):
        values = np.ascontiguousarray(windows[:, :, k // kernel[1], k % kernel[1]])
        wins = values > best
        if nan_wins:
            wins |= np.isnan(values)
        np.maximum(best, values, out=best)
        np.maximum(winner, np.multiply(wins, offsets[k] if increasing else k, dtype=np.int32), out=winner)
    if not increasing:
        winner = np.asarray(offsets, np.int64)[winner]
    return winner, best


def _im2col_grad(g, out, x, *, kernel, stride, dilation, batch_inside, padding=NO_PADDING):
    windows = dict(kernel=kernel, stride=stride, dilation=dilation, batch_inside=batch_inside, padding=padding)
    return col2im(g, size=tuple(x.shape[2:]), **windows)


def _col2im_grad(g, out, columns, *, size, kernel, stride, dilation, batch_inside, padding=NO_PADDING):
    return im2col(g, kernel=kernel, stride=stride, dilation=dilation, batch_inside=batch_inside, padding=padding)


def _positions(inputs, **attrs):
    if inputs[0].dtype.category == BOOL:
        raise TypeError("max_pool2d is not defined for bool tensors")
    return None, int64


im2col = register(
    Op(
        name="im2col",
        kind=Kind.OPAQUE,
        kernel=_im2col_kernel,
        shape=_im2col_shape,
        dtype=dt.first_input,
        vjp=(_im2col_grad,),
        saves=frozenset(),
        upcasts_low_precision=False,  # it moves values, as a copy does
        contiguous_result=True,
    )
)
col2im = register(
    Op(
        name="col2im",
        kind=Kind.OPAQUE,
        kernel=_col2im_kernel,
        shape=_col2im_shape,
        dtype=dt.same,
        vjp=(_col2im_grad,),
        saves=frozenset(),
        autocast=Autocast.NONE,
        contiguous_result=True,
    )
)
max_pool2d_indices = register(
    Op(
        name="max_pool2d_indices",
        kind=Kind.OPAQUE,
        kernel=_max_pool_indices_kernel,
        shape=_max_pool_shape,
        dtype=_positions,
        upcasts_low_precision=False,  # compares values as they are
        contiguous_result=True,
    )
)


def _values(inputs, **attrs):
    _positions(inputs)
    return None, inputs[0].dtype


def _max_pool_backward_shape(g_shape, x_shape, **window):
    expected = _max_pool_shape(x_shape, **window)
    if tuple(g_shape) != expected:
        raise ShapeError(f"max_pool2d_backward: gradient {list(g_shape)} is not max_pool2d's output {list(expected)}")
    return tuple(x_shape)


def _max_pool_grad(g, out, x, **window):
    return max_pool2d_backward(g, x, **window)


def _max_pool_backward_grad(gg, out, g, x, **window):
    """The gradient's own vjp for g: gg read at each window's position, as the forward reads x."""
    n, c = x.shape[:2]
    positions = max_pool2d_indices(x, **window)
    picked = gather(gg.reshape((n, c, -1)), positions.reshape((n, c, -1)), dim=2)
    return picked.reshape(positions.shape)


max_pool2d = register(
    Op(
        name="max_pool2d",
        kind=Kind.OPAQUE,
        kernel=_max_pool_kernel,
        shape=_max_pool_shape,
        dtype=_values,
        vjp=(_max_pool_grad,),
        saves=frozenset({"inputs"}),
        upcasts_low_precision=False,  # picks values as they are
        contiguous_result=True,
    )
)
max_pool2d_backward = register(
    Op(
        name="max_pool2d_backward",
        kind=Kind.OPAQUE,
        kernel=_max_pool_backward_kernel,
        shape=_max_pool_backward_shape,
        dtype=lambda inputs, **window: (None, inputs[0].dtype),
        vjp=(_max_pool_backward_grad, None),
        saves=frozenset({"inputs"}),
        contiguous_result=True,
    )
)

__all__ = [
    "im2col",
    "col2im",
    "max_pool2d_indices",
    "max_pool2d",
    "max_pool2d_backward",
    "conv_output_size",
    "pool_output_size",
    "pool_geometry",
]
