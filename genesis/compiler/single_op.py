"""Eager ops whose numpy kernel is slow run as generated C kernels: a fused group of size one.

numpy reduces on one core, and its float32 sum is pairwise: 650 us for 4M floats on the project's
2-core machine, against PyTorch's 120 us; scipy's erf (GELU's) costs 15 ns per element. Such an op
says from how many elements a generated kernel wins (`Op.generated_eager_from`), and eager dispatch
asks here first (it cannot import the compiler above it: `dispatch.provide_single_op_kernels`). Its
inputs, contiguous arrays of one float dtype, become a one-node graph that goes through fusion and
the C backend, built once per op, attributes, dtype and shapes and kept for the next call (a flat
kernel's C names no size, so a new shape costs a Python wrapper, not a C compile). Where the C
backend refuses the group, for other dtypes, strided views, and on machines without a C compiler,
the op's numpy kernel runs. The results are what a compiled program computes for the same op.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np

from genesis import dispatch
from genesis.compiler import native
from genesis.compiler.executors import c_executor
from genesis.compiler.ir import Graph
from genesis.compiler.passes import run_pipeline
from genesis.compiler.passes.fusion import fusion
from genesis.runtime.cpu import GENESIS_DTYPE
from genesis.tensor import Tensor

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_KEPT = 64  # programs kept, the least recently used dropped first
_programs: OrderedDict = OrderedDict()
_NONE = object()  # a key whose program could not be had: numpy's kernel, without asking again


def single_op_kernel(op, arrays, attrs, out_dtype):
    """The op's result computed by a generated C kernel, or None where its numpy kernel should run.
    Dispatch asks only where an array has `op.generated_eager_from` elements or more."""
    dtype = getattr(arrays[0], "dtype", None)
    if dtype not in _FLOATS:
        return None
    for x in arrays:
        if type(x) is not np.ndarray or x.dtype != dtype or not x.flags.c_contiguous:
            return None
    computed = GENESIS_DTYPE[dtype]
    if out_dtype is not computed:
        if out_dtype.itemsize >= computed.itemsize:
            return None
        # fp16/bf16 computed in float32: the kernel gives float32, which dispatch rounds, as numpy's
        out_dtype = computed
    key = (op.name, dtype, tuple(x.shape for x in arrays), out_dtype, tuple(sorted(attrs.items())))
    run = _programs.get(key)
    if run is None:
        run = _build(op, arrays, attrs, out_dtype)
        _programs[key] = run
        if len(_programs) > _KEPT:
            _programs.popitem(last=False)
    else:
        _programs.move_to_end(key)
    if run is _NONE:
        return None
    (result,) = run([Tensor._make(x, computed) for x in arrays])
    return result._data


def _build(op, arrays, attrs, out_dtype):
    if not native.compiler_available():
        return _NONE
    graph = Graph()
    values = [graph.add_input(x.shape, GENESIS_DTYPE[x.dtype]).name for x in arrays]
    shape = op.shape(*(x.shape for x in arrays), **attrs)
    node = graph.add(op.name, values, attrs, shape=shape, dtype=out_dtype)
    graph.outputs = [node.name]
    graph = run_pipeline(graph, passes=[("fusion", fusion)])
    with warnings.catch_warnings():  # where C fails, numpy's own kernel is the better fallback
        warnings.simplefilter("ignore")
        run, stats = c_executor(graph)
    return run if stats.get("c_kernels") and not stats.get("c_failed") else _NONE


dispatch.provide_single_op_kernels(single_op_kernel)
