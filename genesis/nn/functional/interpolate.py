"""interpolate (nn.Upsample): resampling along each spatial dim in turn, PyTorch's index rules.

Nearest, linear, bilinear and trilinear resampling are separable: along one dim, an output
position reads one source position (nearest) or two with weights (linear). The positions and
weights depend on the sizes alone, so they are computed on the host once per call, as PyTorch's
`area_pixel_compute_source_index` does, and the resampling is index_select and arithmetic: it
differentiates, traces and compiles like any composite.
"""

from __future__ import annotations

import math

import numpy as np

from genesis import functional as GF
from genesis.creation import tensor
from genesis.dtypes import float64, int64
from genesis.errors import ShapeError

_MODES = {"nearest": None, "nearest-exact": None, "linear": 1, "bilinear": 2, "trilinear": 3}


def _scale(in_size, out_size, align_corners, scale_factor):
    """How far apart output positions are in the input (PyTorch's area_pixel_compute_scale)."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale_factor if scale_factor is not None and scale_factor > 0 else in_size / out_size


def _nearest(in_size, out_size, scale, exact):
    positions = (np.arange(out_size) + (0.5 if exact else 0.0)) * np.float32(scale)
    return np.minimum(np.floor(positions.astype(np.float32)).astype(np.int64), in_size - 1)


def _linear(in_size, out_size, scale, align_corners, precision):
    """(lower positions, upper positions, weight of the upper) along one dim, computed in `precision`
    (PyTorch's opmath: double for float64 inputs, float for the others)."""
    dst = np.arange(out_size, dtype=precision)
    scale = precision(scale)
    source = dst * scale if align_corners else np.maximum((dst + precision(0.5)) * scale - precision(0.5), 0)
    lower = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    return lower, upper, (source - lower).astype(precision)


def _along(x, dim, positions):
    return GF.index_select(x, dim, tensor(positions, dtype=int64, device=x.device))


def _output_sizes(x, spatial, size, scale_factor, name):
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{name}: give exactly one of size and scale_factor")
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        factors = (None,) * spatial
    else:
        factors = (scale_factor,) * spatial if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        sizes = tuple(int(math.floor(n * f)) for n, f in zip(x.shape[2:], factors))
    if len(sizes) != spatial or len(factors) != spatial:
        raise ValueError(
            f"{name}: input of shape {list(x.shape)} has {spatial} spatial dims, got size={size} "
            f"and scale_factor={scale_factor}"
        )
    if any(n <= 0 for n in sizes):
        raise ValueError(f"{name}: the output size {list(sizes)} has no elements (input {list(x.shape)})")
    return sizes, factors


def interpolate(
    x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None, antialias=False
):
    """PyTorch's interpolate for modes nearest, nearest-exact, linear, bilinear and trilinear, over
    (N, C, *spatial) inputs with 1 to 3 spatial dims."""
    if mode not in _MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; choose one of {sorted(_MODES)}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    spatial = x.ndim - 2
    if spatial not in (1, 2, 3) or (_MODES[mode] is not None and _MODES[mode] != spatial):
        want = "(N, C, *spatial) with 1 to 3 spatial dims" if _MODES[mode] is None else f"{_MODES[mode] + 2}-D"
        raise ShapeError(f"interpolate: mode {mode!r} expects a {want} input, got shape {list(x.shape)}")
    linear = _MODES[mode] is not None
    if not linear and align_corners is not None:
        raise ValueError(
            "align_corners option can only be set with the interpolating modes: linear | bilinear | trilinear"
        )
    align_corners = bool(align_corners)
    sizes, factors = _output_sizes(x, spatial, size, scale_factor, "interpolate")
    if recompute_scale_factor:
        factors = (None,) * spatial
    out = x
    for axis, (in_size, out_size, factor) in enumerate(zip(x.shape[2:], sizes, factors)):
        dim = axis + 2
        scale = _scale(in_size, out_size, align_corners if linear else False, factor)
        if not linear:
            out = _along(out, dim, _nearest(in_size, out_size, scale, mode == "nearest-exact"))
            continue
        precision = np.float64 if x.dtype is float64 else np.float32
        lower, upper, weight = _linear(in_size, out_size, scale, align_corners, precision)
        shape = (out_size,) + (1,) * (x.ndim - dim - 1)
        upper_weight = GF.reshape(tensor(weight, dtype=out.dtype, device=out.device), shape)
        out = _along(out, dim, lower) * (1 - upper_weight) + _along(out, dim, upper) * upper_weight
    return out


def upsample(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(x, size, scale_factor, mode, align_corners)


__all__ = ["interpolate", "upsample"]
