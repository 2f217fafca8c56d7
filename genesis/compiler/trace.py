"""Tracing: run user code on symbolic tensors and record every op into a Graph.

A traced tensor is an ordinary `Tensor` whose buffer is a `Symbol`: a name in
the graph, a shape and a dtype, and no values (symbols.py). Dispatch (the one bind point)
sees a tracer installed and, instead of running the op's kernel, asks it for a
symbolic result; everything around the kernel (dtype rules, autograd's tape)
runs as in eager mode, so the traced code sees eager's shapes and dtypes.

Some work is left to the lowering passes as markers (ops/markers.py): an op
in an autocast region is recorded on its uncast inputs and marked with the
region (the autocast pass inserts the casts), a training feature's composite
is one node, and `loss.backward()` hands out `grad` markers, one per tensor it
reaches on the tape (the autodiff pass runs the vjp rules once the casts are
in the graph). So the backward lands in the same graph, built from the same
rules as eager's.

What a graph cannot hold stops the trace with a `GraphBreak` that names the
user's source line: reading a value on the host (`.item()`, `bool(t)`,
`.numpy()`, a branch on a tensor) and drawing random integers with `randint`
or `randperm` (their values would be baked into the graph and repeat on every
call; `rand`/`randn` draws read a fresh seed per call as a graph input).

In-place writes and views, which eager's shared memory makes visible to one
another, are renamings of graph values kept by the tracer's `ViewWrites`
(view_writes.py).
"""

from __future__ import annotations

import contextlib

from genesis import dispatch
from genesis.amp.autocast import autocast, cast_targets
from genesis.autocast_state import get_autocast_dtype
from genesis.compiler.ir import Graph, Meta
from genesis.compiler.symbols import (
    GraphBreak,
    Symbol,
    element_strides,
    is_symbolic,
    layout_of,
    user_line,
)
from genesis.compiler.view_writes import ViewWrites
from genesis.grad_mode import set_grad_enabled
from genesis.markers import GRAD
from genesis.ops.op import Kind
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.runtime.devices import cpu
from genesis.tensor import Tensor


class _Produced:
    """Stands for "made by an op" where a tape node is asked for (see Tracer.tensor_of)."""

    inputs = edges = ()
    hooks = retained = None


_PRODUCED = _Produced()


def _cpu_device():
    return cpu


