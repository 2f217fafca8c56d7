"""Eager reductions of big arrays as C kernels: a fused group of size one.

numpy reduces on one core, and its float32 sum is a pairwise sum: 650 us for 4M floats on the
project's 2-core machine, against PyTorch's 120 us. The C backend's flat reduction kernel runs on
every core at the speed of memory. So eager dispatch asks here first (it cannot import the
compiler, which sits above it: `dispatch.provide_single_op_kernels`), and a reduction of a big
contiguous float array runs as a one-node graph through fusion and the C backend, built once per
op, attributes, dtype and shape (a flat kernel's C names no size, so a new shape costs a Python
wrapper, not a C compile). Everything else, and every machine without a C compiler, keeps the
op's numpy kernel. The results are what a compiled program computes for the same reduction.
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

# below this many elements numpy's kernel is as fast as the C kernel and its wrapper (measured with
# `python -m genesis.bench --only eager`: a float32 sum of 256K elements, 36 us in numpy, 32 in C)
MIN_ELEMENTS = 1 << 18
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_KEPT = 64  # programs kept, the least recently used dropped first
_programs: OrderedDict = OrderedDict()
_NONE = object()  # a key whose program could not be had: numpy's kernel, without asking again


def single_op_kernel(op, arrays, attrs, out_dtype):
    """The op's result computed by a C kernel, or None where numpy's kernel should run."""
    if op.combine is None or len(arrays) != 1:
        return None
    x = arrays[0]
    if type(x) is not np.ndarray or x.size < MIN_ELEMENTS or x.dtype not in _FLOATS or not x.flags.c_contiguous:
        return None
    key = (op.name, x.dtype, x.shape, out_dtype, tuple(sorted(attrs.items())))
    run = _programs.get(key)
    if run is None:
        run = _build(op, x, attrs, out_dtype)
        _programs[key] = run
        if len(_programs) > _KEPT:
            _programs.popitem(last=False)
    else:
        _programs.move_to_end(key)
    if run is _NONE:
        return None
    (result,) = run([Tensor._make(x, GENESIS_DTYPE[x.dtype])])
    return result._data


def _build(op, x, attrs, out_dtype):
    if not native.compiler_available():
        return _NONE
    graph = Graph()
    value = graph.add_input(x.shape, GENESIS_DTYPE[x.dtype])
    node = graph.add(op.name, (value.name,), attrs, shape=op.shape(x.shape, **attrs), dtype=out_dtype)
    graph.outputs = [node.name]
    graph = run_pipeline(graph, passes=[("fusion", fusion)])
    with warnings.catch_warnings():  # where C fails, numpy's own kernel is the better fallback
        warnings.simplefilter("ignore")
        run, stats = c_executor(graph)
    return run if stats.get("c_kernels") and not stats.get("c_failed") else _NONE


dispatch.provide_single_op_kernels(single_op_kernel)
