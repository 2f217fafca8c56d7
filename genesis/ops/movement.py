"""Data-movement primitives: reshape, permute, expand, index, flip, cat, pad, copy, cast.

These move or select elements without arithmetic, so they never upcast
fp16/bf16. Views (reshape, permute, expand, basic indexing) share their
input's buffer on the CPU and fold into indexing in fused kernels.

Indexing keys are hashable tuples, one entry per indexed position:
`("s", start, stop, step)` a slice, `("i", k)` an integer, `None` a new axis,
`("t", n)` the n-th index tensor among the op's inputs, whose negative
entries count from the end (`x[idx]`), and `("p", n)` one whose entries are
positions from 0 only (index_select, embedding: PyTorch refuses a negative
position there, where counting it from the end would read the wrong row
without a word). Index tensors are integers only: the functional layer turns
bool masks into positions first, so every output shape follows from the
input shapes.
"""

from __future__ import annotations

import math

import numpy as np

from genesis import dtypes
from genesis.errors import IndexOutOfRangeError, ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops import shape_rules
from genesis.ops.constants import zeros
from genesis.ops.native_kernels import NativeKernels, geometry, run
from genesis.ops.op import IndexMap, Kind, Op, register
from genesis.runtime import memory
from genesis.runtime import native as runtime_native
from genesis.runtime.cpu import NUMPY_DTYPE

_NOTHING = frozenset()
# indexing vjps read the index tensors' values, but of the indexed data only its shape
_INDICES = frozenset({"indices"})


def _movement(
    name,
    kind,
    kernel,
    shape,
    vjp,
    *,
    dtype=dt.first_input,
    saves=_NOTHING,
    variadic=False,
    codegen=None,
    contiguous_result=False,
    index_map=None,
    converts_only=False,
    grad_region=None,
    region_block=None,
):
    return register(
        Op(
            name=name,
            kind=kind,
            kernel=kernel,
            shape=shape,
            dtype=dtype,
            vjp=vjp,
            saves=saves,
            upcasts_low_precision=False,
            variadic=variadic,
            codegen=codegen or {},
            contiguous_result=contiguous_result,
            index_map=index_map,
            converts_only=converts_only,
            grad_region=grad_region,
            region_block=region_block,
        )
    )


# ---- reshape, permute, expand ---------------------------------------------
def _reshape_shape(shape, *, shape_to):
    if math.prod(shape) != math.prod(shape_to):
        raise ShapeError(
            f"cannot reshape a tensor of shape {list(shape)} ({math.prod(shape)} elements) "
            f"into shape {list(shape_to)} ({math.prod(shape_to)} elements)"
        )
    return tuple(shape_to)


reshape = _movement(
    "reshape",
    Kind.VIEW,
    lambda a, *, shape_to: a.reshape(shape_to),  # (the method: numpy's function wrapper costs a microsecond)
    _reshape_shape,
    (lambda g, out, x, *, shape_to: g.reshape(x.shape),),
    index_map=IndexMap.RESHAPE,
    converts_only=True,
)


def _permute_shape(shape, *, dims):
    if sorted(dims) != list(range(len(shape))):
        raise ShapeError(
            f"permute dims {list(dims)} are not a permutation of the {len(shape)} dims of shape {list(shape)}"
        )
    return tuple(shape[d] for d in dims)


def _inverse_permutation(dims):
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d] = i
    return tuple(inverse)


permute = _movement(
    "permute",
    Kind.VIEW,
    lambda a, *, dims: a.transpose(dims),  # (the method: numpy's function wrapper costs a microsecond)
    _permute_shape,
    (lambda g, out, x, *, dims: permute(g, dims=_inverse_permutation(dims)),),
    index_map=IndexMap.PERMUTE,
)


def _expand_shape(shape, *, shape_to):
    if len(shape_to) < len(shape):
        raise ShapeError(f"cannot expand shape {list(shape)} to fewer dims {list(shape_to)}")
    padded = (1,) * (len(shape_to) - len(shape)) + tuple(shape)
    for n, m in zip(padded, shape_to):
        if n != m and n != 1:
            raise ShapeError(
                f"cannot expand shape {list(shape)} to {list(shape_to)}: size {n} is not 1 and differs from {m}"
            )
    return tuple(shape_to)


