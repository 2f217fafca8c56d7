"""The op record: one definition of a primitive serves every path.

An `Op` carries everything any part of genesis needs to know about a
primitive:

- `shape(*input_shapes, **attrs)` and `dtype(inputs)`: the meta. Tracing needs
  nothing else; eager uses the dtype rule to choose the compute dtype and the
  shape rule to explain a failure.
- `kernel(*arrays, **attrs)`: the eager CPU kernel, in numpy. Its array inputs
  arrive already cast to the compute dtype.
- `vjp`: one rule per input, `rule(g, out, *inputs, **attrs)`, written with
  op records (calling a record applies it: `where(c, g, 0.0)`) and tensor
  methods and operators, never the functional layer above, so the same rule
  runs eagerly, under tracing, and differentiates again. `None` marks an input
  that takes no gradient. The autograd engine sums a gradient back to its
  input's shape and casts it to its dtype, so the rules need not repeat
  broadcasting.
- `kind`: what fusion reads (elementwise, reduction, matmul, view, opaque).
- `codegen`: snippets per backend ("triton", "numpy", "c"), filled by the compiler;
  a view without an `index_map` may give "numpy_view", `template(attrs)`: the
  numpy expression of the view of `{0}`, which a program then takes in place
  of a call of the op (basic indexing: `{0}[(slice(0, 128, 1), Ellipsis)]`);
  an op outside the kernels may give "numpy_into", `template(attrs)`: the numpy
  statement that writes the op's result into `{out}` from its operands `{inputs}`
  (cat: `np.concatenate(({inputs},), axis=0, out={out})`), which a program runs
  into a buffer of its memory plan in place of a call of the op;
  "c_helpers" and "triton_helpers" name the files in `ops/helpers/` whose
  functions a snippet calls (C's `g_relu`, Triton's `floor_divide`), which a
  program includes when one of its kernels runs the op.
- `combine` (reductions): how two partial results fold into one, so a kernel
  can reduce blockwise and then combine the blocks' partials.
- `index_map` (views): how the view's elements sit among its source's, so a
  kernel can fold the view into its indexing instead of copying.
- `identity_right`, `identity_left` (binary elementwise ops): the literal that
  leaves the other operand unchanged (`x * 1`, `0 + x`), and `converts_only`
  (cast, reshape, expand): the op only brings its input to the output's dtype
  or shape. A simplifier drops such an op where the output's shape and dtype
  are its operand's.
- `autocast`: how autocast treats the op's floating inputs.
- `generated_eager_from`: from how many elements eager runs the op as a
  generated C kernel instead of its numpy kernel (set where numpy is slow).
- `grad_region` (views that select a region of their first input: basic
  indexing, and so split and chunk): `grad_region(array, **attrs)` is the view of
  `array` (shaped like that input) where the output's elements sit. Eager
  backward adds a gradient there, into one buffer per input, instead of running
  the vjp, whose zeros-and-put per view made a sequence sliced into T steps cost
  T whole-size buffers (autograd/engine.py).
- `region_block` (the same views): `region_block(input_shape, **attrs)` is
  `(dim, start, stop)` where the region is the block start:stop along one dim
  with every other dim whole, so that the output reshaped to the block's shape
  is the region in order; None for other regions. The compiler's autodiff pass
  joins such blocks of one value with a cat instead of a zeros-and-put each.
- `scheduled` ("early", "late" or None): where a compiled program puts the op
  among the steps its inputs allow: a collective's start as soon as it can, its
  wait when nothing else can, so the communication overlaps the steps between.
- `saves`: which values the vjp reads ("inputs", "output", or "indices": only
  the integer index tensors among the inputs, for ops whose vjp needs just the
  other inputs' shapes); an in-place change to one of them before backward is
  an error, and only they are version-checked.
"""

from __future__ import annotations

import enum
import functools
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import special

HELPERS = Path(__file__).resolve().parent / "helpers"


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


class Combine(enum.Enum):
    """How a reduction folds two partial results into one. Backends spell each (numpy's `np.add`,
    OpenMP's `+`); the value is numpy's ufunc name."""

    ADD = "add"
    MULTIPLY = "multiply"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"


