"""Fused work in eager mode: an optimizer's update (genesis/optim/optimizer.py) and a composite such
as batch_norm (genesis/functional/fused.py), each run as a compiled program.

Both sit below the compiler and cannot import it, so the compiler hands them these functions when
it loads, as it hands eager dispatch its single-op kernels (single_op.py).
"""

from __future__ import annotations

from genesis.compiler import native
from genesis.compiler.api import compile
from genesis.functional import fused
from genesis.optim import optimizer


def compile_step(update, required: bool):
    """`update` (an optimizer's bound `_update_groups`) compiled, or None where a default fused step
    would not pay: without a C compiler the chunked numpy kernels gain little over the eager ops."""
    if not required and not native.compiler_available():
        return None
    return compile(update)


def compile_composite(composite):
    """`composite` compiled for its eager calls, or None without a C compiler (as for a default step)."""
    return compile(composite) if native.compiler_available() else None


optimizer.provide_step_compiler(compile_step)
fused.provide_compiler(compile_composite)
