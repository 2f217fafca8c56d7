"""Sliding windows over the last two dims (ops/windows.py): the pieces of convolution and pooling."""

from __future__ import annotations

from genesis.dispatch import apply
from genesis.ops import convolution as CV
from genesis.ops import windows as W
from genesis.ops.windows import conv_output_size, pool_geometry, pool_output_size  # noqa: F401  (the layers above size with them)


def im2col(x, kernel, stride=(1, 1), dilation=(1, 1), batch_inside=False, padding=(0, 0, 0, 0)):
    """The windows of x (N, C, H, W), seen padded with zeros by `padding` (top, bottom, left, right),
    as columns (N, C, kh*kw, Ho, Wo), or with `batch_inside` (C, kh*kw, N, Ho, Wo)."""
    return apply(
        W.im2col,
        x,
        kernel=tuple(kernel),
        stride=tuple(stride),
        dilation=tuple(dilation),
        batch_inside=bool(batch_inside),
        padding=tuple(int(p) for p in padding),
    )


def col2im(columns, size, kernel, stride=(1, 1), dilation=(1, 1), batch_inside=False, padding=(0, 0, 0, 0)):
    """im2col's adjoint: columns (N, C, kh*kw, Ho, Wo) (or with `batch_inside` (C, kh*kw, N, Ho, Wo))
    summed back into an (N, C, *size) image; values of window positions in the padding are dropped."""
    return apply(
        W.col2im,
        columns,
        size=tuple(size),
        kernel=tuple(kernel),
        stride=tuple(stride),
        dilation=tuple(dilation),
        batch_inside=bool(batch_inside),
        padding=tuple(int(p) for p in padding),
    )


def _ints(values) -> tuple:
    return tuple(int(v) for v in values)


def _window_attrs(stride, padding, dilation) -> dict:
    """The convolution ops' window attributes as the op records take them: tuples of ints."""
    return dict(stride=_ints(stride), padding=_ints(padding), dilation=_ints(dilation))


def convolve(x, weight, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)):
    """x (N, C, H, W) convolved with weight (O, C, kh, kw), zero-padded by `padding` (top, bottom,
    left, right): (N, O, Ho, Wo). One group; nn.functional.conv2d is the whole API."""
    return apply(CV.conv2d, x, weight, **_window_attrs(stride, padding, dilation))


def transpose_convolve(x, weight, size, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)):
    """convolve's adjoint: x (N, O, Ho, Wo) and weight (O, C, kh, kw) to the (N, C, *size) image whose
    convolution is x's shape (PyTorch's conv_transpose2d, one group)."""
    return apply(CV.conv2d_input_grad, x, weight, size=_ints(size), **_window_attrs(stride, padding, dilation))


def max_pool2d_indices(x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """Per window of x (N, C, H, W), where its maximum is in the H*W plane (int64)."""
    return apply(W.max_pool2d_indices, x, **_pool_attrs(kernel, stride, padding, dilation, ceil_mode))


def max_pool2d_values(x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """Per window of x (N, C, H, W), its maximum: the value at `max_pool2d_indices`'s position."""
    return apply(W.max_pool2d, x, **_pool_attrs(kernel, stride, padding, dilation, ceil_mode))


def _pool_attrs(kernel, stride, padding, dilation, ceil_mode) -> dict:
    return dict(
        kernel=tuple(kernel),
        stride=tuple(stride),
        padding=tuple(padding),
        dilation=tuple(dilation),
        ceil_mode=bool(ceil_mode),
    )


__all__: list[str] = []  # not re-exported as genesis.*: nn.functional's convolutions and poolings use them
