"""max_pool1d/2d, avg_pool1d/2d, adaptive_avg_pool2d over sliding windows (ops/windows.py).

max_pool2d is an op of its own (ops/windows.py): each window's maximum, the
first in window order as PyTorch's kernel picks it (a NaN wins), and its
gradient `max_pool2d_backward` adds the output's gradient at those positions,
found again from the input, so nothing but the input is kept for the backward.
With `return_indices` the positions are an op's output (`max_pool2d_indices`)
and the values a gather of the input's H*W plane at them, whose gradient is
the gather's scatter. avg_pool2d sums im2col's columns: padding is zeros,
and the divisor is a constant computed from the shapes alone (PyTorch's rule
for count_include_pad and ceil_mode), so no host read happens. The 1-d poolings are the 2-d ones
over a height of one.
"""

from __future__ import annotations

from genesis import functional as GF
from genesis.creation import tensor
from genesis.errors import ShapeError
from genesis.functional.windows import im2col, max_pool2d_indices, max_pool2d_values, pool_geometry
from genesis.nn.functional.conv import pair


def _setup(x, kernel_size, stride, padding, dilation, ceil_mode, name):
    if x.ndim not in (3, 4):
        raise ShapeError(f"{name} expects a 3-D (C, H, W) or 4-D (N, C, H, W) input, got {list(x.shape)}")
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else pair(stride, "stride")
    pads, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    for k, p, d in zip(kernel, pads, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise ValueError(
                f"{name}: pad should be at most half of effective kernel size, but got pad={p}, "
                f"kernel_size={k} and dilation={d}"
            )
    out, extra = pool_geometry((1, 1, *x.shape[-2:]), kernel, stride, pads, dilation, ceil_mode)
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(f"{name}: the output size {out} is too small for input {list(x.shape)} and kernel {kernel}")
    return kernel, stride, pads, dilation, out, extra


def _batched(x):
    return x if x.ndim == 4 else GF.unsqueeze(x, 0)


def _restore(out, x):
    return GF.squeeze(out, 0) if x.ndim == 3 else out


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False, return_indices: bool = False
):
    kernel, stride, pads, dilation, out, extra = _setup(
        x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d"
    )
    batched = _batched(x)
    if not return_indices:
        return _restore(max_pool2d_values(batched, kernel, stride, pads, dilation, ceil_mode), x)
    n, c, h, w = batched.shape
    positions = max_pool2d_indices(batched, kernel, stride, pads, dilation, ceil_mode)
    plane = GF.reshape(batched, (n, c, h * w))
    values = GF.reshape(GF.gather(plane, 2, GF.reshape(positions, (n, c, out[0] * out[1]))), (n, c, *out))
    return _restore(values, x), _restore(positions, x)


def _average_divisor(size, kernel, stride, pad, out, count_include_pad):
    """Per output position along one dim: how many window positions count (PyTorch's avg_pool2d rule)."""
    counts = []
    for o in range(out):
        start = o * stride - pad
        end = min(start + kernel, size + pad)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(min(end, size) - max(start, 0))
    return counts


