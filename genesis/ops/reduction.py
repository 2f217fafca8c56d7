"""Reduction primitives: sum, prod, amax, amin, argmax, argmin, all, any.

`dims` is always a normalized tuple of non-negative dims (the functional
layer turns `dim=None`, negative dims and ints into that). mean, var, std,
logsumexp and max/min-with-indices are composites in `genesis.functional`.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from genesis import dtypes
from genesis.ops import dtype_rules as dt
from genesis.ops import elementwise as E
from genesis.ops import shape_rules
from genesis.ops.op import Autocast, Combine, Kind, Op, register


def _expand_back(g, x, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced dims of `x`."""
    if not keepdim:
        g = g.reshape(tuple(1 if i in dims else n for i, n in enumerate(x.shape)))
    return g.expand(x.shape)


def _keep(out, x, dims, keepdim):
    return out if keepdim else out.reshape(tuple(1 if i in dims else n for i, n in enumerate(x.shape)))


def _sum_grad(g, out, x, *, dims, keepdim):
    return _expand_back(g, x, dims, keepdim)


def _prod_grad(g, out, x, *, dims, keepdim):
    # Exact with zeros in the slice: one zero takes the product of the others,
    # two or more zeros make every gradient zero.
    is_zero = x == 0
    safe = E.where(is_zero, 1.0, x)
    prod_others = prod(safe, dims=dims, keepdim=True).expand(x.shape)
    zeros = sum(is_zero, dims=dims, keepdim=True).expand(x.shape)
    grad = E.where(zeros == 0, prod_others / safe, E.where(is_zero & (zeros == 1), prod_others, 0.0))
    return _expand_back(g, x, dims, keepdim) * grad


def _extremum_grad(g, out, x, *, dims, keepdim):
    # Ties share the gradient evenly, as PyTorch's amax/amin do.
    hit = x == _keep(out, x, dims, keepdim).expand(x.shape)
    count = sum(hit, dims=dims, keepdim=True).expand(x.shape)
    return E.where(hit, _expand_back(g, x, dims, keepdim) / count, 0.0)


# numpy reduces on one core, and its float32 sum is pairwise (4M floats: 650 us, 150 in C on 2 cores);
# below this many elements its kernel is as fast as a C kernel with its wrapper (eager_overhead.py)
REDUCED_IN_C_FROM = 1 << 18


def _reduction(
    name,
    kernel,
    vjp,
    dtype,
    triton=None,
    saves=frozenset({"inputs"}),
    numpy=None,
    combine=None,
    shape=shape_rules.reduce,
    triton_helpers=(),
):
    # a reduction with a `combine` runs blockwise in fused kernels (C, numpy), and eagerly in C for big
    # inputs; triton/numpy: its line there
    codegen = {"triton": triton, "numpy": numpy, "triton_helpers": triton_helpers}
    return register(
        Op(
            name=name,
            kind=Kind.REDUCTION,
            kernel=kernel,
            shape=shape,
            dtype=dtype,
            vjp=vjp,
            saves=saves,
            autocast=Autocast.FP32,
            combine=combine,
            codegen={backend: text for backend, text in codegen.items() if text},
            generated_eager_from=None if combine is None else REDUCED_IN_C_FROM,
        )
    )


def _numpy_reduction(function):
    """The numpy kernel line of a reduction that writes with `out=` (fused kernels reuse buffers)."""
    return f"np.{function}({{0}}, axis={{dims}}, keepdims={{keepdim}}, out={{out}})"


def _check_extremum(name, shape, dims):
    """max and min have no identity: reducing a zero-size dim is an error, found from the shapes alone,
    so eager's kernel and a trace's shape rule (compiled code) refuse it alike."""
    # builtins.any: this module's own `any` is the reduction op defined below
    if builtins.any(shape[d] == 0 for d in dims):
        raise ValueError(f"{name}: cannot reduce over a zero-size dimension (no identity), shape {list(shape)}")


def _checked_extremum(kernel, name):
    def run(a, *, dims, keepdim):
        _check_extremum(name, a.shape, dims)
        return kernel(a, axis=dims, keepdims=keepdim)

    def shape(input_shape, *, dims, keepdim):
        _check_extremum(name, input_shape, dims)
        return shape_rules.reduce(input_shape, dims=dims, keepdim=keepdim)

    return run, shape


