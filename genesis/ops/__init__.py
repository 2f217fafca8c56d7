"""The op table: every primitive, defined once.

`OPS` maps a name to its `Op` record. Importing this package registers all
primitives; the functional layer (`genesis.functional`) binds them.
"""

from genesis.ops import (  # noqa: F401  (registers the ops)
    activations,
    collective,
    convolution,
    division,
    elementwise,
    matmul,
    movement,
    random,
    recurrent,
    reduction,
    scan,
    scatter,
    sliding,
    sorting,
    transfer,
    windows,
)
from genesis.ops.op import OPS, Autocast, Kind, Op, register

__all__ = ["OPS", "Autocast", "Kind", "Op", "register"]
