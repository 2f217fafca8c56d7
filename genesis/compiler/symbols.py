"""A traced tensor's buffer: `Symbol`, the layout eager's array would have, and `GraphBreak`.

A traced tensor is an ordinary `Tensor` whose buffer is a `Symbol`: a name in
the graph, a shape and a dtype, and no values. It also keeps what eager's
numpy array would know of its memory: the strides, whether it may be written,
and for a view, its root buffer; a root keeps a `ViewEntry` per live view, so a
write into one can reach the others (`view_writes.py`). Reading values from a
Symbol breaks the graph with a `GraphBreak` that names the user's line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref

import numpy as np

from genesis.ops.op import Kind
from genesis.ops.shape_rules import contiguous_strides, is_contiguous
from genesis.tape import ViewLink
from genesis.tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # genesis/
_CONTEXTLIB = contextlib.__file__  # a `with` block's exit runs in it (GradScaler's skipped step)


def user_line() -> str | None:
    """`file.py:line` of the innermost frame outside genesis: the user's code that made the call."""
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE_DIR) or frame.f_code.co_filename == _CONTEXTLIB
    ):
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

    __slots__ = ("name", "shape", "dtype", "base", "views", "strides", "writeable", "__weakref__")
    is_symbolic = True

    def __init__(self, name: str, shape: tuple, dtype, base=None, strides=None):
        self.name = name  # the graph value this buffer holds now (an in-place write renames it)
        self.shape = tuple(shape)
        self.dtype = dtype
        self.base = base  # the Symbol this one is a view of, if any
        self.views = []  # a _ViewEntry per view of this buffer (of a root: its views' views too)
        # the strides (in elements) eager's array would have, or None where the trace cannot know them;
        # only view() and is_contiguous() read them (see layout_of)
        self.strides = strides
        # False for a view whose elements overlap (an expand, unfold's overlapping windows), which eager's
        # numpy marks read-only: a write into it is refused as eager refuses it (see view_writeable)
        self.writeable = True

    def alias(self) -> Symbol:
        """A buffer of its own that starts with the same values (what a copy is to eager)."""
        return Symbol(self.name, self.shape, self.dtype, strides=contiguous_strides(self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        size = 1
        for n in self.shape:
            size *= n
        return size

    def refuse_host_read(self, asked_for: str):
        """Break the graph for a read of the values; `asked_for` is what the user's code called
        (`float()`, `.item()`), which the Tensor method names, since the buffer sees only its own use."""
        raise GraphBreak(f"a host read of a traced tensor's values ({asked_for})")

    def __getattr__(self, attr):
        raise GraphBreak(
            f"a host read of a traced tensor's values (.item(), .numpy(), bool(), a branch on "
            f"a tensor; its buffer was asked for .{attr})"
        )

    def __array__(self, *args, **kwargs):
        raise GraphBreak("converting a traced tensor to a numpy array")

    def __repr__(self) -> str:
        return f"Symbol({self.name}, {self.shape})"


class ViewEntry:
    """A view of a root buffer, as the root keeps it: the view's buffer and how it was made (weakly and
    strongly: a buffer another tensor shares, a detach(), is made again after a write too), and the
    tensor that holds that making, whose history a write renews."""

    __slots__ = ("symbol", "link", "tensor")

    def __init__(self, symbol: Symbol, link: ViewLink, tensor: Tensor):
        self.symbol, self.link, self.tensor = weakref.ref(symbol), link, weakref.ref(tensor)


def element_strides(array) -> tuple | None:
    """An array's strides in elements (a traced tensor's Symbol: the strides it was given)."""
    if isinstance(array, Symbol):
        return array.strides
    itemsize = array.itemsize
    if any(stride % itemsize for stride in array.strides):
        return None
    return tuple(stride // itemsize for stride in array.strides)


def layout_of(op, inputs, attrs, shape) -> tuple | None:
    """The strides eager's result of `op` would have, or None when they depend on more than the trace
    knows. A view's come from its own eager kernel, run on a probe array laid out like its input
    (numpy makes the view's header and reads no element); any other op's result is a fresh array,
    C-contiguous when its inputs are, or always (`op.contiguous_result`); `dispatch.verify_meta`
    checks both against every eager op of the tests."""
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    if op.kind is Kind.VIEW:
        source = tensors[0]._data
        if source.strides is None:
            return None
        return element_strides(_view_of_probe(op, inputs, attrs, source.strides))
    if op.contiguous_result or all(
        x._data.strides is not None and is_contiguous(x.shape, x._data.strides) for x in tensors
    ):
        return contiguous_strides(shape)
    return None


def view_writeable(op, inputs, attrs) -> bool:
    """Whether eager's result of the view `op` may be written into: its source may, and no two of its
    elements share memory (numpy marks an expand's or overlapping windows' view read-only, whatever
    the source's strides)."""
    source = inputs[0]._data
    strides = source.strides if source.strides is not None else contiguous_strides(source.shape)
    return source.writeable and _view_of_probe(op, inputs, attrs, strides).flags.writeable


def _view_of_probe(op, inputs, attrs, strides):
    """The view's eager kernel run on a probe laid out like its source: one element of memory, so
    numpy makes the view's header and reads nothing."""
    source = inputs[0]._data
    itemsize = source.dtype.itemsize
    probe = np.lib.stride_tricks.as_strided(
        np.empty(1, source.dtype), source.shape, tuple(s * itemsize for s in strides)
    )
    return op.kernel(probe, *inputs[1:], **attrs)


def is_symbolic(tensor) -> bool:
    return isinstance(tensor, Tensor) and type(tensor._data) is Symbol
