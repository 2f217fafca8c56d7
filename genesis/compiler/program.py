"""From a traced function to a runnable program: trace, run the passes, pick the executor.

A `Program` remembers where each graph input comes from (a tensor argument,
or a captured tensor such as a parameter, read afresh at every call), where
each output goes (the user's result, or back into a tensor that the traced
code changed in place: a buffer, an optimizer's state), and the executor that
the backend built for the optimised graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genesis import autograd, grad_mode
from genesis.autograd.engine import VersionError
from genesis.compiler import backward, effects, pytree
from genesis.compiler.backward import split
from genesis.compiler.debug import PhaseTimes
from genesis.compiler.dump import Dump
from genesis.compiler.executors import c_executor, device_resident, eager_executor, numpy_executor, triton_executor
from genesis.compiler.guards import World
from genesis.compiler.ir import Graph
from genesis.compiler.passes import LOWERING, check_disabled, run_pipeline
from genesis.compiler.report import describe
from genesis.compiler.symbols import Symbol
from genesis.compiler.trace import Tracer, tracing
from genesis.ops.op import OPS, Kind
from genesis.runtime import cuda as cuda_runtime
from genesis.tape import Node
from genesis.tensor import Tensor


class Program:
    def __init__(self, graph, traced, executor, kernels_per_call, backward=None):
        self.graph = graph
        self.sources = traced.sources  # per graph input: where a call finds it (see compiler/effects.py)
        self.out_spec = traced.out_spec
        self.out_slots = traced.out_slots  # per result leaf: ("graph", output index) or ("value", python value)
        self.writebacks = traced.writebacks  # what a call writes back: in-place updates, .grad, stored tensors
        self.world = traced.world  # the Python state the trace read (compiler/guards.py)
        self.spent = traced.spent  # results a backward inside the function already went through
        self.refused_backward = traced.refused_backward
        # tensors whose memory a call may write: the trace assumed no two of them share any
        self._written = (
            [s for s in self.sources if s[0] in ("arg", "captured")]
            if any(effect[0] == "buffer" for effect in traced.writebacks)
            else []
        )
        self._aliases = _input_aliases(graph)  # (output, input) positions: outputs that may be inputs' memory
        self._repeated = _repeated_outputs(graph)
        self.executor = executor
        self.kernels_per_call = kernels_per_call
        self.backward = backward  # a _Backward when results carry gradients
        self.info: dict = {}
        self.report: dict = {}
        self.seconds: dict = {}  # per phase of the compile: trace, passes, codegen
        self.confirmed = False  # traced a second time and found the same (see CompiledFunction)
        self.guards = traced.guards  # (read, value, what): host values the trace baked in
        self._capture_meta = [
            (t, tuple(t.shape), t.dtype, t.requires_grad, t._data.strides, t.device)
            for t in (source[1] for source in self.sources if source[0] == "captured")
        ]

    def stale(self) -> str | None:
        """Why the program no longer fits what its trace read besides the arguments, or None."""
        for t, shape, dtype, grad, strides, device in self._capture_meta:
            if (
                tuple(t.shape) != shape
                or t.dtype is not dtype
                or t.requires_grad != grad
                or t._data.strides != strides
                or t.device is not device
            ):
                return "a captured tensor (parameter or buffer) changed shape, dtype, requires_grad, layout or device"
        for read, value, what in self.guards:
            now = read()
            if now != value:
                change = f"{value!r} -> {now!r}"
                return f"{what}: {change}" if len(change) <= 80 else f"{what} changed"
        return self.world.changed() if self.world is not None else None

    def _detach_from_written(self, inputs, outputs, leaves) -> None:
        """An output that is an input, or a view of one (the program returns numpy's view), keeps
        the input's values as the program read them: a copy, where the call is about to write that
        input in place. Eager saved the old values for its backward, and its results and the other
        writebacks (`a.copy_(b); b.div_(2)`) hold them too."""
        written = {id(effects.target_tensor(e[1], leaves)) for e in self.writebacks if e[0] == "buffer"}
        for output, source in self._aliases:
            if id(inputs[source]) in written:
                value = outputs[output]
                outputs[output] = Tensor._make(value._data.copy(), value.dtype, value.device)

    def shares_memory(self, leaves) -> bool:
        """Whether two tensors this call would read and write in place share memory (an argument
        passed as a view of another, or a parameter passed as an argument). The trace saw them as
        separate values, so the call must run eagerly, where a write through one shows in the other."""
        if not self._written:
            return False
        tensors = [leaves[s[1]] if s[0] == "arg" else s[1] for s in self._written]
        return effects.overlapping([cuda_runtime.memory_of(t._data) for t in tensors])

    def __call__(self, leaves):
        inputs = effects.gather(self.sources, leaves)
        # only the inputs a second derivative would read, as they were: a call's hot path stays short
        versions = self.backward.versions_of(inputs) if self.backward is not None else None
        outputs = self.executor(inputs)
        for index in self._repeated:
            value = outputs[index]
            outputs[index] = Tensor._make(value._data.copy(), value.dtype, value.device)
        if self._aliases and self._written:
            self._detach_from_written(inputs, outputs, leaves)
        effects.apply(self.writebacks, outputs, inputs, leaves)
        if self.backward is not None:
            self.backward.attach(inputs, outputs, versions)
        for index, op in self.spent:
            _spent_history(outputs[index], op)
        if self.refused_backward is not None:
            why, positions = self.refused_backward
            _refused_history([outputs[i] for i in positions], why, inputs)
        results = [outputs[where] if kind == "graph" else where for kind, where in self.out_slots]
        return pytree.unflatten(self.out_spec, results)


def _repeated_outputs(graph) -> list[int]:
    """Positions of outputs that repeat an earlier output's value (common subexpressions merged two
    results; two biases got one gradient), other than inputs: eager made separate tensors, which
    the call must hand out too, or writing one in place (a gradient accumulated) would change both."""
    inputs = set(graph.inputs)
    return [k for k, name in enumerate(graph.outputs) if name in graph.outputs[:k] and name not in inputs]


def _input_aliases(graph) -> list[tuple[int, int]]:
    """(output position, input position) for each output that is a graph input or a chain of views of
    one: the executors hand such an output back as the input's own memory."""
    position = {name: i for i, name in enumerate(graph.inputs)}
    aliases = []
    for k, name in enumerate(graph.outputs):
        while name not in position and graph[name].op in OPS and OPS[graph[name].op].kind is Kind.VIEW:
            name = graph[name].value_inputs()[0]
        if name in position:
            aliases.append((k, position[name]))
    return aliases


