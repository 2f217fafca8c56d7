"""See a row kernel's rows as the rows of several leading dims.

softmax over the last dim of a (batch, heads, seq, seq) tensor reduces part of each
(heads, seq, seq) row, and a bias gradient of a (batch, seq, features) activation sums over
the rows and the next dim; no row layout reduces part of a row. When every reduction in the
loop reduces dims from k on, every reduction over the rows reduces all dims before k, and
every row-blocked value has the same dims before k, the kernel iterates over batch*heads*seq
rows instead: a contiguous array reshapes to that for free, and a kernel reshapes its arrays
on entry. Accumulated results keep their shapes; only their dims are renumbered. A matmul
before the loop writes its product straight into the merged rows. Views in the
loop merge too when they leave those leading dims in place (the expand of a row's sum over
the row, a reshape or permute of the trailing dims).

`merge_leading_dims` finds k (the merge depth), asks each refusal below whether the
merge would read or write the wrong elements, and only then renumbers the statements'
dims and reshapes the operands.
"""

from __future__ import annotations

from dataclasses import replace

from genesis.compiler.codegen.layout import numel, right_aligned
from genesis.ops.op import OPS, IndexMap, Kind


def merge_leading_dims(statements, operands, group):
    """(statements, operands, rows) seen as rows of several leading dims, or None."""
    if group.rows is None or not _only_loop_views_and_matmuls_before_it(statements):
        return None
    depth = _merge_depth(statements)
    if depth <= 1:  # the rows of one leading dim are the rows the kernel has
        return None
    prefix = _shared_leading_dims(statements, operands, depth)
    if prefix is None or any(refuses(statements, operands, depth, prefix) for refuses in _REFUSALS):
        return None
    rows = numel(prefix)
    merged_statements = tuple(_merged_statement(s, depth, rows) for s in statements)
    merged_operands = _without_merged_ones(statements, _merged_operands(statements, operands, depth, rows))
    if merged_operands is None:
        return None
    return merged_statements, merged_operands, rows


def _only_loop_views_and_matmuls_before_it(statements) -> bool:
    """Only the loop's views are renumbered for the merged rows, and before the loop only matmuls by
    a 2-d weight (see fusion) write straight into them."""
    return all(s.phase == "block" for s in statements if OPS[s.op].kind is Kind.VIEW) and all(
        OPS[s.op].kind is Kind.MATMUL for s in statements if s.phase == "pre"
    )


def _merge_depth(statements) -> int:
    """k, the number of leading dims the rows can span (0: nothing reduces). A reduction in the loop
    reduces within each row, so the merged dims come before its first reduced one; a reduction over
    the rows reduces the merged dims whole, so they lie within its run of reduced dims from dim 0."""
    depths = []
    for s in statements:
        if s.phase == "block" and OPS[s.op].kind is Kind.REDUCTION:
            depths.append(min(s.attrs["dims"]))
        elif s.phase == "accumulate":
            run = 0
            while run in s.attrs["dims"]:
                run += 1
            depths.append(run)
    return min(depths, default=0)


def _shared_leading_dims(statements, operands, depth) -> tuple | None:
    """The first `depth` dims of every row-blocked value, or None where they differ (or a value has
    fewer dims, or there is none): one merged row must be a row of each of them."""
    prefix = None
    for shape in [s.shape for s in statements if s.phase == "block"] + [o.shape for o in operands if o.blocked]:
        if len(shape) < depth or (prefix is not None and tuple(shape[:depth]) != prefix):
            return None
        prefix = tuple(shape[:depth])
    return prefix


def _shape_of(statements, operands) -> dict:
    """Local name (an operand or a kernel value) -> its shape."""
    return {o.local: o.shape for o in operands} | {s.value: s.shape for s in statements}


def _a_view_moves_the_merged_dims(statements, operands, depth, prefix) -> bool:
    """A view in the loop merges only when it leaves the merged dims in place: a permute among them,
    or a view of a value whose leading dims are not the merged ones, reads across the merged rows."""
    shape_of = _shape_of(statements, operands)
    for s in statements:
        if OPS[s.op].kind is not Kind.VIEW:
            continue
        if s.index_map is IndexMap.PERMUTE and tuple(s.attrs["dims"][:depth]) != tuple(range(depth)):
            return True
        if tuple(shape_of[s.reads[0]][:depth]) != prefix:
            return True
    return False


