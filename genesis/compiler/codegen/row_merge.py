"""See a row kernel's rows as the rows of several leading dims.

softmax over the last dim of a (batch, heads, seq, seq) tensor reduces part of each
(heads, seq, seq) row, and a bias gradient of a (batch, seq, features) activation sums over
the rows and the next dim; no row layout reduces part of a row. When every reduction in the
loop reduces dims from k on, every reduction over the rows reduces dim 0 (and, where nothing
reduces within a row, all dims before k), and every value the loop computes has the same
dims before k, the kernel iterates over batch*heads*seq rows instead: a contiguous array
reshapes to that for free, and a kernel reshapes its arrays on entry. Accumulated results
keep their shapes; only their dims are renumbered. A sum over the rows that keeps some of the
merged dims (a (seq, features) table's gradient over (batch, seq) rows, beside layer_norm's
backward) keeps them as its own leading dims (`Statement.leading`): each merged row adds into
its own row of it, the one `layout.row_index` gives. A matmul before the loop writes its
product straight into the merged rows. Views in the loop merge too when they leave those
leading dims in place (the expand of a row's sum over the row, a reshape or permute of the
trailing dims).

An operand may broadcast over some of the merged dims, lined up with the statement that reads
it as that statement broadcasts it: over none (a layer_norm weight) it is read whole; over some
(an attention mask of shape (seq, seq) or (1, 1, seq, seq), a padding mask of shape
(batch, 1, 1, seq), a per-(batch, head) value of shape (batch, heads, 1, 1)) it keeps its own
leading dims (`Operand.leading`), and each merged row reads the row of it that `layout.row_index`
gives, where only elementwise statements and expands read it.

`merge_leading_dims` finds k (the merge depth), asks each refusal below whether the
merge would read or write the wrong elements, and only then renumbers the statements'
dims and reshapes the operands; where a reduction asks for a merge that a refusal stops, the
refusal's reason goes with the kernel, so a backend that then refuses the reduction says why.
"""

from __future__ import annotations

from dataclasses import replace

from genesis.compiler.codegen.layout import broadcast, numel, right_aligned
from genesis.ops.op import OPS, Combine, IndexMap, Kind


def merge_leading_dims(statements, operands, group):
    """((statements, operands, rows, merged dims), None) seen as rows of several leading dims, or
    (None, why not), where `why` is None when no reduction needs the merge."""
    if group.rows is None:
        return None, None
    depth = _merge_depth(statements)
    if depth <= 1:  # the rows of one leading dim are the rows the kernel has
        return None, None
    why = _only_loop_views_and_matmuls_before_it(statements)
    if why is not None:
        return None, why
    aligned = _operands_as_read(statements, operands, depth)
    if isinstance(aligned, str):
        return None, aligned
    prefix = _merged_dims(statements, aligned, depth)
    if isinstance(prefix, str):
        return None, prefix
    kinds = {local: _kind(shape[:depth], prefix) for local, shape in aligned.items()}
    for refuses in _REFUSALS:
        why = refuses(statements, operands, depth, prefix, aligned, kinds)
        if why is not None:
            return None, why
    rows = numel(prefix)
    merged_statements = tuple(_merged_statement(s, depth, rows, prefix) for s in statements)
    merged_operands = _merged_operands(statements, operands, depth, rows, aligned, kinds)
    merged_operands, why = _without_merged_ones(statements, merged_operands)
    if why is not None:
        return None, why
    return (merged_statements, merged_operands, rows, prefix), None


def _only_loop_views_and_matmuls_before_it(statements) -> str | None:
    """Only the loop's views are renumbered for the merged rows, and before the loop only matmuls by
    a 2-d weight (see fusion) write straight into them."""
    for s in statements:
        if OPS[s.op].kind is Kind.VIEW and s.phase != "block":
            return f"{s.value} = {s.op} is a view outside the loop"
        if s.phase == "pre" and OPS[s.op].kind is not Kind.MATMUL:
            return f"{s.value} = {s.op} runs before the loop"
    return None