def avg_pool2d(
    x,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override=None,
):
    kernel, stride, pads, dilation, out, extra = _setup(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    padding = (pads[0], extra[0], pads[1], extra[1])  # top, bottom, left, right
    sums = _restore(GF.sum(im2col(_batched(x), kernel, stride, dilation, padding=padding), 2), x)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor must be not zero")
        return sums / float(divisor_override)
    rows = _average_divisor(x.shape[-2], kernel[0], stride[0], pads[0], out[0], count_include_pad)
    cols = _average_divisor(x.shape[-1], kernel[1], stride[1], pads[1], out[1], count_include_pad)
    if len(set(rows)) == 1 and len(set(cols)) == 1:
        return sums / float(rows[0] * cols[0])
    divisor = tensor([[float(r * c) for c in cols] for r in rows], dtype=sums.dtype, device=sums.device)
    return sums / divisor


def _adaptive_bounds(size, out):
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    """Average over PyTorch's adaptive windows [floor(i*H/out), ceil((i+1)*H/out))."""
    out_h, out_w = _adaptive_size(x, output_size, "adaptive_avg_pool2d")
    h, w = x.shape[-2:]
    if h % out_h == 0 and w % out_w == 0:
        return avg_pool2d(x, (h // out_h, w // out_w))
    rows = []
    for top, bottom in _adaptive_bounds(h, out_h):
        cells = [GF.mean(x[..., top:bottom, left:right], (-2, -1)) for left, right in _adaptive_bounds(w, out_w)]
        rows.append(GF.stack(cells, dim=-1))
    return GF.stack(rows, dim=-2)


def _adaptive_size(x, output_size, name):
    if x.ndim not in (3, 4):
        raise ShapeError(f"{name} expects a 3-D or 4-D input, got {list(x.shape)}")
    h, w = x.shape[-2:]
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return out_h or h, out_w or w  # None keeps the input size


def adaptive_max_pool2d(x, output_size, return_indices: bool = False):
    """The maximum over PyTorch's adaptive windows [floor(i*H/out), ceil((i+1)*H/out)), and with
    `return_indices` its position in the H*W plane (the first maximum in the window)."""
    out_h, out_w = _adaptive_size(x, output_size, "adaptive_max_pool2d")
    h, w = x.shape[-2:]
    if h % out_h == 0 and w % out_w == 0:
        kernel = (h // out_h, w // out_w)
        return max_pool2d(x, kernel, kernel, return_indices=return_indices)
    batched = _batched(x)
    n, c = batched.shape[:2]
    rows = []
    for top, bottom in _adaptive_bounds(h, out_h):
        cells = []
        for left, right in _adaptive_bounds(w, out_w):
            window = GF.reshape(batched[:, :, top:bottom, left:right], (n, c, -1))
            local = GF.argmax(window, -1)
            row = local // (right - left)
            cells.append((top + row) * w + left + (local - row * (right - left)))
        rows.append(GF.stack(cells, dim=-1))
    positions = GF.stack(rows, dim=-2)
    plane = GF.reshape(batched, (n, c, h * w))
    values = GF.reshape(GF.gather(plane, 2, GF.reshape(positions, (n, c, out_h * out_w))), (n, c, out_h, out_w))
    if not return_indices:
        return _restore(values, x)
    return _restore(values, x), _restore(positions, x)


def adaptive_avg_pool1d(x, output_size):
    return _over_a_height_of_one(adaptive_avg_pool2d, x, "adaptive_avg_pool1d", (1, _first(output_size)))


def adaptive_max_pool1d(x, output_size, return_indices: bool = False):
    return _over_a_height_of_one(
        adaptive_max_pool2d, x, "adaptive_max_pool1d", (1, _first(output_size)), return_indices
    )


def _over_a_height_of_one(pool, x, name, *args, **kwargs):
    if x.ndim not in (2, 3):
        raise ShapeError(f"{name} expects a 2-D (C, L) or 3-D (N, C, L) input, got {list(x.shape)}")
    out = pool(GF.unsqueeze(x, -2), *args, **kwargs)
    if isinstance(out, tuple):
        return tuple(GF.squeeze(t, -2) for t in out)
    return GF.squeeze(out, -2)


def _stride_1d(stride):
    """A 1-d pooling's stride as the 2-d one's: None (or empty) is the kernel's."""
    if stride is None or (not isinstance(stride, int) and not len(stride)):
        return None
    return (1, _first(stride))


def _first(value):
    return value if isinstance(value, int) or value is None else tuple(value)[0]


def max_pool1d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False, return_indices: bool = False
):
    return _over_a_height_of_one(
        max_pool2d,
        x,
        "max_pool1d",
        (1, _first(kernel_size)),
        _stride_1d(stride),
        (0, _first(padding)),
        (1, _first(dilation)),
        ceil_mode,
        return_indices,
    )


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    return _over_a_height_of_one(
        avg_pool2d,
        x,
        "avg_pool1d",
        (1, _first(kernel_size)),
        _stride_1d(stride),
        (0, _first(padding)),
        ceil_mode,
        count_include_pad,
    )


__all__ = [
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
]
