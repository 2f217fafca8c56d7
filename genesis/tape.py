"""`Node`: one recorded op application on the autograd tape.

A node keeps the op, its inputs (tensors or Python scalars) and attributes.
It does not hold its output: backward reaches a node only through its output
tensor (the root, or an input of a node that consumed it), and the engine
hands that tensor to the vjp. So the tape holds no reference cycles.

`edges` records, per input, the node that made it and whether it required
grad *when the op ran*. An in-place op later gives that tensor a new node;
this node must still differentiate through the history it actually used.

It also keeps the `epoch`, the count of in-place shape changes (squeeze_,
unsqueeze_) made so far. Such a change gives a tensor object a new shape, but a
node or view link recorded before it must still see the shape the op ran with:
`recorded_inputs` hands it each input as it was (the tensor's earlier self,
which the reshape left as its base), reading nothing unless a shape changed in
place since.
"""

from __future__ import annotations

import weakref

_reshapes = 0  # in-place shape changes so far: the epoch a Node or ViewLink is recorded in


class Node:
    __slots__ = ("op", "inputs", "edges", "attrs", "versions", "hooks", "_retained", "epoch", "__weakref__")

    def __init__(self, op, inputs, attrs, versions):
        self.op = op
        self.inputs = inputs
        self.edges = tuple([(getattr(x, "_node", None), getattr(x, "_requires_grad", False)) for x in inputs])
        self.attrs = attrs
        self.versions = versions
        self.hooks = None
        self._retained = None
        self.epoch = _reshapes

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

    __slots__ = ("op", "inputs", "attrs", "version", "epoch", "reshaped_at")

    def __init__(self, op, inputs, attrs, version):
        self.op, self.inputs, self.attrs, self.version = op, inputs, attrs, version
        self.epoch = _reshapes
        self.reshaped_at = None  # for the link of a tensor reshaped in place to its earlier self: the epoch it began


def note_reshape(link: ViewLink) -> None:
    """A tensor changed shape in place and now views its earlier self through `link`."""
    global _reshapes
    _reshapes += 1
    link.reshaped_at = _reshapes


def as_recorded(x, epoch: int):
    """`x` as it was in `epoch`: the earlier self (same memory and version counter, the shape it had
    then) that each in-place reshape since left as its base; `x` itself if it kept its shape."""
    link = getattr(x, "_view_of", None)
    while link is not None and link.reshaped_at is not None and link.reshaped_at > epoch:
        x = link.inputs[0]
        link = x._view_of
    return x


def recorded_inputs(record) -> tuple:
    """The inputs of a Node or ViewLink with the shapes they had when it was recorded."""
    if record.epoch == _reshapes:
        return record.inputs
    return tuple([as_recorded(x, record.epoch) for x in record.inputs])
