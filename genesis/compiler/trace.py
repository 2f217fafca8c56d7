"""Tracing: run user code on symbolic tensors and record every op into a Graph.

A traced tensor is an ordinary `Tensor` whose buffer is a `Symbol`: a name in
the graph, a shape and a dtype, and no values. Dispatch (the one bind point)
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
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref

import numpy as np

from genesis import dispatch
from genesis.amp.autocast import autocast, cast_targets
from genesis.autocast_state import get_autocast_dtype
from genesis.compiler.ir import Graph, Meta
from genesis.grad_mode import is_grad_enabled, set_grad_enabled
from genesis.markers import GRAD
from genesis.ops.op import Kind
from genesis.ops.shape_rules import contiguous_strides, is_contiguous
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.runtime.devices import cpu
from genesis.tape import ViewLink, recorded_inputs
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


class _ViewEntry:
    """A view of a root buffer, as the root keeps it: the view's buffer and how it was made (weakly and
    strongly: a buffer another tensor shares, a detach(), is made again after a write too), and the
    tensor that holds that making, whose history a write renews."""

    __slots__ = ("symbol", "link", "tensor")

    def __init__(self, symbol: Symbol, link: ViewLink, tensor: Tensor):
        self.symbol, self.link, self.tensor = weakref.ref(symbol), link, weakref.ref(tensor)


class _Produced:
    """Stands for "made by an op" where a tape node is asked for (see Tracer.tensor_of)."""

    inputs = edges = ()
    hooks = retained = None


_PRODUCED = _Produced()


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


def _cpu_device():
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
        self._conditional: dict | None = None  # inside skip_writes_if: id(symbol) -> (tensor, name before)
        self.leaves: list[Tensor] = []  # the leaf tensors gradients reach, by leaf_id
        self._leaf_ids: dict[int, int] = {}  # id(tensor) -> its leaf id (a pass's stand-ins included)
        self._stand_ins: list[Tensor] = []  # a pass's tensors standing for leaves (see tensor_of)
        self.non_leaves: set[int] = set()  # ids of stand-ins of arguments that are not leaves in eager
        self.passed_requiring_grad: dict[int, bool] = {}  # id of a stand-in -> its argument's requires_grad
        self._calls = 0  # numbers backward() calls and multi-result markers
        self._written: set[int] = set()  # ids of the Symbols the last write renamed (remake_views skips them)
        self._remaking = False  # remake_views is applying views' ops: their inputs' histories stay as they are
        self._links: dict[int, ViewLink] = {}  # the ViewLinks of the views this trace made, by id (kept alive)
        self.before: str | None = None  # a pass splicing ops in for a node sets it: they print before it

    # ---- values -----------------------------------------------------------------
    def _symbol(self, name: str, dtype, strides=None) -> Symbol:
        return Symbol(name, self.graph[name].shape, NUMPY_DTYPE[dtype], strides=strides)

    def symbolic(self, name: str, dtype, device, requires_grad=False, strides=None) -> Tensor:
        tensor = Tensor._make(self._symbol(name, dtype, strides), dtype, device)
        tensor.requires_grad = requires_grad
        return tensor

    def tensor_of(self, name: str, grad_edge=False) -> Tensor:
        """A symbolic tensor holding the graph's value `name`, for a pass that adds ops reading it.

        `grad_edge` (an `ir.Node.grads` entry) makes a gradient flow from the new ops where it
        flowed from the node they replace: to `name`'s producer (True) or to a leaf (its id)."""
        tensor = self.symbolic(name, self.graph[name].dtype, _cpu_device())
        if grad_edge is not False:
            tensor.requires_grad = True
            if grad_edge is True:
                tensor._node = _PRODUCED
            else:
                self._leaf_ids[id(tensor)] = grad_edge
                self._stand_ins.append(tensor)  # alive while its id means that leaf
        return tensor

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

    # ---- what eager code does to buffers, done to values -----------------------------
    def write(self, target: Tensor, value: Tensor, bases=()) -> None:
        """`target`'s buffer now holds `value` (same shape and dtype): the in-place write, functionalised.

        Every tensor sharing the target's Symbol (a detach(), .data) sees the
        new value, as eager tensors sharing memory would. A write through a view
        renames each base up its chain to its value in `bases`, (base, value)
        pairs ending at the undivided base (an in-place activation after a
        convolution, whose output is a reshape of a matmul's; `x[1:][:, 0]`).
        Every other live view of that memory is made again once the write's
        histories are set (`remake_views`). A write through a view without a
        known chain of bases (`x.T.detach().add_(...)`), or a write that shares
        memory with other views inside a conditional block, breaks the graph."""
        self.value(target)  # a concrete tensor becomes a captured input first
        symbol = target._data
        if not symbol.writeable:
            raise dispatch.overlapping_write(target)
        root = symbol.base if symbol.base is not None else symbol
        root.views = [entry for entry in root.views if entry.symbol() is not None]  # drop the dead ones
        others = [entry for entry in root.views if entry.symbol() is not symbol]
        chain = [base._data for base, _ in bases]
        if symbol.base is not None and not (
            chain and chain[-1] is root and all(isinstance(s, Symbol) and s.base is root for s in chain[:-1])
        ):
            raise GraphBreak("an in-place write into a view of a traced tensor whose chain of bases is not known")
        if self._conditional is not None and (symbol.base is not None or others):
            raise GraphBreak("an in-place write that views share, inside a conditionally skipped step")
        if self._conditional is not None and id(symbol) not in self._conditional:
            self._conditional[id(symbol)] = (target, symbol.name)  # the value to keep if the block is skipped
        if symbol.base is None:  # a traced tensor's own buffer (or a captured one: eager memory is shared)
            chain = []
        for (_, base_value), base_symbol in zip(bases, chain):
            base_symbol.name = self.value(base_value)
        symbol.name = self.value(value)
        self._written = {id(symbol), *map(id, chain)}

    def remake_views(self, target: Tensor) -> None:
        """After a write into `target` and its history: each other live view of its memory, in the
        order they were made (a view's base before it), takes the value its op gives from its base as
        the base is now, as eager's views see the write in their memory (a buffer that a detach()
        shares too). Their histories stay as they are until their next use (`refresh_view`), as in
        eager mode, whose views keep the shared version counter's old value in their `ViewLink`."""
        symbol = target._data
        root = symbol.base if symbol.base is not None else symbol
        written, self._written = self._written, set()
        self._remaking = True
        try:
            with set_grad_enabled(False):
                for entry in list(root.views):  # (a copy: remaking a view registers a new one)
                    view = entry.symbol()
                    if view is None or id(view) in written:
                        continue
                    written.add(id(view))
                    fresh = dispatch.apply(entry.link.op, *recorded_inputs(entry.link), **entry.link.attrs)
                    view.name = fresh._data.name
        finally:
            self._remaking = False

    def refresh_view(self, view: Tensor) -> None:
        """Eager's `dispatch.refresh_view` for a view this trace made, whose memory was written since
        its history was made, when it is looked at or read: under grad mode, unless it has no history
        to renew and none to gain, a fresh history (and value) from its base as it is now."""
        if not self._is_stale_view(view) or self._remaking or not is_grad_enabled():
            return
        link = view._view_of
        inputs = recorded_inputs(link)
        if view._node is None and not any(isinstance(x, Tensor) and x.requires_grad for x in inputs):
            return
        link.version = view._version[0]
        fresh = dispatch.apply(link.op, *inputs, **link.attrs)
        view._data.name = fresh._data.name
        view._node, view._requires_grad = fresh._node, fresh._requires_grad

    def settle_result(self, result: Tensor) -> None:
        """A result of the traced function that is a view written since its history was made: eager
        hands it back as it is and renews its history when it is next looked at (its `requires_grad`,
        a backward through it); the compiled result carries that renewed history from the start."""
        self.refresh_view(result)

    def _is_stale_view(self, x) -> bool:
        link = getattr(x, "_view_of", None)
        return link is not None and id(link) in self._links and link.version != x._version[0]

    @contextlib.contextmanager
    def skip_writes_if(self, condition: Tensor, select):
        """Every in-place write in the block takes effect only where `condition` is false: a skipped
        optimizer step as a select in the graph (GradScaler on an inf gradient), not a host branch.
        `select(condition, old, new)` keeps old values or new ones (a `where`)."""
        outer, self._conditional = self._conditional, {}
        try:
            yield
            written, self._conditional = self._conditional, outer
            for target, before in written.values():
                old = Tensor._make(Symbol(before, target.shape, target._data.dtype), target.dtype, target.device)
                kept = select(condition, old, Tensor._make(target._data.alias(), target.dtype, target.device))
                target._data.name = self.value(kept)
        finally:
            self._conditional = outer

    def refuse(self, what: str) -> None:
        """Code outside the compiler met something a graph cannot hold: break the graph, naming the line."""
        raise GraphBreak(what)

    def reshape_in_place(self, target: Tensor, result: Tensor, what: str) -> None:
        """Break the graph unless `target` is a value this trace made (see dispatch.reshape_in_place):
        an argument's stand-in or a captured tensor stands for a tensor of the caller's. The target
        then holds `result`'s Symbol, so it is that view of its base which a write remakes."""
        if not is_symbolic(target) or id(target) in self._captured_ids or id(target) in self.passed_requiring_grad:
            raise GraphBreak(f"{what} of a compiled function's input (its new shape would reach the caller)")
        if result._data.base is not None:  # (a reshape is a view; a squeeze that changes nothing may not be)
            result._data.base.views.append(_ViewEntry(result._data, result._view_of, target))

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
            if self._is_stale_view(x):
                self.refresh_view(x)
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
        if op.kind is Kind.VIEW:  # eager would share memory: remember it, so writes into either can be refused
            out._version = inputs[0]._version  # and its version counter: a write into the view is one into
            # the base, which a vjp that saved the base must refuse, as eager's does
            base = inputs[0]._data
            while base.base is not None:  # a view of a view shares the first one's base (x.unbind(0)[0])
                base = base.base
            out._data.base = base
            out._data.writeable = view_writeable(op, inputs, attrs)
            out._view_of = ViewLink(op, inputs, attrs, out._version[0])  # how to make it again after a write
            self._links[id(out._view_of)] = out._view_of
            base.views.append(_ViewEntry(out._data, out._view_of, out))
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
