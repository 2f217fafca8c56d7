"""Render kernel descriptions as C (`c_loops.py`, `c_emit.py`), and a program that runs them.

Which groups C takes: flat and row groups, reductions within a row and over
the rows, matmul epilogues, single values. For the others (views that move
data, reductions over part of a row, ...) a `Refused` says why, and the
program's FALLBACKS records it. Each C kernel has a Python shim that the
program calls: statements before the loop (a matmul the blocks read) are numpy
lines; the shim splits the rows into chunks the threads share
(`runtime/native.py`), combines the chunks' partial results, and runs the
statements after the loop: as one more C function when they are elementwise
over arrays of their own shape, else as numpy lines. Where the work is one
chunk, a `_whole` C entry does all of that in one call. All C kernels of a
program are one C source, compiled into one shared library
(`compiler/native.py`). Transcendentals are libm's, vectorised through glibc's
libmvec where the compiler has it (exp of a float is inline), and so agree
with numpy's to a few ulp, not bit for bit. The templates name no op.
"""

from __future__ import annotations

from dataclasses import dataclass

from genesis import dtypes
from genesis.compiler import native
from genesis.compiler.codegen import numpy_backend, numpy_dialect
from genesis.compiler.codegen.c_dialect import STORAGE_TYPES, Refused, accumulator_type, c_type, load, store
from genesis.compiler.codegen.c_emit import Emitter
from genesis.compiler.codegen.c_loops import KernelLoops
from genesis.compiler.codegen.kernel import KernelSpec, helpers, kernel_dtype
from genesis.compiler.codegen.layout import numel
from genesis.compiler.codegen.wrapper import CODEGEN_VERSION, ProgramSource, plan, program_context
from genesis.compiler.templates import render
from genesis.ops.op import Kind
from genesis.runtime import native as runtime_native
from genesis.version import __version__


def _numpy_accumulator(s) -> str:
    return {"double": "np.float64", "int64_t": "np.int64", "float": "np.float32"}[accumulator_type(s)]


@dataclass
class RenderedKernel:
    c_source: str  # the C functions: the loop, and the statements after it when they are C too
    shim: str  # the Python function the program calls
    signatures: dict  # per C function, one letter per argument: p pointer, i int64


def render_kernel(spec: KernelSpec, contiguous=frozenset()) -> RenderedKernel:
    """`contiguous`: the values the program's plan makes C-contiguous (kernel outputs, its own
    buffers), which the shim passes as they are instead of through np.ascontiguousarray."""
    k = KernelLoops(spec)
    emitter = Emitter(k)
    c_source, signatures = emitter.function(), {spec.name: emitter.signature}
    post = _post_function(k, emitter, contiguous)
    if post is not None:
        c_source += "\n\n" + post.c_source
        signatures[post.name] = post.signature
    whole = _whole_function(k, emitter, post)
    if whole is not None:
        c_source += "\n\n" + whole.c_source
        signatures[whole.name] = whole.signature
    return RenderedKernel(c_source, _shim(k, emitter, post, whole, contiguous), signatures)


def _as_contiguous(k: KernelLoops, name: str, contiguous) -> str:
    """How the shim hands an operand to C: as it is where the plan made its value contiguous (an
    LSTM step's program checked ~800 such arrays a step), else through np.ascontiguousarray."""
    value = next((o.value for o in k.spec.operands if o.local == name), None)
    return name if value in contiguous else f"np.ascontiguousarray({name})"


@dataclass
class _CFunction:
    """A C function besides a kernel's loop (its post-loop statements, its one-chunk entry)."""

    name: str
    c_source: str
    signature: str
    arrays: list  # the shim's expressions for the pointer arguments, in order
    params: list  # their C declarations, in the same order (start and stop left out)


