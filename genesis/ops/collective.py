"""Collectives: ops whose result combines every rank's tensor (runtime/collectives.py runs them).

They are ops of the table so that a compiled data-parallel step holds them as graph nodes: the
gradient all-reduce sits in the graph between the backward and the optimizer, where fusion and the
memory plan see it. They are opaque to fusion, so a compiled program calls the eager kernel as a
library call, in the graph's order. Every rank traces the same program and so calls the same
collectives in the same order, which MPI requires.

Only `all_reduce` with sum or avg has a gradient (the gradient of a sum over ranks is the sum of
the ranks' gradients); the others move values, as `torch.distributed`'s do, outside autograd.
"""

from __future__ import annotations

from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops import shape_rules
from genesis.ops.op import Kind, Op, register
from genesis.runtime import collectives


def _all_reduce_vjp(g, out, x, *, reduce_op):
    if reduce_op not in ("sum", "avg"):
        raise RuntimeError(f"all_reduce with {reduce_op} has no gradient")
    return all_reduce(g, reduce_op=reduce_op)


def _collective(name, kernel, shape, vjp=None, scheduled=None):
    return register(
        Op(
            name=name,
            kind=Kind.OPAQUE,
            kernel=kernel,
            shape=shape,
            dtype=dt.first_input,
            vjp=vjp,
            saves=frozenset(),
            upcasts_low_precision=False,  # the engine moves the bits; runtime/collectives.py widens 16-bit floats
            contiguous_result=True,
            scheduled=scheduled,
        )
    )


def _gathered_shape(shape, *, world_size):
    return (world_size, *shape)


def _scattered_shape(shape, *, world_size, reduce_op):
    if not shape or shape[0] != world_size:
        raise ShapeError(
            f"reduce_scatter: the input's first dim must be the world size {world_size}, got {list(shape)}"
        )
    return tuple(shape[1:])


all_reduce = _collective(
    "all_reduce",
    lambda x, *, reduce_op: collectives.all_reduce(x, reduce_op),
    shape_rules.same_as_first,
    vjp=(_all_reduce_vjp,),
)
# An all-reduce in two halves, for a compiled step to overlap it with its backward: the start hands on
# the array the result will land in (filled on the communication thread), and the wait returns it once
# it is there. The wait reads the start's input too, so a program keeps that input unchanged until then.
all_reduce_start = _collective(
    "all_reduce_start",
    lambda x, *, reduce_op: collectives.start_all_reduce_into(x, reduce_op),
    shape_rules.same_as_first,
    scheduled="early",
)
all_reduce_wait = _collective(
    "all_reduce_wait", lambda started, x: collectives.wait_for(started), shape_rules.same_as_first, scheduled="late"
)
# (named for what it does across ranks: "broadcast" is a word the code generator uses for shapes)
broadcast = _collective(
    "broadcast_from_rank", lambda x, *, src: collectives.broadcast(x, src), shape_rules.same_as_first
)
all_gather = _collective("all_gather", lambda x, *, world_size: collectives.all_gather(x), _gathered_shape)
reduce_scatter = _collective(
    "reduce_scatter", lambda x, *, world_size, reduce_op: collectives.reduce_scatter(x, reduce_op), _scattered_shape
)
