"""Render kernel descriptions as C: one vectorised loop nest per fused group.

Which groups C takes (`why_not` says why it does not take the others):

- flat groups: one loop over the elements, every statement a local of the
  loop body, reductions over everything as OpenMP SIMD reductions;
- row groups (a row layout, `layout.py`): a loop over the rows; within a row,
  statements are split into loops over the row's elements wherever a value
  needs a whole row reduced first (softmax: max, then exp and sum, then the
  division). A full-row value that a later loop reads is kept in a per-row
  scratch buffer, which stays in L1. Reductions over the rows themselves (a
  bias gradient) accumulate into per-chunk partials that the shim combines in
  chunk order, so results do not depend on thread timing.

Statements before the loop (a matmul the blocks read) and after it (on the
combined partials) are numpy lines in the kernel's Python shim, the same lines
the numpy backend writes. Work on single values (an optimizer's bias
corrections) is a flat loop over one element.

Numerics follow eager as the other backends do: values are held in their
kernel dtype (fp16/bf16 as float), each statement computes in the op's
compute dtype, a value whose eager dtype is fp16/bf16 is rounded to it at
once, and literals are typed like the statement (`0x1p-1f`), so float math
stays float. Sums over floats accumulate in double. Transcendentals are
libm's, vectorised through glibc's libmvec where the compiler has it, and so
agree with numpy's to a few ulp, not bit for bit. The statement lines are the
op records' `codegen["c"]` snippets; the templates name no op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from genesis import dtypes
from genesis.compiler.codegen import numpy_backend
from genesis.compiler.codegen.kernel import KernelSpec, kernel_dtype
from genesis.compiler.codegen.layout import Names, RowLayout, Unsupported, numel, rank_broadcast
from genesis.compiler.codegen.templates import render
from genesis.compiler.codegen.wrapper import CODEGEN_VERSION, ProgramSource, plan
from genesis.ops.op import OPS, Kind

STORAGE_TYPES = {dtypes.bool_: "_Bool", dtypes.uint8: "uint8_t", dtypes.int8: "int8_t", dtypes.int16: "int16_t",
                 dtypes.int32: "int32_t", dtypes.int64: "int64_t", dtypes.float16: "_Float16",
                 dtypes.bfloat16: "uint16_t", dtypes.float32: "float", dtypes.float64: "double"}
_LOOP_NAMES = Names(rows="r", cols="j", floordiv="/")
_FLAT_NAMES = Names(rows="j", cols="j", floordiv="/")
# (initial value, update of `a` by `x`); max/min also track NaN, which they propagate as numpy does
_REDUCTIONS = {"+": ("0", "{a} += {x};"), "*": ("1", "{a} *= {x};"),
               "max": ("-INFINITY", "{a} = {x} > {a} ? {x} : {a};"),
               "min": ("INFINITY", "{a} = {x} < {a} ? {x} : {a};")}
_COMBINE = {"+": "np.add", "*": "np.multiply", "max": "np.maximum", "min": "np.minimum"}


class _Refused(Exception):
    pass


def c_type(dtype: dtypes.DType) -> str:
    """The C type a value of `dtype` is held in inside a kernel (fp16/bf16 as float)."""
    return STORAGE_TYPES[kernel_dtype(dtype)]


def _load(expression: str, dtype: dtypes.DType) -> str:
    if dtype is dtypes.bfloat16:
        return f"g_bf16_load({expression})"
    return f"(float){expression}" if dtype is dtypes.float16 else expression


def _round(s) -> list[str]:
    """Round a statement's value to its fp16/bf16 dtype right away, as eager stores it."""
    if s.dtype is dtypes.float16:
        return [f"v_{s.value} = (float)(_Float16)v_{s.value};"]
    if s.dtype is dtypes.bfloat16:
        return [f"v_{s.value} = g_bf16_round(v_{s.value});"]
    return []