expand = _movement(
    "expand",
    Kind.VIEW,
    lambda a, *, shape_to: np.broadcast_to(a, shape_to),
    _expand_shape,
    (lambda g, out, x, *, shape_to: sum_to(g, x.shape),),
    index_map=IndexMap.BROADCAST,
    converts_only=True,
)


def sum_to(x, shape):
    """Sum a broadcast gradient back to `shape` (the inverse of expand)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    return x.sum(dims, keepdim=True).reshape(shape) if dims else x.reshape(shape)


# ---- indexing ----------------------------------------------------------------
def split_key(key, tensors):
    """A primitive key as (basic, advanced, tensor dims), with PyTorch's semantics.

    Ints, slices and new axes apply first, as a basic index (always a numpy
    view: the trailing Ellipsis keeps even an all-int index a 0-d view rather
    than a scalar copy). The index tensors then index that view, with full
    slices where slices and new axes were. numpy alone would treat an int
    beside an index tensor as one more index array, and `x[0, :, idx]` would
    move the broadcast dims to the front; PyTorch selects the int first.
    `advanced` is None when the key holds no index tensors. `tensor dims`
    holds, per index tensor, its position in `advanced`, its dim in the
    indexed tensor (for error messages) and whether it may be negative.
    """
    basic, advanced, tensor_dims = [], [], []
    dim = 0
    for entry in key:
        if entry is None:
            basic.append(None)
            advanced.append(slice(None))
            continue
        if entry[0] == "s":
            basic.append(slice(entry[1], entry[2], entry[3]))
            advanced.append(slice(None))
        elif entry[0] == "i":
            basic.append(entry[1])
        else:
            basic.append(slice(None))
            advanced.append(tensors[entry[1]])
            tensor_dims.append((len(advanced) - 1, dim, entry[0] == "t"))
        dim += 1
    basic.append(Ellipsis)
    return tuple(basic), (tuple(advanced) if tensors else None), tuple(tensor_dims)


def _check_in_range(index, size, dim, *, negative_ok=True):
    if not index.size:
        return
    low, high = int(index.min()), int(index.max())
    bad = high if high >= size else low if low < (-size if negative_ok else 0) else None
    if bad is not None:
        raise IndexOutOfRangeError(bad, size, dim)


def _indexed_view(a, tensors, key):
    """The basic part applied to `a` (a view) and the checked advanced part, or None."""
    basic, advanced, tensor_dims = split_key(key, tensors)
    view = a[basic]
    for position, dim, negative_ok in tensor_dims:
        _check_in_range(advanced[position], view.shape[position], dim, negative_ok=negative_ok)
    return view, advanced


def _index_kernel(a, *tensors, key):
    view, advanced = _indexed_view(a, tensors, key)
    # numpy lays out an advanced index's result in its own order (x[:, i] puts i's dims first in
    # memory); a fresh result is contiguous here, as every other op's is (see dispatch._verify_meta)
    # (np.asarray, not np.ascontiguousarray, which makes a 0-d result of 0-d indices 1-d)
    return view if advanced is None else np.asarray(view[advanced], order="C")


def _index_shape(shape, *index_shapes, key):
    # A zero-stride probe: as cheap for a 10^9-element shape as for a scalar.
    probe = np.broadcast_to(np.empty((), dtype=np.bool_), shape)
    index = [np.zeros(s, dtype=np.int64) for s in index_shapes]
    return _index_kernel(probe, *index, key=key).shape


def _index_grad(g, out, x, *tensors, key):
    # A basic index selects each element at most once: a plain put suffices.
    return index_put(zeros(x.shape, g.dtype, g.device), g, *tensors, key=key, accumulate=bool(tensors))


_LOW_PRECISION = {NUMPY_DTYPE[dtypes.float16], NUMPY_DTYPE[dtypes.bfloat16]}


def _accumulator(a):
    """A writable C-contiguous copy of `a` to add into; fp16/bf16 accumulate in fp32, as PyTorch does."""
    return a.astype(np.float32, order="C") if a.dtype in _LOW_PRECISION else a.copy(order="C")


def _strip_leading_ones(shape):
    """Values may carry extra leading 1-dims (`x[0] = ones(1, n)`), as in PyTorch."""
    shape = tuple(shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _index_put_kernel(a, values, *tensors, key, accumulate):
    out = _accumulator(a) if accumulate else a.copy()
    values = np.reshape(values, _strip_leading_ones(values.shape))
    view, advanced = _indexed_view(out, tensors, key)  # `view` writes through into `out`
    if advanced is None:
        if accumulate:
            view += values
        else:
            view[...] = values
    elif accumulate:
        if not _add_rows(view, advanced, values):
            np.add.at(view, advanced, values)  # duplicate positions add up
    else:
        view[advanced] = values
    return out


def _add_rows(view, advanced, values) -> bool:
    """view[index] += values where one index tensor picks whole rows of `view` (an embedding's
    gradient: 512 token rows of 64 added into a (1000, 64) table took np.add.at 370 us), as a
    scatter-add along dim 0 in index order; False where the index or values do not have that form.
    The positions were checked by `_indexed_view`; negative ones count from the end."""
    index = advanced[0]
    if not isinstance(index, np.ndarray) or any(not isinstance(a, slice) or a != slice(None) for a in advanced[1:]):
        return False
    if index.dtype.kind not in "iu" or values.dtype != view.dtype or not view.flags.c_contiguous:
        return False
    if not view.ndim or values.shape != index.shape + view.shape[1:]:
        return False
    rows = index.reshape(-1).astype(np.int64)
    rows[rows < 0] += view.shape[0]
    inner = math.prod(view.shape[1:])
    values = np.ascontiguousarray(values).reshape(rows.size, inner)
    kernel = C_KERNELS.kernel("g_add_rows", view.dtype)
    if kernel is None:  # a scatter-add along dim 0 with each row's position repeated over its elements
        _add_into(view.reshape(view.shape[0], inner), np.broadcast_to(rows[:, None], values.shape), values, 0)
    else:  # one chunk: two index entries may name one row
        arrays = (view, rows, values, geometry(view.shape[0], rows.size, inner))
        if runtime_native.run_native(kernel[0], arrays, (), ((0, rows.size),), check=False):
            _check_in_range(rows, view.shape[0], 0, negative_ok=False)
    return True


def _index_put_shape(shape, values_shape, *index_shapes, key, accumulate):
    target = _index_shape(shape, *index_shapes, key=key)
    try:
        fits = shape_rules.broadcast(_strip_leading_ones(values_shape), target) == tuple(target)
    except ShapeError:
        fits = False
    if not fits:
        raise ShapeError(
            f"cannot put values of shape {list(values_shape)} into an indexed region of shape {list(target)}"
        )
    return tuple(shape)


def _index_put_grad_self(g, out, x, values, *tensors, key, accumulate):
    return g if accumulate else index_put(g, zeros((), g.dtype, g.device), *tensors, key=key, accumulate=False)


def _index_put_grad_values(g, out, x, values, *tensors, key, accumulate):
    region = sum_to(index_by_key(g, key, *tensors), _strip_leading_ones(values.shape))
    return region.reshape(values.shape)


def _index_put_dtype(inputs, **attrs):
    """The result has the target's dtype; index tensors must not be cast, so no compute dtype."""
    return None, inputs[0].dtype


