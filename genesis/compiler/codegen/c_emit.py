"""The C of one kernel: its function, the loops over a row's elements, and each statement's line
(the op records' `codegen["c"]` snippets, spelled by `c_dialect.py`). `KernelLoops` (`c_loops.py`)
has already decided where each value lives and that C takes the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genesis.compiler.codegen.c_dialect import (
    FLAT_SUM_BLOCK,
    FLAT_SUM_LANES,
    STORAGE_TYPES,
    Refused,
    accumulator_type,
    c_type,
    combine_clause,
    combine_initial,
    combine_update,
    literal,
    load,
    nan_flag,
    propagates_nan,
    round_lines,
    store,
    sums_in_float_blocks,
    update_partial,
    with_nan,
)
from genesis.compiler.codegen.c_loops import KernelLoops
from genesis.compiler.templates import render
from genesis.ops.op import Kind, named_attrs


@dataclass
class _Loop:
    """Row code before a loop over a row's elements, the loop's statements, and row code after it."""

    before: list = field(default_factory=list)
    body: list = field(default_factory=list)
    after: list = field(default_factory=list)
    reduced: set = field(default_factory=set)  # row values the loop's reductions produce
    produced_after: set = field(default_factory=set)


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
        if s.compute is not None and have is not s.compute and s.kind is not Kind.VIEW:
            return f"(({c_type(s.compute)}){expression})"
        return expression

    def _statement(self, s) -> list[str]:
        args = [self._read(s, i) for i in range(len(s.reads))]
        if s.kind is Kind.VIEW or s.kind is Kind.REDUCTION:  # a reduction here is over one value per row
            expression = args[0]
        else:
            template = s.record.codegen["c"]
            attrs = {name: literal(value, s.compute) for name, value in named_attrs(template, s.attrs).items()}
            expression = template.format(*args, **attrs)
        return [f"{c_type(s.dtype)} v_{s.value} = ({c_type(s.dtype)})({expression});"] + round_lines(s)

    def _accumulate(self, s, target) -> list[str]:
        """`target` combined with the statement's input; max/min also note a NaN, which they propagate."""
        x = self._read(s, 0)
        lines = [combine_update(s.combine, target, x)]
        if propagates_nan(s.combine):
            lines.append(f"n_{s.value} |= {x} != {x};")
        return lines

    def _output_store(self, s) -> list[str]:
        if s.value not in self.k.outputs:
            return []
        if s.value in self.k.streamed:
            return [f"w_{s.value}[j] = v_{s.value};"]
        if (
            self.k.level[s.value] == 2
            and not self.k.flat
            and tuple(self.k.shapes[s.value][1:]) != self.k.layout.trailing
        ):
            raise Refused(f"{s.value}, an output, is broadcast within its rows")
        return [f"o_{s.value}[{self.k.offset(s.value)}] = {store('v_' + s.value, s.dtype)};"]

    # ---- the function -------------------------------------------------------------------------
    def function(self) -> str:
        k = self.k
        for name, (_, dtype, _) in k.inputs.items():
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
        for name, (_, dtype, _) in k.inputs.items():
            if k.level[name] == 0:
                prologue.append(f"const {c_type(dtype)} v_{name} = {load(f'p_{name}[0]', dtype)};")
        for s in self.partials:
            initial = combine_initial(s.combine)
            size = k.partial_size(s)
            if size == 1:
                prologue.append(f"{accumulator_type(s)} a_{s.value} = {initial};" + nan_flag(s))
                epilogue.append(f"q_{s.value}[0] = {with_nan(s, f'a_{s.value}')};")
            else:
                prologue.append(f"for (int64_t j = 0; j < {size}; j++) q_{s.value}[j] = {initial};")
        loops = self._loops()
        scratch = self._scratch(loops)
        buffers = [(f"t_{name}", c_type(self._dtype(name)), k.row_elements) for name in scratch]
        buffers += [(f"w_{value}", "float", k.row_elements) for value in sorted(k.streamed)]
        body = []
        for loop in loops:
            body += loop.before + self._element_loop(loop, scratch) + loop.after
        return render(
            "c_kernel.c.j2",
            k={
                "name": k.spec.name,
                "params": self.params,
                "prologue": prologue,
                "epilogue": epilogue,
                "flat": k.flat,
                "body": body,
                "row_loads": self._row_loads(),
                "scratch": buffers,
                "streams": bool(k.streamed),
                "chunk_args": self._chunk_args(),
                "doc": self._doc(),
            },
        )

    def _doc(self) -> str:
        """The kernel's comment. A flat kernel's C names no size (its loop runs over [start, stop)),
        so one library serves a group of every size (eager's kernels for single ops reuse it)."""
        spec = self.k.spec
        extent = "flat" if self.k.flat else f"{spec.mode} over {spec.rows} rows"
        return f"{spec.group}, {extent}: {spec.summary()}"

    def _chunk_args(self) -> list[str]:
        """The pointer arguments as the `_chunk` entry unpacks them from `a`: a partial moves to the
        chunk's row of its (chunks, size) array."""
        partial_rows = {
            f"q_{s.value}": f"{self.k.partial_size(s)} * sizeof({accumulator_type(s)})" for s in self.partials
        }
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
        return [
            f"const {c_type(dtype)} v_{name} = {load(f'p_{name}[{k.offset(name)}]', dtype)};"
            for name, (shape, dtype, blocked) in k.inputs.items()
            if k.level[name] == 1
        ]

    # ---- splitting a row's statements into loops ------------------------------------------------
    def _loops(self) -> list[_Loop]:
        k = self.k
        loops = [_Loop()]
        for s in k.statements:
            loop = loops[-1]
            waits = {r for r in s.reads if isinstance(r, str)} & (loop.reduced | loop.produced_after)
            elementwise = (
                k.flat
                or k.level[s.value] == 2
                or (s.phase == "accumulate" or s.kind is Kind.REDUCTION)
                and self._level(s.reads[0]) == 2
            )
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
        return s.kind is Kind.REDUCTION and s.phase == "block" and not self.k.flat

    def _level(self, read) -> int:
        return self.k._level_of_read(read)

    def _row_statement(self, s) -> list[str]:
        if s.phase == "accumulate":
            return self._accumulate(s, f"a_{s.value}")
        return self._statement(s) + self._output_store(s)

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
                    if isinstance(r, str) and home.get(r, index) != index and self.k.level[r] == 2 and r not in kept:
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
                initial = combine_initial(s.combine)
                lines.append(f"{accumulator_type(s, k.row_elements)} a_{s.value} = {initial};" + nan_flag(s))
                clauses += self._reduction_clauses(s)
                finish += [f"{c_type(s.dtype)} v_{s.value} = ({c_type(s.dtype)})({with_nan(s, f'a_{s.value}')});"]
                finish += round_lines(s) + self._output_store(s)
            elif s.phase == "accumulate" and k.partial_size(s) == 1 and not self._in_lanes(s):
                clauses += self._reduction_clauses(s)
        # before_inner and after_inner run once per iteration of the loops around the SIMD loop
        before_inner, body = self._loads(reads, inside, scratch)
        after_inner = []
        for s in loop.body:
            if s.phase == "accumulate" and k.partial_size(s) > 1:
                if k.nest.inner_step(s.value):  # a partial per lane: no two lanes share one
                    body.append(update_partial(s, self._read(s, 0), f"q_{s.value}[{k.offset(s.value)}]"))
                else:  # the SIMD loop adds into one partial: reduced along it, then added
                    initial = combine_initial(s.combine)
                    before_inner.append(f"{accumulator_type(s)} a_{s.value} = {initial};" + nan_flag(s))
                    clauses += self._reduction_clauses(s)
                    body += self._accumulate(s, f"a_{s.value}")
                    after_inner += self._add_to_partial(s)
                continue
            if s.phase == "accumulate" or self._reduces_in_loop(s):
                body += self._accumulate(s, self._block_accumulator(s))
                continue
            body += self._statement(s)
            if s.value in scratch:
                body.append(f"t_{s.value}[j] = v_{s.value};")
            body += self._output_store(s)
        pragma = " ".join(["#pragma omp simd"] + clauses)
        if k.flat:
            lines += self._flat_loop(loop, pragma, body)
        else:
            lines += k.nest.loops(before_inner, pragma, body, after_inner)
        streamed = [
            f"g_stream_row(o_{s.value} + r * {k.row_elements}, w_{s.value}, {k.row_elements});"
            for s in loop.body
            if s.value in k.streamed
        ]
        return lines + streamed + finish

    def _in_lanes(self, s) -> bool:
        """Whether a statement is a flat loop's float32 sum, which adds into lanes (`_flat_loop`)."""
        return self.k.flat and s.phase == "accumulate" and sums_in_float_blocks(s)

    def _block_accumulator(self, s) -> str:
        """Where a statement accumulates inside the SIMD loop: `a_` itself, or a flat loop's float32
        sum into its lane of the block's lanes `b_`, added into `a_` after each block."""
        return f"b_{s.value}[l]" if self._in_lanes(s) else f"a_{s.value}"

    def _flat_loop(self, loop: _Loop, pragma: str, body: list[str]) -> list[str]:
        """The SIMD loop over [start, stop); where a float32 sum is among its accumulators, in blocks
        of FLAT_SUM_BLOCK elements, each block's elements added into FLAT_SUM_LANES float lanes (lane l
        takes the elements l, l + LANES, ...) that are then added pairwise (see c_dialect). OpenMP's
        reduction clause gave one vector accumulator, as wide as the machine's vectors: on AVX2 with
        gcc's 128-bit preference four lanes, whose chain of dependent adds bound the loop (4M floats:
        1.5 ms on one core against 1.1 ms with 16 lanes), and a sum that differed between machines."""
        inner = ["    " + line for line in body]
        blocked = [s for s in loop.body if self._in_lanes(s)]
        if not blocked:
            return [pragma, "for (int64_t j = start; j < stop; j++) {"] + inner + ["}"]
        lanes = FLAT_SUM_LANES
        per_element = ["        const int64_t j = lanes + l;"] + ["    " + line for line in inner]
        return (
            [
                f"for (int64_t block = start; block < stop; block += {FLAT_SUM_BLOCK}) {{",
                f"    const int64_t block_stop = stop - block > {FLAT_SUM_BLOCK} ? block + {FLAT_SUM_BLOCK} : stop;",
            ]
            + [f"    float b_{s.value}[{lanes}] = {{0}};" for s in blocked]
            + ["    int64_t lanes = block;", f"    for (; lanes + {lanes} <= block_stop; lanes += {lanes}) {{"]
            + ["        " + pragma, f"        for (int64_t l = 0; l < {lanes}; l++) {{"]
            + ["    " + line for line in per_element]
            + ["        }", "    }"]
            + ["    for (int64_t l = 0; lanes + l < block_stop; l++) {  /* the block's last elements */"]
            + per_element
            + ["    }"]
            + [f"    for (int width = {lanes // 2}; width > 0; width /= 2)"]
            + ["        for (int l = 0; l < width; l++) {"]
            + [f"            b_{s.value}[l] += b_{s.value}[l + width];" for s in blocked]
            + ["        }"]
            + [f"    a_{s.value} += b_{s.value}[0];" for s in blocked]
            + ["}"]
        )

    def _loads(self, reads, inside, scratch) -> tuple[list, list]:
        """The loads of the values a pass reads per element: those constant along the SIMD loop
        before it, the others in it."""
        k, before_inner, body = self.k, [], []
        for name in dict.fromkeys(reads):
            if name in k.inputs and k.level[name] == 2:
                dtype = k.inputs[name][1]
                constant = not k.flat and k.nest.inner_step(name) == 0
                value = load(f"p_{name}[{k.offset(name, inner=not constant)}]", dtype)
                (before_inner if constant else body).append(f"const {c_type(dtype)} v_{name} = {value};")
            elif name not in k.inputs and name not in inside and name in scratch:
                body.append(f"const {c_type(self._dtype(name))} v_{name} = t_{name}[j];")
        return before_inner, body

    def _add_to_partial(self, s) -> list[str]:
        """After the SIMD loop, its local accumulator into the partial it stayed within."""
        partial = f"q_{s.value}[{self.k.offset(s.value, inner=False)}]"
        finish = [f"a_{s.value} = {with_nan(s, f'a_{s.value}')};"] if propagates_nan(s.combine) else []
        return finish + [update_partial(s, f"a_{s.value}", partial)]

    @staticmethod
    def _reduction_clauses(s, accumulator=None) -> list[str]:
        """OpenMP's clauses for an accumulator (`a_` unless named; for max/min, also its NaN flag `n_`)."""
        clauses = [f"reduction({combine_clause(s.combine)}:{accumulator or 'a_' + s.value})"]
        return clauses + ([f"reduction(|:n_{s.value})"] if propagates_nan(s.combine) else [])
