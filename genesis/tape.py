"""`Node`: one recorded op application on the autograd tape.

A node keeps the op, its inputs (tensors or Python scalars) and attributes.
It does not hold its output: backward reaches a node only through its output
tensor (the root, or an input of a node that consumed it), and the engine
hands that tensor to the vjp. So the tape holds no reference cycles.

`edges` records, per input, the node that made it and whether it required
grad *when the op ran*. An in-place op later gives that tensor a new node;
this node must still differentiate through the history it actually used.
"""

from __future__ import annotations

import weakref


class Node:
    __slots__ = ("op", "inputs", "edges", "attrs", "versions", "hooks", "_retained", "__weakref__")

    def __init__(self, op, inputs, attrs, versions):
        self.op = op
        self.inputs = inputs
        self.edges = tuple([(getattr(x, "_node", None), getattr(x, "requires_grad", False)) for x in inputs])
        self.attrs = attrs
        self.versions = versions
        self.hooks = None
        self._retained = None

    def name(self) -> str:
        return f"{self.op.name}_backward"

    def retain(self, tensor):
        self._retained = weakref.ref(tensor)

    @property
    def retained(self):
        return self._retained() if self._retained is not None else None

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class ViewLink:
    """How a view was made from its base, kept whether or not autograd recorded it.

    A write into the view must change the base's history too (genesis.functional.inplace), and a
    write into the base (or another view of it) makes the view's history stale: `version` is the
    shared version counter's value when the view's history was last right; dispatch rebuilds the
    history from the base when the counter has moved on (PyTorch regenerates a view's grad_fn)."""

    __slots__ = ("op", "inputs", "attrs", "version")

    def __init__(self, op, inputs, attrs, version):
        self.op, self.inputs, self.attrs, self.version = op, inputs, attrs, version
