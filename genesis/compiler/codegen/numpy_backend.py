"""Render a kernel description as a chunked numpy kernel (`templates/numpy_kernel.py.j2`).

Each statement becomes one line: the op's numpy snippet writing with `out=`
into a per-block scratch buffer or straight into the output's rows. Scratch
buffers are reused as soon as the value they hold is dead, so a long chain
keeps only a few blocks in cache. The template holds the loop; this module
only turns statements into lines.
"""

from __future__ import annotations

import math
from dataclasses import replace

from genesis.compiler.codegen.kernel import KernelSpec, input_shape, kernel_dtype
from genesis.compiler.codegen.layout import numel, row_index
from genesis.compiler.codegen.numpy_dialect import (
    cast_to,
    itemsize,
    literal,
    np_dtype,
    numpy_snippet,
    round_lines,
    view,
)
from genesis.compiler.templates import render
from genesis.ops.op import OPS, Kind, named_attrs


class _Scratch:
    """Per-block buffers, reused by shape and dtype once their value is dead."""

    def __init__(self):
        self.specs: list[tuple] = []
        self.free: list[int] = []
        self.held: dict[str, int] = {}  # value -> the slot it is computed into

    def take(self, value: str, row_shape, dtype) -> int:
        self.held[value] = slot = self._slot(row_shape, dtype)
        return slot

    def _slot(self, row_shape, dtype) -> int:
        for i in self.free:
            if self.specs[i] == (row_shape, dtype):
                self.free.remove(i)
                return i
        self.specs.append((row_shape, dtype))
        return len(self.specs) - 1

    def release(self, values) -> None:
        """The slots of these values (dead now) go back for reuse, in this order."""
        for value in values:
            if value in self.held:
                self.free.append(self.held.pop(value))


# Scratch one thread may hold for a kernel's block. Blocks grow (up to twice the default) while a
# kernel's temporaries fit: measured on the fusion benchmarks, bigger blocks cost less Python per
# element (the GIL serialises it across the kernel threads), and a kernel with few temporaries can
# have them without raising peak memory (benchmarks/train_step.py).
SCRATCH_BYTES = 3 << 19  # 1.5 MB
MAX_BLOCK_GROWTH = 2
GROW_FROM_BLOCKS = 16  # only kernels over at least 16 default blocks (1M elements) grow theirs


def render_kernel(spec: KernelSpec) -> str:
    context = _kernel_context(spec)
    grown = _grown_block_rows(spec, context["scratch"])
    if grown != spec.block_rows:
        context = _kernel_context(replace(spec, block_rows=grown))
    return render("numpy_kernel.py.j2", k=context)


