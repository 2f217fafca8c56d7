"""roll and repeat_interleave: copies that move or repeat slices along a dim.

roll is two slices joined the other way round, per rolled dim; repeat_interleave
with a number of repeats is an expand and a reshape. Both trace, and their
gradients are the slices' and the expand's. With a tensor of repeats the output's
size depends on the values: they are read on the host (a compiled function breaks
its graph there, as for boolean masks) and the slices gathered at positions made by ops.
"""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis.arguments import is_tensor, normalize_dim
from genesis.creation import arange, ones, zeros
from genesis.errors import ShapeError
from genesis.functional.indexing import scatter_add
from genesis.functional.scan import cumsum
from genesis.functional.shape import cat, clone, expand, gather_along, narrow, reshape, unsqueeze


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def roll(x, shifts, dims=None):
    """Shift the elements along `dims` by `shifts`, wrapping around; without dims, over the flattened
    tensor, keeping its shape."""
    shifts = _as_tuple(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: without dims, shifts must be one number, got {list(shifts)}")
        return reshape(roll(reshape(x, (-1,)), shifts, 0), x.shape)
    dims = _as_tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts {list(shifts)} and dims {list(dims)} must have the same length")
    out = x
    for shift, dim in zip(shifts, dims):
        dim = normalize_dim(dim, x.ndim)
        size = out.shape[dim] if out.ndim else 1
        start = -int(shift) % size if size else 0
        if start:  # the last `shift` elements come first
            out = cat([narrow(out, dim, start, size - start), narrow(out, dim, 0, start)], dim)
    return clone(x) if out is x else out  # a new tensor, as PyTorch's, even for a shift of 0


def _repeat_positions(repeats, size, dim):
    """Which slice each output slice copies, for a tensor of repeats (one per slice, or one for all).

    The only host reads are the smallest count (to refuse a negative one) and the total (the output's
    size); the positions come from ops: each slice's start gets a mark, and the running count of marks
    up to an output position, less one, is the slice it belongs to (a slice repeated 0 times adds its
    mark where the next one starts, so it is stepped over)."""
    if repeats.dtype.category != dtypes.INT:
        raise TypeError(f"repeat_interleave: repeats must be an integer tensor, got {repeats.dtype.name}")
    if repeats.ndim > 1:
        raise ShapeError(f"repeat_interleave: repeats must be 0-d or 1-d, got shape {list(repeats.shape)}")
    counts = reshape(repeats, (-1,)).long()
    if counts.shape[0] == 1:
        counts = expand(counts, (size,))
    if counts.shape[0] != size:
        raise ShapeError(
            f"repeat_interleave: {counts.shape[0]} repeats for dim {dim} of size {size}; give one per slice or one"
        )
    dispatch.untraceable("repeat_interleave with a tensor of repeats (the output's size depends on its values)")
    if size and counts.min().item() < 0:
        raise ValueError(f"repeat_interleave: repeats must be non-negative, got {counts.min().item()}")
    ends = cumsum(counts, 0)
    total = ends[-1].item() if size else 0
    device = repeats.device
    marks = scatter_add(
        zeros(total + 1, dtype=dtypes.int64, device=device),
        0,
        ends - counts,
        ones(size, dtype=dtypes.int64, device=device),
    )
    return cumsum(narrow(marks, 0, 0, total), 0) - 1


def repeat_interleave(x, repeats=None, dim=None, *, output_size=None):
    """Repeat each slice along `dim` (of the flattened tensor without one) `repeats` times, next to
    itself. `repeat_interleave(counts)` alone repeats each position i counts[i] times."""
    if repeats is None:  # torch.repeat_interleave(repeats): the positions, each repeated
        return repeat_interleave(arange(x.numel(), device=x.device), x)
    if dim is None:
        x, dim = reshape(x, (-1,)), 0
    dim = normalize_dim(dim, x.ndim)
    if x.ndim == 0:
        x = reshape(x, (1,))
    size = x.shape[dim]
    if is_tensor(repeats):
        out = gather_along(x, dim, _repeat_positions(repeats, size, dim))
    else:
        if repeats < 0:
            raise ValueError(f"repeat_interleave: repeats must be non-negative, got {repeats}")
        shape = x.shape[:dim] + (size, int(repeats)) + x.shape[dim + 1 :]
        out = reshape(expand(unsqueeze(x, dim + 1), shape), x.shape[:dim] + (size * repeats,) + x.shape[dim + 1 :])
    if output_size is not None and out.shape[dim] != output_size:
        raise ValueError(f"repeat_interleave: output_size {output_size} differs from the {out.shape[dim]} repeats")
    return out


__all__ = ["roll", "repeat_interleave"]
