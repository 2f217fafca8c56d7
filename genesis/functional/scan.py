"""Scans: cumsum and cumprod (primitives), and the composite scans built on them or on a log-step scan.

cummax, cummin and logcumsumexp combine a running value with a new one by an
associative rule, so they are Hillis-Steele scans: log2(n) rounds, each one
combining every position with the one `shift` places before it (positions
before `shift` keep their value, through a `where`). That is elementwise work
the compiler fuses, and no primitive of their own.
"""

from __future__ import annotations

from collections import namedtuple

from genesis import dtypes
from genesis.arguments import normalize_dim
from genesis.creation import arange
from genesis.dispatch import apply
from genesis.functional.elementwise import exp, isfinite, isnan, log, logical_and, logical_not, maximum, where
from genesis.functional.indexing import gather
from genesis.functional.shape import cat, narrow, reshape
from genesis.grad_mode import no_grad
from genesis.ops import scan as S

# the name torch.return_types gives these pairs
CumMax = namedtuple("cummax", ["values", "indices"])
CumMin = namedtuple("cummin", ["values", "indices"])


def _scan(op, x, dim, dtype):
    if dtype is not None:  # PyTorch casts the input first, so the running values have that dtype
        x = x.to(dtype)
    return apply(op, x, dim=normalize_dim(dim, x.ndim))


def cumsum(x, dim, *, dtype=None):
    return _scan(S.cumsum, x, dim, dtype)


def cumprod(x, dim, *, dtype=None):
    return _scan(S.cumprod, x, dim, dtype)


def _positions(x, dim):
    """0..n-1 along `dim`, shaped to broadcast against x."""
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    return reshape(arange(x.shape[dim], device=x.device), tuple(shape))


def _shifted(value, dim, shift):
    """value moved `shift` places later along `dim`; the first `shift` places hold values never read."""
    n = value.shape[dim]
    return cat([narrow(value, dim, 0, shift), narrow(value, dim, 0, n - shift)], dim)


def _prefix_scan(values, dim, combine):
    """Inclusive scan of a tuple of tensors by `combine(earlier, later) -> tuple`, in log2(n) rounds."""
    n = values[0].shape[dim]
    positions = _positions(values[0], dim)
    shift = 1
    while shift < n:
        earlier = tuple(_shifted(v, dim, shift) for v in values)
        has_earlier = positions >= shift
        values = tuple(where(has_earlier, c, v) for c, v in zip(combine(earlier, values), values))
        shift *= 2
    return values


def _running_extremum(x, dim, later_wins):
    """The positions of the running maximum (minimum): a later element wins ties, and NaN wins (the latest
    NaN), as in PyTorch's kernels. The values are gathered there, so the gradient reaches those elements."""
    dim = normalize_dim(dim, x.ndim)
    vector = reshape(x, (1,)) if x.ndim == 0 else x
    if vector.shape[dim] == 0:
        return vector, arange(0, device=x.device).reshape(vector.shape)

    def combine(earlier, later):
        (v1, i1), (v2, i2) = earlier, later
        take_later = isnan(v2) | logical_and(logical_not(isnan(v1)), later_wins(v2, v1))
        return where(take_later, v2, v1), where(take_later, i2, i1)

    with no_grad():
        positions = _positions(vector, dim).expand(vector.shape)
        _, indices = _prefix_scan((vector, positions), dim, combine)
    values = gather(vector, dim, indices)
    if x.ndim == 0:
        return reshape(values, ()), reshape(indices, ())
    return values, indices


def cummax(x, dim):
    return CumMax(*_running_extremum(x, dim, lambda new, old: new >= old))


def cummin(x, dim):
    return CumMin(*_running_extremum(x, dim, lambda new, old: new <= old))


def _log_add_exp(earlier, later):
    (a,), (b,) = earlier, later
    with no_grad():  # the shift steadies the numbers and cancels out of the value, so it takes no gradient
        shift = maximum(a, b)
        shift = where(isfinite(shift), shift, 0.0)
    return (log(exp(a - shift) + exp(b - shift)) + shift,)


def logcumsumexp(x, dim):
    """log(cumsum(exp(x))), computed without overflow: each round adds two partial sums in log space."""
    if not x.dtype.is_floating_point:
        x = x.to(dtypes.get_default_dtype())
    dim = normalize_dim(dim, x.ndim)
    if x.ndim == 0:
        return x.clone()
    work = x.to(dtypes.float32) if x.dtype.is_low_precision else x
    (out,) = _prefix_scan((work,), dim, _log_add_exp)
    return out.to(x.dtype)


def diff(x, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along `dim`, after `prepend` and `append` are joined on."""
    if x.ndim == 0:
        raise ValueError("diff needs a tensor with at least one dim, got a 0-d tensor")
    dim = normalize_dim(dim, x.ndim)
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = cat([p if p.ndim else p.expand(x.shape[:dim] + (1,) + x.shape[dim + 1 :]) for p in parts], dim)
    for _ in range(n):
        size = x.shape[dim]
        if size == 0:
            break
        later, earlier = narrow(x, dim, 1, size - 1), narrow(x, dim, 0, size - 1)
        x = later != earlier if x.dtype is dtypes.bool_ else later - earlier
    return x


__all__ = ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "diff", "CumMax", "CumMin"]
