"""In-place writes and views under tracing: eager's shared memory, done to graph values.

Eager tensors that share a buffer see each other's writes: a write into a view
reaches its base, and every other view of that base shows it. A graph has no
memory, only values, so the tracer renames: the written tensor's `Symbol` (and
each base's up a view's chain) takes the name of the value written, and each
other live view of the root buffer is made again from its base. A view's
history follows eager's: it is renewed when the view is looked at or read
after its memory was written (`dispatch.refresh_view`). Inside GradScaler's
skipped step every write becomes a select between old and new values.
"""

from __future__ import annotations

import contextlib

from genesis import dispatch
from genesis.compiler.symbols import GraphBreak, Symbol, ViewEntry, view_writeable
from genesis.grad_mode import is_grad_enabled, set_grad_enabled
from genesis.tape import ViewLink, recorded_inputs
from genesis.tensor import Tensor


class ViewWrites:
    """The tracer's part that keeps track of views and in-place writes (one per Tracer)."""

    def __init__(self, value):
        self._value = value  # the tracer's name for a tensor (a concrete one becomes a captured input)
        self._conditional: dict | None = None  # inside skip_writes_if: id(symbol) -> (tensor, name before)
        self._written: set[int] = set()  # ids of the Symbols the last write renamed (remake_views skips them)
        self._remaking = False  # remake_views is applying views' ops: their inputs' histories stay as they are
        self._links: dict[int, ViewLink] = {}  # the ViewLinks of the views this trace made, by id (kept alive)

    def register_view(self, out: Tensor, op, inputs, attrs) -> None:
        """`out`, the traced result of the view `op`, shares memory with its base as eager's would:
        its version counter, its root buffer (so writes into either can reach the other), and how to
        make it again after a write (its `ViewLink`)."""
        out._version = inputs[0]._version  # a write into the view is one into the base, which a vjp
        # that saved the base must refuse, as eager's does
        base = inputs[0]._data
        while base.base is not None:  # a view of a view shares the first one's base (x.unbind(0)[0])
            base = base.base
        out._data.base = base
        out._data.writeable = view_writeable(op, inputs, attrs)
        out._view_of = ViewLink(op, inputs, attrs, out._version[0])
        self._links[id(out._view_of)] = out._view_of
        base.views.append(ViewEntry(out._data, out._view_of, out))

    def reshaped_in_place(self, target: Tensor, result: Tensor) -> None:
        """`target` now holds `result`'s Symbol (squeeze_, unsqueeze_): it is that view of its base,
        which a write remakes."""
        if result._data.base is not None:  # (a reshape is a view; a squeeze that changes nothing may not be)
            result._data.base.views.append(ViewEntry(result._data, result._view_of, target))

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
        self._value(target)  # a concrete tensor becomes a captured input first
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
            base_symbol.name = self._value(base_value)
        symbol.name = self._value(value)
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
        if not self.is_stale_view(view) or self._remaking or not is_grad_enabled():
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

    def is_stale_view(self, x) -> bool:
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
                target._data.name = self._value(kept)
        finally:
            self._conditional = outer