sum = _reduction(
    "sum",
    # the ufunc's reduce, which np.sum calls after a microsecond of argument handling
    lambda a, *, dims, keepdim: np.add.reduce(a, axis=dims, keepdims=keepdim),
    (_sum_grad,),
    dt.sum_like,
    combine=Combine.ADD,
    triton="tl.sum(tl.where({mask}, {0}, 0), axis={axis}, keep_dims=True)",
    saves=frozenset(),
    numpy=_numpy_reduction("sum"),
)
prod = _reduction(
    "prod",
    lambda a, *, dims, keepdim: np.prod(a, axis=dims, keepdims=keepdim),
    (_prod_grad,),
    dt.sum_like,
    combine=Combine.MULTIPLY,
    triton="prod_over(tl.where({mask}, {0}, 1), {axis})",
    triton_helpers=("products.triton",),
    numpy=_numpy_reduction("prod"),
)
# amax/amin of a bool tensor is its any/all, and PyTorch allows it, so every dtype keeps its own
_amax, _amax_shape = _checked_extremum(np.maximum.reduce, "amax")
_amin, _amin_shape = _checked_extremum(np.minimum.reduce, "amin")
amax = _reduction(
    "amax",
    _amax,
    (_extremum_grad,),
    dt.not_bool,
    combine=Combine.MAXIMUM,
    shape=_amax_shape,
    triton='max_keeping_nan(tl.where({mask}, {0}, -float("inf")), {axis})',
    triton_helpers=("extrema.triton",),
    saves=frozenset({"inputs", "output"}),
    numpy=_numpy_reduction("max"),
)
amin = _reduction(
    "amin",
    _amin,
    (_extremum_grad,),
    dt.not_bool,
    combine=Combine.MINIMUM,
    shape=_amin_shape,
    triton='min_keeping_nan(tl.where({mask}, {0}, float("inf")), {axis})',
    triton_helpers=("extrema.triton",),
    saves=frozenset({"inputs", "output"}),
    numpy=_numpy_reduction("min"),
)


def _all_any_dtype(inputs, **attrs):
    """bool, except that PyTorch keeps uint8 for uint8 inputs (a legacy it still honours)."""
    return None, dtypes.uint8 if inputs[0].dtype is dtypes.uint8 else dtypes.bool_


all = _reduction("all", lambda a, *, dims, keepdim: np.all(a, axis=dims, keepdims=keepdim), None, _all_any_dtype)
any = _reduction("any", lambda a, *, dims, keepdim: np.any(a, axis=dims, keepdims=keepdim), None, _all_any_dtype)


def _check_arg(name, shape, dim):
    # an empty tensor has an argmax along a dim whose own size is not zero (the result is empty)
    if math.prod(shape) == 0 and (dim is None or shape[dim] == 0):
        raise ValueError(
            f"{name}: cannot take the {name} of an empty tensor of shape {list(shape)}"
            + ("" if dim is None else f" along dim {dim} of size 0")
        )


def _arg_shape(name):
    def shape(input_shape, *, dim, keepdim):
        _check_arg(name, input_shape, dim)
        return _reduced_shape(input_shape, dim=dim, keepdim=keepdim)

    return shape


def _reduced_shape(shape, *, dim, keepdim):
    if dim is None:
        return (1,) * len(shape) if keepdim else ()
    return shape_rules.reduce(shape, dims=(dim,), keepdim=keepdim)


def _arg_kernel(kernel, name):
    def run(a, *, dim, keepdim):
        _check_arg(name, a.shape, dim)
        if dim is None:
            index = kernel(a.reshape(-1))
            return np.full((1,) * a.ndim if keepdim else (), index, dtype=np.int64)
        return kernel(a, axis=dim, keepdims=keepdim)

    return run


argmax = register(
    Op(
        name="argmax",
        kind=Kind.REDUCTION,
        kernel=_arg_kernel(np.argmax, "argmax"),
        shape=_arg_shape("argmax"),
        dtype=dt.index_result,
        upcasts_low_precision=False,
    )
)
argmin = register(
    Op(
        name="argmin",
        kind=Kind.REDUCTION,
        kernel=_arg_kernel(np.argmin, "argmin"),
        shape=_arg_shape("argmin"),
        dtype=dt.index_result,
        upcasts_low_precision=False,
    )
)
