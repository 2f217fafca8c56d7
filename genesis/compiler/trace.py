"""Tracing: run user code on symbolic tensors and record every op into a Graph.

A traced tensor is an ordinary `Tensor` whose buffer is a `Symbol`: a name in
the graph, a shape and a dtype, and no values. Dispatch (the one bind point)
sees a tracer installed and, instead of running the op's kernel, asks it for a
symbolic result; everything around the kernel (dtype rules, autocast's input
casts, autograd's tape) runs as in eager mode. So `loss.backward()` inside a
traced function runs the same vjp rules on symbolic tensors and the backward
lands in the same graph.

What a graph cannot hold stops the trace with a `GraphBreak` that names the
user's source line: reading a value on the host (`.item()`, `bool(t)`,
`.numpy()`, a branch on a tensor) and drawing random numbers (a traced draw
would be baked into the graph and repeat on every call).
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref

import genesis
from genesis import dispatch
from genesis.compiler.ir import Graph
from genesis.ops.op import Kind
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(genesis.__file__)) + os.sep


def user_line() -> str | None:
    """`file.py:line` of the innermost frame outside genesis: the user's code that made the call."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return None
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


class GraphBreak(RuntimeError):
    """The traced code did something a graph cannot hold; `line` is where, in the user's code."""

    def __init__(self, what: str, line: str | None = None):
        self.what = what
        self.line = line or user_line()
        super().__init__(f"{what} at {self.line or '<unknown>'}")


