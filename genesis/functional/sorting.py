"""sort, argsort, topk and kthvalue: positions from the `argsort` primitive, values gathered there.

The values are `gather(x, dim, indices)`, so their gradient is scattered back to the
chosen elements, exactly as PyTorch's. Results are (values, indices) named tuples like
`torch.return_types`; indices are int64. Sorting is always stable, so `stable=False`
gives one of the orders PyTorch allows and `stable=True` the one it promises.
"""

from __future__ import annotations

from collections import namedtuple

from genesis.arguments import normalize_dim
from genesis.dispatch import apply
from genesis.functional.indexing import gather
from genesis.functional.shape import clone, narrow, reshape, squeeze
from genesis.ops import sorting as S

# the names PyTorch's torch.return_types give these pairs
Sort = namedtuple("sort", ["values", "indices"])
TopK = namedtuple("topk", ["values", "indices"])
KthValue = namedtuple("kthvalue", ["values", "indices"])


def argsort(x, dim=-1, descending=False, stable=False):
    return apply(S.argsort, x, dim=normalize_dim(dim, x.ndim), descending=bool(descending))


def sort(x, dim=-1, descending=False, stable=False):
    indices = argsort(x, dim, descending)
    return Sort(gather(x, dim, indices), indices)


def _as_vector(x):
    """A 0-d tensor is sorted, and taken from, as its one element (PyTorch allows dim 0 and -1)."""
    return reshape(x, (1,)) if x.ndim == 0 else x


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) elements along `dim`, largest first (smallest first). NaN counts as
    larger than every number, as in PyTorch. `sorted=False` gives them in that order too."""
    dim = normalize_dim(dim, x.ndim)
    vector = _as_vector(x)
    size = vector.shape[dim]
    if not 0 <= k <= size:
        raise IndexError(f"topk: k={k} is out of range for dim {dim} of size {size} (shape {list(x.shape)})")
    # a copy: the positions must not keep every position of the sort alive, nor share its memory
    indices = clone(narrow(argsort(vector, dim, descending=largest), dim, 0, k))
    values = gather(vector, dim, indices)
    if x.ndim == 0:
        values, indices = reshape(values, ()), reshape(indices, ())
    return TopK(values, indices)


def kthvalue(x, k, dim=-1, keepdim=False):
    """The k-th smallest element along `dim` (k counts from 1) and its position."""
    dim = normalize_dim(dim, x.ndim)
    vector = _as_vector(x)
    size = vector.shape[dim]
    if not 1 <= k <= size:
        raise IndexError(f"kthvalue: k={k} is out of range for dim {dim} of size {size} (shape {list(x.shape)})")
    indices = clone(narrow(argsort(vector, dim), dim, k - 1, 1))
    values = gather(vector, dim, indices)
    if x.ndim == 0:
        values, indices = reshape(values, ()), reshape(indices, ())
    elif not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return KthValue(values, indices)


__all__ = ["argsort", "sort", "topk", "kthvalue"]
