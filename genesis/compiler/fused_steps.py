"""Optimizers' fused steps: an optimizer's update run as a compiled program (genesis/optim/optimizer.py).

The optimizer sits below the compiler and cannot import it, so the compiler hands it this function
when it loads, as it hands eager dispatch its single-op kernels (single_op.py).
"""

from __future__ import annotations

from genesis.compiler import native
from genesis.compiler.api import compile
from genesis.optim import optimizer


def compile_step(update, required: bool):
    """`update` (an optimizer's bound `_update_groups`) compiled, or None where a default fused step
    would not pay: without a C compiler the chunked numpy kernels gain little over the eager ops."""
    if not required and not native.compiler_available():
        return None
    return compile(update)


optimizer.provide_step_compiler(compile_step)
