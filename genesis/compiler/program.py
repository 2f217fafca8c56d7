"""From a traced function to a runnable program: trace, run the passes, pick the executor.

A `Program` remembers where each graph input comes from (a tensor argument,
or a captured tensor such as a parameter, read afresh at every call), where
each output goes (the user's result, or back into a tensor that the traced
code changed in place: a buffer, an optimizer's state), and the executor that
the backend built for the optimised graph.
"""

from __future__ import annotations

from genesis.autograd import grad_mode
from genesis.compiler import pytree
from genesis.compiler.executors import eager_executor, numpy_executor
from genesis.compiler.dump import Dump
from genesis.compiler.passes import run_pipeline
from genesis.compiler.trace import Symbol, Tracer, tracing
from genesis.tensor import Tensor


class Program:
    def __init__(self, graph, sources, out_spec, out_slots, writebacks, executor, kernels_per_call):
        self.graph = graph
        self.sources = sources          # per graph input: ("arg", leaf index) or ("captured", tensor)
        self.out_spec = out_spec
        self.out_slots = out_slots      # per result leaf: ("graph", output index) or ("value", python value)
        self.writebacks = writebacks    # (tensor, output index): values the code wrote in place
        self.executor = executor
        self.kernels_per_call = kernels_per_call
        self._capture_meta = [(t, tuple(t.shape), t.dtype, t.requires_grad) for kind, t in sources
                              if kind == "captured"]

    def captures_match(self) -> bool:
        return all(tuple(t.shape) == shape and t.dtype is dtype and t.requires_grad == grad
                   for t, shape, dtype, grad in self._capture_meta)

    def __call__(self, leaves):
        inputs = [leaves[where] if kind == "arg" else where for kind, where in self.sources]
        outputs = self.executor(inputs)
        for tensor, index in self.writebacks:
            _write_into(tensor, outputs[index])
        results = [outputs[where] if kind == "graph" else where for kind, where in self.out_slots]
        return pytree.unflatten(self.out_spec, results)


def _write_into(tensor, value) -> None:
    """Store a compiled in-place result into the tensor the user holds (its buffer, its version)."""
    with grad_mode.no_grad():
        tensor._data[...] = value._data
    tensor._version[0] += 1


def trace(fn, leaves, spec):
    """Run `fn` on symbolic stand-ins for the tensor leaves; return the graph and how to call it."""
    tracer = Tracer()
    source_of = {}  # graph input name -> where a call finds its value
    symbolic_args = []
    with tracing(tracer):
        traced_leaves = []
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, Tensor):
                stand_in = tracer.add_input(leaf)
                symbolic_args.append((leaf, stand_in, stand_in._data.name))
                source_of[stand_in._data.name] = ("arg", i)
                leaf = stand_in
            traced_leaves.append(leaf)
        args, kwargs = pytree.unflatten(spec, traced_leaves)
        out_leaves, out_spec = pytree.flatten(fn(*args, **kwargs))
        graph = tracer.graph
        out_slots = []
        for leaf in out_leaves:
            if isinstance(leaf, Tensor):
                out_slots.append(("graph", len(graph.outputs)))
                graph.outputs.append(tracer.value(leaf))
            else:
                out_slots.append(("value", leaf))
        # a tensor whose buffer now stands for another value was changed in place: write it back after each call
        holders = [(user, stand_in, name) for user, stand_in, name in symbolic_args]
        holders += [(t, t, name) for t, name in tracer.captured]
        writebacks = []
        for user_tensor, holder, original in holders:
            if holder._data.name != original:
                writebacks.append((user_tensor, len(graph.outputs)))
                graph.outputs.append(holder._data.name)
        source_of.update((name, ("captured", t)) for t, name in tracer.captured)
    sources = [source_of[name] for name in graph.inputs]
    return graph, sources, out_spec, out_slots, writebacks


def _needs_grad(sources, leaves) -> bool:
    """Whether results must carry autograd history: then the graph runs through eager dispatch,
    which records the tape (a compiled backward program is not built yet)."""
    if not grad_mode.is_grad_enabled():
        return False
    tensors = [leaves[where] if kind == "arg" else where for kind, where in sources]
    return any(t.requires_grad for t in tensors)


def build_program(fn, leaves, spec, *, backend, dump_dir=None, disable_passes=()) -> Program:
    graph, sources, out_spec, out_slots, writebacks = trace(fn, leaves, spec)
    dump = Dump(dump_dir, fn)
    dump.graph("00_traced", graph)
    step = iter(range(1, 100))
    graph = run_pipeline(graph, disabled=disable_passes,
                         on_pass=lambda name, g: dump.graph(f"{next(step):02d}_{name}", g))
    if backend == "numpy" and not _needs_grad(sources, leaves):
        executor, stats = numpy_executor(graph, dump)
    else:
        executor, stats = eager_executor(graph)
    kernels = stats["kernels"] + stats["library_calls"]
    dump.finish(graph, {"function": getattr(fn, "__qualname__", type(fn).__name__), "backend": backend,
                        "nodes": len(graph.op_nodes()), "inputs": len(graph.inputs),
                        "outputs": len(graph.outputs), "kernels_per_call": kernels, **stats,
                        "fusion_refusals": graph.fusion_log})
    program = Program(graph, sources, out_spec, out_slots, writebacks, executor, kernels)
    program.info = stats
    return program


__all__ = ["Program", "build_program", "trace", "Symbol"]
