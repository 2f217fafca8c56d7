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

import genesis
from genesis import dispatch
from genesis.compiler.ir import Graph
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

    __slots__ = ("name", "shape", "dtype")
    is_symbolic = True
    strides = None  # a traced value has no memory layout: a view of it is a re-indexing

    def __init__(self, name: str, shape: tuple, dtype):
        self.name = name
        self.shape = tuple(shape)
        self.dtype = dtype

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
        self._saved: list[tuple] = []  # what `restore` puts back into the captured tensors

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
        """Make a concrete tensor a graph input in place; `restore` undoes it."""
        node = self.graph.add_input(tensor.shape, tensor.dtype, source=user_line())
        self._saved.append((tensor, tensor._data, tensor._node, tensor.grad, tensor._version))
        self.captured.append((tensor, node.name))
        tensor._data = self._symbol(node.name, tensor.dtype)
        tensor._node = None  # history from before the trace is not part of the graph
        tensor.grad = None
        tensor._version = [0]
        return node.name

    def restore(self) -> None:
        for tensor, data, node, grad, version in reversed(self._saved):
            tensor._data, tensor._node, tensor.grad, tensor._version = data, node, grad, version
        self._saved.clear()

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
        return self.symbolic(node.name, out_dtype, device)


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