class Tracer:
    """Builds one Graph; dispatch calls `record` for each op while it is installed.

    A concrete tensor that the traced code touches (a parameter, a buffer, a
    global, a tensor made inside the function) becomes a *captured* graph
    input: its buffer is swapped for a Symbol until the trace ends, so the
    tensor object keeps its identity and modules and optimizers that hold it
    trace unchanged; each call of the compiled program then reads the
    tensor's current buffer, so nothing is baked in as a constant.
    """

    def __init__(self, graph: Graph | None = None):
        self.graph = graph if graph is not None else Graph()
        self.captured: list[tuple[Tensor, str]] = []  # (tensor, its input's name), in order of first use
        self._captured_ids: set[int] = set()
        self.grad_holders: dict[int, Tensor] = {}  # id of a captured gradient -> the tensor it is .grad of
        self.grad_resets: set[int] = set()  # ids of tensors whose zero_grad() ran while tracing
        self.scalars: list[tuple] = []  # (getter, dtype, input name) of lifted host scalars
        self.guards: dict = {}  # key -> (read, value, what): host values baked in
        self._saved: list[tuple] = []  # what `restore` puts back into the captured tensors
        self._scalar_names: dict = {}
        self.leaves: list[Tensor] = []  # the leaf tensors gradients reach, by leaf_id
        self._leaf_ids: dict[int, int] = {}  # id(tensor) -> its leaf id (a pass's stand-ins included)
        self._stand_ins: list[Tensor] = []  # a pass's tensors standing for leaves (see tensor_of)
        self.non_leaves: set[int] = set()  # ids of stand-ins of arguments that are not leaves in eager
        self.passed_requiring_grad: dict[int, bool] = {}  # id of a stand-in -> its argument's requires_grad
        self._calls = 0  # numbers backward() calls and multi-result markers
        self.views = ViewWrites(self.value)  # views and in-place writes, done to graph values
        self.before: str | None = None  # a pass splicing ops in for a node sets it: they print before it
        self.devices: dict[str, object] = {}  # value name -> the device eager would hold it on

    # ---- values -----------------------------------------------------------------
    def _symbol(self, name: str, dtype, strides=None) -> Symbol:
        return Symbol(name, self.graph[name].shape, NUMPY_DTYPE[dtype], strides=strides)

    def symbolic(self, name: str, dtype, device, requires_grad=False, strides=None) -> Tensor:
        self.devices.setdefault(name, device)
        tensor = Tensor._make(self._symbol(name, dtype, strides), dtype, device)
        tensor.requires_grad = requires_grad
        return tensor

    def tensor_of(self, name: str, grad_edge=False) -> Tensor:
        """A symbolic tensor holding the graph's value `name`, for a pass that adds ops reading it.

        `grad_edge` (an `ir.Node.grads` entry) makes a gradient flow from the new ops where it
        flowed from the node they replace: to `name`'s producer (True) or to a leaf (its id)."""
        # the device its value has in eager: a pass's constants (a vjp's zeros) are made there
        tensor = self.symbolic(name, self.graph[name].dtype, self.device_of(name))
        if grad_edge is not False:
            tensor.requires_grad = True
            if grad_edge is True:
                tensor._node = _PRODUCED
            else:
                self._leaf_ids[id(tensor)] = grad_edge
                self._stand_ins.append(tensor)  # alive while its id means that leaf
        return tensor

    def device_of(self, name: str):
        """The device of the graph's value `name` in eager. A node a pass added without this tracer
        (autocast's casts) computes where its inputs are, a 0-d host scalar going to the others'
        device as in eager; a value with no known source is the host's. A walk with a stack of its
        own: a fresh tracer over a deep graph (thousands of nodes) knows none of them."""
        pending = [name]
        while pending:
            current = pending[-1]
            if current in self.devices:
                pending.pop()
                continue
            unknown = [x for x in self.graph[current].value_inputs() if x not in self.devices]
            if unknown:
                pending.extend(unknown)
                continue
            found = (self.devices[x] for x in self.graph[current].value_inputs())
            self.devices[current] = next((d for d in found if d is not _cpu_device()), _cpu_device())
            pending.pop()
        return self.devices[name]

    def add_input(self, example: Tensor) -> Tensor:
        """A graph input shaped like `example`; returns the symbolic tensor that stands for it. The
        stand-in is a leaf of the trace's tape; one for a tensor with a history is noted in
        `non_leaves`, since eager allows in-place writes into it."""
        node = self.graph.add_input(example.shape, example.dtype)
        stand_in = self.symbolic(
            node.name, example.dtype, example.device, example.requires_grad, element_strides(example._data)
        )
        if example._node is not None:
            self.non_leaves.add(id(stand_in))
        self.passed_requiring_grad[id(stand_in)] = example.requires_grad
        return stand_in

    def capture(self, tensor: Tensor) -> str:
        """Make a concrete tensor a graph input in place; `restore` undoes it.

        Its gradient, if it has one, is captured too: a traced backward then
        accumulates into it as eager would."""
        node = self.graph.add_input(tensor.shape, tensor.dtype, source=user_line())
        self._saved.append((tensor, tensor._data, tensor._node, tensor.grad, tensor._version))
        self.captured.append((tensor, node.name))
        self._captured_ids.add(id(tensor))
        self.devices[node.name] = tensor.device
        tensor._data = self._symbol(node.name, tensor.dtype, element_strides(tensor._data))
        tensor._node = None  # history from before the trace is not part of the graph
        tensor._version = [0]
        grad = tensor.grad
        if grad is not None and (type(grad._data) is not Symbol or id(grad) in self._captured_ids):
            # a gradient the code read before its tensor (an optimizer's `p.grad` while its step is
            # traced alone) is captured already: it is still `.grad`, read anew at every call, not a constant
            if type(grad._data) is not Symbol:
                self.capture(grad)
            self.grad_holders[id(grad)] = tensor
        return node.name

    def restore(self) -> None:
        for tensor, data, node, grad, version in reversed(self._saved):
            tensor._data, tensor._node, tensor.grad, tensor._version = data, node, grad, version
        self._saved.clear()

    # ---- what eager code does to buffers, done to values (view_writes.py) -----------
    def write(self, target: Tensor, value: Tensor, bases=()) -> None:
        self.views.write(target, value, bases)

    def remake_views(self, target: Tensor) -> None:
        self.views.remake_views(target)

    def refresh_view(self, view: Tensor) -> None:
        self.views.refresh_view(view)

    def settle_result(self, result: Tensor) -> None:
        self.views.settle_result(result)

    def skip_writes_if(self, condition: Tensor, select):
        return self.views.skip_writes_if(condition, select)

    def refuse(self, what: str) -> None:
        """Code outside the compiler met something a graph cannot hold: break the graph, naming the line."""
        raise GraphBreak(what)

    def reshape_in_place(self, target: Tensor, result: Tensor, what: str) -> None:
        """Break the graph unless `target` is a value this trace made (see dispatch.reshape_in_place):
        an argument's stand-in or a captured tensor stands for a tensor of the caller's."""
        if not is_symbolic(target) or id(target) in self._captured_ids or id(target) in self.passed_requiring_grad:
            raise GraphBreak(f"{what} of a compiled function's input (its new shape would reach the caller)")
        self.views.reshaped_in_place(target, result)

    def note_grad_reset(self, tensor: Tensor) -> None:
        """zero_grad() ran inside the traced function: `tensor`'s gradient before the call does not matter."""
        self.grad_resets.add(id(tensor))

    def scalar_input(self, getter, dtype, key) -> Tensor:
        """A 0-d graph input whose value `getter()` gives at every call (a learning rate read from its
        param group): a scheduler's change needs no recompile. One input per `key`."""
        if key not in self._scalar_names:
            node = self.graph.add_input((), dtype, source=user_line())
            self.scalars.append((getter, dtype, node.name))
            self._scalar_names[key] = node.name
        return self.symbolic(self._scalar_names[key], dtype, _cpu_device())

    def guard(self, read, what: str, key):
        """A host value the trace bakes in (a constant, or a branch it decides): `read()` now. Each call
        of the compiled program reads it again, and a different value traces anew, naming `what`.
        One guard per `key`."""
        if key not in self.guards:
            self.guards[key] = (read, read(), what)
        return self.guards[key][1]

    def gradient(self, tensor: Tensor):
        """`tensor.grad` for code that branches on it (dispatch.gradient). A gradient made by this
        trace's backward, or dropped by a zero_grad inside it, is the graph's business; any other is
        the call's: it becomes an input read from `.grad` at every call (capturing `tensor` registers
        it as its holder), and whether there is one is a guard."""
        grad = tensor.grad
        made_here = grad is not None and type(grad._data) is Symbol and id(grad) not in self._captured_ids
        if made_here or (grad is None and id(tensor) in self.grad_resets):
            return grad
        self.guard(lambda: tensor.grad is not None, "whether a parameter has a gradient", key=(id(tensor), "grad"))
        if grad is not None:
            self.value(tensor)
        return tensor.grad

    def value(self, x):
        """The graph's name for a tensor; scalars stay literals."""
        if not isinstance(x, Tensor):
            return x
        if type(x._data) is not Symbol:
            return self.capture(x)
        return x._data.name

    # ---- the dispatch hook ----------------------------------------------------------
    def record(self, op, inputs, attrs, device) -> Tensor:
        """Append `op` applied to `inputs`; return its symbolic result.

        Inside an autocast region the node keeps the inputs as they are and is marked with the
        region's dtype; its result has the dtype autocast's casts would give, so the traced code
        sees eager's dtypes, and the autocast pass inserts the casts. Autograd's tape records as in
        eager mode (backward() finds the parameters it reaches through it), and the node keeps,
        per input, where a gradient would flow: the autodiff pass reads that."""
        for x in inputs:
            if self.views.is_stale_view(x):
                self.views.refresh_view(x)
        region, targets = self._autocast_casts(op, inputs)
        seen = inputs
        if region is not None:
            seen = [Meta(x.shape, target) if target is not None else x for x, target in zip(inputs, targets)]
        _, out_dtype = op.dtype(seen, **attrs)
        needs_grad = any(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        recorded = needs_grad and dispatch.differentiable(op, out_dtype)
        names = tuple(self.value(x) for x in inputs)
        shapes = [tuple(x.shape) if isinstance(x, Tensor) else () for x in inputs]
        shape = tuple(op.shape(*shapes, **attrs))
        node = self.graph.add(
            op.name,
            names,
            attrs,
            shape=shape,
            dtype=out_dtype,
            source=user_line(),
            grads=self.grad_edges(inputs) if recorded else None,
            autocast=region,
            before=self.before,
        )
        out = self.symbolic(node.name, out_dtype, device, strides=layout_of(op, inputs, attrs, shape))
        if op.kind is Kind.VIEW:  # eager would share memory: writes into either must reach the other
            self.views.register_view(out, op, inputs, attrs)
        if recorded:
            dispatch.record(op, inputs, attrs, out)
        return out

    @staticmethod
    def _autocast_casts(op, inputs):
        """(the region's dtype, the cast of each input) when autocast would cast one of `op`'s
        inputs, else (None, None)."""
        if dispatch.autocast_hook is None:
            return None, None
        region = get_autocast_dtype()
        targets = cast_targets(op, inputs, region)
        return (region, targets) if any(t is not None for t in targets) else (None, None)

    def grad_edges(self, inputs) -> tuple:
        """Per input: False (no gradient), True (to its producer), or the id of the leaf it reaches."""
        return tuple(
            False
            if not (isinstance(x, Tensor) and x.requires_grad)
            else True
            if x._node is not None
            else self.leaf_id(x)
            for x in inputs
        )

    def gradients(self, roots, root_grads, targets) -> list[Tensor]:
        """Symbolic gradients of `targets` for a backward() from `roots` with `root_grads`: `grad`
        markers (ops/markers.py) that the autodiff pass replaces once the forward is final."""
        call = self.new_call()
        head = tuple(self.value(x) for x in roots) + tuple(self.value(g) for g in root_grads)
        attrs = {"call": call, "roots": self.grad_edges(roots)}
        found = []
        for t in targets:
            leaf = self.leaf_id(t) if t._node is None else None
            node = self.graph.add(
                GRAD.name,
                head + (self.value(t),),
                {**attrs, "leaf": leaf},
                shape=t.shape,
                dtype=t.dtype,
                source=user_line(),
            )
            found.append(self.symbolic(node.name, t.dtype, t.device))
        return found

    def new_call(self) -> int:
        """A number for one call whose results are several marker nodes (a backward, a scale update)."""
        self._calls += 1
        return self._calls - 1

    def leaf_id(self, tensor: Tensor) -> int:
        """A number for a leaf tensor (a parameter): gradients of the autodiff pass are keyed by it."""
        key = self._leaf_ids.get(id(tensor))
        if key is None:
            key = self._leaf_ids[id(tensor)] = len(self.leaves)
            self.leaves.append(tensor)  # kept alive so its id is not reused while tracing
        return key


@contextlib.contextmanager
def tracing(tracer: Tracer):
    """Install `tracer` at the bind point for the block (never nested); put captured tensors back after."""
    try:
        with dispatch.tracing(tracer):
            yield tracer
    finally:
        tracer.restore()


@contextlib.contextmanager
def recording_into(graph: Graph, *, grad=False):
    """For a lowering pass: genesis ops on `tracer.tensor_of(name)` append nodes to `graph`.

    Inside the trace that made the graph (the lowering passes run before it ends) that trace's
    tracer records them, so a tensor an op makes (a vjp rule's zeros) becomes a captured input of
    the program like any other; elsewhere a fresh tracer does. Autocast is off: its casts are
    already explicit. Grad mode is off unless `grad`: a backward's nodes are final, while a
    feature's composite may still be differentiated by the autodiff pass."""
    active = dispatch.compiling_tracer()
    with set_grad_enabled(grad), autocast(enabled=False):
        if active is not None and active.graph is graph:
            yield active
        else:
            with tracing(Tracer(graph)) as tracer:
                yield tracer