def _store(value: str, dtype: dtypes.DType) -> str:
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
            raise _Refused("a missing bound on integers has no C literal")
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
        return f"({value}LL)" if not -(1 << 31) <= value < (1 << 31) else f"({value})"
    raise _Refused(f"no C literal for {value!r}")


@dataclass
class _Loop:
    """Row code before a loop over a row's elements, the loop's statements, and row code after it."""
    before: list = field(default_factory=list)
    body: list = field(default_factory=list)
    after: list = field(default_factory=list)
    reduced: set = field(default_factory=set)      # row values the loop's reductions produce
    produced_after: set = field(default_factory=set)


class _Kernel:
    """Everything a C kernel needs, checked: building it raises _Refused when C cannot take the spec."""

    def __init__(self, spec: KernelSpec):
        self.spec = spec
        if spec.mode == "whole" and any(numel(v.shape) != 1 or v.phase != "block" for v in spec.statements):
            raise _Refused("whole-array work other than single values stays a numpy kernel")
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
        values = {name: (shape, blocked) for name, (shape, _, blocked) in self.inputs.items()}
        values.update((s.value, (s.shape, True)) for s in self.statements if s.phase == "block")
        try:
            self.layout = None if self.flat else RowLayout(values, _LOOP_NAMES)
        except Unsupported as error:
            raise _Refused(str(error)) from None
        self.row_elements = 1 if self.flat else self.layout.row_elements
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
            if s.op not in ("reshape", "expand"):
                raise _Refused(f"{s.value} = {s.op}: only reshape and expand fold into C indexing")
            return
        if op.kind is Kind.MATMUL:
            raise _Refused(f"{s.value} = {s.op}: a matmul inside the loop")
        if "c" not in op.codegen:
            raise _Refused(f"{s.op} has no C snippet")
        if op.kind is Kind.REDUCTION:
            if s.compute is None or (op.codegen["c"] in ("max", "min") and not s.compute.is_floating_point):
                raise _Refused(f"{s.value} = {s.op}: integer extrema stay numpy kernels")

    def _level_of_shape(self, shape, blocked) -> int:
        """0: one value for the kernel, 1: one per row, 2: one per element."""
        if self.flat:
            return 2 if blocked else 0
        try:
            kind = self.layout.kind_of(shape, blocked)
        except Unsupported as error:
            raise _Refused(str(error)) from None
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
                raise _Refused(f"{s.value} = {s.op} reduces dims {s.attrs['dims']}, not all trailing dims")
            if self._level_of_read(s.reads[0]) == 2 and tuple(source[1:]) != self.layout.trailing:
                raise _Refused(f"{s.value} = {s.op} reduces a broadcast value")
            return 1
        if kind is Kind.VIEW:
            return self._level_of_shape(s.shape, True)
        why = rank_broadcast(s, [self._shape_of(r) if isinstance(r, str) and (r not in self.inputs or self.inputs[r][2])
                                 else None for r in s.reads])
        if why is not None:
            raise _Refused(why)
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
        return self.layout.offsets(shape, blocked) or "0"

    # ---- partials of reductions over the rows -----------------------------------------------------
    def partial_size(self, s) -> int:
        size = numel(s.shape)
        if size == 1:
            return 1
        source = self._shape_of(s.reads[0])
        if self.flat or tuple(s.attrs["dims"]) != (0,) or self._level_of_read(s.reads[0]) != 2 \
                or tuple(source[1:]) != self.layout.trailing:
            raise _Refused(f"{s.value} = {s.op} over dims {s.attrs['dims']} keeps a shape C does not index")
        return size


def why_not(spec: KernelSpec) -> str | None:
    """None when the C backend takes this kernel, else why it stays a numpy kernel."""
    try:
        render_kernel(spec)
    except _Refused as error:
        return str(error)
    return None


def _nan_flag(s) -> str:
    return f" int n_{s.value} = 0;" if OPS[s.op].codegen["c"] in ("max", "min") else ""


