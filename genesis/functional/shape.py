"""Shape and view functions: reshape, permute and friends, cat/stack/split, pad, tril/triu.

Views (reshape, permute, expand, narrow, split's pieces, squeeze...) share
their input's buffer and version counter, so an in-place change through one
shows in the other and autograd notices it. `view` promises that sharing and
refuses when the strides cannot provide it; `reshape` copies first in that
case, as PyTorch does. Functions that PyTorch documents as returning new
memory (cat, stack, clone, flip, pad) always copy, even for one input.
"""

from __future__ import annotations

import builtins
import math

from genesis import dispatch
from genesis.arguments import normalize_dim, normalize_dims, normalize_shape
from genesis.creation import arange, tensor, zeros
from genesis.dispatch import apply
from genesis.errors import ShapeError
from genesis.functional.elementwise import where
from genesis.ops import movement as M
from genesis.ops import shape_rules
from genesis.ops import transfer as T
from genesis.ops.movement import pad_to, sum_to  # noqa: F401  (functions of this layer too)
from genesis.ops.shape_rules import broadcast
from genesis.runtime.devices import device as as_device


def _infer_shape(x, shape):
    shape = normalize_shape(shape)
    if -1 in shape:
        if shape.count(-1) > 1:
            raise ShapeError(f"reshape to {list(shape)}: only one dimension can be -1")
        known = math.prod(n for n in shape if n != -1)
        if known == 0 or x.numel() % known:
            raise ShapeError(
                f"cannot reshape a tensor of shape {list(x.shape)} ({x.numel()} elements) into shape {list(shape)}"
            )
        shape = tuple(x.numel() // known if n == -1 else n for n in shape)
    return shape


def _viewable(x, shape) -> bool:
    """Whether `x` can be seen as `shape` without a copy (PyTorch's `computeStride`).

    Walks the dims from the last, in chunks of dims that are contiguous with
    each other; each chunk must be rebuilt exactly by consecutive new dims.
    A symbolic tensor (under tracing) has no strides: a view is a re-indexing.
    """
    strides = _strides(x)
    old = tuple(x.shape)
    if not old or math.prod(old) == 0 or math.prod(old) != math.prod(shape):
        return True  # nothing to lay out (or the shape rule will refuse the sizes)
    if strides is None:  # a traced value whose layout the trace cannot know: only a trivial view is sure
        if _without_ones(old) == _without_ones(shape):
            return True
        dispatch.untraceable(
            f"view() of a traced value of shape {list(old)} whose memory layout the trace "
            f"does not know (made from a non-contiguous one)"
        )
    view_d = len(shape) - 1
    base_stride = strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[d]
        chunk_ends = d == 0 or (old[d - 1] != 1 and strides[d - 1] != tensor_numel * base_stride)
        if not chunk_ends:
            continue
        while view_d >= 0 and (view_numel < tensor_numel or shape[view_d] == 1):
            view_numel *= shape[view_d]
            view_d -= 1
        if view_numel != tensor_numel:
            return False
        if d > 0:
            base_stride = strides[d - 1]
            tensor_numel = view_numel = 1
    return view_d == -1


def _c_contiguous(x) -> bool:
    """Memory in row-major order (a host or device array's flags say; a traced value has none):
    every shape of its size is a view of it, the common case, answered without walking the strides."""
    data = x._data
    return not getattr(data, "is_symbolic", False) and data.flags.c_contiguous


def _strides(x):
    """x's strides in elements; a traced tensor's are the ones eager's array would have, or None."""
    data = x._data
    if getattr(data, "is_symbolic", False):
        return data.strides
    return tuple(stride // data.itemsize for stride in data.strides)


def _without_ones(shape) -> tuple:
    return tuple(n for n in shape if n != 1)


def reshape(x, *shape):
    """A view when the strides allow one, else a reshaped copy. A traced value whose layout the trace
    knows copies where eager does, so the result aliases its source exactly when eager's does (an
    in-place write to it must not reach the source, nor count as a write to a leaf's view). Of one
    whose layout the trace does not know, the reshape is a view: the values are the same."""
    shape = _infer_shape(x, shape)
    if not _c_contiguous(x) and _strides(x) is not None and not _viewable(x, shape):
        x = apply(M.copy, x)
    return apply(M.reshape, x, shape_to=shape)


def view(x, *shape):
    """Always a view that shares x's memory; refuses where only a copy could give the shape."""
    shape = _infer_shape(x, shape)
    if not _c_contiguous(x) and not _viewable(x, shape):
        raise RuntimeError(
            f"view of a tensor of shape {list(x.shape)} as {list(shape)} is not possible: "
            "its memory layout (non-contiguous, e.g. after transpose) cannot be re-read in "
            "that shape without a copy; use reshape() instead"
        )
    return apply(M.reshape, x, shape_to=shape)


def permute(x, *dims):
    dims = tuple(normalize_dim(d, x.ndim) for d in normalize_shape_like(dims))
    return apply(M.permute, x, dims=dims)


def normalize_shape_like(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else tuple(args)


def transpose(x, dim0, dim1):
    ndim = x.ndim
    dim0, dim1 = normalize_dim(dim0, ndim), normalize_dim(dim1, ndim)
    dims = list(range(ndim))
    if dims:
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return apply(M.permute, x, dims=tuple(dims))


def t(x):
    ndim = x.ndim
    if ndim > 2:
        raise ShapeError(f"t() expects a tensor with at most 2 dims, got shape {list(x.shape)}")
    return apply(M.permute, x, dims=(1, 0)) if ndim == 2 else x


def squeeze(x, dim=None):
    dims = normalize_dims(dim, x.ndim) if dim is not None else tuple(range(x.ndim))
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    return reshape(x, shape)


def unsqueeze(x, dim):
    dim = normalize_dim(dim, x.ndim, inserting=True)
    shape = list(x.shape)
    shape.insert(dim, 1)
    return reshape(x, tuple(shape))


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = normalize_dim(start_dim, x.ndim), normalize_dim(end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :]
    return reshape(x, shape)


def unflatten(x, dim, sizes):
    dim = normalize_dim(dim, x.ndim)
    sizes = tuple(sizes)
    known = math.prod(n for n in sizes if n != -1)
    if (-1 not in sizes and known != x.shape[dim]) or (-1 in sizes and (known == 0 or x.shape[dim] % known)):
        raise ShapeError(
            f"unflatten: sizes {list(sizes)} do not multiply to the size {x.shape[dim]} "
            f"of dim {dim} of shape {list(x.shape)}"
        )
    sizes = tuple(x.shape[dim] // known if n == -1 else n for n in sizes)
    return reshape(x, x.shape[:dim] + sizes + x.shape[dim + 1 :])


def expand(x, *sizes):
    sizes = normalize_shape(sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(f"expand: the target {list(sizes)} has fewer dims than the tensor's shape {list(x.shape)}")
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    if -1 in shape:
        raise ShapeError(f"expand: -1 is not allowed for the new leading dims in {list(sizes)}")
    return apply(M.expand, x, shape_to=shape)


def broadcast_to(x, shape):
    return expand(x, tuple(shape))


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_tensors(*tensors):
    shape = broadcast(*(x.shape for x in tensors))
    return tuple(expand(x, shape) for x in tensors)


def is_contiguous(x) -> bool:
    strides = _strides(x)
    if strides is None:
        dispatch.untraceable("is_contiguous() of a traced value whose memory layout the trace does not know")
    return shape_rules.is_contiguous(x.shape, strides)


def contiguous(x):
    strides = _strides(x)
    if strides is None:  # traced, of a layout the trace does not know: eager gave x itself or a copy
        out = apply(M.reshape, x, shape_to=tuple(x.shape))  # a view either way, so writes into it are refused
        out._data.strides = shape_rules.contiguous_strides(x.shape)  # and contiguous either way
        return out
    return x if shape_rules.is_contiguous(x.shape, strides) else apply(M.copy, x)


def clone(x):
    return apply(M.copy, x)


def to_device(x, device):
    """`x` on `device`: `x` itself where it is there already, else a copy there (gradients flow back)."""
    device = as_device(device)
    if x.device is device:
        return x
    return apply(T.to_device, x, device=str(device))


def cast(x, dtype, copy=False):
    if x.dtype is dtype:
        return clone(x) if copy else x
    return apply(M.cast, x, dtype=dtype)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    for i, x in enumerate(tensors):
        if x.ndim == 0:
            raise ShapeError(f"cat: a 0-d tensor (at position {i}) cannot be concatenated; unsqueeze it or use stack")
    # PyTorch lets an empty 1-D tensor join anything: it becomes an empty slab of the others' shape
    like = next((x for x in tensors if not (x.ndim == 1 and x.shape[0] == 0)), tensors[0])
    dim = normalize_dim(dim, like.ndim)
    empty = like.shape[:dim] + (0,) + like.shape[dim + 1 :]
    tensors = [reshape(x, empty) if x.ndim == 1 and x.shape[0] == 0 else x for x in tensors]
    for x in tensors:
        if x.ndim != like.ndim:
            raise ShapeError(
                f"cat: tensors must have the same number of dims, got shapes {[list(y.shape) for y in tensors]}"
            )
    return apply(M.cat, *tensors, dim=dim)  # a copy even for one tensor: cat never aliases its input


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    for x in tensors[1:]:
        if x.shape != tensors[0].shape:
            raise ShapeError(f"stack expects tensors of equal shape, got {[list(y.shape) for y in tensors]}")
    dim = normalize_dim(dim, tensors[0].ndim, inserting=True)
    return apply(M.cat, *[unsqueeze(x, dim) for x in tensors], dim=dim)


def narrow(x, dim, start, length):
    dim = normalize_dim(dim, x.ndim)
    if start < 0:
        start += x.shape[dim]
    if not (0 <= start and start + length <= x.shape[dim]):
        raise IndexError(f"narrow: [{start}, {start + length}) is out of range for dim {dim} of size {x.shape[dim]}")
    return apply(M.index_basic, x, key=M.narrow_key(x.shape, dim, start, length))


def split(x, split_size_or_sections, dim=0):
    dim = normalize_dim(dim, x.ndim)
    size = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sections = [builtins.min(step, size - i) for i in range(0, size, step)] or [0]
    else:
        sections = list(split_size_or_sections)
        if builtins.sum(sections) != size:
            raise ValueError(
                f"split: sections {sections} add up to {builtins.sum(sections)}, but dim {dim} has size {size}"
            )
    out, start = [], 0
    for n in sections:
        out.append(narrow(x, dim, start, n))
        start += n
    return tuple(out)


def chunk(x, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    dim = normalize_dim(dim, x.ndim)
    if x.shape[dim] == 0:  # PyTorch: `chunks` empty pieces
        return split(x, [0] * chunks, dim)
    return split(x, -(-x.shape[dim] // chunks), dim)


def unbind(x, dim=0):
    dim = normalize_dim(dim, x.ndim)
    return tuple(squeeze(part, dim) for part in split(x, 1, dim))


def flip(x, dims):
    dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
    if not dims:  # flips nothing, as in PyTorch (normalize_dims would read "every dim")
        return apply(M.copy, x)
    return apply(M.flip, x, dims=normalize_dims(dims, x.ndim))


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(x, pad, mode="constant", value=None):
    """PyTorch's pad: (left, right) pairs from the last dim backwards. "constant" fills with
    `value` (0 by default); "reflect" mirrors the input without repeating its edge, "replicate"
    repeats the edge, "circular" wraps around: each is a gather along the padded dims, at
    positions computed from the sizes, so its gradient adds up where positions repeat."""
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; choose one of {list(_PAD_MODES)}")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {list(pad)} must hold (left, right) pairs for at most {x.ndim} dims")
    if builtins.any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {list(pad)} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode == "constant":
        return apply(M.pad, x, widths=tuple(widths), value=0.0 if value is None else value)
    if value is not None and value != 0:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    out = x
    for dim, (left, right) in enumerate(widths):
        if left or right:
            positions = tensor(_pad_positions(mode, x.shape[dim], left, right, dim), device=x.device)
            out = gather_along(out, dim, positions)
    return out


def _pad_positions(mode, size, left, right, dim) -> list[int]:
    """Which input position each output position reads along one dim."""
    limit = size - 1 if mode == "reflect" else size
    if mode != "replicate" and (left > limit or right > limit):
        raise ValueError(
            f"pad: {mode} padding of ({left}, {right}) needs at most {limit} along dim {dim}, whose size is {size}"
        )
    positions = range(-left, size + right)
    if mode == "replicate":
        return [builtins.min(builtins.max(i, 0), size - 1) for i in positions]
    if mode == "circular":
        return [i % size for i in positions]
    return [-i if i < 0 else (2 * (size - 1) - i if i >= size else i) for i in positions]


def gather_along(x, dim, index):
    """x's slices along `dim` at the positions of a 1-D integer tensor (index_select's kernel)."""
    key = tuple(("s", 0, n, 1) for n in x.shape[:dim]) + (("p", 0),)  # positions: -1 is refused, as in PyTorch
    return apply(M.index_advanced, x, index, key=key)


def _triangle_mask(x, diagonal, lower):
    if x.ndim < 2:
        raise ShapeError(f"tril/triu need a tensor with at least 2 dims, got shape {list(x.shape)}")
    rows, cols = x.shape[-2:]
    offset = arange(cols, device=x.device).reshape(1, cols) - arange(rows, device=x.device).reshape(rows, 1)
    return offset <= diagonal if lower else offset >= diagonal


def _keep_where(mask, x):
    return where(mask, x, zeros((), dtype=x.dtype))


def tril(x, diagonal=0):
    return _keep_where(_triangle_mask(x, diagonal, True), x)


def triu(x, diagonal=0):
    return _keep_where(_triangle_mask(x, diagonal, False), x)


def movedim(x, source, destination):
    """Move dims `source` to positions `destination` (ints or equal-length sequences); the rest keep their order."""
    source = tuple(source) if isinstance(source, (list, tuple)) else (source,)
    destination = tuple(destination) if isinstance(destination, (list, tuple)) else (destination,)
    if len(source) != len(destination):
        raise ValueError(f"movedim: source {list(source)} and destination {list(destination)} differ in length")
    source = tuple(normalize_dim(d, x.ndim) for d in source)
    destination = tuple(normalize_dim(d, x.ndim) for d in destination)
    if len(set(source)) != len(source) or len(set(destination)) != len(destination):
        raise ValueError(f"movedim: repeated dim in source {list(source)} or destination {list(destination)}")
    order = [None] * x.ndim
    for s, d in zip(source, destination):
        order[d] = s
    rest = iter(d for d in range(x.ndim) if d not in source)
    order = [next(rest) if d is None else d for d in order]
    return apply(M.permute, x, dims=tuple(order))


__all__ = [
    "reshape",
    "permute",
    "normalize_shape_like",
    "transpose",
    "t",
    "squeeze",
    "unsqueeze",
    "flatten",
    "unflatten",
    "expand",
    "broadcast_to",
    "expand_as",
    "broadcast_tensors",
    "sum_to",
    "pad_to",
    "contiguous",
    "is_contiguous",
    "clone",
    "to_device",
    "cast",
    "cat",
    "stack",
    "narrow",
    "split",
    "chunk",
    "unbind",
    "flip",
    "pad",
    "tril",
    "triu",
    "movedim",
    "view",
    "concat",
    "concatenate",
]