def _index_region(array, *, key):
    view, _ = _indexed_view(array, (), key)
    return view


def _index_block(shape, *, key):
    """(dim, start, stop) where the basic index `key` selects start:stop along one dim and every other
    dim whole, in order (new axes and an int's dropped dim only reshape that block); else None."""
    block, dim = None, 0
    for entry in key:
        if entry is None:
            continue
        start, stop, step = (entry[1], entry[1] + 1, 1) if entry[0] == "i" else entry[1:]
        if (start, stop, step) != (0, shape[dim], 1) and not (step == 1 and block is None and shape[dim]):
            return None
        if (start, stop) != (0, shape[dim]):
            block = (dim, start, stop)
        dim += 1
    if not shape:
        return None
    return block or (0, 0, shape[0])  # the whole input: a block along dim 0


def _basic_index_expression(attrs) -> str:
    """The numpy expression of a basic index of `{0}`: the key's slices, ints and new axes as Python."""
    basic, _, _ = split_key(attrs["key"], ())
    return "{0}[" + repr(basic).replace("{", "{{").replace("}", "}}") + "]"


index_basic = _movement(
    "index_basic",
    Kind.VIEW,
    _index_kernel,
    _index_shape,
    (_index_grad,),
    grad_region=_index_region,
    region_block=_index_block,
    codegen={"numpy_view": _basic_index_expression},
)
index_advanced = _movement("index_advanced", Kind.OPAQUE, _index_kernel, _index_shape, (_index_grad,), saves=_INDICES)
index_put = _movement(
    "index_put",
    Kind.OPAQUE,
    _index_put_kernel,
    _index_put_shape,
    (_index_put_grad_self, _index_put_grad_values),
    dtype=_index_put_dtype,
    saves=_INDICES,
)