def accumulator_type(s) -> str:
    op = OPS[s.op].codegen["c"]
    if op in ("+", "*"):
        return "double" if s.compute.is_floating_point else "int64_t"
    return c_type(s.compute)


def _numpy_accumulator(s) -> str:
    return {"double": "np.float64", "int64_t": "np.int64", "float": "np.float32"}[accumulator_type(s)]


@dataclass
class RenderedKernel:
    c_source: str      # the C functions: the loop, and the statements after it when they are C too
    shim: str          # the Python function the program calls
    signatures: dict   # per C function, one letter per argument: p pointer, i int64


def render_kernel(spec: KernelSpec) -> RenderedKernel:
    k = _Kernel(spec)
    emitter = _Emitter(k)
    c_source, signatures = emitter.function(), {spec.name: emitter.signature}
    post = _post_function(k, emitter)
    if post is not None:
        c_source += "\n\n" + post.c_source
        signatures[post.name] = post.signature
    return RenderedKernel(c_source, _shim(k, emitter, post), signatures)


@dataclass
class _Post:
    name: str
    c_source: str
    signature: str
    arrays: list       # the shim's expressions for the pointer arguments, in order


def _post_function(k: _Kernel, emitter: _Emitter) -> _Post | None:
    """The statements after the loop (the optimizer's update of small parameters, after the gradient
    norm) as one C function of a loop per statement, or None when one of them is not elementwise over
    arrays of its own shape and single values: then they stay numpy lines."""
    if not k.post:
        return None
    squeezed = lambda shape: tuple(n for n in shape if n != 1)  # noqa: E731
    made = {s.value: s for s in k.post}
    external: dict[str, tuple] = {}  # name -> (shape, dtype the array holds)
    for s in k.post:
        op = OPS[s.op]
        if op.kind is not Kind.ELEMENTWISE or "c" not in op.codegen:
            return None
        for r in s.reads:
            if not isinstance(r, str):
                continue
            shape = made[r].shape if r in made else _post_input(k, r)[0]
            if numel(shape) != 1 and squeezed(shape) != squeezed(s.shape):
                return None
            if r not in made:
                external[r] = _post_input(k, r)
    name = f"{k.spec.name}_post"
    params = [f"const {STORAGE_TYPES[dtype]}* p_{r}" for r, (shape, dtype) in external.items()]
    outputs = [s for s in k.post if s.value in k.outputs]
    params += [f"{STORAGE_TYPES[s.dtype]}* o_{s.value}" for s in outputs] + ["int64_t start", "int64_t stop"]
    prologue = [f"{c_type(s.dtype)}* t_{s.value} = malloc({numel(s.shape)} * sizeof({c_type(s.dtype)}));"
                for s in k.post]
    body = []
    for s in k.post:
        size = numel(s.shape)
        loads = []
        for r in dict.fromkeys(r for r in s.reads if isinstance(r, str)):
            shape = made[r].shape if r in made else external[r][0]
            index = "j" if numel(shape) == size else "0"
            if r in made:
                loads.append(f"const {c_type(made[r].dtype)} v_{r} = t_{r}[{index}];")
            else:
                dtype = external[r][1]
                loads.append(f"const {c_type(dtype)} v_{r} = {_load(f'p_{r}[{index}]', dtype)};")
        lines = loads + emitter._statement(s) + [f"t_{s.value}[j] = v_{s.value};"]
        if s.value in k.outputs:
            lines.append(f"o_{s.value}[j] = {_store('v_' + s.value, s.dtype)};")
        body += ["#pragma omp simd", f"for (int64_t j = 0; j < {size}; j++) {{"] + ["    " + x for x in lines] + ["}"]
    epilogue = [f"free(t_{s.value});" for s in k.post]
    c_source = render("c_kernel.c.j2", k={
        "name": name, "params": params, "prologue": prologue, "epilogue": epilogue, "flat": True,
        "body": body, "row_loads": [], "doc": f"{k.spec.group}, after the loop: "
                                              f"{' -> '.join(s.op for s in k.post)}"})
    arrays = [r if r in {a.value for a in emitter.partials} or r in {p.value for p in k.pre}
              else f"np.ascontiguousarray({r})" for r in external] + [f"out_{s.value}" for s in outputs]
    return _Post(name, c_source, "p" * (len(external) + len(outputs)) + "ii", arrays)


