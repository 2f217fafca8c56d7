"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: window extraction + a reduction.

The windows are the same strided views conv2d uses, stacked on a last dim of
size kh*kw. max_pool2d reduces with `max(dim=-1)` (argmax + gather), so the
gradient goes to the first maximum of each window, as PyTorch's does, and
the argmax also gives `return_indices`. Padding is -inf for max and zeros for
average; the average's divisor is a constant computed from the shapes alone
(PyTorch's rule for count_include_pad and ceil_mode), so no host read happens.
"""

from __future__ import annotations

from genesis import functional as GF
from genesis.creation import arange, tensor
from genesis.errors import ShapeError
from genesis.nn.functional.conv import pair, window_slices


def _pool_output_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling_output_shape: with ceil_mode, the last window must start inside input + left pad."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


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
    h, w = x.shape[-2:]
    out = tuple(
        _pool_output_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip((h, w), kernel, stride, pads, dilation)
    )
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(f"{name}: the output size {out} is too small for input {list(x.shape)} and kernel {kernel}")
    # pad right/bottom as far as the last window reaches (ceil_mode may reach past the padding)
    extra = tuple(
        max(0, (o - 1) * s + d * (k - 1) + 1 - n - p)
        for o, s, d, k, n, p in zip(out, stride, dilation, kernel, (h, w), pads)
    )
    return kernel, stride, pads, dilation, out, extra


def _windows(x, kernel, stride, pads, dilation, out, extra, value):
    batched = x if x.ndim == 4 else GF.unsqueeze(x, 0)
    widths = (pads[1], extra[1], pads[0], extra[0])
    padded = GF.pad(batched, widths, value=value) if any(widths) else batched
    return GF.stack(window_slices(padded, kernel, stride, dilation, out), dim=-1)


def _restore(out, x):
    return GF.squeeze(out, 0) if x.ndim == 3 else out


def max_pool2d(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False, return_indices: bool = False
):
    kernel, stride, pads, dilation, out, extra = _setup(
        x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d"
    )
    windows = _windows(x, kernel, stride, pads, dilation, out, extra, float("-inf"))
    values, positions = GF.max(windows, -1)
    values = _restore(values, x)
    if not return_indices:
        return values

    # flat index into the unpadded H*W plane, as PyTorch's max_pool2d_with_indices returns
    kernel_row = positions // kernel[1]
    kernel_col = positions - kernel_row * kernel[1]
    row = GF.reshape(arange(out[0]) * stride[0] - pads[0], (out[0], 1)) + kernel_row * dilation[0]
    col = GF.reshape(arange(out[1]) * stride[1] - pads[1], (1, out[1])) + kernel_col * dilation[1]
    return values, _restore(row * x.shape[-1] + col, x)


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
    sums = GF.sum(_windows(x, kernel, stride, pads, dilation, out, extra, 0.0), -1)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor must be not zero")
        return _restore(sums / float(divisor_override), x)
    rows = _average_divisor(x.shape[-2], kernel[0], stride[0], pads[0], out[0], count_include_pad)
    cols = _average_divisor(x.shape[-1], kernel[1], stride[1], pads[1], out[1], count_include_pad)
    if len(set(rows)) == 1 and len(set(cols)) == 1:
        return _restore(sums / float(rows[0] * cols[0]), x)
    divisor = tensor([[float(r * c) for c in cols] for r in rows], dtype=sums.dtype)
    return _restore(sums / divisor, x)


def _adaptive_bounds(size, out):
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    """Average over PyTorch's adaptive windows [floor(i*H/out), ceil((i+1)*H/out))."""
    if x.ndim not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d expects a 3-D or 4-D input, got {list(x.shape)}")
    h, w = x.shape[-2:]
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    out_h, out_w = out_h or h, out_w or w  # None keeps the input size
    if h % out_h == 0 and w % out_w == 0:
        return avg_pool2d(x, (h // out_h, w // out_w))
    rows = []
    for top, bottom in _adaptive_bounds(h, out_h):
        cells = [GF.mean(x[..., top:bottom, left:right], (-2, -1)) for left, right in _adaptive_bounds(w, out_w)]
        rows.append(GF.stack(cells, dim=-1))
    return GF.stack(rows, dim=-2)


__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]