class IndexMap(enum.Enum):
    """How a view's elements sit among its source's: what a kernel needs to read the source in place."""

    RESHAPE = "reshape"  # the same elements in the same row-major order, shape `attrs["shape_to"]`
    BROADCAST = "broadcast"  # size-1 dims repeated, aligned from the right, to `attrs["shape_to"]`
    PERMUTE = "permute"  # the source's dims in the order `attrs["dims"]`


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
    combine: Combine | None = None  # reductions that kernels may compute blockwise
    index_map: IndexMap | None = None  # views that kernels may fold into their indexing
    identity_right: float | None = None  # op(x, identity_right) is x
    identity_left: float | None = None  # op(identity_left, x) is x
    converts_only: bool = False  # op(x) is x when the output's shape and dtype are x's
    # Kernels of these kinds compute fp16/bf16 in fp32 and round the result once,
    # as PyTorch's CPU kernels do; views and copies move bits and never upcast.
    upcasts_low_precision: bool = True
    # A variadic op (cat) has one vjp rule, called for each input with `index=i`.
    variadic: bool = False
    # The kernel returns a new C-contiguous array whatever its inputs' layout (a copy, a matmul); else
    # its result is C-contiguous when its inputs are, and a view's layout follows from its kernel. A
    # trace reads this to know eager's layouts (compiler/trace.py layout_of); tests check it.
    contiguous_result: bool = False
    # Eager runs the op as a generated C kernel (a fused group of size one, compiler/single_op.py)
    # where an input has at least this many elements and a C compiler is at hand: set where numpy's
    # kernel is slow (a reduction on one core, scipy's erf at 15 ns per element). None: never.
    generated_eager_from: int | None = None
    # Views: where the output's elements sit in a buffer shaped like the first input (see above).
    grad_region: Callable | None = None
    # ... and whether that region is a block along one dim (see above).
    region_block: Callable | None = None
    # The result lives on the device `attrs["device"]` names, not on its inputs' (ops/transfer.py).
    transfers: bool = False
    # When a program runs the op among the steps its inputs allow (compiler/codegen/wrapper.py schedule):
    # "early", a collective's start, runs (with the kernel that feeds it) as soon as its inputs exist,
    # and "late", its wait, when nothing else can run, so the communication overlaps the work between.
    scheduled: str | None = None

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    def __call__(self, *inputs, **attrs):
        """Apply the op to tensors: eagerly, or recorded by a tracer (what `dispatch.apply` does)."""
        return _bind_point.apply(self, *inputs, **attrs)

    def __repr__(self) -> str:
        return f"Op({self.name})"


class _BindPoint:
    """Where calling an op record goes: `dispatch.apply`, which installs itself when it is imported.
    The op table sits below dispatch (vjp rules apply ops, dispatch reads op records), so the layer
    above hands its entry point down instead of the op layer importing upward."""

    def apply(self, op, *inputs, **attrs):
        raise RuntimeError(f"op {op.name} was applied before genesis.dispatch was imported")


_bind_point = _BindPoint()


def install_bind_point(apply: Callable) -> None:
    _bind_point.apply = apply


OPS: dict[str, Op] = {}


def ufunc_name(kernel) -> str | None:
    """`np.add` -> "np.add"; scipy.special.expit -> "special.expit"; None for anything else."""
    if not isinstance(kernel, np.ufunc):
        return None
    if getattr(np, kernel.__name__, None) is kernel:
        return f"np.{kernel.__name__}"
    if getattr(special, kernel.__name__, None) is kernel:
        return f"special.{kernel.__name__}"
    return None


def named_attrs(template: str, attrs: dict) -> dict:
    """The attributes a snippet template names: only they need a literal in the kernel's language
    (to_device's `device` names no value a kernel computes with)."""
    fields = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    return {name: value for name, value in attrs.items() if name in fields}


def numpy_snippet(op, attrs=None) -> str | None:
    """The statement template for `op` in a numpy kernel, or None when it has none."""
    template = op.codegen.get("numpy")
    if template is not None:
        return template
    name = ufunc_name(op.kernel)
    if name is None:
        return None
    arity = op.kernel.nin
    args = ", ".join(f"{{{i}}}" for i in range(arity))
    # eager casts the ufunc's own result (floor of an int array is float64) to the output dtype
    return f"{name}({args}, out={{out}}, casting='unsafe')"


@functools.cache
def helper_source(name: str) -> str:
    return (HELPERS / name).read_text(encoding="utf-8")


def helpers_of(ops, dialect: str) -> list[tuple[str, str]]:
    """(file name, source) of each helper file that the `dialect` snippets of `ops` call, once each,
    in the order the ops first name them."""
    names = dict.fromkeys(name for op in ops for name in op.codegen.get(f"{dialect}_helpers", ()))
    return [(name, helper_source(name)) for name in names]


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is defined twice; each primitive has exactly one record")
    OPS[op.name] = op
    return op