def _grown_block_rows(spec: KernelSpec, scratch_specs) -> int:
    """The largest block (at most MAX_BLOCK_GROWTH times the default) whose scratch fits SCRATCH_BYTES."""
    per_block = sum(math.prod(shape) * itemsize(dtype) for shape, dtype in scratch_specs)
    if spec.mode == "whole" or spec.rows < GROW_FROM_BLOCKS * spec.block_rows:
        return spec.block_rows  # small work: few blocks already, and scratch would weigh on its memory
    if per_block == 0:
        return min(spec.rows, spec.block_rows * MAX_BLOCK_GROWTH)
    growth = max(1, min(MAX_BLOCK_GROWTH, SCRATCH_BYTES // per_block))
    return min(spec.rows, spec.block_rows * growth)


def _kernel_context(spec: KernelSpec) -> dict:
    setup = _entry_lines(spec) + _before_loop_lines(spec)
    body, after, scratch = _statement_lines(spec)
    return {
        "name": spec.name,
        "params": [o.local for o in spec.operands] + [f"out_{v}" for v in spec.outputs],
        "mode": spec.mode,
        "rows": spec.rows,
        "block_rows": spec.block_rows,
        "setup": setup,
        "body": _block_reads(spec) + body,
        "after": after,
        "doc": f"{spec.group}, {spec.mode} over {spec.rows} rows: {spec.summary()}",
        "accumulators": [s.value for s in spec.statements if s.phase == "accumulate"],
        "scratch": scratch.specs,
        "scratch_names": [f"scratch{i}" for i in range(len(scratch.specs))],
        "scratch_specs": "[" + ", ".join(f"({shape!r}, {dtype})" for shape, dtype in scratch.specs) + "]",
    }


def _entry_lines(spec: KernelSpec) -> list[str]:
    """The kernel's arrays reshaped and cast, on entry, to the shapes and dtypes its lines read."""
    flat = spec.mode == "flat"
    lines = []
    if spec.merged:  # rows over several leading dims: the arrays as the kernel sees them
        outputs = set(spec.outputs)
        lines += [f"{o.local} = {o.local}.reshape({o.stored_shape!r})" for o in spec.operands]
        lines += [f"out_{s.value} = out_{s.value}.reshape({s.shape!r})" for s in spec.statements if s.value in outputs]
    for o in spec.operands:
        if not o.blocked and o.dtype.is_low_precision:
            lines.append(f"{o.local} = {o.local}.astype(np.float32)")
        if flat:  # blocked operands become vectors; whole ones are single values in flat mode
            lines.append(f"{o.local} = {o.local}.reshape({'-1' if o.blocked else '()'})")
    if flat:
        lines += [f"out_{v} = out_{v}.reshape(-1)" for v in spec.outputs if _statement(spec, v).phase == "block"]
    return lines


def _before_loop_lines(spec: KernelSpec) -> list[str]:
    """The "pre" statements: before the loop, over all rows; blocks read their rows of it."""
    return [line for s in spec.statements if s.phase == "pre" for line in whole_statement_lines(spec, s)]


def _block_reads(spec: KernelSpec) -> list[str]:
    """A block's rows of the values computed before the loop and of the blocked operands."""
    lines = [f"{s.value}_ = {s.value}[start:stop]" for s in spec.statements if s.phase == "pre"]
    if any(v.leading is not None for v in (*spec.operands, *spec.statements)):  # the block's merged rows
        lines.append("rows = np.arange(start, stop)")
    for o in spec.operands:
        if o.blocked:
            load = f"{o.local}[start:stop]" if o.leading is None else f"{o.local}[{_own_rows(spec, o)}]"
            lines.append(f"{o.local}_ = {load}" + (".astype(np.float32)" if o.dtype.is_low_precision else ""))
    return lines


def _statement_lines(spec: KernelSpec) -> tuple[list[str], list[str], _Scratch]:
    """(lines in the loop, lines after it, the scratch they compute into) of every statement but the
    "pre" ones: block statements into scratch or the output's rows, accumulators into partials that
    are combined after the loop, and the rest over whole arrays."""
    body, after = [], []
    last_read = _last_reads(spec)
    scratch = _Scratch()
    pre = {s.value for s in spec.statements if s.phase == "pre"}
    for index, s in enumerate(spec.statements):
        if s.phase == "pre":
            continue
        args = [_read(spec, r, s, i, sliced=pre) for i, r in enumerate(s.reads)]
        if s.phase == "block" and spec.mode != "whole":
            body += _block_statement_lines(spec, s, args, scratch)
            scratch.release(last_read.get(index, ()))
        elif s.phase == "accumulate":
            in_loop, combined = _accumulate_lines(spec, s, args)
            body += in_loop
            after += combined
        else:  # post-loop statements, and all of a 0-d kernel
            (after if spec.mode != "whole" else body).extend(whole_statement_lines(spec, s))
    return body, after, scratch


def _own_rows(spec: KernelSpec, operand) -> str:
    """The rows of an operand broadcast over some merged dims that the block's merged rows read: a
    gather of the block's rows of it (a mask's rows, repeated over batch and heads)."""
    return row_index(operand.leading, spec.merged_dims, "rows")


def _block_statement_lines(spec: KernelSpec, s, args, scratch: _Scratch) -> list[str]:
    """A statement over a block of rows: a view of its source's block, or its result computed into
    scratch (or straight into the output's rows where no rounding comes between)."""
    output = s.value in spec.outputs
    if s.kind is Kind.VIEW:
        # a view of a value read whole (a (1, 512, 256) product reshaped to (512, 256, 1, 1)) moves its
        # rows elsewhere: the block's rows are those of the whole view, not a view of the whole
        source = next((o for o in spec.operands if o.local == s.reads[0]), None)
        view = f"{_whole_view(s, args)}[start:stop]" if source is not None and not source.blocked else _view(s, args)
        lines = [f"{s.value} = {view}"]
        return lines + ([f"np.copyto(out_{s.value}[start:stop], {s.value})"] if output else [])
    direct = output and not s.dtype.is_low_precision
    if direct:
        destination = f"out_{s.value}[start:stop]"
    else:
        row_shape = () if spec.mode == "flat" else tuple(s.shape[1:])
        slot = scratch.take(s.value, (spec.block_rows,) + row_shape, np_dtype(kernel_dtype(s.dtype)))
        destination = f"scratch{slot}[:n]"
    lines = [f"{s.value} = {destination}"] + _compute(s, args, s.value)
    if output and not direct:
        lines.append(f"np.copyto(out_{s.value}[start:stop], {s.value})")
    return lines


def _accumulate_lines(spec: KernelSpec, s, args) -> tuple[list[str], list[str]]:
    """(in the loop, after it) of a reduction over the rows: each block's partial result, then the
    partials combined by the reduction's combine op."""
    dtype = np_dtype(kernel_dtype(s.dtype))
    body = [f"{s.value} = np.empty({s.shape!r}, {dtype})"]
    if spec.mode == "flat":  # a flattened block reduces whole; keepdim's ones are only a view away
        body += _compute(s, args, f"{s.value}.reshape(())", round_low=False, dims=None, keepdim=False)
    elif s.leading is not None:  # keeps some merged dims: each row of the block adds into its own row
        rows_shape = (spec.block_rows,) + _kept_dims(spec, s)
        dims = tuple(d for d in s.attrs["dims"] if d != 0)
        body = [f"{s.value} = np.zeros({(numel(s.leading),) + _kept_dims(spec, s)!r}, {dtype})"]
        body += [f"{s.value}_rows = np.empty({rows_shape!r}, {dtype})[:n]"]
        body += _compute(s, args, f"{s.value}_rows", round_low=False, dims=dims)
        body.append(f"np.add.at({s.value}, {row_index(s.leading, spec.merged_dims, 'rows')}, {s.value}_rows)")
        body.append(f"{s.value} = {s.value}.reshape({s.shape!r})")
    elif spec.merged:  # over merged rows: the kept dims of the block, as a view of the value
        kept = tuple(
            n for d, n in enumerate(input_shape(s, spec.statements, spec.operands)) if d not in s.attrs["dims"]
        )
        body += _compute(s, args, f"{s.value}.reshape({kept!r})", round_low=False)
    else:
        body += _compute(s, args, s.value, round_low=False)
    body.append(f"partials_{s.value}[index] = {s.value}")
    after = [f"{s.value} = combine(partials_{s.value}, np.{s.combine.value})"] + _round(s)
    if s.value in spec.outputs:
        after.append(f"np.copyto(out_{s.value}, {s.value})")
    return body, after


def _kept_dims(spec: KernelSpec, s) -> tuple:
    """The dims of a block's row that a reduction over the rows keeps."""
    return tuple(n for d, n in enumerate(input_shape(s, spec.statements, spec.operands)) if d not in s.attrs["dims"])


def whole_statement_lines(spec: KernelSpec, s) -> list[str]:
    """A statement over whole arrays: before the loop over the rows ("pre", a matmul the blocks
    read), after it ("post"), or in a 0-d kernel. Also the C backend's shims run these."""
    args = [_read(spec, r, s, i) for i, r in enumerate(s.reads)]
    output = s.value in spec.outputs
    direct = output and s.phase == "pre" and not s.dtype.is_low_precision
    destination = f"out_{s.value}" if direct else f"empty({s.shape!r}, {np_dtype(kernel_dtype(s.dtype))})"
    if OPS[s.op].kind is Kind.VIEW:  # a view of a whole array: numpy's own view of it
        lines = [f"{s.value} = {_whole_view(s, args)}"]
    else:
        lines = [f"{s.value} = {destination}"] + _compute(s, args, s.value)
    if output and not direct:  # a product over merged rows has their shape: the same elements, in order
        lines.append(f"np.copyto(out_{s.value}, {s.value}.reshape(out_{s.value}.shape))")
    return lines


def _statement(spec, value):
    return next(s for s in spec.statements if s.value == value)


def _last_reads(spec) -> dict[int, list[str]]:
    """Statement index -> the kernel values it is the last block-phase reader of. A view (a transpose,
    a reshape) shares its source's scratch, so the source lives as long as the view is read."""
    last = {}
    for index, s in enumerate(spec.statements):
        for r in s.reads:
            if isinstance(r, str):
                last[r] = index
    for s in reversed(spec.statements):  # a view of a view: the later one first
        source = s.reads[0] if s.reads else None
        if OPS[s.op].kind is Kind.VIEW and isinstance(source, str) and s.value in last:
            last[source] = max(last.get(source, -1), last[s.value])
    found: dict[int, list[str]] = {}
    for name, index in last.items():
        found.setdefault(index, []).append(name)
    return found


def _read(spec, read, statement, position, sliced=()) -> str:
    """How statement reads its input: a local (cast to the compute dtype if needed) or a literal.
    Blocked operands and the `sliced` values (computed over all rows) are read as this block's rows."""
    if not isinstance(read, str):
        return literal(read, statement.literal_dtype)
    operand = next((o for o in spec.operands if o.local == read), None)
    blocked = (operand is not None and operand.blocked) or read in sliced
    local = read + "_" if blocked and statement.phase != "post" else read
    have = statement.input_dtypes[position]
    if statement.compute is not None and have is not statement.compute and OPS[statement.op].kind is not Kind.VIEW:
        return cast_to(local, statement.compute)
    return local


def _compute(s, args, destination, round_low=True, **overrides) -> list[str]:
    snippet = numpy_snippet(OPS[s.op], s.attrs)
    attrs = {k: literal(v) for k, v in named_attrs(snippet, {**s.attrs, **overrides}).items()}
    lines = snippet.format(*args, out=destination, **attrs).split("; ")
    return lines + (_round(s) if round_low else [])


def _round(s) -> list[str]:
    return round_lines(s.value, s.dtype)


def _whole_view(s, args) -> str:
    return view(s.index_map, args[0], s.attrs, repr(tuple(s.shape)))


def _view(s, args) -> str:
    """A view of a block of rows: `n` rows, the trailing shape of the statement's."""
    return view(s.index_map, args[0], s.attrs, f"(n,) + {tuple(s.shape[1:])!r}")