def _leading_block(a, index, dim):
    """PyTorch lets the index be smaller than the input outside `dim`: use that corner."""
    return a[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))]


# gather and scatter_add in C (ops/native/gather.c), where a library can be had
C_KERNELS = NativeKernels("gather.c", {"g_gather": "ppppii", "g_scatter_add": "ppppii", "g_add_rows": "ppppii"})


def _native_along(stem, a, index, dim):
    """The C kernel for `stem` over `a` and `index` along `dim`, and its sizes (outer, A, K, inner);
    None where it does not apply (another dtype, or an index smaller than `a` outside `dim`)."""
    if (
        not a.ndim
        or index.dtype != np.int64
        or a.shape[:dim] + a.shape[dim + 1 :] != index.shape[:dim] + index.shape[dim + 1 :]
    ):
        return None
    native = C_KERNELS.kernel(stem, a.dtype)
    if native is None:
        return None
    return native, geometry(math.prod(a.shape[:dim]), a.shape[dim], index.shape[dim], math.prod(a.shape[dim + 1 :]))


def _gather_kernel(a, index, *, dim):
    # PyTorch refuses negative positions in gather and scatter (numpy would wrap them); the C kernel
    # checks them as it goes (two passes over a max-pooling's 512K positions cost 0.3 ms)
    native = _native_along("g_gather", a, index, dim)
    if native is not None:
        kernel, sizes = native
        a, index = np.ascontiguousarray(a), np.ascontiguousarray(index)
        out = memory.empty(index.shape, a.dtype)
        rows = int(sizes[0])
        if run(kernel, (a, index, out, sizes), rows, index.size // max(1, rows), check=False):
            _check_in_range(index, a.shape[dim], dim, negative_ok=False)
        return out
    _check_in_range(index, a.shape[dim] if a.ndim else 1, dim, negative_ok=False)
    if not a.ndim:  # a 0-d tensor gathers from its one element
        return np.take(a.reshape(1), index)
    return np.take_along_axis(_leading_block(a, index, dim), index, axis=dim)


def _gather_shape(shape, index_shape, *, dim):
    if len(shape) != len(index_shape):
        raise ShapeError(
            f"gather: index has {len(index_shape)} dims but input has {len(shape)} "
            f"(index shape {list(index_shape)}, input shape {list(shape)})"
        )
    for d, (n, m) in enumerate(zip(shape, index_shape)):
        if d != dim and m > n:
            raise ShapeError(
                f"gather: index shape {list(index_shape)} is larger than input shape {list(shape)} at dim {d}"
            )
    return tuple(index_shape)


def _along_axis_index(index, dim):
    """Full numpy index tuple addressing `index`'s positions, with `index` at `dim`."""
    grids = np.indices(index.shape, sparse=True)
    return tuple(index if d == dim else grids[d] for d in range(index.ndim))


def _scatter_add_kernel(a, index, src, *, dim):
    out = _accumulator(a)
    if not a.ndim:
        _check_in_range(index, 1, dim, negative_ok=False)
        np.add.at(out.reshape(1), index, src)  # the reshape is a view: it adds into `out`
        return out
    return _add_into(out, index, src[tuple(slice(0, n) for n in index.shape)], dim)


def _add_into(out, index, src, dim):
    """out[..., index[i], ...] += src[i] along `dim`, in src's order; `out` is the kernel's own array."""
    native = _native_along("g_scatter_add", out, index, dim) if src.dtype == out.dtype else None
    if native is not None:  # the C kernel checks the positions as it goes
        kernel, sizes = native
        index, src = np.ascontiguousarray(index), np.ascontiguousarray(src)
        rows = int(sizes[0])
        if run(kernel, (out, index, src, sizes), rows, index.size // max(1, rows), check=False):
            _check_in_range(index, out.shape[dim], dim, negative_ok=False)
        return out
    _check_in_range(index, out.shape[dim], dim, negative_ok=False)
    # one flat position per source element: np.add.at over a flat array is 5x faster than over a
    # tuple of per-dim indices (max-pooling's backward: 1.4 against 7.5 ms for 512K values)
    flat = sum(i * step for i, step in zip(_along_axis_index(index, dim), _element_strides(out.shape)))
    np.add.at(out.reshape(-1), np.asarray(flat).reshape(-1), src.reshape(-1))
    return out


def _gather_backward_kernel(g, index, *, dim, size):
    """gather's gradient: g added into zeros of the input's `size` at the gathered positions. One
    zero-filled buffer, where scatter_add(zeros, ...) filled the zeros and then copied them (a
    max-pooling's backward: 8 MB filled, read and written again)."""
    dtype = np.float32 if g.dtype in _LOW_PRECISION else g.dtype  # fp16/bf16 accumulate in fp32
    out = memory.empty(tuple(size), dtype)
    out.fill(0)
    if not out.ndim:
        _check_in_range(index, 1, dim, negative_ok=False)
        np.add.at(out.reshape(1), index, g)
        return out
    return _add_into(out, index, g.astype(dtype, copy=False), dim)


def _element_strides(shape) -> list[int]:
    steps, step = [], 1
    for n in reversed(shape):
        steps.append(step)
        step *= n
    return steps[::-1]


def _scatter_add_shape(shape, index_shape, src_shape, *, dim):
    if not len(shape) == len(index_shape) == len(src_shape):
        raise ShapeError(
            f"scatter_add: input, index and src need the same number of dims, got shapes "
            f"{list(shape)}, {list(index_shape)} and {list(src_shape)}"
        )
    for d, (n, m, k) in enumerate(zip(shape, index_shape, src_shape)):
        if m > k or (d != dim and m > n):
            raise ShapeError(
                f"scatter_add: index shape {list(index_shape)} is larger than src shape "
                f"{list(src_shape)} or (outside dim {dim}) input shape {list(shape)} at dim {d}"
            )
    return tuple(shape)


gather = _movement(
    "gather",
    Kind.OPAQUE,
    _gather_kernel,
    _gather_shape,
    (lambda g, out, x, index, *, dim: gather_backward(g, index, dim=dim, size=tuple(x.shape)), None),
    saves=_INDICES,
)
gather_backward = _movement(
    "gather_backward",
    Kind.OPAQUE,
    _gather_backward_kernel,
    lambda g_shape, index_shape, *, dim, size: _scatter_add_shape(size, index_shape, g_shape, dim=dim),
    (lambda g, out, grad, index, *, dim, size: gather(g, index, dim=dim), None),
    dtype=lambda inputs, **attrs: (None, inputs[0].dtype),
    saves=_INDICES,
    contiguous_result=True,
)


def _positions_kernel(index, *, dim, size):
    _check_in_range(index, size, dim, negative_ok=False)
    return np.arange(size, dtype=np.int64).reshape(_positions_shape(index.shape, dim=dim, size=size))


def _positions_shape(index_shape, *, dim, size):
    return tuple(size if d == dim else 1 for d in range(len(index_shape)))


# 0..size-1 along `dim`, shaped to broadcast against `index` (one position per row along `dim`):
# what a gather of one position per row compares its index with once the compiler has made it a
# masked row sum (compiler/passes/gathers.py). It checks the index as gather does, so a position
# out of range is the same error compiled as eager.
positions = _movement(
    "positions",
    Kind.OPAQUE,
    _positions_kernel,
    _positions_shape,
    (None,),
    dtype=lambda inputs, **attrs: (None, dtypes.int64),
)
scatter_add = _movement(
    "scatter_add",
    Kind.OPAQUE,
    _scatter_add_kernel,
    _scatter_add_shape,
    (
        lambda g, out, x, index, src, *, dim: g,
        None,
        lambda g, out, x, index, src, *, dim: pad_to(gather(g, index, dim=dim), src.shape),
    ),
    dtype=_index_put_dtype,
    saves=_INDICES,
)


def index_by_key(x, key, *tensors):
    """Apply a primitive key: a view when it holds no index tensors."""
    if tensors:
        return index_advanced(x, *tensors, key=key)
    return index_basic(x, key=key)


def narrow_key(shape, dim, start, length):
    """The primitive key of `length` elements from `start` along `dim`, all of every other dim."""
    return tuple(("s", 0, n, 1) if i != dim else ("s", start, start + length, 1) for i, n in enumerate(shape))


# ---- flip, cat, pad ------------------------------------------------------------
flip = _movement(
    "flip",
    Kind.OPAQUE,
    lambda a, *, dims: np.flip(a, dims).copy(),
    shape_rules.same_as_first,
    (lambda g, out, x, *, dims: flip(g, dims=dims),),
)


def _cat_shape(*shapes, dim):
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, s)) if i != dim):
            raise ShapeError(f"cat along dim {dim}: shapes {[list(x) for x in shapes]} differ outside that dim")
    return tuple(first[:dim]) + (sum(s[dim] for s in shapes),) + tuple(first[dim + 1 :])