def _merge_depth(statements) -> int:
    """k, the number of leading dims the rows can span (0: nothing reduces). A reduction in the loop
    reduces within each row, so the merged dims come before its first reduced one. A reduction over
    the rows reduces the merged dims whole where nothing reduces within a row (its run of reduced dims
    from dim 0); beside a reduction within a row, a sum may keep some of them (a positional table's
    gradient over (batch, seq) rows keeps seq), each merged row adding into its own row of it."""
    within = [min(s.attrs["dims"]) for s in statements if s.phase == "block" and OPS[s.op].kind is Kind.REDUCTION]
    if within:
        return min(within)
    runs = []
    for s in statements:
        if s.phase == "accumulate":
            run = 0
            while run in s.attrs["dims"]:
                run += 1
            runs.append(run)
    return min(runs, default=0)


def _a_reduction_over_the_rows_keeps_merged_dims_it_cannot_add_into(
    statements, operands, depth, prefix, aligned, kinds
) -> str | None:
    """A reduction over the rows that keeps some of the merged dims adds each merged row into its own
    row of the result: a sum can (numpy kernels scatter a block's rows with np.add.at), a max, min
    or product is not merged so."""
    for s in statements:
        if s.phase == "accumulate" and not set(range(depth)) <= set(s.attrs["dims"]) and s.combine is not Combine.ADD:
            return f"{s.value} = {s.op} reduces dims {s.attrs['dims']} over the rows, keeping some the rows would span"
    return None


def _lines_up_from_the_right(s) -> bool:
    """Whether a loop statement broadcasts its inputs against its shape from the right (elementwise
    ops and expands); the others read an input's dim 0 as the rows."""
    return s.phase == "block" and (OPS[s.op].kind is Kind.ELEMENTWISE or s.index_map is IndexMap.BROADCAST)


def _operands_as_read(statements, operands, depth) -> dict | str:
    """Each operand the loop reads, in the shape its readers line it up in (with leading 1s where a
    statement broadcasts it from the right), or why none: it has fewer dims than the merged ones,
    or two readers line it up differently."""
    shape_of = {o.local: o.shape for o in operands}
    aligned = {}
    for s in statements:
        if s.phase not in ("block", "accumulate"):
            continue
        for read in s.reads:
            if not isinstance(read, str) or read not in shape_of:
                continue
            shape = shape_of[read]
            if _lines_up_from_the_right(s):
                shape = right_aligned(shape, len(s.shape))
            if len(shape) < depth:
                return f"{read} of shape {shape_of[read]} has fewer dims than the {depth} the rows would span"
            if aligned.setdefault(read, tuple(shape)) != tuple(shape) and not _ones(
                aligned[read][:depth] + shape[:depth]
            ):
                return f"{read} of shape {shape_of[read]} lines up with its readers as {aligned[read]} and {shape}"
    return aligned


def _merged_dims(statements, aligned, depth) -> tuple | str:
    """The first `depth` dims of every value the loop computes (one merged row must be a row of
    each), over which every operand broadcasts; or why there are none."""
    values = [(s.value, tuple(s.shape)) for s in statements if s.phase == "block"]
    if any(len(shape) < depth for _, shape in values):
        name, shape = next((n, shape) for n, shape in values if len(shape) < depth)
        return f"{name} of shape {shape} has fewer dims than the {depth} the rows would span"
    try:
        prefix = tuple(broadcast([shape[:depth] for _, shape in values] + [a[:depth] for a in aligned.values()]))
    except ValueError as error:
        return str(error)
    for name, shape in values:
        if shape[:depth] != prefix:
            return f"{name} of shape {shape} broadcasts over the leading dims {prefix} the rows would span"
    return prefix


def _ones(dims) -> bool:
    return all(n == 1 for n in dims)


