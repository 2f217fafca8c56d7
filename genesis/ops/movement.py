"""Data-movement primitives: reshape, permute, expand, index, flip, cat, pad, copy, cast.

These move or select elements without arithmetic, so they never upcast
fp16/bf16. Views (reshape, permute, expand, basic indexing) share their
input's buffer on the CPU and fold into indexing in fused kernels.

Indexing keys are hashable tuples, one entry per indexed position:
`("s", start, stop, step)` a slice, `("i", k)` an integer, `None` a new axis,
`("t", n)` the n-th index tensor among the op's inputs.
"""

from __future__ import annotations

import math

import numpy as np

from genesis import dtypes
from genesis import functional as F
from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops import shape_rules
from genesis.ops.op import Kind, Op, register
from genesis.runtime.cpu import NUMPY_DTYPE

_NOTHING = frozenset()


def _movement(name, kind, kernel, shape, vjp, *, dtype=dt.first_input, saves=_NOTHING, variadic=False):
    return register(Op(name=name, kind=kind, kernel=kernel, shape=shape, dtype=dtype, vjp=vjp,
                       saves=saves, upcasts_low_precision=False, variadic=variadic))


# ---- reshape, permute, expand ---------------------------------------------
def _reshape_shape(shape, *, shape_to):
    if math.prod(shape) != math.prod(shape_to):
        raise ShapeError(f"cannot reshape a tensor of shape {list(shape)} ({math.prod(shape)} elements) "
                         f"into shape {list(shape_to)} ({math.prod(shape_to)} elements)")
    return tuple(shape_to)


reshape = _movement("reshape", Kind.VIEW, lambda a, *, shape_to: np.reshape(a, shape_to), _reshape_shape,
                    (lambda g, out, x, *, shape_to: F.reshape(g, x.shape),))


def _permute_shape(shape, *, dims):
    if sorted(dims) != list(range(len(shape))):
        raise ShapeError(f"permute dims {list(dims)} are not a permutation of the {len(shape)} dims of shape {list(shape)}")
    return tuple(shape[d] for d in dims)


def _inverse_permutation(dims):
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d] = i
    return tuple(inverse)


permute = _movement("permute", Kind.VIEW, lambda a, *, dims: np.transpose(a, dims), _permute_shape,
                    (lambda g, out, x, *, dims: F.permute(g, _inverse_permutation(dims)),))


def _expand_shape(shape, *, shape_to):
    if len(shape_to) < len(shape):
        raise ShapeError(f"cannot expand shape {list(shape)} to fewer dims {list(shape_to)}")
    padded = (1,) * (len(shape_to) - len(shape)) + tuple(shape)
    for n, m in zip(padded, shape_to):
        if n != m and n != 1:
            raise ShapeError(f"cannot expand shape {list(shape)} to {list(shape_to)}: size {n} is not 1 and differs from {m}")
    return tuple(shape_to)


expand = _movement("expand", Kind.VIEW, lambda a, *, shape_to: np.broadcast_to(a, shape_to), _expand_shape,
                   (lambda g, out, x, *, shape_to: F.sum_to(g, x.shape),))


# ---- indexing ----------------------------------------------------------------
def numpy_key(key, tensors):
    parts = []
    for entry in key:
        if entry is None:
            parts.append(None)
        elif entry[0] == "s":
            parts.append(slice(entry[1], entry[2], entry[3]))
        elif entry[0] == "i":
            parts.append(entry[1])
        else:
            parts.append(tensors[entry[1]])
    return tuple(parts)


def _index_kernel(a, *tensors, key):
    return a[numpy_key(key, tensors)]


def _index_shape(shape, *index_shapes, key):
    probe = np.empty(shape, dtype=np.bool_)
    index = [np.zeros(s, dtype=np.int64) for s in index_shapes]
    return probe[numpy_key(key, index)].shape


def _index_grad(g, out, x, *tensors, key):
    return F.index_put(F.zeros(x.shape, dtype=g.dtype), key, g, *tensors, accumulate=True)


_LOW_PRECISION = {NUMPY_DTYPE[dtypes.float16], NUMPY_DTYPE[dtypes.bfloat16]}


def _accumulator(a):
    """A writable copy of `a` to add into; fp16/bf16 accumulate in fp32, as PyTorch does."""
    return a.astype(np.float32) if a.dtype in _LOW_PRECISION else a.copy()


def _index_put_kernel(a, values, *tensors, key, accumulate):
    out = _accumulator(a)
    index = numpy_key(key, tensors)
    if accumulate:
        np.add.at(out, index, values)
    else:
        out[index] = values
    return out


def _index_put_grad_self(g, out, x, values, *tensors, key, accumulate):
    return g if accumulate else F.index_put(g, key, F.zeros((), dtype=g.dtype), *tensors, accumulate=False)


def _index_put_grad_values(g, out, x, values, *tensors, key, accumulate):
    return F.sum_to(F.index(g, key, *tensors), values.shape)