def _spent_history(result, op) -> None:
    """The function ran backward through `result` (a training step's loss): as in eager, it requires
    grad, and a second backward through it says that its graph was freed, naming the op."""
    node = Node(op, (), {}, None)
    node.inputs = None  # what the engine's backward leaves of a node it went through
    result._node, result.requires_grad = node, True


def _refused_history(results, why: str, inputs) -> None:
    """Results whose backward eager would refuse (a value it needs was changed in place): a backward
    through them raises that error, when it runs, as eager's does."""
    node = Node(backward.REFUSED_BACKWARD, tuple(t for t in inputs if t.requires_grad), {"why": why}, None)
    for result in results:
        result._node, result.requires_grad = node, True


class _Backward:
    """What a call needs to hang the compiled backward on its results."""

    def __init__(self, executor, traced, saved_positions, kernels_per_call, differentiable):
        self.executor = executor
        self.saved_positions = saved_positions  # forward outputs the backward reads
        self.output_positions = traced.differentiable  # forward outputs that get gradients
        self.input_positions = traced.diff_inputs  # graph inputs that receive gradients
        self.slots = traced.grad_slots  # per such input: its gradient's index, or None
        self.kernels_per_call = kernels_per_call
        self.differentiable = differentiable  # the joint graph, for gradients with create_graph=True

    def versions_of(self, inputs) -> list:
        return [inputs[k]._version[0] for k in self.differentiable.read]

    def attach(self, inputs, outputs, versions) -> None:
        results = [outputs[i] for i in self.output_positions]
        metas = [(r.shape, r.dtype) for r in results]
        call = backward.BackwardCall(
            self.executor,
            [outputs[i] for i in self.saved_positions],
            metas,
            len(self.input_positions),
            again=(self.differentiable, inputs, versions),
        )
        backward.attach(results, call, [inputs[i] for i in self.input_positions], self.slots, inputs)


