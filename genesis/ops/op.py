"""The op record: one definition of a primitive serves every path.

An `Op` carries everything any part of genesis needs to know about a
primitive:

- `shape(*input_shapes, **attrs)` and `dtype(inputs)`: the meta. Tracing needs
  nothing else; eager uses the dtype rule to choose the compute dtype and the
  shape rule to explain a failure.
- `kernel(*arrays, **attrs)`: the eager CPU kernel, in numpy. Its array inputs
  arrive already cast to the compute dtype.
- `vjp`: one rule per input, `rule(g, out, *inputs, **attrs)`, written with
  genesis ops so the same rule runs eagerly, under tracing, and differentiates
  again. `None` marks an input that takes no gradient. The autograd engine
  sums a gradient back to its input's shape and casts it to its dtype, so the
  rules need not repeat broadcasting.
- `kind`: what fusion reads (elementwise, reduction, matmul, view, opaque).
- `codegen`: snippets per backend ("triton", "numpy"), filled by the compiler.
- `autocast`: how autocast treats the op's floating inputs.
- `saves`: which values the vjp reads ("inputs", "output", or "indices": only
  the integer index tensors among the inputs, for ops whose vjp needs just the
  other inputs' shapes); an in-place change to one of them before backward is
  an error, and only they are version-checked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable


class Kind(enum.Enum):
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    MATMUL = "matmul"
    VIEW = "view"
    OPAQUE = "opaque"


class Autocast(enum.Enum):
    LOW_PRECISION = "low_precision"  # matmul-class: run in fp16/bf16, accumulate in fp32
    FP32 = "fp32"  # exp, log, norms, losses, reductions: run in fp32
    PROMOTE = "promote"  # mixed inputs: run at the widest input dtype
    NONE = "none"  # not touched by autocast (views, casts, integer ops)


@dataclass(frozen=True, eq=False)
class Op:
    name: str
    kind: Kind
    kernel: Callable
    shape: Callable
    dtype: Callable
    vjp: tuple | None = None
    saves: frozenset = frozenset({"inputs"})
    autocast: Autocast = Autocast.NONE
    codegen: dict = field(default_factory=dict)
    # Kernels of these kinds compute fp16/bf16 in fp32 and round the result once,
    # as PyTorch's CPU kernels do; views and copies move bits and never upcast.
    upcasts_low_precision: bool = True
    # A variadic op (cat) has one vjp rule, called for each input with `index=i`.
    variadic: bool = False
    # The kernel returns a new C-contiguous array whatever its inputs' layout (a copy, a matmul); else
    # its result is C-contiguous when its inputs are, and a view's layout follows from its kernel. A
    # trace reads this to know eager's layouts (compiler/trace.py layout_of); tests check it.
    contiguous_result: bool = False

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    def __repr__(self) -> str:
        return f"Op({self.name})"


OPS: dict[str, Op] = {}


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is defined twice; each primitive has exactly one record")
    OPS[op.name] = op
    return op
