"""Marker ops: what a trace records for work that a lowering pass writes out later.

A marker is an op record like any other (so the graph's text, the dump and
`verify()` show it, with its shape and dtype from its meta), but it has no
kernel: a lowering pass (compiler/passes/__init__.py) replaces every marker
before a graph runs. Two kinds:

- `grad(roots..., root_grads..., wrt)`: the gradient of `wrt` for one traced
  backward() (attrs: `call` numbers the backward, `roots` says how a gradient
  enters each root, `leaf` is `wrt`'s leaf id or None). The autodiff pass
  writes out the vjp rules once autocast's casts are in the graph.
- a *feature marker* (`define`): a training feature's composite, such as
  GradScaler's finite check or clipping's coefficient. Eagerly, calling it
  runs the composite, which is the feature's one definition; under tracing
  it records one node, and the pass named by its `feature` splices the same
  composite into the graph in its place. A marker with several results
  records one node per result (attrs `output` and `call`).

Autocast's marker is not a node: an op traced in an autocast region carries
the region's dtype (`ir.Node.autocast`) until the autocast pass casts its inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genesis import dispatch
from genesis.ops.op import Kind, Op, register


def _lowered_first(*args, **kwargs):
    raise RuntimeError("a marker op runs only after its lowering pass has replaced it")


GRAD = register(
    Op(
        name="grad",
        kind=Kind.OPAQUE,
        kernel=_lowered_first,
        shape=lambda *shapes, **attrs: shapes[-1],
        dtype=lambda inputs, **attrs: (None, inputs[-1].dtype),
        saves=frozenset(),
    )
)


@dataclass(frozen=True)
class Marker:
    op: Op
    composite: Callable  # the eager definition, in genesis ops
    feature: str  # the lowering pass that splices it in
    outputs: int


MARKERS: dict[str, Marker] = {}


def define(name: str, feature: str, composite: Callable, *, shape, dtype, differentiable=(), outputs=1):
    """A function that runs `composite` eagerly and records a marker named `name` under tracing.

    `shape` and `dtype` are the marker's meta rules (as an op's). Gradients flow through the
    inputs listed in `differentiable` (positions), through the composite that replaces the marker."""
    vjp = None
    if differentiable:  # the tape must reach through the marker; the rules that run are the composite's
        vjp = tuple(_lowered_first if i in differentiable else None for i in range(max(differentiable) + 1))
    op = register(
        Op(name=name, kind=Kind.OPAQUE, kernel=_lowered_first, shape=shape, dtype=dtype, vjp=vjp, saves=frozenset())
    )
    MARKERS[name] = Marker(op, composite, feature, outputs)

    def call(*inputs, **attrs):
        if not dispatch.is_tracing():
            return composite(*inputs, **attrs)
        if outputs == 1:
            return dispatch.apply(op, *inputs, **attrs)
        number = dispatch.new_call()
        return tuple(dispatch.apply(op, *inputs, **attrs, output=k, call=number) for k in range(outputs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = composite.__doc__
    return call
