"""C loops for one kernel description: which values live per kernel, per row or per element,
how a row's statements split into loops, and the C each statement becomes.

- flat groups: one loop over the elements, every statement a local of the
  loop body, reductions over everything as OpenMP SIMD reductions;
- row groups (a row layout, `layout.py`): a loop over the rows; within a row,
  statements are split into loops over the row's elements wherever a value
  needs a whole row reduced first (softmax: max, then exp and sum, then the
  division). A full-row value that a later loop reads is kept in a per-row
  scratch buffer, which stays in L1. Reductions over the rows themselves (a
  bias gradient) accumulate into per-chunk partials that the shim combines in
  chunk order, so results do not depend on thread timing;
- work on single values (an optimizer's bias corrections) is a flat loop over
  one element.

Numerics follow eager as the other backends do: values are held in their
kernel dtype (fp16/bf16 as float), each statement computes in the op's
compute dtype, a value whose eager dtype is fp16/bf16 is rounded to it at
once, and literals are typed like the statement (`0x1p-1f`), so float math
stays float. Sums over the rows accumulate in double; sums within a row of up
to FLOAT_ROW_SUM_LIMIT float32 values in float (as accurate as numpy's pairwise
sum there). The statement lines are the op records' `codegen["c"]` snippets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from genesis import dtypes
from genesis.compiler.codegen.kernel import KernelSpec, kernel_dtype
from genesis.compiler.codegen.layout import (
    Names,
    RowLayout,
    Unsupported,
    numel,
    rank_broadcast,
    strides,
)
from genesis.compiler.codegen.templates import render
from genesis.ops.op import OPS, Kind
from genesis.runtime.cpu import wrapped_integer

# the C type of each dtype's arrays; bool arrays as bytes, since gcc vectorises no load of a _Bool
# array (a loop that reads a mask stayed scalar), while values inside a kernel are _Bool (c_type)
STORAGE_TYPES = {dtypes.bool_: "uint8_t", dtypes.uint8: "uint8_t", dtypes.int8: "int8_t", dtypes.int16: "int16_t",
                 dtypes.int32: "int32_t", dtypes.int64: "int64_t", dtypes.float16: "_Float16",
                 dtypes.bfloat16: "uint16_t", dtypes.float32: "float", dtypes.float64: "double"}
_LOOP_NAMES = Names(rows="r", cols="j", floordiv="/")
# (initial value, update of `a` by `x`); max/min also track NaN, which they propagate as numpy does
_REDUCTIONS = {"+": ("0", "{a} += {x};"), "*": ("1", "{a} *= {x};"),
               "max": ("-INFINITY", "{a} = {x} > {a} ? {x} : {a};"),
               "min": ("INFINITY", "{a} = {x} < {a} ? {x} : {a};")}


class Refused(Exception):
    """C does not take this kernel; the message says why."""


def c_type(dtype: dtypes.DType) -> str:
    """The C type a value of `dtype` is held in inside a kernel (fp16/bf16 as float, bool as _Bool)."""
    return "_Bool" if dtype is dtypes.bool_ else STORAGE_TYPES[kernel_dtype(dtype)]


def load(expression: str, dtype: dtypes.DType) -> str:
    if dtype is dtypes.bfloat16:
        return f"g_bf16_load({expression})"
    if dtype is dtypes.bool_:
        return f"(_Bool){expression}"
    return f"(float){expression}" if dtype is dtypes.float16 else expression


def _round(s) -> list[str]:
    """Round a statement's value to its fp16/bf16 dtype right away, as eager stores it."""
    if s.dtype is dtypes.float16:
        return [f"v_{s.value} = (float)(_Float16)v_{s.value};"]
    if s.dtype is dtypes.bfloat16:
        return [f"v_{s.value} = g_bf16_round(v_{s.value});"]
    return []


def store(value: str, dtype: dtypes.DType) -> str:
    if dtype is dtypes.bfloat16:
        return f"g_bf16_store({value})"
    return f"({STORAGE_TYPES[dtype]}){value}"