def _kind(leading, prefix) -> str:
    """How an operand lined up as `leading` over the merged dims `prefix` is read: "rows" (one per
    merged row), "whole" (broadcast over them all) or "broadcast" (over some: its own rows)."""
    if _ones(leading):
        return "whole"
    return "rows" if tuple(leading) == prefix else "broadcast"


def _shape_of(statements, operands) -> dict:
    """Local name (an operand or a kernel value) -> its shape."""
    return {o.local: o.shape for o in operands} | {s.value: s.shape for s in statements}


def _a_view_moves_the_merged_dims(statements, operands, depth, prefix, aligned, kinds) -> str | None:
    """A view in the loop merges only when it leaves the merged dims in place: a permute among them,
    or a view of a value whose leading dims are not the merged ones, reads across the merged rows
    (an expand of an operand broadcasts it as an elementwise statement would: its rows are its own)."""
    shape_of = _shape_of(statements, operands)
    for s in statements:
        if OPS[s.op].kind is not Kind.VIEW:
            continue
        if s.index_map is IndexMap.PERMUTE and tuple(s.attrs["dims"][:depth]) != tuple(range(depth)):
            return f"{s.value} = {s.op} moves the leading dims the rows would span"
        source = s.reads[0]
        if s.index_map is IndexMap.BROADCAST and source in aligned:
            continue
        if tuple(shape_of[source][:depth]) != prefix:
            return f"{s.value} = {s.op} reads {source} of shape {shape_of[source]} across the merged rows"
    return None


def _a_matmul_before_the_loop_does_not_merge(statements, operands, depth, prefix, aligned, kinds) -> str | None:
    """A stack times a 2-d weight: its rows merge as the product's (matmul_kernel) only when the
    product keeps a dim past the merged ones and it and its stack have the merged dims in front."""
    shape_of = _shape_of(statements, operands)
    for s in statements:
        if s.phase == "pre" and (
            depth >= len(s.shape)
            or tuple(s.shape[:depth]) != prefix
            or tuple(shape_of[s.reads[0]][:depth]) != prefix
            or len(shape_of[s.reads[1]]) != 2
        ):
            return f"{s.value} = {s.op} before the loop does not write the merged rows"
    return None


def _a_reduction_or_view_reads_a_whole_operand(statements, operands, depth, prefix, aligned, kinds) -> str | None:
    """A reduction or view renumbers its dims for the merged rows, not the operand's."""
    whole = {o.local for o in operands if kinds.get(o.local) == "whole"}
    for s in statements:
        for read in s.reads:
            if s.phase == "block" and OPS[s.op].kind is not Kind.ELEMENTWISE and read in whole:
                return f"{s.value} = {s.op} reads {read}, an operand broadcast over all the merged rows"
    return None


def _an_operand_read_by_rows_is_read_otherwise(statements, operands, depth, prefix, aligned, kinds) -> str | None:
    """An operand broadcast over some of the merged dims is read at its own row for each merged row:
    only by elementwise statements and expands in the loop, which broadcast it so; a reduction,
    reshape or permute would read its rows as the merged ones. And an operand the group reads whole
    but the merged loop reads by rows (every operand is whole in a group of one row) is reshaped
    for the loop, while statements before or after the loop read it in its own shape."""
    shape_of = {o.local: o.shape for o in operands}
    by_rows = {
        o.local
        for o in operands
        if kinds.get(o.local) == "broadcast" or (kinds.get(o.local) == "rows" and not o.blocked)
    }
    for s in statements:
        for read in s.reads:
            if read not in by_rows:
                continue
            if s.phase in ("pre", "post"):
                return f"{s.value} = {s.op} reads {read} whole, and the merged loop by rows"
            if kinds[read] == "broadcast" and not _lines_up_from_the_right(s):
                return (
                    f"{s.value} = {s.op} reads {read} of shape {shape_of[read]}, which broadcasts over some "
                    f"of the leading dims {prefix} the rows would span"
                )
    return None


