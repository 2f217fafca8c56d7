"""Render kernel descriptions as Triton kernels, and a program that runs them.

Which groups Triton takes (`why_not` says why it does not take the others):

- pointwise groups, flat or over rows with broadcasting operands, become one
  1-D kernel (`templates/triton_pointwise.py.j2`): each program covers a
  block of the output's elements; an operand with broadcast dims is read at
  the offsets its own strides give (element index split into per-dim indices),
  and an output smaller than the iteration space is stored at its canonical
  positions only;
- row groups whose reductions cover all trailing dims of their input (softmax,
  layer_norm) become one 2-D kernel (`templates/triton_reduction.py.j2`): one
  program per block of rows, a row's trailing elements along the second tile
  axis; a reduced value is a [rows, 1] tile;
- row groups that reduce over the rows themselves (a bias's gradient, a loss's
  mean, a maximum of everything) become a kernel whose one program walks the
  rows block by block (`templates/triton_accumulate.py.j2`), folding each
  block's sums, products, maxima or minima into accumulators ([1, columns]
  tiles, or [1, 1] for a reduction of everything; `ACCUMULATORS` says how each
  starts and folds), then runs what follows them once, after the loop. One program, so
  the order of the additions is fixed: the same bits every run.

0-d work (an optimizer's scalars, a loss's mean) is a pointwise kernel over one
element. A matmul group's products are `tl.dot` kernels (`triton_matmul.py`):
an elementwise epilogue runs on the product's tiles in the same kernel, any
other runs as one of the kernels above, reading the products. Everything else
(a reduction over rows that span several leading dims and keeps some, views
inside a group, integer reductions and products, rows too long for one tile)
stays a chunked numpy kernel in the same program; `FALLBACKS` in the program
and the compile report name each such group and why.

Numerics follow eager as the numpy backend does: values are held in their
kernel dtype (fp16/bf16 as fp32), each statement computes in the op's compute
dtype, and a value whose eager dtype is fp16/bf16 is rounded to it right away
(bf16 with integer arithmetic in `round_to_bfloat16`, exact everywhere).
The statement lines are the op records' `codegen["triton"]` snippets; the
templates name no op.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass, replace

import numpy as np

from genesis.compiler.codegen import numpy_backend, triton_matmul, triton_stages
from genesis.compiler.codegen import triton_dialect as dialect
from genesis.compiler.codegen.kernel import KernelSpec, helpers, kernel_dtype
from genesis.compiler.codegen.layout import RowLayout, Unsupported, next_power_of_2, rank_broadcast, same_positions
from genesis.compiler.codegen.layout import broadcast as _broadcast
from genesis.compiler.codegen.layout import numel as _numel
from genesis.compiler.codegen.layout import right_aligned as _right_aligned
from genesis.compiler.codegen.layout import strides as _strides
from genesis.compiler.codegen.triton_reduce import ReduceLayout
from genesis.compiler.codegen.wrapper import CODEGEN_VERSION, ProgramSource, plan, program_context
from genesis.compiler.templates import render
from genesis.ops.op import OPS, Combine, IndexMap, Kind, named_attrs
from genesis.runtime.cpu import GENESIS_DTYPE, NUMPY_DTYPE
from genesis.runtime.triton_buffers import TritonBuffer
from genesis.version import __version__

MAX_ROW_ELEMENTS = 1 << 14  # a reduced row lives in one tile; longer rows stay numpy kernels
DEFAULT_TARGET = ("cuda", 90, 32)


def _value_shapes(spec: KernelSpec) -> dict:
    """Kernel local -> shape, for statements and operands."""
    shapes = {o.local: o.shape for o in spec.operands}
    shapes.update((s.value, s.shape) for s in spec.statements)
    return shapes


def why_not(spec: KernelSpec) -> str | None:
    """None when the Triton backend takes this kernel, else why it stays a numpy kernel."""
    if any(_numel(v.shape) == 0 for v in (*spec.statements, *spec.operands)):
        return "a value with no elements: the grid would launch no lane for the others"
    if triton_matmul.products_of(spec):
        why = triton_matmul.why_not(spec)
        fused = None if why is not None else triton_matmul.fused(spec)
        if fused is not None:
            return next(
                (f"{s.op} has no Triton snippet" for s in fused.epilogue if dialect.snippet(s.record) is None), None
            )
        if why is not None:
            return why
        _, rest = triton_matmul.split(spec)
        return None if rest is None else why_not(rest)
    spec = for_triton(spec)
    staged = _after_the_loop(spec)
    if staged is not None:
        loop, after = staged
        return next((why for why in map(why_not, (loop, *after)) if why is not None), None)
    for s in spec.statements:
        kind = OPS[s.op].kind
        if s.phase == "accumulate" and s.combine not in ACCUMULATORS:
            return f"{s.value} = {s.op} accumulates over the rows by {s.combine.value}: not in Triton yet"
        if s.phase == "post" and kind is Kind.REDUCTION:
            return f"{s.value} = {s.op} reduces after the loop over the rows (not in Triton yet)"
        if kind is Kind.VIEW:  # one that moves elements may still be read in place (chosen_layout)
            continue
        if kind is Kind.MATMUL:
            return f"{s.value} = {s.op}: matmul epilogues are not in Triton yet"
        if dialect.snippet(OPS[s.op]) is None:
            return f"{s.op} has no Triton snippet"
        if kind is Kind.REDUCTION and (s.compute is None or not s.compute.is_floating_point):
            return f"{s.value} = {s.op}: only floating-point reductions are in Triton"
    return chosen_layout(spec)[1]


class _Unsupported(Unsupported):
    pass


def _why_not_view(s, shapes) -> str | None:
    """A view inside a group is its source's tile where every element stays where the layout finds
    it: an expand (the source's tile is read broadcast already), a reshape that adds or drops size-1
    dims around the rows; anything else moves elements."""
    if s.index_map is IndexMap.BROADCAST:
        return None
    if s.index_map is IndexMap.RESHAPE and same_positions(shapes[s.reads[0]], s.shape):
        return None
    if s.index_map is IndexMap.RESHAPE:
        return f"{s.value} = reshape {shapes[s.reads[0]]} -> {s.shape} moves elements within the rows"
    return f"{s.value} = {s.op}: a view that moves elements inside a group (not in Triton yet)"


def for_triton(spec: KernelSpec) -> KernelSpec:
    """The spec as the Triton layouts read it: operands' reshapes folded, merged rows' sums in the
    rows' rank."""
    return _sums_in_the_rows_rank(fold_operand_reshapes(spec))


def _sums_in_the_rows_rank(spec: KernelSpec) -> KernelSpec:
    """Over merged rows ((batch, tokens) of (batch, tokens, features) values), a sum over every row
    keeps the dims it summed as 1s ((1, 1, features)); the kernel holds it as one row of the merged
    values' rank ((1, features)), the same elements in the same order."""
    if not spec.merged:
        return spec
    by_rows = [o.shape for o in spec.operands if o.blocked] + [s.shape for s in spec.statements if s.phase == "block"]
    rank = max(map(len, by_rows), default=0)

    def squeezed(shape):
        extra = len(shape) - rank
        return tuple(shape[extra:]) if extra > 0 and all(n == 1 for n in shape[:extra]) else tuple(shape)

    statements = tuple(replace(s, shape=squeezed(s.shape)) if _over_rows(s) else s for s in spec.statements)
    operands = tuple(o if o.blocked else replace(o, shape=squeezed(o.shape)) for o in spec.operands)
    return replace(spec, statements=statements, operands=operands)


def fold_operand_reshapes(spec: KernelSpec) -> KernelSpec:
    """A reshape of an operand that nothing else reads is the operand read in the reshaped shape:
    the kernel gets the array's contiguous bytes (as_buffer), which a reshape leaves in place. A
    whole operand reshaped into the group's rows ((1, n) -> (n,) over n rows) is read by rows; a
    row-blocked one keeps its rows. The reshape stays, as a view of the operand's own shape."""
    if spec.merged:
        return spec
    operands = {o.local: o for o in spec.operands}
    readers = {}
    for s in spec.statements:
        for r in s.reads:
            if isinstance(r, str):
                readers[r] = readers.get(r, 0) + 1
    for s in spec.statements:
        o = operands.get(s.reads[0]) if s.reads and isinstance(s.reads[0], str) else None
        if s.index_map is not IndexMap.RESHAPE or o is None or readers[o.local] != 1 or o.leading is not None:
            continue
        into_rows = s.phase == "block" and spec.mode == "rows" and s.shape[:1] == (spec.rows,)
        if o.blocked and tuple(o.shape[:1]) != tuple(s.shape[:1]):
            continue  # a row-blocked operand keeps its rows
        operands[o.local] = replace(o, shape=tuple(s.shape), blocked=o.blocked or into_rows)
    folded = tuple(operands.values())
    return spec if folded == spec.operands else replace(spec, operands=folded)


def layout_of(spec: KernelSpec):
    """The looping row layout when the kernel sums over the rows, the 2-D row layout when it reduces
    rows, else the 1-D pointwise one."""
    if any(s.phase in ("accumulate", "post") for s in spec.statements):
        return AccumulateLayout(spec)
    if any(OPS[s.op].kind is Kind.REDUCTION for s in spec.statements):
        return ReductionLayout(spec)
    return PointwiseLayout(spec)


def chosen_layout(spec: KernelSpec):
    """(layout, None) for the layout that takes the kernel, or (None, why not): the row layouts
    where they fit, else, for reductions over other dims, `triton_reduce.ReduceLayout`."""
    shapes = _value_shapes(spec)
    moving = {s.value: why for s in spec.statements if s.kind is Kind.VIEW for why in [_why_not_view(s, shapes)] if why}
    if moving:  # the row layouts read a view as its source's tile: only the reduction layout may take it
        layout, why = None, next(iter(moving.values()))
    else:
        try:
            layout = layout_of(spec)
            why = layout.why_not()
        except _Unsupported as error:  # the layout's own checks may refuse too: the group stays numpy
            layout, why = None, str(error)
    if why is None:
        return layout, None
    reductions = [s for s in spec.statements if OPS[s.op].kind is Kind.REDUCTION]
    # merged rows are the same bytes in a shape of lower rank, unless a value reads its own rows of them
    own_rows = any(v.leading is not None for v in (*spec.operands, *spec.statements))
    if not reductions or own_rows or any(s.combine not in ACCUMULATORS for s in reductions):
        return None, why
    try:
        general = ReduceLayout(spec)
    except Unsupported:
        return None, why  # the row layout's reason: the closer fit
    if general.why_not() is not None or any(value not in general.chains for value in moving):
        return None, why
    return general, None


def _over_rows(s) -> bool:
    """Whether a statement's value exists once, after the loop over the rows (not per row)."""
    return s.phase in ("accumulate", "post")


class PointwiseLayout:
    """1-D iteration over the elements of the group's (broadcast) shape."""

    template = "triton_pointwise.py.j2"

    def __init__(self, spec: KernelSpec):
        self.spec = spec
        shapes = [s.shape for s in spec.statements] + [o.shape for o in spec.operands if o.blocked]
        if len({len(shape) for shape in shapes}) != 1:
            raise _Unsupported("values of different ranks in one pointwise group")
        try:
            self.shape = tuple(_broadcast(shapes))
        except ValueError as error:
            raise _Unsupported(str(error)) from None
        self.indices: dict[int, str] = {}

    def why_not(self):
        return None

    def _index(self, dim: int) -> str:
        inner = _numel(self.shape[dim + 1 :])
        expression = "offsets" if inner == 1 else f"offsets // {inner}"
        if dim > 0:
            expression += f" % {self.shape[dim]}"
        self.indices[dim] = expression
        return f"index{dim}"

    def index_lines(self) -> list[tuple[str, str]]:
        return [(f"index{d}", self.indices[d]) for d in sorted(self.indices)]

    def offsets(self, shape) -> str | None:
        """The offsets of a value of `shape` (right-aligned, broadcast) at each element; None: one scalar."""
        shape = _right_aligned(shape, len(self.shape))
        if shape == self.shape:
            return "offsets"  # even a single element: the group's own values are stored by offset
        if _numel(shape) == 1:
            return None
        terms = [
            f"{self._index(d)} * {stride}" if stride != 1 else self._index(d)
            for d, (n, stride) in enumerate(zip(shape, _strides(shape)))
            if n != 1
        ]
        return " + ".join(terms)

    def load_mask(self, shape) -> str:
        return "mask"

    def store_mask(self, shape) -> str:
        shape = _right_aligned(shape, len(self.shape))
        canonical = [
            f"({self._index(d)} == 0)" for d, (n, full) in enumerate(zip(shape, self.shape)) if n == 1 and full != 1
        ]  # a replicated value is stored once per element
        return " & ".join(["mask"] + canonical)

    def reduce_mask(self, shape) -> str:
        raise AssertionError("pointwise kernels reduce nothing")

    def context(self) -> dict:
        elements = _numel(self.shape)
        # the interpreter runs the same launches as a GPU would, so its tests cover grids and masks
        return {"elements": elements, "block": 1024}


class ReductionLayout(RowLayout):
    """2-D tiles: a block of rows by the row's trailing elements (the reduced axis)."""

    template = "triton_reduction.py.j2"

    def __init__(self, spec: KernelSpec):
        self.spec = spec
        values = {local: (shape, self._is_blocked(local)) for local, shape in _value_shapes(spec).items()}
        try:
            super().__init__(values, merged=spec.merged_dims)
        except Unsupported as error:
            raise _Unsupported(str(error)) from None

    def _is_blocked(self, local) -> bool:
        operand = next((o for o in self.spec.operands if o.local == local), None)
        return operand is None or operand.blocked

    def kind_of(self, shape, blocked=True) -> str:
        try:
            return super().kind_of(shape, blocked)
        except Unsupported as error:
            raise _Unsupported(str(error)) from None

    def why_not(self):
        return self.why_not_for(self.spec.statements)

    def why_not_for(self, statements):
        """Why these statements do not fit 2-D tiles of whole rows, or None."""
        if _numel(self.trailing) > MAX_ROW_ELEMENTS:
            return f"a row of {_numel(self.trailing)} elements does not fit one tile"
        shapes = _value_shapes(self.spec)
        for s in statements:
            if OPS[s.op].kind is Kind.VIEW:  # its source's elements, where they are (`_why_not_view`)
                continue
            if OPS[s.op].kind is not Kind.REDUCTION:
                why = rank_broadcast(
                    s, [shapes[r] if isinstance(r, str) and self._is_blocked(r) else None for r in s.reads]
                )
                if why is not None:
                    return why
                continue
            source = shapes[s.reads[0]]
            if tuple(s.attrs["dims"]) != tuple(range(1, len(source))):
                rows = f" (rows over several leading dims: {self.spec.not_merged})" if self.spec.not_merged else ""
                return f"{s.value} = {s.op} reduces dims {s.attrs['dims']}, not all trailing dims{rows}"
            if self.kind_of(source) == "full" and tuple(source[1:]) != self.trailing:
                return f"{s.value} = {s.op} reduces a broadcast value"
        return None

    def load_mask(self, shape, blocked=True, leading=None) -> str:
        # a scalar is loaded once, unmasked; a value read at its own rows (`leading`) is masked by the
        # kernel's rows that read it
        return {"row": "row_mask", "columns": "col_mask", "full": "mask"}.get(self.kind_of(shape, blocked))

    def store_mask(self, shape) -> str:
        if self.kind_of(shape) == "row":
            return "row_mask"
        canonical = [
            f"({self._index(d)} == 0)"
            for d, (n, full) in enumerate(zip(shape[1:], self.trailing))
            if n == 1 and full != 1
        ]
        return " & ".join(["mask"] + canonical)

    def reduce_mask(self, shape) -> str:
        return self.load_mask(shape)

    def context(self) -> dict:
        row_elements = _numel(self.trailing)
        block_cols = max(16, next_power_of_2(row_elements))
        block_rows = max(1, min(next_power_of_2(self.spec.rows), 4096 // block_cols))  # 4K-element tiles
        return {
            "rows": self.spec.rows,
            "row_elements": row_elements,
            "block_cols": block_cols,
            "block_rows": block_rows,
        }


class AccumulateLayout(ReductionLayout):
    """2-D tiles that one program walks down the rows, summing each block into accumulators: a
    bias's gradient (a sum over the batch), a loss's mean (a sum over everything). Values made after
    the loop (the sums and what follows them) are whole: one per column, or a single one."""

    template = "triton_accumulate.py.j2"

    def _is_blocked(self, local) -> bool:
        statement = next((s for s in self.spec.statements if s.value == local), None)
        if statement is not None:
            return not _over_rows(statement)
        return super()._is_blocked(local)

    def why_not(self):
        if any(s.leading is not None for s in self.spec.statements):
            return "a sum over rows that span several leading dims, keeping some (not in Triton yet)"
        if self.spec.mode not in ("rows", "flat"):
            return f"a {self.spec.mode} kernel that sums over the rows"
        shapes = _value_shapes(self.spec)
        for s in self.spec.statements:
            if s.phase == "accumulate":
                why = self._why_not_sum(s, shapes)
            elif s.phase == "post":
                why = self._why_not_whole(s, shapes) or rank_broadcast(s, [None for _ in s.reads])
            else:
                continue
            if why is not None:
                return why
        blocked_stages = [s for s in self.spec.statements if not _over_rows(s)]
        return super().why_not_for(blocked_stages)

    def _why_not_sum(self, s, shapes):
        source = shapes[s.reads[0]]
        if not self._is_blocked(s.reads[0]):
            return f"{s.value} = {s.op} sums a value that is not read by rows"
        kind, dims = self.kind_of(source), tuple(s.attrs["dims"])
        every = tuple(range(len(source)))
        if kind == "full" and tuple(source[1:]) != self.trailing:  # its tiles repeat it along the broadcast dims
            return f"{s.value} = {s.op} sums {list(source)}, read broadcast over rows of {list(self.trailing)}"
        if dims == every or (kind == "row" and 0 in dims and all(source[d] == 1 for d in dims if d)):
            return self._why_not_whole(s, shapes)
        if kind == "full" and dims == (0,) and tuple(source[1:]) == self.trailing:
            return self._why_not_whole(s, shapes)
        return f"{s.value} = {s.op} sums dims {list(dims)} of {list(source)}: not the rows alone or everything"

    def _why_not_whole(self, s, shapes):
        kind = self.kind_of(s.shape, blocked=False)
        if kind == "columns" and tuple(_right_aligned(s.shape, self.rank)[1:]) != self.trailing:
            return f"{s.value} = {s.op} is a broadcast row after the loop (not in Triton yet)"
        return None

    def whole_access(self, shape) -> tuple[str, str | None]:
        """(offsets, mask) of a whole value: a block of columns, or a single value as a 1x1 tile,
        which broadcasts against a block of rows and a block of columns alike."""
        if self.kind_of(shape, blocked=False) == "scalar":
            return "tl.zeros([1, 1], dtype=tl.int32)", None
        return self.trailing_offsets(_right_aligned(shape, self.rank)[1:]), "col_mask"

    def accumulator_shape(self, s) -> str:
        return "[1, 1]" if self.kind_of(s.shape, blocked=False) == "scalar" else "[1, BLOCK_COLS]"

    def context(self) -> dict:
        context = super().context()
        if self.spec.mode == "flat":  # a flat spec counts elements: the tiles count rows of the trailing dims
            context["rows"] = self.spec.rows // max(1, context["row_elements"])
        context["block_rows"] = max(1, min(next_power_of_2(context["rows"]), 4096 // context["block_cols"]))
        return context


# ---- statement lines ------------------------------------------------------------------------
def _read(spec, read, statement, position) -> str:
    if not isinstance(read, str):
        return dialect.literal(read, statement.literal_dtype)
    have = statement.input_dtypes[position]
    if statement.compute is not None and have is not statement.compute:
        return dialect.cast_to(read, statement.compute)
    return read


def statement_lines(spec: KernelSpec, layout, statements=None) -> list[str]:
    shapes = _value_shapes(spec)
    lines = []
    for s in spec.statements if statements is None else statements:
        # a view is its source's tile (`_why_not_view`): an expand of one value per row stays a
        # column of the tile, which a reduction's mask, a store's pointers or arithmetic widen
        expression = s.reads[0] if s.kind is Kind.VIEW else _expression(s, layout, shapes, axis="1")
        lines.append(f"{s.value} = {dialect.cast_to(f'({expression})', kernel_dtype(s.dtype))}")
        lines += dialect.round_lines(s.value, s.dtype)
    return lines


def _expression(s, layout, shapes, axis, mask=None, source=None) -> str:
    """The statement's snippet, filled: its operands read in its compute dtype; a reduction over the
    tile's `axis`, its masked lanes the identity (`mask`, else the layout's for its input)."""
    args = [_read(None, r, s, i) for i, r in enumerate(s.reads)]
    if source is not None:
        args[0] = source
    template = dialect.snippet(OPS[s.op])
    named = named_attrs(template, s.attrs)
    attrs = {name: dialect.literal(value, s.compute, typed=False) for name, value in named.items()}
    if OPS[s.op].kind is Kind.REDUCTION:
        attrs.update(axis=axis, mask=mask or layout.reduce_mask(shapes[s.reads[0]]))
    return template.format(*args, **attrs)


# How an accumulator over the rows starts, and how a block's partial result folds into it. The
# maxima keep a nan, as numpy's and PyTorch's do (tl.maximum alone would drop it).
ACCUMULATORS = {
    Combine.ADD: ("0", "{acc} + {partial}"),
    Combine.MULTIPLY: ("1", "{acc} * {partial}"),
    Combine.MAXIMUM: ('float("-inf")', "tl.maximum({acc}, {partial}, propagate_nan=tl.PropagateNan.ALL)"),
    Combine.MINIMUM: ('float("inf")', "tl.minimum({acc}, {partial}, propagate_nan=tl.PropagateNan.ALL)"),
}


def _accumulate_lines(s, layout, shapes) -> list[str]:
    """Inside the loop: the block's reduction over its rows (and, for a reduction of everything, its
    columns) folded into the accumulator."""
    partial = _expression(s, layout, shapes, axis="0")
    if layout.kind_of(s.shape, blocked=False) == "scalar" and layout.kind_of(shapes[s.reads[0]]) == "full":
        partial = _expression(s, layout, shapes, axis="1", mask="col_mask", source=partial)
    return [_fold_line(s, partial)]


def _fold_line(s, partial: str) -> str:
    """The accumulator of reduction `s` folded with a block's `partial` result."""
    fold = ACCUMULATORS[s.combine][1]
    return f"{s.value} = " + fold.format(acc=s.value, partial=dialect.cast_to(f"({partial})", kernel_dtype(s.dtype)))


@dataclass(frozen=True)
class _Access:
    name: str
    pointer: str
    offsets: str | None
    mask: str
    dtype: str
    value: str = ""


def render_kernel(spec: KernelSpec) -> str:
    """The @triton.jit kernel and its launcher, for a spec that `why_not` accepts."""
    if triton_matmul.products_of(spec):
        return _render_with_products(spec)
    spec = for_triton(spec)
    staged = _after_the_loop(spec)
    if staged is not None:
        return _render_after_the_loop(spec, *staged)
    layout, _ = chosen_layout(spec)
    if isinstance(layout, ReduceLayout):
        return _render_reduce(spec, layout)
    blocked = isinstance(layout, ReductionLayout)
    loads = []
    for o in spec.operands:
        keyword = {"blocked": o.blocked, "leading": o.leading} if blocked else {}
        offsets, mask = layout.offsets(o.shape, **keyword), layout.load_mask(o.shape, **keyword)
        if offsets is None:
            # a single value is read into every lane (of a 2-D tile: as one value per row, which keeps
            # a row's values one per row): the interpreter has no `&` or `|` of a bool block with a
            # bool scalar, and the lanes read it from one cached place
            offsets, mask = ("rows * 0", "row_mask") if blocked else ("offsets * 0", "mask")
        loads.append(_Access(o.local, f"{o.local}_ptr", offsets, mask, dialect.TL_DTYPES[kernel_dtype(o.dtype)]))
    if isinstance(layout, AccumulateLayout):
        return _render_accumulating(spec, layout)
    body = statement_lines(spec, layout)
    shapes = _value_shapes(spec)
    # a single-element output (offsets None: only pointwise kernels have them) is stored at its one
    # place by the one lane its mask keeps; the pointer is a block like the mask, as Triton wants
    stores = [
        _Access(
            v,
            f"out_{v}_ptr",
            layout.offsets(shapes[v]) or "offsets * 0",
            layout.store_mask(shapes[v]),
            dialect.TL_DTYPES[next(s.dtype for s in spec.statements if s.value == v)],
            value=v,
        )
        for v in spec.outputs
    ]
    context = {
        **_launch_context(spec),
        "indices": layout.index_lines(),
        "loads": loads,
        "body": body,
        "stores": stores,
        **layout.context(),
    }
    return render(layout.template, k=context)


def _render_reduce(spec: KernelSpec, layout: ReduceLayout) -> str:
    """A reduction over any dims (templates/triton_reduce.py.j2): the statements before the
    reductions and the reductions' folds in the loop over the reduced positions, the rest after."""
    shapes = _value_shapes(spec)
    dtype_of = {s.value: s.dtype for s in spec.statements}
    loads, post_loads = [], []
    for o in spec.operands:
        tl_dtype = dialect.TL_DTYPES[kernel_dtype(o.dtype)]
        level = layout.reads.get(o.local)
        if level in ("inner", "both"):
            loads.append(_Access(o.local, f"{o.local}_ptr", layout.offsets(o.shape, False), "mask", tl_dtype))
        if level in ("outer", "both"):  # read again after the loop, at the kept positions
            post_loads.append(_Access(o.local, f"{o.local}_ptr", layout.offsets(o.shape, True), "k_mask", tl_dtype))
    for value, (root, _) in layout.chains.items():  # a view of an operand: its own tile, read in place
        if not layout.read_as_a_tile(value):
            continue
        tl_dtype = dialect.TL_DTYPES[kernel_dtype(next(o.dtype for o in spec.operands if o.local == root))]
        loads.append(_Access(value, f"{root}_ptr", layout.chain_offsets(value), "mask", tl_dtype))
    reductions = [s for s in spec.statements if OPS[s.op].kind is Kind.REDUCTION]
    inner = [s for s in spec.statements if not layout.is_outer(s.value) and s.value not in layout.chains]
    outer = [s for s in spec.statements if layout.is_outer(s.value) and s not in reductions]
    body = statement_lines(spec, layout, inner)
    body += [_fold_line(s, _expression(s, layout, shapes, axis="1", mask="mask")) for s in reductions]
    post_body = [line for s in reductions for line in dialect.round_lines(s.value, s.dtype)]
    post_body += statement_lines(spec, layout, outer)
    stores, post_stores = [], []
    for v in spec.outputs:
        is_outer = layout.is_outer(v)
        access = _Access(
            v,
            f"out_{v}_ptr",
            layout.offsets(shapes[v], is_outer),
            "k_mask" if is_outer else "mask",
            dialect.TL_DTYPES[dtype_of[v]],
            value=v,
        )
        (post_stores if is_outer else stores).append(access)
    accumulators = [
        (s.value, "[BLOCK_K, 1]", ACCUMULATORS[s.combine][0], dialect.TL_DTYPES[kernel_dtype(s.dtype)])
        for s in reductions
    ]
    context = {
        **_launch_context(spec),
        "kept_indices": layout.kept_index_lines(),
        "reduced_indices": layout.reduced_index_lines(),
        "accumulators": accumulators,
        "loads": loads,
        "body": body,
        "stores": stores,
        "post_loads": post_loads,
        "post_body": post_body,
        "post_stores": post_stores,
        **layout.context(),
    }
    return render(layout.template, k=context)


def _render_accumulating(spec: KernelSpec, layout: AccumulateLayout) -> str:
    """The kernel that walks the rows (templates/triton_accumulate.py.j2): whole operands read
    before the loop, blocked ones per block; sums accumulate in the loop, and the statements after
    them run once, after it."""
    shapes = _value_shapes(spec)
    dtype_of = {s.value: s.dtype for s in spec.statements}
    whole_loads, loads = [], []
    for o in spec.operands:
        tl_dtype = dialect.TL_DTYPES[kernel_dtype(o.dtype)]
        if layout.kind_of(o.shape, o.blocked) in ("scalar", "columns"):  # the same for every row
            offsets, mask = layout.whole_access(o.shape)
            whole_loads.append(_Access(o.local, f"{o.local}_ptr", offsets, mask, tl_dtype))
        else:
            offsets = layout.offsets(o.shape, blocked=o.blocked, leading=o.leading)
            mask = layout.load_mask(o.shape, blocked=o.blocked, leading=o.leading)
            loads.append(_Access(o.local, f"{o.local}_ptr", offsets, mask, tl_dtype))
    body = []
    for s in spec.statements:
        if s.phase == "block":
            body += statement_lines(spec, layout, [s])
        elif s.phase == "accumulate":
            body += _accumulate_lines(s, layout, shapes)
    post_body = [
        line for s in spec.statements if s.phase == "accumulate" for line in dialect.round_lines(s.value, s.dtype)
    ]
    post_body += statement_lines(spec, layout, [s for s in spec.statements if s.phase == "post"])
    over_rows = {s.value for s in spec.statements if _over_rows(s)}
    stores, post_stores = [], []
    for v in spec.outputs:
        tl_dtype = dialect.TL_DTYPES[dtype_of[v]]
        if v in over_rows:
            offsets, mask = layout.whole_access(shapes[v])
            post_stores.append(_Access(v, f"out_{v}_ptr", offsets, mask, tl_dtype, value=v))
        else:
            offsets, mask = layout.offsets(shapes[v]), layout.store_mask(shapes[v])
            stores.append(_Access(v, f"out_{v}_ptr", offsets, mask, tl_dtype, value=v))
    accumulators = [
        (s.value, layout.accumulator_shape(s), ACCUMULATORS[s.combine][0], dialect.TL_DTYPES[kernel_dtype(s.dtype)])
        for s in spec.statements
        if s.phase == "accumulate"
    ]
    context = {
        **_launch_context(spec),
        "indices": layout.index_lines(),
        "whole_loads": whole_loads,
        "accumulators": accumulators,
        "loads": loads,
        "body": body,
        "stores": stores,
        "post_body": post_body,
        "post_stores": post_stores,
        **layout.context(),
    }
    return render(layout.template, k=context)


def _launch_context(spec: KernelSpec) -> dict:
    """The parts of a kernel and its launcher that every row and reduction template shares: the
    pointer parameters (operands, then outputs), the launcher's arguments, the docstring."""
    return {
        "name": spec.name,
        "params": [f"{o.local}_ptr" for o in spec.operands] + [f"out_{v}_ptr" for v in spec.outputs],
        "launch_params": [o.local for o in spec.operands] + [f"out_{v}" for v in spec.outputs],
        "arguments": [f"as_buffer({o.local})" for o in spec.operands]
        + [f"TritonBuffer(out_{v})" for v in spec.outputs],
        "doc": f"{spec.group}: {spec.summary()}",
    }


def _render_with_products(spec: KernelSpec) -> str:
    """A matmul group: one tl.dot kernel with the epilogue on its tiles where that fits, else a
    tl.dot kernel per product, the rest of the group's kernel, and a launcher that runs them."""
    product = triton_matmul.fused(spec)
    if product is not None:
        return _render_product(spec, product)
    products, rest = triton_matmul.split(spec)
    sources = [_render_product(spec, p) for p in products]
    stages = [triton_stages.Stage(p.name, p.params, (p.statement.value,)) for p in products]
    if rest is not None:
        sources.append(render_kernel(rest))
        stages.append(triton_stages.stage_of(rest))
    made = {p.statement.value: p.statement for p in products}
    sources.append(triton_stages.launcher(spec, stages, made))
    return "\n\n\n".join(sources)


def _after_the_loop(spec: KernelSpec):
    """(the loop's kernel, the kernels after it) where statements after the loop over the rows work
    on whole arrays of other shapes (`triton_stages.after_the_loop`), else None."""
    if not any(s.phase == "post" for s in spec.statements):
        return None
    values = {o.local: (o.shape, True) for o in spec.operands if o.blocked}
    values.update((s.value, (s.shape, True)) for s in spec.statements if s.phase == "block")
    try:
        rows = RowLayout(values, merged=spec.merged_dims)
    except Unsupported:
        return None
    return triton_stages.after_the_loop(spec, rows.trailing, rows.rank)


def _render_after_the_loop(spec: KernelSpec, loop: KernelSpec, after: list) -> str:
    sources = [render_kernel(loop)] + [render_kernel(a) for a in after]
    made = {s.value: s for s in spec.statements if s.value in {*loop.outputs, *(v for a in after for v in a.outputs)}}
    stages = [triton_stages.stage_of(k) for k in (loop, *after)]
    sources.append(triton_stages.launcher(spec, stages, made))
    return "\n\n\n".join(sources)


def _render_product(spec: KernelSpec, product) -> str:
    body = statement_lines(spec, None, product.epilogue)
    return render("triton_matmul.py.j2", k=triton_matmul.context(product, body))


# ---- programs ---------------------------------------------------------------------------------
def target_name(interpret: bool, target=DEFAULT_TARGET) -> str:
    return "interpreter" if interpret else f"{target[0]}:sm_{target[1]}"


def build_program_source(graph, interpret: bool = True) -> ProgramSource:
    """One module: Triton kernels for the groups Triton takes, numpy kernels for the rest."""
    import triton

    planned = plan(graph)
    sources, fallbacks, in_triton = [], {}, []
    for spec in planned.kernels:
        why = why_not(spec)
        if why is None:
            sources.append(render_kernel(spec))
            in_triton.append(spec)
        else:
            fallbacks[spec.group] = why
            sources.append(numpy_backend.render_kernel(spec))
    stats = {**planned.stats, "triton_kernels": len(planned.kernels) - len(fallbacks), "numpy_kernels": len(fallbacks)}
    source = render(
        "triton_program.py.j2",
        **program_context(
            graph,
            planned,
            f"{stats['triton_kernels']} Triton kernels, {len(fallbacks)} numpy kernels, "
            f"{stats['library_calls']} library calls",
            stats,
        ),
        triton_version=triton.__version__,
        target=target_name(interpret),
        helpers=helpers(in_triton, "triton"),
        kernels=sources,
        fallbacks=repr(fallbacks),
    )
    return ProgramSource(
        source, planned.steps, planned.library_nodes, planned.kernels, {**stats, "fallbacks": fallbacks}
    )


def load_module(source: str, filename: str, interpret: bool) -> dict:
    """Execute a generated Triton module. Triton reads the kernels' source back (inspect), so the
    text is registered with linecache under `filename`; `@triton.jit` reads TRITON_INTERPRET when it
    decorates, so the knob is set only around this exec and the user need not set it beforehand."""
    import triton

    from genesis.runtime.triton_buffers import INTERPRETER_LIBDEVICE

    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    namespace = {"__name__": f"genesis_triton_{abs(hash(filename)):x}"}  # Triton reads __module__
    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = interpret
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102  (our own generated code)
    if interpret:
        namespace["libdevice"] = INTERPRETER_LIBDEVICE  # the interpreter has no libdevice of its own
    return namespace


class _LaunchRecorder:
    """Stands in for a @triton.jit kernel while a launcher runs: records each launch, runs nothing."""

    def __init__(self, kernel, launches: list):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append((self.kernel, args, kwargs))


LAUNCH_OPTIONS = ("num_warps", "num_stages")  # launch keywords that are compile options, not constexprs


def compile_ahead(spec: KernelSpec, target=DEFAULT_TARGET) -> dict:
    """Compile every Triton kernel that `spec`'s launcher launches, ahead of time (no GPU needed):
    kernel name -> triton's compiled kernel (`.asm["ptx"]`, `.asm["cubin"]`). The launcher runs on
    empty arrays with its kernels swapped for recorders, so each kernel is compiled with the
    arguments, constants and options its launch gives, and without floating-point contraction,
    as the interpreter computes."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    why = why_not(spec)
    if why is not None:
        raise ValueError(f"genesis: {spec.name} is not a Triton kernel: {why}")
    source = render(
        "triton_program.py.j2",
        version=__version__,
        codegen_version=CODEGEN_VERSION,
        triton_version=triton.__version__,
        target=target_name(False, target),
        summary=spec.name,
        helpers=helpers([spec], "triton"),
        kernels=[render_kernel(spec)],
        inputs=[],
        steps=[],
        outputs=[],
        library="[]",
        stats="{}",
        fallbacks="{}",
    )
    namespace = load_module(source, f"<genesis triton {spec.name} {abs(hash(source)):x}>", interpret=False)
    launches = []
    kernels = {n: v for n, v in namespace.items() if isinstance(v, JITFunction) and n.endswith("_kernel")}
    namespace.update((n, _LaunchRecorder(kernel, launches)) for n, kernel in kernels.items())
    namespace[spec.name](*(np.zeros(shape, dtype) for _, shape, dtype in launcher_arguments(spec)))
    namespace.update(kernels)  # the helpers they call are compiled from the same globals
    compiled = {}
    for kernel, args, kwargs in launches:
        values = {**dict(zip(kernel.arg_names, args)), **kwargs}
        options = {"enable_fp_fusion": False, **{k: values.pop(k) for k in LAUNCH_OPTIONS if k in values}}
        constexprs = {n: values[n] for n in kernel.arg_names if n in kwargs and n not in LAUNCH_OPTIONS}
        signature = {n: "constexpr" if n in constexprs else _signature_type(values[n]) for n in kernel.arg_names}
        compiled[kernel.__name__] = triton.compile(
            ASTSource(fn=kernel, signature=signature, constexprs=constexprs), target=GPUTarget(*target), options=options
        )
    return compiled


def launcher_arguments(spec: KernelSpec) -> list[tuple]:
    """What the program passes a group's launcher, in order: (name, shape, numpy dtype name) of each
    operand as its array holds it, then of each output."""
    dtype_of = {s.value: s.dtype for s in spec.statements}
    shapes = _value_shapes(spec)
    arguments = [(o.local, tuple(o.stored_shape), NUMPY_DTYPE[o.dtype].name) for o in spec.operands]
    return arguments + [(f"out_{v}", tuple(shapes[v]), NUMPY_DTYPE[dtype_of[v]].name) for v in spec.outputs]


def _signature_type(value) -> str:
    if isinstance(value, TritonBuffer):
        return dialect.SIGNATURE_TYPES[GENESIS_DTYPE[value.array.dtype]]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(1 << 31) <= value < (1 << 31) else "i64"
    raise TypeError(f"genesis: a Triton launch argument of type {type(value).__name__} has no signature type")


def compile_ptx(spec: KernelSpec, target=DEFAULT_TARGET) -> str:
    """The PTX of every Triton kernel `spec` launches (`compile_ahead`), one after another."""
    return "\n".join(kernel.asm["ptx"] for kernel in compile_ahead(spec, target).values())