def _post_function(k: KernelLoops, emitter: Emitter, contiguous) -> _CFunction | None:
    """The statements after the loop (the optimizer's update of small parameters, after the gradient
    norm) as one C function of a loop per size (`_post_loops`), or None when one of them is not
    elementwise over arrays of its own shape and single values: then they stay numpy lines."""
    if not k.post:
        return None
    made = {s.value: s for s in k.post}
    external: dict[str, tuple] = {}  # name -> (shape, dtype the array holds)
    for s in k.post:
        if s.kind is not Kind.ELEMENTWISE or "c" not in s.record.codegen:
            return None
        for r in s.reads:
            if not isinstance(r, str):
                continue
            shape = made[r].shape if r in made else _post_input(k, r)[0]
            if numel(shape) != 1 and _squeezed(shape) != _squeezed(s.shape):
                return None
            if r not in made:
                external[r] = _post_input(k, r)
    name = f"{k.spec.name}_post"
    params = [f"const {STORAGE_TYPES[dtype]}* p_{r}" for r, (shape, dtype) in external.items()]
    outputs = [s for s in k.post if s.value in k.outputs]
    params += [f"{STORAGE_TYPES[s.dtype]}* o_{s.value}" for s in outputs] + ["int64_t start", "int64_t stop"]
    loops = _post_loops(k.post)
    loop_of = {s.value: i for i, (_, statements) in enumerate(loops) for s in statements}
    # a value another loop reads goes through a buffer; one read only in its own loop stays a local
    buffered = {
        r
        for i, (_, statements) in enumerate(loops)
        for s in statements
        for r in s.reads
        if isinstance(r, str) and r in made and loop_of[r] != i
    }
    buffers = [(f"t_{s.value}", c_type(s.dtype), numel(s.shape)) for s in k.post if s.value in buffered]
    body = []
    for i, (size, statements) in enumerate(loops):
        loads = []
        for r in dict.fromkeys(r for s in statements for r in s.reads if isinstance(r, str)):
            if r in made and loop_of[r] == i:
                continue
            shape = made[r].shape if r in made else external[r][0]
            index = "j" if numel(shape) == size else "0"
            if r in made:
                loads.append(f"const {c_type(made[r].dtype)} v_{r} = t_{r}[{index}];")
            else:
                dtype = external[r][1]
                loads.append(f"const {c_type(dtype)} v_{r} = {load(f'p_{r}[{index}]', dtype)};")
        lines = list(loads)
        for s in statements:
            lines += emitter._statement(s)
            if s.value in buffered:
                lines.append(f"t_{s.value}[j] = v_{s.value};")
            if s.value in k.outputs:
                lines.append(f"o_{s.value}[j] = {store('v_' + s.value, s.dtype)};")
        body += ["#pragma omp simd", f"for (int64_t j = 0; j < {size}; j++) {{"] + ["    " + x for x in lines] + ["}"]
    c_source = render(
        "c_kernel.c.j2",
        k={
            "name": name,
            "params": params,
            "prologue": [],
            "epilogue": [],
            "flat": True,
            "scratch": buffers,
            "streams": False,
            "chunk_args": [],  # one call over one element: never split into chunks
            "body": body,
            "row_loads": [],
            "doc": f"{k.spec.group}, after the loop: {' -> '.join(s.op for s in k.post)}",
        },
    )
    made_here = {a.value for a in emitter.partials} | {p.value for p in k.pre}
    arrays = [r if r in made_here else _as_contiguous(k, r, contiguous) for r in external]
    arrays += [f"out_{s.value}" for s in outputs]
    return _CFunction(name, c_source, "p" * (len(external) + len(outputs)) + "ii", arrays, params[:-2])


# A float32 add reads two and writes one: what `runtime.native.row_chunks` takes an element's work for
ADD_BYTES = 12