def _index_put_dtype(inputs, **attrs):
    """The result has the target's dtype; index tensors must not be cast, so no compute dtype."""
    return None, inputs[0].dtype


index_basic = _movement("index_basic", Kind.VIEW, _index_kernel, _index_shape, (_index_grad,))
index_advanced = _movement("index_advanced", Kind.OPAQUE, _index_kernel, _index_shape, (_index_grad,),
                           saves=frozenset({"inputs"}))
index_put = _movement("index_put", Kind.OPAQUE, _index_put_kernel,
                      lambda shape, *rest, key, accumulate: tuple(shape),
                      (_index_put_grad_self, _index_put_grad_values), dtype=_index_put_dtype,
                      saves=frozenset({"inputs"}))


def _leading_block(a, index, dim):
    """PyTorch lets the index be smaller than the input outside `dim`: use that corner."""
    return a[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))]


def _gather_kernel(a, index, *, dim):
    return np.take_along_axis(_leading_block(a, index, dim), index, axis=dim)


def _gather_shape(shape, index_shape, *, dim):
    if len(shape) != len(index_shape):
        raise ShapeError(f"gather: index has {len(index_shape)} dims but input has {len(shape)} (shapes {list(index_shape)} and {list(shape)})")
    for d, (n, m) in enumerate(zip(shape, index_shape)):
        if d != dim and m > n:
            raise ShapeError(f"gather: index shape {list(index_shape)} is larger than input shape {list(shape)} at dim {d}")
    return tuple(index_shape)


def _along_axis_index(index, dim):
    """Full numpy index tuple addressing `index`'s positions, with `index` at `dim`."""
    grids = np.indices(index.shape, sparse=True)
    return tuple(index if d == dim else grids[d] for d in range(index.ndim))


def _scatter_add_kernel(a, index, src, *, dim):
    out = _accumulator(a)
    src = src[tuple(slice(0, n) for n in index.shape)]
    np.add.at(out, _along_axis_index(index, dim), src)
    return out


gather = _movement("gather", Kind.OPAQUE, _gather_kernel, _gather_shape,
                   (lambda g, out, x, index, *, dim: F.scatter_add(F.zeros(x.shape, dtype=g.dtype), dim, index, g),
                    None),
                   saves=frozenset({"inputs"}))
scatter_add = _movement("scatter_add", Kind.OPAQUE, _scatter_add_kernel,
                        lambda shape, index_shape, src_shape, *, dim: tuple(shape),
                        (lambda g, out, x, index, src, *, dim: g,
                         None,
                         lambda g, out, x, index, src, *, dim: F.pad_to(F.gather(g, dim, index), src.shape)),
                        dtype=_index_put_dtype, saves=frozenset({"inputs"}))


# ---- flip, cat, pad ------------------------------------------------------------
flip = _movement("flip", Kind.OPAQUE, lambda a, *, dims: np.flip(a, dims).copy(), shape_rules.same_as_first,
                 (lambda g, out, x, *, dims: F.flip(g, dims),))


def _cat_shape(*shapes, dim):
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, s)) if i != dim):
            raise ShapeError(f"cat along dim {dim}: shapes {[list(x) for x in shapes]} differ outside that dim")
    return tuple(first[:dim]) + (sum(s[dim] for s in shapes),) + tuple(first[dim + 1:])


def _cat_grad(g, out, *inputs, dim, index):
    start = sum(x.shape[dim] for x in inputs[:index])
    return F.narrow(g, dim, start, inputs[index].shape[dim])


def _cat_dtype(inputs, **attrs):
    dtype = dt.promoted(inputs)
    return dtype, dtype


cat = _movement("cat", Kind.OPAQUE, lambda *arrays, dim: np.concatenate(arrays, axis=dim), _cat_shape,
                (_cat_grad,), dtype=_cat_dtype, variadic=True)


def _pad_kernel(a, *, widths, value):
    return np.pad(a, widths, mode="constant", constant_values=value)


def _pad_shape(shape, *, widths, value):
    return tuple(n + lo + hi for n, (lo, hi) in zip(shape, widths))


def _pad_grad(g, out, x, *, widths, value):
    key = tuple(("s", lo, lo + n, 1) for n, (lo, hi) in zip(x.shape, widths))
    return F.index(g, key)


pad = _movement("pad", Kind.OPAQUE, _pad_kernel, _pad_shape, (_pad_grad,))


# ---- copies and casts ------------------------------------------------------------
copy = _movement("copy", Kind.ELEMENTWISE, lambda a: np.array(a, copy=True, order="C"), shape_rules.same_as_first,
                 (lambda g, out, x: g,))
cast = register(Op(name="cast", kind=Kind.ELEMENTWISE, kernel=lambda a, *, dtype: a.astype(NUMPY_DTYPE[dtype]),
                   shape=lambda shape, *, dtype: tuple(shape), dtype=dt.cast,
                   vjp=(lambda g, out, x, *, dtype: g,), saves=_NOTHING, upcasts_low_precision=False,
                   codegen={"triton": "{0}.to({dtype})"}))
