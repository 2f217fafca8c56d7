"""embedding_bag: sums, means or maxima of bags of embedding rows, without the (bags, length, dim) tensor.

Each index gets the number of its bag from the offsets by a scatter of ones
at the bag starts and a cumsum (an empty bag is a start the next one shares),
so everything stays ops on tensors and traces. Sums and means are one
scatter_add of the picked rows into the bags. The maximum is a segmented
prefix scan over log2(n) shifts that carries, per element, the position of
the largest row so far in its bag (the first one on ties, as PyTorch); the
result gathers the rows at those positions, so the gradient goes to the chosen
row only, as PyTorch's. Entries equal to `padding_idx` are left out of their
bag (no count, no gradient); an empty bag gives zeros.
"""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis import functional as GF
from genesis.errors import ShapeError
from genesis.nn.functional.basic import embedding

MODES = ("sum", "mean", "max")


def embedding_bag(
    input,
    weight,
    offsets=None,
    max_norm=None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights=None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
):
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag: max_norm, scale_grad_by_freq and sparse are not supported")
    if mode not in MODES:
        raise ValueError(f"embedding_bag: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(
            f"embedding_bag: per_sample_weights is only supported for mode='sum' (got mode={mode!r})"
        )
    if weight.ndim != 2:
        raise ShapeError(f"embedding_bag: weight must be 2-D (num_embeddings, embedding_dim), got {list(weight.shape)}")
    indices, offsets, per_sample_weights = _flatten_bags(input, offsets, per_sample_weights)
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise ValueError(f"embedding_bag: padding_idx {padding_idx} must be within {weight.shape[0]} rows")
        padding_idx %= weight.shape[0]
    offsets = offsets.to(dtypes.int64)
    count, dim = indices.shape[0], weight.shape[1]
    # with include_last_offset the last offset only counts the bags: as in PyTorch, the last bag runs
    # to the end of the input whatever it says
    starts = offsets[:-1] if include_last_offset else offsets
    bags = starts.shape[0]
    bag = _bag_numbers(starts, count)
    included = bag >= 0  # indices before the first offset are in no bag
    if padding_idx is not None:
        included = included & (indices != padding_idx)
    bag = GF.clamp(bag, 0, max(bags - 1, 0))
    rows = embedding(indices, weight)
    if per_sample_weights is not None:
        rows = rows * GF.unsqueeze(per_sample_weights, 1)
    if mode == "max" and count:
        return _bag_maxima(rows, bag, included, starts)
    kept = GF.where(GF.unsqueeze(included, 1), rows, 0.0)
    sums = GF.scatter_add(
        GF.zeros((bags, dim), dtype=rows.dtype), 0, GF.expand(GF.unsqueeze(bag, 1), (count, dim)), kept
    )
    if mode != "mean":
        return sums
    sizes = GF.scatter_add(GF.zeros((bags,), dtype=rows.dtype), 0, bag, included.to(rows.dtype))
    return sums / GF.unsqueeze(GF.clamp(sizes, min=1.0), 1)


def _flatten_bags(input, offsets, per_sample_weights):
    """1-D indices with offsets as given, or a 2-D (bags, length) input as bags of equal length."""
    if input.dtype.category != dtypes.INT:
        raise TypeError(f"embedding_bag expects integer indices, got {input.dtype.name}")
    if per_sample_weights is not None and tuple(per_sample_weights.shape) != tuple(input.shape):
        raise ShapeError(
            f"embedding_bag: per_sample_weights of shape {list(per_sample_weights.shape)} must match the "
            f"input's {list(input.shape)}"
        )
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("embedding_bag: offsets has to be None if input is 2-D")
        bags, length = input.shape
        offsets = GF.arange(bags) * length
        flat_weights = None if per_sample_weights is None else GF.reshape(per_sample_weights, (-1,))
        return GF.reshape(input, (-1,)), offsets, flat_weights
    if input.ndim != 1:
        raise ShapeError(f"embedding_bag: input has to be 1-D or 2-D, got shape {list(input.shape)}")
    if offsets is None or offsets.ndim != 1:
        raise ValueError("embedding_bag: a 1-D input needs 1-D offsets (the start of each bag)")
    if offsets.dtype.category != dtypes.INT:
        raise TypeError(f"embedding_bag expects integer offsets, got {offsets.dtype.name}")
    if offsets.shape[0] and not dispatch.is_tracing():
        values = offsets.numpy()
        if values[0] != 0 or (values[1:] < values[:-1]).any() or values[-1] > input.shape[0]:
            raise ValueError(
                f"embedding_bag: offsets must start at 0 and not decrease nor pass the input's "
                f"{input.shape[0]} indices, got {values.tolist()}"
            )
    return input, offsets, per_sample_weights


def _bag_numbers(starts, count):
    """The bag of each of `count` positions: how many bags start at or before it, less one."""
    marks = GF.zeros((count + 1,), dtype=dtypes.int64)
    marks = GF.scatter_add(marks, 0, starts, GF.ones(starts.shape, dtype=dtypes.int64))
    return GF.cumsum(marks, 0)[:count] - 1


def _bag_maxima(rows, bag, included, starts):
    """Per bag and column, the row with the largest value (the first of equals); zeros for empty bags."""
    count, dim = rows.shape
    ends = GF.cat([starts[1:], GF.full((min(starts.shape[0], 1),), count, dtype=dtypes.int64)])
    best = GF.where(GF.unsqueeze(included, 1), rows.detach(), float("-inf"))
    where_best = GF.expand(GF.unsqueeze(GF.arange(count), 1), (count, dim))
    bag_column = GF.unsqueeze(bag, 1)
    shift = 1
    while shift < count:  # after this step each position holds the best of the 2*shift before it in its bag
        earlier_best = GF.cat([GF.full((shift, dim), float("-inf"), dtype=best.dtype), best[:-shift]])
        earlier_where = GF.cat([GF.zeros((shift, dim), dtype=dtypes.int64), where_best[:-shift]])
        earlier_bag = GF.cat([GF.full((shift, 1), -1, dtype=dtypes.int64), bag_column[:-shift]])
        take = (earlier_bag == bag_column) & (earlier_best >= best)
        best = GF.where(take, earlier_best, best)
        where_best = GF.where(take, earlier_where, where_best)
        shift *= 2
    last = GF.clamp(ends - 1, 0, count - 1)  # each bag's last position
    chosen = GF.index_select(where_best, 0, last)  # (bags, dim)
    filled = GF.index_select(best, 0, last) > float("-inf")  # false for a bag of nothing or only padding
    non_empty = (ends > starts) & GF.any(filled, 1)
    maxima = GF.gather(rows, 0, chosen)
    return GF.where(GF.unsqueeze(non_empty, 1), maxima, 0.0)


__all__ = ["embedding_bag"]