class Symbol:
    """A traced tensor's buffer: its name in the graph, its shape and numpy dtype; no values.

    It answers the metadata a Tensor reads (shape, ndim, size, dtype); anything
    else (`item`, `reshape`, `__array__`, ...) is an attempt to read values and
    breaks the graph.
    """

    __slots__ = ("name", "shape", "dtype", "base", "views")
    is_symbolic = True
    strides = None  # a traced value has no memory layout: a view of it is a re-indexing

    def __init__(self, name: str, shape: tuple, dtype, base=None):
        self.name = name        # the graph value this buffer holds now (an in-place write renames it)
        self.shape = tuple(shape)
        self.dtype = dtype
        self.base = base        # the Symbol this one is a view of, if any
        self.views = []         # weak references to the tensors that view this buffer

    def alias(self) -> "Symbol":
        """A buffer of its own that starts with the same values (what a copy is to eager)."""
        return Symbol(self.name, self.shape, self.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        size = 1
        for n in self.shape:
            size *= n
        return size

    def __getattr__(self, attr):
        raise GraphBreak(f"a host read of a traced tensor's values (.item(), .numpy(), bool(), a branch on "
                         f"a tensor; it asked for .{attr})")

    def __array__(self, *args, **kwargs):
        raise GraphBreak("converting a traced tensor to a numpy array")

    def __repr__(self) -> str:
        return f"Symbol({self.name}, {self.shape})"


def _cpu_device():
    from genesis.runtime.devices import cpu

    return cpu


def is_symbolic(tensor) -> bool:
    return isinstance(tensor, Tensor) and type(tensor._data) is Symbol


class Tracer:
    """Builds one Graph; dispatch calls `record` for each op while it is installed.

    A concrete tensor that the traced code touches (a parameter, a buffer, a
    global, a tensor made inside the function) becomes a *captured* graph
    input: its buffer is swapped for a Symbol until the trace ends, so the
    tensor object keeps its identity and modules and optimizers that hold it
    trace unchanged; each call of the compiled program then reads the
    tensor's current buffer, so nothing is baked in as a constant.
    """

    def __init__(self):
        self.graph = Graph()
        self.captured: list[tuple[Tensor, str]] = []  # (tensor, its input's name), in order of first use
        self.grad_holders: dict[int, Tensor] = {}     # id of a captured gradient -> the tensor it is .grad of
        self.grad_resets: set[int] = set()            # ids of tensors whose zero_grad() ran while tracing
        self.scalars: list[tuple] = []                # (getter, dtype, input name) of lifted host scalars
        self._saved: list[tuple] = []  # what `restore` puts back into the captured tensors
        self._scalar_names: dict = {}
        self._conditional: dict | None = None  # inside skip_writes_if: id(symbol) -> (tensor, name before)

    # ---- values -----------------------------------------------------------------
    def _symbol(self, name: str, dtype) -> Symbol:
        return Symbol(name, self.graph[name].shape, NUMPY_DTYPE[dtype])

    def symbolic(self, name: str, dtype, device, requires_grad=False) -> Tensor:
        tensor = Tensor._make(self._symbol(name, dtype), dtype, device)
        tensor.requires_grad = requires_grad
        return tensor

    def add_input(self, example: Tensor) -> Tensor:
        """A graph input shaped like `example`; returns the symbolic tensor that stands for it."""
        node = self.graph.add_input(example.shape, example.dtype)
        return self.symbolic(node.name, example.dtype, example.device, example.requires_grad)

    def capture(self, tensor: Tensor) -> str:
        """Make a concrete tensor a graph input in place; `restore` undoes it.

        Its gradient, if it has one, is captured too: a traced backward then
        accumulates into it as eager would."""
        node = self.graph.add_input(tensor.shape, tensor.dtype, source=user_line())
        self._saved.append((tensor, tensor._data, tensor._node, tensor.grad, tensor._version))
        self.captured.append((tensor, node.name))
        tensor._data = self._symbol(node.name, tensor.dtype)
        tensor._node = None  # history from before the trace is not part of the graph
        tensor._version = [0]
        if tensor.grad is not None and type(tensor.grad._data) is not Symbol:
            self.capture(tensor.grad)
            self.grad_holders[id(tensor.grad)] = tensor
        return node.name

    def restore(self) -> None:
        for tensor, data, node, grad, version in reversed(self._saved):
            tensor._data, tensor._node, tensor.grad, tensor._version = data, node, grad, version
        self._saved.clear()

    # ---- what eager code does to buffers, done to values -----------------------------
    def write(self, target: Tensor, value: Tensor) -> None:
        """`target`'s buffer now holds `value` (same shape and dtype): the in-place write, functionalised.

        Every tensor sharing the target's Symbol (a detach(), .data) sees the
        new value, as eager tensors sharing memory would. Writes through views
        need the base updated too and are not supported yet: they break the graph."""
        self.value(target)  # a concrete tensor becomes a captured input first
        symbol = target._data
        if symbol.base is not None:
            raise GraphBreak("an in-place write into a view of a traced tensor (x[i] += ..., x.T.add_(...))")
        if any(view() is not None for view in symbol.views):
            raise GraphBreak("an in-place write into a traced tensor while a view of it is alive")
        if self._conditional is not None and id(symbol) not in self._conditional:
            self._conditional[id(symbol)] = (target, symbol.name)  # the value to keep if the block is skipped
        symbol.name = self.value(value)

    @contextlib.contextmanager
    def skip_writes_if(self, condition: Tensor):
        """Every in-place write in the block takes effect only where `condition` is false: a skipped
        optimizer step as a select in the graph (GradScaler on an inf gradient), not a host branch."""
        from genesis.functional.elementwise import where

        outer, self._conditional = self._conditional, {}
        try:
            yield
            written, self._conditional = self._conditional, outer
            for target, before in written.values():
                old = Tensor._make(Symbol(before, target.shape, target._data.dtype), target.dtype, target.device)
                kept = where(condition, old, Tensor._make(target._data.alias(), target.dtype, target.device))
                target._data.name = self.value(kept)
        finally:
            self._conditional = outer

    def refuse(self, what: str) -> None:
        """Code outside the compiler met something a graph cannot hold: break the graph, naming the line."""
        raise GraphBreak(what)

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

    def value(self, x):
        """The graph's name for a tensor; scalars stay literals."""
        if not isinstance(x, Tensor):
            return x
        if type(x._data) is not Symbol:
            return self.capture(x)
        return x._data.name

    # ---- the dispatch hook ----------------------------------------------------------
    def record(self, op, inputs, attrs, out_dtype, device) -> Tensor:
        names = tuple(self.value(x) for x in inputs)
        shapes = [tuple(x.shape) if isinstance(x, Tensor) else () for x in inputs]
        shape = tuple(op.shape(*shapes, **attrs))
        node = self.graph.add(op.name, names, attrs, shape=shape, dtype=out_dtype, source=user_line())
        out = self.symbolic(node.name, out_dtype, device)
        if op.kind is Kind.VIEW:  # eager would share memory: remember it, so writes into either can be refused
            base = inputs[0]._data
            out._data.base = base
            base.views.append(weakref.ref(out))
        return out


@contextlib.contextmanager
def tracing(tracer: Tracer):
    """Install `tracer` at the bind point for the block (never nested); put captured tensors back after."""
    if dispatch.tracer is not None:
        raise RuntimeError("genesis.compile: a compiled function was called while tracing another; "
                           "nested tracing is not supported")
    dispatch.tracer = tracer
    try:
        yield tracer
    finally:
        dispatch.tracer = None
        tracer.restore()