def literal(value, compute: dtypes.DType | None) -> str:
    """A Python value as a C literal of the statement's compute dtype (exact: hex floats)."""
    if isinstance(value, dtypes.DType):
        return c_type(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    floating = compute is not None and compute.is_floating_point
    if value is None:  # a missing bound: NaN, which no comparison is true for
        if not floating:
            raise Refused("a missing bound on integers has no C literal")
        return "NAN"
    if isinstance(value, float) or floating:
        value = float(value)
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INFINITY" if value > 0 else "(-INFINITY)"
        suffix = "f" if compute is None or kernel_dtype(compute) is dtypes.float32 else ""
        return f"({value.hex()}{suffix})"
    if isinstance(value, int):
        if compute is not None and compute.category == dtypes.INT:  # wrapped as eager's dispatch does: uint8 == -1
            value = int(wrapped_integer(value, compute))
        return f"({value}LL)" if not -(1 << 31) <= value < (1 << 31) else f"({value})"
    raise Refused(f"no C literal for {value!r}")


@dataclass
class _Loop:
    """Row code before a loop over a row's elements, the loop's statements, and row code after it."""
    before: list = field(default_factory=list)
    body: list = field(default_factory=list)
    after: list = field(default_factory=list)
    reduced: set = field(default_factory=set)      # row values the loop's reductions produce
    produced_after: set = field(default_factory=set)


class KernelLoops:
    """Everything a C kernel needs, checked: building it raises Refused when C cannot take the spec."""

    def __init__(self, spec: KernelSpec):
        self.spec = spec
        if any(numel(v.shape) == 0 for v in (*spec.statements, *spec.operands)):
            raise Refused("a value with no elements: numpy's kernels do nothing with it, as eager does")
        if spec.mode == "whole" and any(numel(v.shape) != 1 or v.phase != "block" for v in spec.statements):
            raise Refused("whole-array work other than single values stays a numpy kernel")
        self.flat = spec.mode in ("flat", "whole")  # single values: a flat loop over one element
        self.outputs = set(spec.outputs)
        self.statements = [s for s in spec.statements if s.phase in ("block", "accumulate")]
        self.pre = [s for s in spec.statements if s.phase == "pre"]
        self.post = [s for s in spec.statements if s.phase == "post"]
        for s in self.statements:
            self._check(s)
        # pointers the loop reads: operands, and values computed before the loop (post-loop reads stay numpy)
        inputs = {o.local: (o.shape, o.dtype, o.blocked) for o in spec.operands}
        inputs.update((s.value, (s.shape, kernel_dtype(s.dtype), True)) for s in self.pre)
        self.inputs = {name: value for name, value in inputs.items() if name in self._read_names()}
        for s in self.statements:  # a whole operand reshaped into rows reads as rows of that shape
            source = s.reads[0]
            if s.op == "reshape" and source in self.inputs and not self.inputs[source][2] and \
                    numel(self.inputs[source][0]) == numel(s.shape) and self._readers(source) == 1:
                self.inputs[source] = (s.shape, self.inputs[source][1], True)
        self.shapes = {s.value: s.shape for s in self.statements}
        for s in self.statements:  # splitting a row's dims (heads out of features), for output only:
            source = s.reads[0]    # the same elements in the same order, stored where its source would be
            if s.op == "reshape" and s.phase == "block" and self._readers(s.value) == 0 and \
                    isinstance(source, str) and self._shape_of(source)[:1] == s.shape[:1] and \
                    numel(self._shape_of(source)[1:]) == numel(s.shape[1:]):
                self.shapes[s.value] = self._shape_of(source)
        self.permuted = {}  # a permute of a row's dims, only stored: computed as its source, stored permuted
        for s in self.statements:
            if s.op == "permute":
                if s.attrs["dims"][0] != 0 or self._readers(s.value) or not isinstance(s.reads[0], str):
                    raise Refused(f"{s.value} = permute moves the rows, or a later statement reads it")
                self.shapes[s.value] = self._shape_of(s.reads[0])
                self.permuted[s.value] = (tuple(s.attrs["dims"]), s.shape)
        for s in self.statements:  # any other reshape is computed as its source at the same position
            if s.op == "reshape" and not _same_positions(self._shape_of(s.reads[0]), self.shapes[s.value]):
                raise Refused(f"{s.value} = reshape {self._shape_of(s.reads[0])} -> {self.shapes[s.value]} "
                              f"moves elements to other positions of the loop")
        values = {name: (shape, blocked) for name, (shape, _, blocked) in self.inputs.items()}
        values.update((s.value, (self.shapes[s.value], True)) for s in self.statements if s.phase == "block")
        try:
            self.layout = None if self.flat else RowLayout(values, _LOOP_NAMES)
        except Unsupported as error:
            raise Refused(str(error)) from None
        self.row_elements = 1 if self.flat else self.layout.row_elements
        # big float32 outputs, one per element of a row: written a row at a time around the caches
        self.streamed = set() if self.flat else {
            s.value for s in self.statements if s.phase == "block" and s.value in self.outputs
            and s.dtype is dtypes.float32 and s.value not in self.permuted
            and tuple(self.shapes[s.value][1:]) == self.layout.trailing
            and numel(s.shape) * 4 >= STREAM_BYTES}
        for value in self.permuted:
            if self.flat or tuple(self.shapes[value][1:]) != self.layout.trailing:
                raise Refused(f"{value} = permute of a value that is not one element per row position")
        self.level = {}
        for name, (shape, _, blocked) in self.inputs.items():
            self.level[name] = self._level_of_shape(shape, blocked)
        for s in self.statements:
            self.level[s.value] = self._level_of(s)

    # ---- checks -----------------------------------------------------------------------------
    def _readers(self, name) -> int:
        return sum(r == name for s in self.statements for r in s.reads)

    def _read_names(self) -> set:
        return {r for s in self.statements for r in s.reads if isinstance(r, str)}

    def _check(self, s) -> None:
        op = OPS[s.op]
        if op.kind is Kind.VIEW:
            if s.op not in ("reshape", "expand", "permute"):
                raise Refused(f"{s.value} = {s.op}: only reshape, expand and permute fold into C indexing")
            return
        if op.kind is Kind.MATMUL:
            raise Refused(f"{s.value} = {s.op}: a matmul inside the loop")
        if "c" not in op.codegen:
            raise Refused(f"{s.op} has no C snippet")
        if op.kind is Kind.REDUCTION and (s.compute is None or (
                op.codegen["c"] in ("max", "min") and not s.compute.is_floating_point)):
            raise Refused(f"{s.value} = {s.op}: integer extrema stay numpy kernels")

    def _level_of_shape(self, shape, blocked) -> int:
        """0: one value for the kernel, 1: one per row, 2: one per element."""
        if self.flat:
            return 2 if blocked else 0
        try:
            kind = self.layout.kind_of(shape, blocked)
        except Unsupported as error:
            raise Refused(str(error)) from None
        return {"scalar": 0, "row": 1, "columns": 2, "full": 2}[kind]

    def _level_of(self, s) -> int:
        kind = OPS[s.op].kind
        if s.phase == "accumulate":
            return 0
        if self.flat:  # every statement of a flat loop is computed per element (x + 1 over one element)
            return 2
        if kind is Kind.REDUCTION:
            source = self._shape_of(s.reads[0])
            if tuple(s.attrs["dims"]) != tuple(range(1, len(source))):
                raise Refused(f"{s.value} = {s.op} reduces dims {s.attrs['dims']}, not all trailing dims")
            if self._level_of_read(s.reads[0]) == 2 and tuple(source[1:]) != self.layout.trailing:
                raise Refused(f"{s.value} = {s.op} reduces a broadcast value")
            return 1
        if kind is Kind.VIEW:
            return self._level_of_shape(self.shapes[s.value], True)
        why = rank_broadcast(s, [self._shape_of(r) if isinstance(r, str) and (r not in self.inputs or self.inputs[r][2])
                                 else None for r in s.reads])
        if why is not None:
            raise Refused(why)
        return max([self._level_of_read(r) for r in s.reads] + [self._level_of_shape(s.shape, True)])

    def _level_of_read(self, read) -> int:
        return self.level[read] if isinstance(read, str) else 0

    def _shape_of(self, name):
        return self.shapes[name] if name in self.shapes else self.inputs[name][0]

    def _dtype_of(self, name):
        if name in self.inputs:
            return self.inputs[name][1]
        return next(s.dtype for s in self.statements if s.value == name)

    # ---- offsets ----------------------------------------------------------------------------
    def offset(self, name) -> str:
        """Where `name`'s element for the current (row, element) lies in its buffer."""
        if name in self.inputs:
            shape, _, blocked = self.inputs[name]
        else:
            shape, blocked = self.shapes[name], True
        if self.flat:
            return "j" if blocked else "0"
        if name in self.permuted:  # element (i1, ..., ik) of the row goes to (i[dims[1]], ..., i[dims[k]])
            dims, stored = self.permuted[name]
            terms = [f"{self.layout.index_of(d - 1)} * {stride}"
                     for d, stride in zip(dims[1:], strides(stored[1:]))]
            return f"r * {numel(stored[1:])} + " + " + ".join(terms)
        return self.layout.offsets(shape, blocked) or "0"

    # ---- partials of reductions over the rows -----------------------------------------------------
    def partial_size(self, s) -> int:
        size = numel(s.shape)
        if size == 1:
            return 1
        source = self._shape_of(s.reads[0])
        if self.flat or 0 not in s.attrs["dims"] or self._level_of_read(s.reads[0]) != 2 \
                or tuple(source[1:]) != self.layout.trailing:
            raise Refused(f"{s.value} = {s.op} over dims {s.attrs['dims']} keeps a shape C does not index")
        return size

    def scattered_offset(self, s) -> str | None:
        """For a reduction over the rows that also reduces some of a row's dims (a per-channel sum over
        (batch, channels, height, width) rows), where an element of the row adds into its partial;
        None when each element has its own partial (dims (0,) only)."""
        reduced = {d - 1 for d in s.attrs["dims"] if d > 0}
        if not reduced:
            return None
        kept = tuple(1 if d in reduced else n for d, n in enumerate(self.layout.trailing))
        return self.layout.trailing_offsets(kept)

    def reduced_run(self, s) -> int | None:
        """When the row dims a scattered reduction reduces are the row's last ones, how many elements
        in a row go into one partial (height * width), else None."""
        reduced = sorted(d - 1 for d in s.attrs["dims"] if d > 0)
        trailing = self.layout.trailing
        if reduced != list(range(len(trailing) - len(reduced), len(trailing))):
            return None
        return numel(trailing[len(trailing) - len(reduced):])


def _same_positions(source, shape) -> bool:
    """Whether a reshape from `source` to `shape` leaves every element where the loop finds it: one
    value per row either way ((rows, 1) -> (rows,)), or shapes that differ only in leading 1s, which
    broadcasting ignores."""
    if source[:1] == shape[:1] and numel(source[1:]) == 1 and numel(shape[1:]) == 1:
        return True

    def without_leading_ones(dims):
        dims = tuple(dims)
        while dims and dims[0] == 1:
            dims = dims[1:]
        return dims

    return without_leading_ones(source) == without_leading_ones(shape)


def _update_partial(s, x: str, target: str) -> str:
    """`target` combined with `x` by the statement's reduction; max/min let a NaN through, as numpy's."""
    combine = OPS[s.op].codegen["c"]
    if combine in ("+", "*"):
        return _REDUCTIONS[combine][1].format(a=target, x=x)
    return f"{target} = ({x} != {x} || {x} {'>' if combine == 'max' else '<'} {target}) ? {x} : {target};"


def _nan_flag(s) -> str:
    return f" int n_{s.value} = 0;" if OPS[s.op].codegen["c"] in ("max", "min") else ""


# Outputs of at least this many bytes (more than the L2 caches hold) are written with streaming
# stores: a row is computed into an L1 buffer, then copied out without first reading the output's
# lines into the cache. Measured on the 2-core machine: layer_norm over (4096, 1024) 0.60 -> 0.50 ms.
STREAM_BYTES = 4 << 20

# A float32 sum within a row of up to this many elements accumulates in float: each of the 16 SIMD
# lanes adds at most 1K values, about as accurate as numpy's pairwise sum, and softmax runs 11% faster
# than with double lanes. Longer rows, and sums over the rows (which can add millions), use double.
FLOAT_ROW_SUM_LIMIT = 1 << 14


def accumulator_type(s, row_elements: int | None = None) -> str:
    """The C type `s`'s reduction accumulates in; `row_elements` for a reduction within a row."""
    op = OPS[s.op].codegen["c"]
    if op not in ("+", "*"):
        return c_type(s.compute)
    if not s.compute.is_floating_point:
        return "int64_t"
    within_short_row = row_elements is not None and row_elements <= FLOAT_ROW_SUM_LIMIT
    return "float" if within_short_row and s.compute is dtypes.float32 else "double"


class Emitter:
    def __init__(self, k: KernelLoops):
        self.k = k
        self.params, self.signature = [], ""
        self.partials = []  # accumulate statements, in argument order

    # ---- expressions ------------------------------------------------------------------------
    def _read(self, s, position) -> str:
        read = s.reads[position]
        if not isinstance(read, str):
            return literal(read, s.literal_dtype)
        have = s.input_dtypes[position]
        expression = f"v_{read}"
        if s.compute is not None and have is not s.compute and OPS[s.op].kind is not Kind.VIEW:
            return f"(({c_type(s.compute)}){expression})"
        return expression

    def _statement(self, s) -> list[str]:
        args = [self._read(s, i) for i in range(len(s.reads))]
        op = OPS[s.op]
        if op.kind is Kind.VIEW or op.kind is Kind.REDUCTION:  # a reduction here is over one value per row
            expression = args[0]
        else:
            attrs = {name: literal(value, s.compute) for name, value in s.attrs.items()}
            expression = op.codegen["c"].format(*args, **attrs)
        return [f"{c_type(s.dtype)} v_{s.value} = ({c_type(s.dtype)})({expression});"] + _round(s)

    def _accumulate(self, s, target) -> list[str]:
        """`target` combined with the statement's input; max/min also note a NaN, which they propagate."""
        combine, x = OPS[s.op].codegen["c"], self._read(s, 0)
        lines = [_REDUCTIONS[combine][1].format(a=target, x=x)]
        if combine in ("max", "min"):
            lines.append(f"n_{s.value} |= {x} != {x};")
        return lines

    def _output_store(self, s) -> list[str]:
        if s.value not in self.k.outputs:
            return []
        if s.value in self.k.streamed:
            return [f"w_{s.value}[j] = v_{s.value};"]
        if self.k.level[s.value] == 2 and not self.k.flat and tuple(self.k.shapes[s.value][1:]) != self.k.layout.trailing:
            raise Refused(f"{s.value}, an output, is broadcast within its rows")
        return [f"o_{s.value}[{self.k.offset(s.value)}] = {store('v_' + s.value, s.dtype)};"]

    # ---- the function -------------------------------------------------------------------------
    def function(self) -> str:
        k = self.k
        for name, (shape, dtype, blocked) in k.inputs.items():
            self._param(f"const {STORAGE_TYPES[dtype]}* p_{name}")
        for value in k.spec.outputs:
            dtype = next(s.dtype for s in k.spec.statements if s.value == value)
            if any(s.value == value for s in k.statements if s.phase == "block"):
                self._param(f"{STORAGE_TYPES[dtype]}* o_{value}")
        for s in k.statements:
            if s.phase == "accumulate":
                self.partials.append(s)
                self._param(f"{accumulator_type(s)}* q_{s.value}")
        self.params += ["int64_t start", "int64_t stop"]
        self.signature += "ii"

        prologue, epilogue = [], []
        for name, (shape, dtype, blocked) in k.inputs.items():
            if k.level[name] == 0:
                prologue.append(f"const {c_type(dtype)} v_{name} = {load(f'p_{name}[0]', dtype)};")
        for s in self.partials:
            initial, _ = _REDUCTIONS[OPS[s.op].codegen["c"]]
            size = k.partial_size(s)
            if size == 1:
                prologue.append(f"{accumulator_type(s)} a_{s.value} = {initial};" + _nan_flag(s))
                nan = f"n_{s.value} ? NAN : " if OPS[s.op].codegen["c"] in ("max", "min") else ""
                epilogue.append(f"q_{s.value}[0] = {nan}a_{s.value};")
            else:
                prologue.append(f"for (int64_t j = 0; j < {size}; j++) q_{s.value}[j] = {initial};")
        loops = self._loops()
        scratch = self._scratch(loops)
        buffers = [(f"t_{name}", c_type(self._dtype(name)), k.row_elements) for name in scratch]
        buffers += [(f"w_{value}", "float", k.row_elements) for value in sorted(k.streamed)]
        buffers += [(f"s_{s.value}", accumulator_type(s), k.row_elements) for s in self.partials
                    if k.partial_size(s) > 1 and k.scattered_offset(s) is not None]
        body = []
        for loop in loops:
            body += loop.before + self._element_loop(loop, scratch) + loop.after
        return render("c_kernel.c.j2", k={
            "name": k.spec.name, "params": self.params, "prologue": prologue, "epilogue": epilogue,
            "flat": k.flat, "body": body, "row_loads": self._row_loads(), "scratch": buffers,
            "streams": bool(k.streamed), "chunk_args": self._chunk_args(),
            "doc": f"{k.spec.group}, {k.spec.mode} over {k.spec.rows} rows: {k.spec.summary()}"})

    def _chunk_args(self) -> list[str]:
        """The pointer arguments as the `_chunk` entry unpacks them from `a`: a partial moves to the
        chunk's row of its (chunks, size) array."""
        partial_rows = {f"q_{s.value}": f"{self.k.partial_size(s)} * sizeof({accumulator_type(s)})"
                        for s in self.partials}
        args = []
        for index, declaration in enumerate(self.params[:-2]):  # the last two: start, stop
            pointer_type, name = declaration.rsplit(" ", 1)
            if name in partial_rows:
                args.append(f"({pointer_type})((char*)a[{index}] + chunk * {partial_rows[name]})")
            else:
                args.append(f"({pointer_type})a[{index}]")
        return args

    def _dtype(self, name):
        return self.k._dtype_of(name)

    def _param(self, declaration: str) -> None:
        self.params.append(declaration)
        self.signature += "p"

    def _row_loads(self) -> list[str]:
        k = self.k
        return [f"const {c_type(dtype)} v_{name} = {load(f'p_{name}[{k.offset(name)}]', dtype)};"
                for name, (shape, dtype, blocked) in k.inputs.items() if k.level[name] == 1]

    # ---- splitting a row's statements into loops ------------------------------------------------
    def _loops(self) -> list[_Loop]:
        k = self.k
        loops = [_Loop()]
        for s in k.statements:
            loop = loops[-1]
            waits = {r for r in s.reads if isinstance(r, str)} & (loop.reduced | loop.produced_after)
            elementwise = k.flat or k.level[s.value] == 2 or (
                s.phase == "accumulate" or OPS[s.op].kind is Kind.REDUCTION) and self._level(s.reads[0]) == 2
            if elementwise:
                if waits:  # a value this loop finishes only at its end: a new loop over the row
                    loop = _Loop()
                    loops.append(loop)
                loop.body.append(s)
                if self._reduces_in_loop(s):
                    loop.reduced.add(s.value)
            elif waits or loop.after:
                loop.after.append(s)
                loop.produced_after.add(s.value)
            else:
                loop.before.append(s)
        for loop in loops:  # statements become lines now that every loop is known
            loop.before = [line for s in loop.before for line in self._row_statement(s)]
            loop.after = [line for s in loop.after for line in self._row_statement(s)]
        return loops

    def _reduces_in_loop(self, s) -> bool:
        """A reduction over a row's elements (in a flat loop, a reduction is over one value: a copy)."""
        return OPS[s.op].kind is Kind.REDUCTION and s.phase == "block" and not self.k.flat

    def _level(self, read) -> int:
        return self.k._level_of_read(read)

    def _row_statement(self, s) -> list[str]:
        if s.phase == "accumulate":
            return self._accumulate(s, f"a_{s.value}")
        return self._statement(s) + self._output_store(s)

    def _scattered_loop(self, s, offset) -> list[str]:
        """Add a row's scratch `s_` into the partials: a sum whose reduced dims are the row's last ones
        in runs (height * width values per channel, a SIMD reduction each), else element by element."""
        k, row = self.k, self.k.row_elements
        run = k.reduced_run(s)
        combine = OPS[s.op].codegen["c"]
        if run is not None and combine in ("+", "*"):
            initial, update = _REDUCTIONS[combine]
            return [f"for (int64_t c = 0; c < {row // run}; c++) {{",
                    f"    {accumulator_type(s)} a = {initial};",
                    f"    #pragma omp simd reduction({combine}:a)",
                    f"    for (int64_t i = 0; i < {run}; i++) " + update.format(a="a", x=f"s_{s.value}[c * {run} + i]"),
                    "    " + update.format(a=f"q_{s.value}[c]", x="a"),
                    "}"]
        return ([f"for (int64_t j = 0; j < {row}; j++) {{"]
                + [f"    const int64_t {name} = {expression};" for name, expression in k.layout.index_lines()]
                + ["    " + _update_partial(s, f"s_{s.value}[j]", f"q_{s.value}[{offset}]"), "}"])

    def _scratch(self, loops) -> list[str]:
        """Full-row values a later loop reads, kept in a row-sized buffer (outputs are read back)."""
        home = {}
        for index, loop in enumerate(loops):
            for s in loop.body:
                home[s.value] = index
        kept = []
        for index, loop in enumerate(loops):
            for s in loop.body:
                for r in s.reads:
                    if isinstance(r, str) and home.get(r, index) != index and self.k.level[r] == 2 \
                            and r not in kept:
                        kept.append(r)
        return kept

    def _element_loop(self, loop: _Loop, scratch) -> list[str]:
        if not loop.body:
            return []
        k = self.k
        inside = {s.value for s in loop.body}
        reads = [r for s in loop.body for r in s.reads if isinstance(r, str)]
        lines, clauses, finish = [], [], []
        for s in loop.body:  # reductions over the row: accumulators before the loop, results after
            if self._reduces_in_loop(s):
                combine = OPS[s.op].codegen["c"]
                initial, _ = _REDUCTIONS[combine]
                lines.append(f"{accumulator_type(s, k.row_elements)} a_{s.value} = {initial};" + _nan_flag(s))
                clauses.append(f"reduction({combine}:a_{s.value})")
                nan = f"n_{s.value} ? NAN : " if combine in ("max", "min") else ""
                finish += [f"{c_type(s.dtype)} v_{s.value} = ({c_type(s.dtype)})({nan}a_{s.value});"]
                finish += _round(s) + self._output_store(s)
            elif s.phase == "accumulate" and k.partial_size(s) == 1:
                clauses.append(f"reduction({OPS[s.op].codegen['c']}:a_{s.value})")
            if OPS[s.op].codegen.get("c") in ("max", "min") and (self._reduces_in_loop(s) or (
                    s.phase == "accumulate" and k.partial_size(s) == 1)):
                clauses.append(f"reduction(|:n_{s.value})")
        body = []
        loaded = set()
        for name in reads:
            if name in k.inputs and k.level[name] == 2 and name not in loaded:
                loaded.add(name)
                dtype = k.inputs[name][1]
                body.append(f"const {c_type(dtype)} v_{name} = {load(f'p_{name}[{k.offset(name)}]', dtype)};")
            elif name not in k.inputs and name not in inside and name in scratch and name not in loaded:
                loaded.add(name)
                body.append(f"const {c_type(self._dtype(name))} v_{name} = t_{name}[j];")
        scattered = []  # (statement, offset of its partial): added after the loop, element by element
        for s in loop.body:
            if s.phase == "accumulate" and k.partial_size(s) > 1:
                offset = k.scattered_offset(s)
                if offset is None:  # one partial per element of the row
                    body.append(_update_partial(s, self._read(s, 0), f"q_{s.value}[j]"))
                else:  # several elements add into one partial: no SIMD lanes may share it
                    body.append(f"s_{s.value}[j] = {self._read(s, 0)};")
                    scattered.append((s, offset))
                continue
            if s.phase == "accumulate" or self._reduces_in_loop(s):
                body += self._accumulate(s, f"a_{s.value}")
                continue
            body += self._statement(s)
            if s.value in scratch:
                body.append(f"t_{s.value}[j] = v_{s.value};")
            body += self._output_store(s)
        if not k.flat:  # the indices within the row that this loop's offsets use (known once they are built)
            body = [f"const int64_t {name} = {expression};" for name, expression in k.layout.index_lines()] + body
        bounds = "int64_t j = start; j < stop; j++" if k.flat else f"int64_t j = 0; j < {k.row_elements}; j++"
        lines.append(" ".join(["#pragma omp simd"] + clauses))
        lines.append(f"for ({bounds}) {{")
        lines += ["    " + line for line in body]
        lines.append("}")
        for s, offset in scattered:
            lines += self._scattered_loop(s, offset)
        streamed = [f"g_stream_row(o_{s.value} + r * {k.row_elements}, w_{s.value}, {k.row_elements});"
                    for s in loop.body if s.value in k.streamed]
        return lines + streamed + finish