def _row_work(k: KernelLoops, rows: int) -> int:
    """A row's work in elements of a float32 add, by the bytes the kernel moves (at least its
    elements): the chunks of a kernel that reads and writes many arrays per element get fewer
    elements. Adam's update of a 784x256 weight (4 arrays read, 4 written) ran as one chunk on one
    core, 163 us; as 4 on 2 threads, 88. Kernels with partials keep their elements (each chunk's
    partials are combined after the call: more chunks made the transformer block's step 5% slower),
    and so do kernels that move less than a chunk's least in bytes (GRAIN adds)."""
    if k.bytes_moved() < runtime_native.GRAIN * ADD_BYTES:  # below, a second thread's start costs more
        return k.row_elements
    return max(k.row_elements, -(-k.bytes_moved() // (max(1, rows) * ADD_BYTES)))


# partial results the one-chunk entry keeps on its stack (a bias gradient of 8K floats: 96 KB)
WHOLE_PARTIAL_ELEMENTS = 1 << 13


def _whole_function(k: KernelLoops, emitter: Emitter, post: _CFunction | None) -> _CFunction | None:
    """For a kernel with partials, the entry that runs all its rows in one chunk: the loop into
    partials on its stack, each cast to its value's dtype (into its output where it is one), then
    the statements after the loop. Small work is one chunk (`runtime.native.row_chunks`): for it the
    shim makes one foreign call instead of allocating partials, combining them in numpy and calling
    again for the statements after (about 6 us a kernel). One chunk's combine is its partial, so the
    values are those of the general path. None where the statements after the loop stay numpy, a
    value is fp16/bf16 (rounded in numpy) or bool (numpy's cast tests for nonzero), or the partials
    are too big for the stack."""
    partials = emitter.partials
    if not partials or (k.post and post is None):
        return None
    if any(s.dtype.is_low_precision or s.dtype is dtypes.bool_ for s in partials):
        return None
    if sum(map(k.partial_size, partials)) > WHOLE_PARTIAL_ELEMENTS:
        return None
    kernel = emitter.params[:-2]
    params = [d for d in kernel if not d.rsplit(" ", 1)[1].startswith("q_")]
    outputs = [s for s in partials if s.value in k.outputs]
    params += [f"{STORAGE_TYPES[s.dtype]}* o_{s.value}" for s in outputs]
    arrays = [f"out_{s.value}" for s in outputs]
    body, result_of = [], {}
    for s in partials:
        size, value_type = k.partial_size(s), c_type(kernel_dtype(s.dtype))
        body.append(f"{accumulator_type(s)} q_{s.value}[{size}];")
        result_of[s.value] = f"o_{s.value}" if s.value in k.outputs else f"c_{s.value}"
        if s.value not in k.outputs:
            body.append(f"{value_type} c_{s.value}[{size}];")
    names = [d.rsplit(" ", 1)[1] for d in kernel]
    body.append(f"if ({k.spec.name}({', '.join(names)}, start, stop)) return 1;")
    for s in partials:
        size, value_type = k.partial_size(s), c_type(kernel_dtype(s.dtype))
        body.append(f"for (int64_t j = 0; j < {size}; j++) {result_of[s.value]}[j] = ({value_type})q_{s.value}[j];")
    if post is not None:
        taken = {d.rsplit(" ", 1)[1] for d in params}
        post_args = []
        for declaration, expression in zip(post.params, post.arrays):
            name = declaration.rsplit(" ", 1)[1]
            value = name[2:]
            if name.startswith("p_") and value in result_of:
                post_args.append(result_of[value])
                continue
            post_args.append(name)
            if name not in taken:
                taken.add(name)
                params.append(declaration)
                arrays.append(expression)
        body.append(f"return {post.name}({', '.join(post_args)}, 0, 1);")
    else:
        body.append("return 0;")
    name = f"{k.spec.name}_whole"
    lines = "\n".join("    " + line for line in body)
    c_source = (
        f"/* {k.spec.name} over all its rows as one chunk: its partials are its results */\n"
        f"int {name}({', '.join(params + ['int64_t start', 'int64_t stop'])}) {{\n{lines}\n}}\n"
    )
    return _CFunction(name, c_source, "p" * len(params) + "ii", arrays, params)


def _post_loops(post) -> list[tuple[int, list]]:
    """The post-loop statements as (size, statements) loops: each loop takes, in order, every
    statement of its size whose inputs are ready, so an update of one small parameter (a dozen ops
    over its elements) is one loop with its values in registers, not a loop and a buffer per op
    (the MLP b64 step's: 60 loops and buffers, 40 us, before). Order within a loop stays the
    program's; every element is computed as before, so the results are the same bits."""
    made = {s.value for s in post}
    done: set = set()
    pending, loops = list(post), []
    while pending:
        size = numel(next(s for s in pending if _ready(s, made, done)).shape)
        taken, rest = [], []
        for s in pending:  # in program order, so a statement's inputs from this loop come first
            if numel(s.shape) == size and _ready(s, made, done):
                taken.append(s)
                done.add(s.value)
            else:
                rest.append(s)
        loops.append((size, taken))
        pending = rest
    return loops


def _ready(s, made, done) -> bool:
    return all(r in done for r in s.reads if isinstance(r, str) and r in made)


def _squeezed(shape) -> tuple:
    return tuple(n for n in shape if n != 1)


def _post_input(k: KernelLoops, name) -> tuple:
    """(shape, dtype of its array) of a value the post-loop statements read from outside them."""
    for s in k.spec.statements:
        if s.value == name:  # an accumulated value or one made before the loop: kernel dtype
            return s.shape, kernel_dtype(s.dtype)
    operand = next(o for o in k.spec.operands if o.local == name)
    return operand.shape, operand.dtype


def _shim(k: KernelLoops, emitter: Emitter, post, whole, contiguous) -> str:
    """The Python function the program calls: numpy before and after, the C loop in between."""
    spec = k.spec
    setup = [line for s in k.pre for line in numpy_backend.whole_statement_lines(spec, s)]
    arrays = [name if name in {s.value for s in k.pre} else _as_contiguous(k, name, contiguous) for name in k.inputs]
    arrays += [f"out_{s.value}" for s in k.statements if s.phase == "block" and s.value in k.outputs]
    partials, after = [], []
    for s in emitter.partials:
        size = k.partial_size(s)
        partials.append(f"np.empty((len(chunks), {size}), {_numpy_accumulator(s)})")
        after.append(
            f"{s.value} = np.{s.combine.value}.reduce(partials[{len(partials) - 1}], axis=0)"
            f".astype({numpy_dialect.np_dtype(kernel_dtype(s.dtype))}).reshape({s.shape!r})"
        )
        after += numpy_dialect.round_lines(s.value, s.dtype)
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
    return render(
        "c_shim.py.j2",
        k={
            "name": spec.name,
            "params": params,
            "setup": setup,
            "arrays": arrays,
            "partials": partials,
            "after": after,
            "whole": None if whole is None else f"NATIVE.{whole.name}, [{', '.join(arrays + whole.arrays)}]",
            "rows": spec.rows,
            "row_elements": k.row_elements,
            "row_work": k.row_elements if emitter.partials else _row_work(k, spec.rows),
            "doc": f"{spec.group}, {spec.mode} over {spec.rows} rows in C: {spec.summary()}",
        },
    )


# ---- programs ---------------------------------------------------------------------------------
def build_program_source(graph) -> ProgramSource:
    """One module: C kernels (shims over one C source) for the groups C takes, numpy kernels for the
    rest; the C source is compiled here, so the module records its library's cache key."""
    planned = plan(graph)
    shims, c_functions, signatures, fallbacks, in_c = [], [], {}, {}, []
    for spec in planned.kernels:
        try:
            rendered = render_kernel(spec, planned.contiguous)
        except Refused as error:
            fallbacks[spec.group] = str(error)
            shims.append(numpy_backend.render_kernel(spec))
            continue
        shims.append(rendered.shim)
        c_functions.append(rendered.c_source)
        in_c.append(spec)
        signatures.update(rendered.signatures)
    compiler = native.compiler_or_error()
    stats = {**planned.stats, "c_kernels": len(c_functions), "numpy_kernels": len(fallbacks)}
    summary = f"{len(c_functions)} C kernels, {len(fallbacks)} numpy kernels, {stats['library_calls']} library calls"
    c_source = render(
        "c_program.c.j2",
        version=__version__,
        codegen_version=CODEGEN_VERSION,
        summary=summary,
        vector_math=compiler.vector_math,
        vector_functions=native.VECTOR_FUNCTIONS,
        helpers=helpers(in_c, "c"),
        kernels=c_functions,
        streaming=any("g_stream_row(" in f for f in c_functions),
        separator=native.KERNEL_SEPARATOR,
    )
    key = native.library_key(c_source, compiler)
    if c_functions:
        native.build_library(c_source, compiler, key)
    source = render(
        "c_program.py.j2",
        **program_context(graph, planned, summary, stats),
        kernels=shims,
        fallbacks=repr(fallbacks),
        signatures=repr(signatures),
        native_key=repr(key if c_functions else None),
        c_source=repr(c_source),
    )
    return ProgramSource(
        source, planned.steps, planned.library_nodes, planned.kernels, {**stats, "fallbacks": fallbacks}, c_source
    )
