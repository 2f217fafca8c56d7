"""Executors: turn an optimised graph into a callable `run(list of tensors) -> list of tensors`.

- eager: the graph interpreted node by node with the eager kernels;
- numpy: the generated program (fused chunked-numpy kernels + library calls
  for the rest), loaded from the disk cache or generated and stored there.

Both run with autocast off (the graph already holds autocast's casts) and
produce plain result tensors.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

import genesis
from genesis import dispatch
from genesis.autograd import grad_mode
from genesis.compiler import cache, interpret
from genesis.compiler.codegen.wrapper import CODEGEN_VERSION, build_source
from genesis.ops.op import OPS
from genesis.tensor import Tensor


@contextlib.contextmanager
def _plain_eager():
    hook, dispatch.autocast_hook = dispatch.autocast_hook, None
    try:
        with grad_mode.no_grad():
            yield
    finally:
        dispatch.autocast_hook = hook


def eager_executor(graph):
    freed = interpret.last_uses(graph)
    return lambda inputs: interpret.run(graph, inputs, freed), {"kernels": 0, "library_calls": len(graph.op_nodes())}


def library_call(graph, node):
    """Run one unfused node with its eager kernel, on arrays; literals go back in their places."""
    op = OPS[node.op]
    slots = [(graph[x].dtype if isinstance(x, str) else None, x) for x in node.inputs]
    attrs = node.attrs

    def call(*arrays):
        values = iter(arrays)
        inputs = [Tensor._make(next(values), dtype) if dtype is not None else literal for dtype, literal in slots]
        return dispatch.apply(op, *inputs, **attrs)._data

    return call


def program_key(graph, backend: str) -> str:
    return cache.key_of(graph.signature(), backend, genesis.__version__, CODEGEN_VERSION, cache.code_hash(),
                        np.__version__, sys.version_info[:2])


def numpy_executor(graph, dump=None, prefix=""):
    key = program_key(graph, "numpy")
    source = cache.load(key)
    cache_hit = source is not None
    if not cache_hit:
        source = build_source(graph).source
        cache.store(key, source)
    namespace: dict = {}
    # one blank line stands for the entry's checksum header, so tracebacks point at the right lines
    exec(compile("\n" + source, str(cache.path_of(key)), "exec"), namespace)  # noqa: S102  (our own generated code)
    if dump:
        dump.write(f"{prefix}program.py", source)
    library = [library_call(graph, graph[name]) for name in namespace["LIBRARY"]]
    program = namespace["program"]
    out_dtypes = [graph[name].dtype for name in graph.outputs]
    input_names = set(graph.inputs)

    def run(inputs):
        with _plain_eager():
            arrays = program([t._data for t in inputs], library)
        results = []
        for name, array, dtype in zip(graph.outputs, arrays, out_dtypes):
            if name in input_names:  # the function returned an input: eager returns that very tensor
                results.append(inputs[graph.inputs.index(name)])
            else:
                results.append(Tensor._make(array, dtype))
        return results

    stats = dict(namespace["STATS"], cache_hit=cache_hit, cache_key=key)
    return run, stats