def _cat_grad(g, out, *inputs, dim, index):
    start = sum(x.shape[dim] for x in inputs[:index])
    return index_basic(g, key=narrow_key(g.shape, dim, start, inputs[index].shape[dim]))


def _cat_dtype(inputs, **attrs):
    dtype = dt.promoted(inputs)
    return dtype, dtype


cat = _movement(
    "cat",
    Kind.OPAQUE,
    lambda *arrays, dim: np.concatenate(arrays, axis=dim),
    _cat_shape,
    (_cat_grad,),
    dtype=_cat_dtype,
    variadic=True,
    codegen={"numpy_into": lambda attrs: f"np.concatenate(({{inputs}},), axis={attrs['dim']}, out={{out}})"},
)


def _pad_kernel(a, *, widths, value):
    return np.pad(a, widths, mode="constant", constant_values=value)


def _pad_shape(shape, *, widths, value):
    return tuple(n + lo + hi for n, (lo, hi) in zip(shape, widths))


def _pad_grad(g, out, x, *, widths, value):
    key = tuple(("s", lo, lo + n, 1) for n, (lo, hi) in zip(x.shape, widths))
    return index_basic(g, key=key)


pad = _movement("pad", Kind.OPAQUE, _pad_kernel, _pad_shape, (_pad_grad,))