def _post_input(k: _Kernel, name) -> tuple:
    """(shape, dtype of its array) of a value the post-loop statements read from outside them."""
    for s in k.spec.statements:
        if s.value == name:  # an accumulated value or one made before the loop: kernel dtype
            return s.shape, kernel_dtype(s.dtype)
    operand = next(o for o in k.spec.operands if o.local == name)
    return operand.shape, operand.dtype


class _Emitter:
    def __init__(self, k: _Kernel):
        self.k = k
        self.params, self.signature = [], ""
        self.partials = []  # accumulate statements, in argument order

    # ---- expressions ------------------------------------------------------------------------
    def _read(self, s, position) -> str:
        read = s.reads[position]
        if not isinstance(read, str):
            return literal(read, s.compute)
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
        if self.k.level[s.value] == 2 and not self.k.flat and tuple(s.shape[1:]) != self.k.layout.trailing:
            raise _Refused(f"{s.value}, an output, is broadcast within its rows")
        return [f"o_{s.value}[{self.k.offset(s.value)}] = {_store('v_' + s.value, s.dtype)};"]

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
                prologue.append(f"const {c_type(dtype)} v_{name} = {_load(f'p_{name}[0]', dtype)};")
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
        for name in scratch:
            prologue.append(f"{c_type(self._dtype(name))}* t_{name} = "
                            f"malloc({k.row_elements} * sizeof({c_type(self._dtype(name))}));")
            epilogue.append(f"free(t_{name});")
        body = []
        for loop in loops:
            body += loop.before + self._element_loop(loop, scratch) + loop.after
        return render("c_kernel.c.j2", k={
            "name": k.spec.name, "params": self.params, "prologue": prologue, "epilogue": epilogue,
            "flat": k.flat, "body": body, "row_loads": self._row_loads(),
            "doc": f"{k.spec.group}, {k.spec.mode} over {k.spec.rows} rows: {k.spec.summary()}"})

    def _dtype(self, name):
        return self.k._dtype_of(name)

    def _param(self, declaration: str) -> None:
        self.params.append(declaration)
        self.signature += "p"

    def _row_loads(self) -> list[str]:
        k = self.k
        return [f"const {c_type(dtype)} v_{name} = {_load(f'p_{name}[{k.offset(name)}]', dtype)};"
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
                lines.append(f"{accumulator_type(s)} a_{s.value} = {initial};" + _nan_flag(s))
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
                body.append(f"const {c_type(dtype)} v_{name} = {_load(f'p_{name}[{k.offset(name)}]', dtype)};")
            elif name not in k.inputs and name not in inside and name in scratch and name not in loaded:
                loaded.add(name)
                body.append(f"const {c_type(self._dtype(name))} v_{name} = t_{name}[j];")
        for s in loop.body:
            if s.phase == "accumulate" and k.partial_size(s) > 1:  # one partial per element of the row
                combine, x, target = OPS[s.op].codegen["c"], self._read(s, 0), f"q_{s.value}[j]"
                body.append(_REDUCTIONS[combine][1].format(a=target, x=x) if combine in ("+", "*") else
                            f"{target} = ({x} != {x} || {x} {'>' if combine == 'max' else '<'} {target}) "
                            f"? {x} : {target};")
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
        return lines + finish


def _shim(k: _Kernel, emitter: _Emitter, post) -> str:
    """The Python function the program calls: numpy before and after, the C loop in between."""
    spec = k.spec
    setup = [line for s in k.pre for line in numpy_backend.whole_statement_lines(spec, s)]
    arrays = [f"np.ascontiguousarray({name})" if name not in {s.value for s in k.pre} else name
              for name in k.inputs]
    arrays += [f"out_{s.value}" for s in k.statements if s.phase == "block" and s.value in k.outputs]
    partials, after = [], []
    for s in emitter.partials:
        size = k.partial_size(s)
        partials.append(f"np.empty((len(chunks), {size}), {_numpy_accumulator(s)})")
        combine = _COMBINE[OPS[s.op].codegen["c"]]
        after.append(f"{s.value} = {combine}.reduce(partials[{len(partials) - 1}], axis=0)"
                     f".astype({numpy_backend.np_dtype(kernel_dtype(s.dtype))}).reshape({s.shape!r})")
        if s.dtype.is_low_precision:
            after.append(f"round_to({s.value}, {numpy_backend.np_dtype(s.dtype)})")
        if s.value in k.outputs:
            after.append(f"np.copyto(out_{s.value}, {s.value})")
    if post is not None:  # the statements after the loop, in C too
        after.append(f"run_native(NATIVE.{post.name}, [{', '.join(post.arrays)}], [], ((0, 1),))")
    else:
        for o in spec.operands:  # post statements compute on whole operands in their kernel dtype
            if not o.blocked and o.dtype.is_low_precision and any(o.local in s.reads for s in k.post):
                after.append(f"{o.local} = {o.local}.astype(np.float32)")
        after += [line for s in k.post for line in numpy_backend.whole_statement_lines(spec, s)]
    params = [o.local for o in spec.operands] + [f"out_{v}" for v in spec.outputs]
    return render("c_shim.py.j2", k={
        "name": spec.name, "params": params, "setup": setup, "arrays": arrays, "partials": partials,
        "after": after, "rows": spec.rows, "row_elements": k.row_elements,
        "doc": f"{spec.group}, {spec.mode} over {spec.rows} rows in C: {spec.summary()}"})


# ---- programs ---------------------------------------------------------------------------------
def build_program_source(graph) -> ProgramSource:
    """One module: C kernels (shims over one C source) for the groups C takes, numpy kernels for the
    rest; the C source is compiled here, so the module records its library's cache key."""
    import genesis
    from genesis.compiler import native

    planned = plan(graph)
    shims, c_functions, signatures, fallbacks = [], [], {}, {}
    for spec in planned.kernels:
        try:
            rendered = render_kernel(spec)
        except _Refused as error:
            fallbacks[spec.group] = str(error)
            shims.append(numpy_backend.render_kernel(spec))
            continue
        shims.append(rendered.shim)
        c_functions.append(rendered.c_source)
        signatures.update(rendered.signatures)
    compiler = native.compiler_or_error()
    stats = {**planned.stats, "c_kernels": len(c_functions), "numpy_kernels": len(fallbacks)}
    summary = f"{len(c_functions)} C kernels, {len(fallbacks)} numpy kernels, {stats['library_calls']} library calls"
    c_source = render("c_program.c.j2", version=genesis.__version__, codegen_version=CODEGEN_VERSION,
                      summary=summary, vector_math=compiler.vector_math, vector_functions=native.VECTOR_FUNCTIONS,
                      kernels=c_functions)
    key = native.library_key(c_source, compiler)
    if c_functions:
        native.build_library(c_source, compiler, key)
    source = render(
        "c_program.py.j2", version=genesis.__version__, codegen_version=CODEGEN_VERSION, summary=summary,
        kernels=shims, inputs=list(graph.inputs), steps=planned.lines, outputs=list(graph.outputs),
        library=repr([n.name for n in planned.library_nodes]), stats=repr(stats), fallbacks=repr(fallbacks),
        signatures=repr(signatures), native_key=repr(key if c_functions else None), c_source=repr(c_source),
    )
    return ProgramSource(source, planned.steps, planned.library_nodes, planned.kernels,
                         {**stats, "fallbacks": fallbacks}, c_source)