@dataclass
class Traced:
    graph: Graph
    sources: list
    out_spec: object
    out_slots: list
    writebacks: list
    differentiable: list = field(default_factory=list)  # graph output indices that get a compiled backward
    diff_inputs: list = field(default_factory=list)  # graph input indices that receive gradients
    grad_slots: list = field(default_factory=list)  # per diff input: index among the gradient outputs
    grad_inputs: list = field(default_factory=list)  # names of the incoming-gradient inputs
    guards: list = field(default_factory=list)  # the tracer's guards (see Tracer.guard)
    world: World | None = None  # the Python state the trace read (compiler/guards.py)
    spent: list = field(default_factory=list)  # (graph output, op): results whose history backward freed
    refused_backward: tuple | None = None  # (why, graph outputs): a backward eager would refuse


def trace(fn, leaves, spec, on_pass=None) -> Traced:
    """Run `fn` on symbolic stand-ins for the tensor leaves; when its results carry gradients,
    trace their backward into the same graph (see `compiler.backward`). Then the lowering passes
    write out what the trace left as markers (autocast, backward); `on_pass(name, graph)` sees
    the traced graph ("traced") and the graph after each of them."""
    world = World([fn, *(leaf for leaf in leaves if not isinstance(leaf, Tensor))])  # before it runs
    tracer = Tracer()
    source_of = {}  # graph input name -> where a call finds its value
    with tracing(tracer):
        arguments, traced_leaves = _stand_ins(tracer, leaves, source_of)
        args, kwargs = pytree.unflatten(spec, traced_leaves)
        out_leaves, out_spec = pytree.flatten(fn(*args, **kwargs))
        world.keep_tensors_read({id(t) for t, _ in tracer.captured})
        graph = tracer.graph
        out_slots, out_tensors, slot_of = [], [], {}
        for leaf in out_leaves:
            if isinstance(leaf, Tensor) and id(leaf) in slot_of:  # the same tensor again: eager's one object
                out_slots.append(("graph", slot_of[id(leaf)]))
            elif isinstance(leaf, Tensor):
                slot_of[id(leaf)] = len(graph.outputs)
                tracer.settle_result(leaf)
                out_slots.append(("graph", len(graph.outputs)))
                graph.outputs.append(tracer.value(leaf))
                out_tensors.append(leaf)
            else:
                out_slots.append(("value", leaf))
        # in-place writes, gradients and tensors stored on modules become outputs that a call writes back
        argument_of = {id(stand_in): (index, name) for index, stand_in, name, _, _ in arguments}
        effects_ = effects.writebacks(tracer, graph, arguments)
        effects_ += effects.stored_tensors(tracer, graph, world, argument_of)
        traced = Traced(graph, [], out_spec, out_slots, effects_, world=world)
        stand_ins = {name: stand_in for _, stand_in, name, _, _ in arguments}
        stand_ins.update((grad_name, grad) for _, _, _, grad, grad_name in arguments if grad_name is not None)
        stand_ins.update((name, t) for t, name in tracer.captured)
        stand_ins.update((name, None) for _, _, name in tracer.scalars)
        _trace_backward(tracer, traced, out_tensors, [stand_ins[name] for name in graph.inputs])
        graph.verify()
        if on_pass is not None:
            on_pass("traced", graph)
        run_pipeline(graph, passes=LOWERING, on_pass=on_pass)
        effects.sources(tracer, source_of)  # after the backward: its zeros and ones are captured inputs too
    traced.sources = [source_of[name] for name in graph.inputs if name not in traced.grad_inputs]
    traced.guards = list(tracer.guards.values())
    return traced


def _freed_op(tensor):
    """The op of a node in `tensor`'s history whose saved values a backward freed, or None."""
    stack, seen = [tensor._node], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.inputs is None:
            return node.op
        stack.extend(child for child, _ in node.edges)
    return None