def pad_to(x, shape):
    """Zero-pad at the end of each dim up to `shape`."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return pad(x, widths=tuple((0, n - m) for m, n in zip(x.shape, shape)), value=0.0)


# ---- copies and casts ------------------------------------------------------------
copy = _movement(
    "copy",
    Kind.ELEMENTWISE,
    lambda a: np.array(a, copy=True, order="C"),
    shape_rules.same_as_first,
    (lambda g, out, x: g,),
    codegen={"numpy": "np.copyto({out}, {0})", "triton": "{0}", "c": "{0}"},
    contiguous_result=True,
)
cast = register(
    Op(
        name="cast",
        kind=Kind.ELEMENTWISE,
        kernel=lambda a, *, dtype: a.astype(NUMPY_DTYPE[dtype]),
        shape=lambda shape, *, dtype: tuple(shape),
        dtype=dt.cast,
        vjp=(lambda g, out, x, *, dtype: g,),
        saves=_NOTHING,
        upcasts_low_precision=False,
        converts_only=True,
        # astype first: a direct cast rounds once, where two copies could round twice
        codegen={
            "triton": "{0}.to({dtype})",
            "c": "({dtype}){0}",
            "numpy": "np.copyto({out}, {0}.astype({dtype}), casting='unsafe')",
        },
    )
)
