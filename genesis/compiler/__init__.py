"""The graph compiler: trace user code into an IR graph, optimise it, and run it.

`genesis.compile(fn_or_module)` is the entry point (see `api`). The parts, in
the order a compilation meets them: `trace` (symbolic tensors through the one
bind point), `ir` (the Graph), `passes/` (each Graph -> Graph), `program`
(where inputs come from and outputs go), `interpret` (the eager backend), and
`dump` (everything written down for a person to read).
"""

from genesis.compiler import device_ops, fused_steps, single_op  # noqa: F401  (hand optimizers and eager dispatch their kernels)
from genesis.compiler.api import BACKENDS, CompiledFunction, compile, explain
from genesis.compiler.ir import Graph, GraphError, Node
from genesis.compiler.symbols import GraphBreak

__all__ = ["compile", "explain", "CompiledFunction", "BACKENDS", "Graph", "GraphError", "Node", "GraphBreak"]