def _a_matmul_before_the_loop_does_not_merge(statements, operands, depth, prefix) -> bool:
    """A stack times a 2-d weight: its rows merge as the product's (matmul_kernel) only when the
    product keeps a dim past the merged ones and it and its stack have the merged dims in front."""
    shape_of = _shape_of(statements, operands)
    return any(
        depth >= len(s.shape)
        or tuple(s.shape[:depth]) != prefix
        or tuple(shape_of[s.reads[0]][:depth]) != prefix
        or len(shape_of[s.reads[1]]) != 2
        for s in statements
        if s.phase == "pre"
    )


def _a_reduction_or_view_reads_a_whole_operand(statements, operands, depth, prefix) -> bool:
    """A reduction or view renumbers its dims for the merged rows, not the operand's."""
    whole = {o.local for o in operands if not o.blocked}
    return any(
        s.phase == "block" and OPS[s.op].kind is not Kind.ELEMENTWISE and read in whole
        for s in statements
        for read in s.reads
    )


def _a_whole_operand_varies_along_the_merged_dims(statements, operands, depth, prefix) -> bool:
    """Whole operands may only vary along the dims that stay (a layer_norm weight), aligned as the
    statement that reads it broadcasts it: the merged rows have no dims left to index one by."""
    whole = {o.local: o.shape for o in operands if not o.blocked}
    shape_of = _shape_of(statements, operands)
    for s in statements:
        for read in s.reads:
            if s.phase in ("block", "accumulate") and read in whole:
                reader = shape_of[s.reads[0]] if s.phase == "accumulate" else s.shape  # what it broadcasts against
                if any(n != 1 for n in right_aligned(whole[read], len(reader))[:depth]):
                    return True
    return False


_REFUSALS = (
    _a_view_moves_the_merged_dims,
    _a_matmul_before_the_loop_does_not_merge,
    _a_reduction_or_view_reads_a_whole_operand,
    _a_whole_operand_varies_along_the_merged_dims,
)


def _merged_shape(shape, depth, rows) -> tuple:
    return (rows,) + tuple(shape[depth:])


def _merged_statement(s, depth, rows):
    """The statement over the merged rows: its dims renumbered, the merged ones as dim 0."""
    if s.phase == "block":
        return replace(s, shape=_merged_shape(s.shape, depth, rows), attrs=_merged_loop_attrs(s, depth, rows))
    if s.phase == "pre":
        return replace(s, shape=_merged_shape(s.shape, depth, rows))
    if s.phase == "accumulate":  # over the merged rows and the same trailing dims, into its own shape
        dims = (0,) + tuple(d - depth + 1 for d in s.attrs["dims"] if d >= depth)
        return replace(s, attrs={**s.attrs, "dims": dims, "keepdim": False})
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


def _merged_operands(statements, operands, depth, rows) -> tuple:
    """Row-blocked operands in the merged rows' shape; whole ones as they are."""
    # an operand only a reshape reads enters already reshaped (its rows hold the same elements in the
    # same order), so the reshape is the identity and every value has the rows' trailing shape
    readers = [r for s in statements for r in s.reads if isinstance(r, str)]
    entered_as = {
        s.reads[0]: s.shape for s in statements if s.index_map is IndexMap.RESHAPE and readers.count(s.reads[0]) == 1
    }
    return tuple(
        replace(o, shape=_merged_shape(entered_as.get(o.local, o.shape), depth, rows)) if o.blocked else o
        for o in operands
    )


def _without_merged_ones(statements, operands) -> tuple | None:
    """The operands, each whole one the loop reads without the leading 1s that stood for the merged
    dims, so that it broadcasts against the merged rows' trailing dims; None (no merge) when code
    before or after the loop reads such an operand too, as it needs those 1s kept."""
    read_in_loop = {r for s in statements if s.phase in ("block", "accumulate") for r in s.reads if isinstance(r, str)}
    read_outside = {r for s in statements if s.phase in ("pre", "post") for r in s.reads}
    stripped = []
    for o in operands:
        shape = o.shape
        while not o.blocked and len(shape) > 1 and shape[0] == 1 and o.local in read_in_loop:
            shape = shape[1:]
        if shape != o.shape and o.local in read_outside:
            return None
        stripped.append(replace(o, shape=shape))
    return tuple(stripped)