def _stand_ins(tracer, leaves, source_of):
    """A symbolic stand-in for each tensor argument; the same tensor passed twice gets one, as
    eager code would see one tensor. An argument that has a gradient lends it to its stand-in as
    an input of its own, so traced code that reads or accumulates into `.grad` sees it.
    Returns ([(leaf index, stand-in, input name, its gradient, gradient input name)], new leaves)."""
    arguments, traced_leaves, seen = [], [], {}
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, Tensor):
            if id(leaf) not in seen:
                stand_in = seen[id(leaf)] = tracer.add_input(leaf)
                source_of[stand_in._data.name] = ("arg", i)
                grad_name = None
                if leaf.requires_grad and leaf.grad is not None:
                    stand_in.grad = tracer.add_input(leaf.grad)
                    stand_in.grad.requires_grad = False
                    grad_name = stand_in.grad._data.name
                    source_of[grad_name] = ("arg_grad", i)
                arguments.append((i, stand_in, stand_in._data.name, stand_in.grad, grad_name))
            leaf = seen[id(leaf)]
        traced_leaves.append(leaf)
    return arguments, traced_leaves


def _trace_backward(tracer, traced, out_tensors, input_tensors) -> None:
    """Append the backward of the differentiable results to the graph (nothing if there is none)."""
    if not grad_mode.is_grad_enabled():
        return
    graph = traced.graph
    # a result whose history a traced backward() already consumed, wholly (a training step's loss) or in
    # part (DCGAN's errD_real + errD_fake), needs none: eager's backward through it would raise
    freed = {i: _freed_op(t) for i, t in enumerate(out_tensors) if t.requires_grad}
    differentiable = [
        i for i, t in enumerate(out_tensors) if i in freed and freed[i] is None and t.dtype.is_floating_point
    ]
    traced.spent = [(_graph_output_index(traced, i), op) for i, op in freed.items() if op is not None]
    # the inputs that required grad as they were passed (an in-place op may have made one require it since)
    diff_inputs = [
        i
        for i, t in enumerate(input_tensors)
        if t is not None and tracer.passed_requiring_grad.get(id(t), t.requires_grad)
    ]
    if not differentiable or not diff_inputs:
        return
    outputs = [out_tensors[i] for i in differentiable]
    incoming = [tracer.add_input(t) for t in outputs]
    targets = [input_tensors[i] for i in diff_inputs]
    # an argument written in place has a history now, and its gradient is the one its value as passed
    # gets: a leaf of the trace's tape, for the length of this call. A result that is that argument
    # (`x.mul_(y); return x`) keeps its history through a tensor of its own.
    is_target = {id(t) for t in targets}
    outputs = [_same_value(t) if id(t) in is_target else t for t in outputs]
    histories = [t._node for t in targets]
    for t in targets:
        t._node = None
    try:
        grads = autograd.grad(outputs, targets, grad_outputs=incoming, allow_unused=True)
    except VersionError as error:  # eager raises it when the backward runs, not in the forward: so will this
        for t in incoming:
            graph.remove_input(t._data.name)
        traced.refused_backward = (str(error), [_graph_output_index(traced, i) for i in differentiable])
        return
    finally:
        for t, history in zip(targets, histories):
            t._node = history
    traced.grad_inputs = [t._data.name for t in incoming]
    traced.grad_slots = []
    n_forward = len(graph.outputs)
    for g in grads:
        traced.grad_slots.append(None if g is None else len(graph.outputs) - n_forward)
        if g is not None:
            graph.outputs.append(tracer.value(g))
    traced.differentiable = [_graph_output_index(traced, i) for i in differentiable]
    traced.diff_inputs = diff_inputs


def _same_value(t: Tensor) -> Tensor:
    """Another tensor object for the traced value `t`, with its history."""
    other = Tensor._make(t._data, t.dtype, t.device, t.requires_grad)
    other._node = t._node
    return other


def _graph_output_index(traced, tensor_position: int) -> int:
    """The graph output index of the `tensor_position`-th distinct tensor among the results (a tensor
    returned twice is one graph output, and one entry of `out_tensors`)."""
    graph_slots = list(dict.fromkeys(where for kind, where in traced.out_slots if kind == "graph"))
    return graph_slots[tensor_position]


