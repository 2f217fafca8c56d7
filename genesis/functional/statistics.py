"""Order statistics and NaN-ignoring reductions: median, mode, quantile, nansum, nanmean, count_nonzero.

median, mode and quantile sort with the `argsort` primitive and gather the
chosen values from the input, so their gradient reaches exactly the elements
they picked (interpolated quantiles split it between the two neighbours).
NaN sorts last: a row's first NaN sits at n - (number of NaNs), which is where
median and quantile look when a row holds one (their answer is NaN), and the
nan* forms count only the values before it.
"""

from __future__ import annotations

from collections import namedtuple

from genesis import dtypes
from genesis.arguments import is_tensor, normalize_dim
from genesis.creation import arange, full, tensor
from genesis.dispatch import is_tracing
from genesis.functional.elementwise import ceil, clamp, floor, isnan, where
from genesis.functional.indexing import gather
from genesis.functional.numeric import round
from genesis.functional.reduction import argmax, sum
from genesis.functional.scan import cummax
from genesis.functional.shape import cat, movedim, narrow, reshape, squeeze, unsqueeze
from genesis.functional.sorting import argsort

# the names torch.return_types gives these pairs
Median = namedtuple("median", ["values", "indices"])
NanMedian = namedtuple("nanmedian", ["values", "indices"])
Mode = namedtuple("mode", ["values", "indices"])

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def nansum(x, dim=None, keepdim=False, *, dtype=None):
    """sum, with NaN counted as 0."""
    if x.dtype.is_floating_point:
        x = where(isnan(x), 0.0, x).to(x.dtype)
    return sum(x, dim, keepdim, dtype=dtype)


def nanmean(x, dim=None, keepdim=False, *, dtype=None):
    """The mean of the values that are not NaN (NaN where there are none)."""
    if dtype is not None:
        x = x.to(dtype)
    if not x.dtype.is_floating_point:
        raise TypeError(f"nanmean needs a floating-point tensor, got {x.dtype.name}; cast it first, e.g. x.float()")
    counted = sum(~isnan(x), dim, keepdim)
    return nansum(x, dim, keepdim) / counted.to(x.dtype)


def count_nonzero(x, dim=None):
    return sum(x != 0, dim)


def _along(x, dim):
    """x as a 1-D tensor for a 0-d x (whose one dim is 0 or -1, as PyTorch allows), and its dim."""
    if x.ndim == 0:
        return reshape(x, (1,)), 0
    return x, normalize_dim(dim, x.ndim)


def _nan_count(values, dim):
    if not values.dtype.is_floating_point:
        return full(
            tuple(1 if d == dim % values.ndim else n for d, n in enumerate(values.shape)),
            0,
            dtype=dtypes.int64,
            device=values.device,
        )
    return sum(isnan(values), dim, keepdim=True)


def _pick(x, dim, order, position, keepdim, zero_dim):
    """The element at sorted `position` (a keepdim index tensor) of each slice, and where it was in x."""
    indices = gather(order, dim, position)
    values = gather(x, dim, indices)
    if zero_dim:
        return reshape(values, ()), reshape(indices, ())
    if not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return values, indices