_REFUSALS = (
    _a_view_moves_the_merged_dims,
    _a_matmul_before_the_loop_does_not_merge,
    _a_reduction_or_view_reads_a_whole_operand,
    _an_operand_read_by_rows_is_read_otherwise,
    _a_reduction_over_the_rows_keeps_merged_dims_it_cannot_add_into,
)


def _merged_shape(shape, depth, rows) -> tuple:
    return (rows,) + tuple(shape[depth:])


def _merged_statement(s, depth, rows, prefix):
    """The statement over the merged rows: its dims renumbered, the merged ones as dim 0."""
    if s.phase == "block":
        return replace(s, shape=_merged_shape(s.shape, depth, rows), attrs=_merged_loop_attrs(s, depth, rows))
    if s.phase == "pre":
        return replace(s, shape=_merged_shape(s.shape, depth, rows))
    if s.phase == "accumulate":  # over the merged rows and the same trailing dims, into its own shape
        dims = (0,) + tuple(d - depth + 1 for d in s.attrs["dims"] if d >= depth)
        leading = tuple(1 if d in s.attrs["dims"] else n for d, n in enumerate(prefix))
        kept = None if all(n == 1 for n in leading) else leading  # the merged dims it keeps, if any
        return replace(s, attrs={**s.attrs, "dims": dims, "keepdim": False}, leading=kept)
    return s


def _merged_loop_attrs(s, depth, rows) -> dict:
    """The attributes of a loop statement (a reduction's dims, a view's) over the merged rows."""
    if OPS[s.op].kind is Kind.REDUCTION:
        return {**s.attrs, "dims": tuple(d - depth + 1 for d in s.attrs["dims"])}
    if s.index_map is IndexMap.PERMUTE:
        return {**s.attrs, "dims": (0,) + tuple(d - depth + 1 for d in s.attrs["dims"][depth:])}
    if s.index_map in (IndexMap.RESHAPE, IndexMap.BROADCAST):
        return {**s.attrs, "shape_to": _merged_shape(s.attrs["shape_to"], depth, rows)}
    return s.attrs


def _merged_operands(statements, operands, depth, rows, aligned, kinds) -> tuple:
    """Operands read by rows in the merged rows' shape, those broadcast over some merged dims with
    their own leading dims beside it; those broadcast over all as they are."""
    # an operand only a reshape reads enters already reshaped (its rows hold the same elements in the
    # same order), so the reshape is the identity and every value has the rows' trailing shape
    readers = [r for s in statements for r in s.reads if isinstance(r, str)]
    entered_as = {
        s.reads[0]: s.shape for s in statements if s.index_map is IndexMap.RESHAPE and readers.count(s.reads[0]) == 1
    }
    merged = []
    for o in operands:
        kind, shape = kinds.get(o.local), aligned.get(o.local, o.shape)
        if kind == "rows":
            o = replace(o, shape=_merged_shape(entered_as.get(o.local, shape), depth, rows), blocked=True)
        elif kind == "broadcast":
            o = replace(o, shape=_merged_shape(shape, depth, rows), blocked=True, leading=tuple(shape[:depth]))
        merged.append(o)
    return tuple(merged)


def _without_merged_ones(statements, operands) -> tuple:
    """(operands, None): each whole one the loop reads without the leading 1s that stood for the
    merged dims, so that it broadcasts against the merged rows' trailing dims; (None, why) when code
    before or after the loop reads such an operand too, as it needs those 1s kept."""
    read_in_loop = {r for s in statements if s.phase in ("block", "accumulate") for r in s.reads if isinstance(r, str)}
    read_outside = {r for s in statements if s.phase in ("pre", "post") for r in s.reads}
    stripped = []
    for o in operands:
        shape = o.shape
        while not o.blocked and len(shape) > 1 and shape[0] == 1 and o.local in read_in_loop:
            shape = shape[1:]
        if shape != o.shape and o.local in read_outside:
            return None, f"{o.local} is read both in the loop and before or after it"
        stripped.append(replace(o, shape=shape))
    return tuple(stripped), None