def _donations(traced) -> dict:
    """Outputs that are in-place updates of an input tensor (a parameter, optimizer state): the
    program may compute them straight into that input's buffer, as eager's in-place ops do."""
    graph = traced.graph
    input_of = {id(source[1]): name for name, source in zip(graph.inputs, traced.sources) if source[0] == "captured"}
    donations = {}
    for effect in traced.writebacks:
        if effect[0] != "buffer" or type(effect[1]) is int:
            continue  # an argument's buffer may be any view the caller passes: written back, not donated
        tensor, output = effect[1], graph.outputs[effect[2]]
        name = input_of.get(id(tensor))
        if name is not None and output not in graph.inputs and graph.outputs.count(output) == 1:
            donations[output] = name
    return donations


def _compile(graph, backend, dump, prefix, disable_passes, times, on_device=False):
    step = iter(range(len(LOWERING) + 1, 100))
    with times.phase("passes"):
        graph = run_pipeline(
            graph, disabled=disable_passes, on_pass=lambda name, g: dump.graph(f"{prefix}{next(step):02d}_{name}", g)
        )
    executors = {"numpy": numpy_executor, "triton": triton_executor, "c": c_executor}
    with times.phase("codegen"):
        if on_device:  # a CUDA device's tensors: Triton's kernels on its memory, whatever the CPU backend
            executor, stats = triton_executor(graph, dump, prefix)
            executor = device_resident(executor, stats["host_round_trips"])
        elif backend in executors:
            executor, stats = executors[backend](graph, dump, prefix)
        else:
            executor, stats = eager_executor(graph)
    return graph, executor, stats


def _on_device(leaves, traced) -> bool:
    """Whether the program's tensors (its arguments and the tensors it captured) live on a device."""
    captured = (source[1] for source in traced.sources if source[0] == "captured")
    return any(isinstance(t, Tensor) and t.device.type != "cpu" for t in (*leaves, *captured))


def build_program(fn, leaves, spec, *, backend, dump_dir=None, disable_passes=()) -> Program:
    check_disabled(disable_passes)
    dump = Dump(dump_dir, fn)
    times = PhaseTimes()
    numbers = {"traced": 0, **{pass_name: k + 1 for k, (pass_name, _) in enumerate(LOWERING)}}
    with times.phase("trace"):
        traced = trace(
            fn, leaves, spec, on_pass=lambda pass_name, g: dump.graph(f"{numbers[pass_name]:02d}_{pass_name}", g)
        )
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    on_device = _on_device(leaves, traced)
    backward_program, backward_report = None, None
    if traced.grad_inputs:
        n_forward = len(traced.graph.outputs) - sum(slot is not None for slot in traced.grad_slots)
        forward_graph, backward_graph, saved = split(traced.graph, n_forward, traced.grad_inputs)
        graph, executor, stats = _compile(forward_graph, backend, dump, "", disable_passes, times, on_device)
        dump.graph("backward_00_traced", backward_graph)
        bwd_graph, backward_executor, backward_stats = _compile(
            backward_graph, backend, dump, "backward_", disable_passes, times, on_device
        )
        saved_positions = list(range(n_forward, n_forward + len(saved)))
        backward_program = _Backward(
            backward_executor,
            traced,
            saved_positions,
            backward_stats["kernels"] + backward_stats["library_calls"],
            backward.Differentiable(traced.graph, n_forward, forward_graph.inputs, traced.grad_inputs),
        )
        backward_report = describe(bwd_graph, backward_stats, function=f"{name} (backward)", backend=backend)
    else:
        traced.graph.donations = _donations(traced)
        graph, executor, stats = _compile(traced.graph, backend, dump, "", disable_passes, times, on_device)
    kernels = stats["kernels"] + stats["library_calls"]
    report = describe(graph, stats, function=name, backend=backend)
    if backward_report is not None:
        report["backward"] = backward_report
    dump.finish(graph, report)
    program = Program(graph, traced, executor, kernels, backward_program)
    program.info = stats
    program.report = report
    program.seconds = times.seconds
    return program


__all__ = ["Program", "Traced", "build_program", "trace", "Symbol"]