def _median(x, dim, keepdim, ignore_nan, name):
    if dim is None:
        if x.numel() == 0:
            return full((), float("nan"), dtype=x.dtype)
        return _median(reshape(x, (-1,)), 0, False, ignore_nan, name).values
    zero_dim = x.ndim == 0
    x, dim = _along(x, dim)
    size = x.shape[dim]
    if size == 0:
        raise IndexError(f"{name}: cannot take the median of an empty dim {dim} (shape {list(x.shape)})")
    order = argsort(x, dim)
    nans = _nan_count(x, dim)
    if ignore_nan:  # the lower median of the values before the NaNs (position 0, a NaN, when all are NaN)
        position = clamp((size - nans - 1) // 2, min=0)
    else:  # the first NaN where there is one
        position = where(nans > 0, size - nans, (size - 1) // 2)
    return (NanMedian if ignore_nan else Median)(*_pick(x, dim, order, position, keepdim, zero_dim))


def median(x, dim=None, keepdim=False):
    """The lower of the two middle values (NaN where a slice holds one); with `dim`, also their positions."""
    return _median(x, dim, keepdim, False, "median")


def nanmedian(x, dim=None, keepdim=False):
    """median over the values that are not NaN."""
    return _median(x, dim, keepdim, True, "nanmedian")


def mode(x, dim=-1, keepdim=False):
    """The most frequent value of each slice (the smallest among equally frequent ones) and its last
    position. Sorted, equal values form runs; a running count from each run's start finds the longest."""
    zero_dim = x.ndim == 0
    x, dim = _along(x, dim)
    size = x.shape[dim]
    if size == 0:
        raise IndexError(f"mode: cannot take the mode of an empty dim {dim} (shape {list(x.shape)})")
    order = argsort(x, dim)
    ordered = gather(x, dim, order)
    starts_run = cat(
        [
            full(ordered.shape[:dim] + (1,) + ordered.shape[dim + 1 :], True, dtype=dtypes.bool_, device=x.device),
            narrow(ordered, dim, 1, size - 1) != narrow(ordered, dim, 0, size - 1),
        ],
        dim,
    )
    shape = [1] * x.ndim
    shape[dim] = size
    positions = reshape(arange(size, device=x.device), tuple(shape))
    run_start = cummax(where(starts_run, positions, 0), dim).values
    # the first position with the longest run so far ends the earliest (smallest) of the longest runs
    position = argmax(positions - run_start, dim, keepdim=True)
    return Mode(*_pick(x, dim, order, position, keepdim, zero_dim))


def _check_q(q, x):
    if is_tensor(q):
        if q.ndim > 1:
            raise ValueError(f"quantile: q must be a number, a 0-d or a 1-d tensor, got shape {list(q.shape)}")
        if q.dtype is not x.dtype:
            raise TypeError(f"quantile: q ({q.dtype.name}) must have the input's dtype ({x.dtype.name})")
        if not is_tracing() and q.numel() and not bool(((q >= 0) & (q <= 1)).all().item()):
            raise ValueError("quantile: q values must be in the range [0, 1]")
        return q, q.ndim == 0
    if not 0 <= q <= 1:
        raise ValueError(f"quantile: q must be in the range [0, 1], got {q}")
    return tensor(float(q), dtype=x.dtype, device=x.device), True


def _quantile(x, q, dim, keepdim, interpolation, ignore_nan, name):
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} needs a floating-point input, got {x.dtype.name}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{name}: interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {interpolation!r}")
    q, scalar_q = _check_q(q, x)
    reduced_shape = None
    if dim is None:
        reduced_shape = (1,) * x.ndim if keepdim else ()
        x, dim = reshape(x, (-1,)), 0
    else:
        x, dim = _along(x, dim)
        reduced_shape = tuple(1 if d == dim else n for d, n in enumerate(x.shape)) if keepdim else None
    size = x.shape[dim]
    if size == 0:
        raise IndexError(f"{name}: cannot take a quantile of an empty dim (shape {list(x.shape)})")
    rows = movedim(x, dim, -1)  # (..., n): each row sorted, then read at the ranks q * (count - 1)
    order = argsort(rows, -1)
    nans = _nan_count(rows, -1)
    last = (size - nans - 1) if ignore_nan else full((), size - 1, dtype=dtypes.int64)
    rank = reshape(q, (-1,)) * clamp(last, min=0).to(x.dtype)  # (..., Q)
    if not ignore_nan:  # a row holding a NaN reads its last (sorted) element: a NaN
        rank = where(nans > 0, (size - 1) * 1.0, rank).to(x.dtype)
    if interpolation == "nearest":
        rank = round(rank)
    below, above = floor(rank), ceil(rank)
    take = {"lower": (below, below), "higher": (above, above)}.get(interpolation, (below, above))
    low, high = (gather(rows, -1, gather(order, -1, p.to(dtypes.int64))) for p in take)
    if interpolation == "midpoint":
        out = low + (high - low) * 0.5
    elif interpolation == "linear":
        out = low + (high - low) * (rank - below)
    else:
        out = low
    out = movedim(out, -1, 0)  # (Q, ...) as PyTorch lays it out
    if reduced_shape is not None:
        out = reshape(out, (out.shape[0],) + reduced_shape)
    elif keepdim:
        out = unsqueeze(out, dim + 1)
    return squeeze(out, 0) if scalar_q else out


def quantile(x, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles of each slice (of all values for dim=None); NaN where a slice holds a NaN."""
    return _quantile(x, q, dim, keepdim, interpolation, False, "quantile")


def nanquantile(x, q, dim=None, keepdim=False, *, interpolation="linear"):
    """quantile over the values that are not NaN (NaN where there are none)."""
    return _quantile(x, q, dim, keepdim, interpolation, True, "nanquantile")


__all__ = [
    "nansum",
    "nanmean",
    "count_nonzero",
    "median",
    "nanmedian",
    "mode",
    "quantile",
    "nanquantile",
    "Median",
    "NanMedian",
    "Mode",
]
