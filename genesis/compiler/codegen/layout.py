"""Row layouts: how each value of a row kernel is indexed, shared by the Triton and C backends.

A row kernel iterates over the leading dim (the rows) and, within a row, over
the elements of the trailing dims, the widest trailing shape among the
kernel's row-blocked values. Every value is one of four kinds:

- "full": one value per element of a row (`x[rows, ...]`, broadcast dims allowed);
- "row": one value per row (`(rows, 1, 1)` or a reduction's result);
- "columns": a whole operand broadcast over the rows (a layer_norm weight);
- "scalar": one value for the whole kernel.

Rows may span several leading dims (`row_merge.py`: softmax over the last dim of a
(batch, heads, seq, seq) tensor iterates over batch * heads * seq rows). A full or row
value whose own leading dims broadcast over those (a causal mask of shape (1, 1, seq, seq),
a per-(batch, head) scale of shape (batch, heads, 1, 1)) is read at its own row, which
`row_index` computes from the kernel's row once per row; a value's other dims are indexed as
any row's.

Offsets are expressions over a row index and an element index within the
row; the names and the floor-division operator are the backend's, so the
same arithmetic reads as Triton tiles or as C loop counters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class Unsupported(Exception):
    """The values fit no row layout: the group stays a numpy kernel, and this says why."""


def numel(shape) -> int:
    return math.prod(shape)


def next_power_of_2(n: int) -> int:
    """The least power of 2 at or above n (1 for n <= 1): Triton's block sizes."""
    return 1 << max(0, (n - 1).bit_length())


def strides(shape) -> tuple:
    result, step = [], 1
    for n in reversed(shape):
        result.append(step)
        step *= n
    return tuple(reversed(result))


def right_aligned(shape, rank) -> tuple:
    return (1,) * (rank - len(shape)) + tuple(shape)


def broadcast(shapes) -> list:
    rank = max(len(s) for s in shapes)
    result = [1] * rank
    for shape in shapes:
        for d, n in enumerate(right_aligned(shape, rank)):
            if n != 1:
                if result[d] not in (1, n):
                    raise ValueError(f"shapes {sorted(set(map(tuple, shapes)))} do not broadcast")
                result[d] = n
    return result


def rank_broadcast(statement, read_shapes) -> str | None:
    """Why an elementwise statement over rows cannot read its row-indexed inputs as rows, or None
    (`read_shapes`: per input, its shape when it is indexed by rows, else None).

    Broadcasting aligns shapes from the right: a (rows,) value read by a (rows, n) statement
    varies along the last dim, not the rows, which no row layout indexes."""
    for read, shape in zip(statement.reads, read_shapes):
        if shape is not None and len(shape) < len(statement.shape) and numel(shape) > 1:
            return f"{statement.value} = {statement.op} broadcasts {read} of shape {shape} across ranks"
    return None


def same_positions(source, shape) -> bool:
    """Whether a reshape from `source` to `shape` leaves every element where a row kernel finds it: one
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


def row_index(leading, merged, rows: str = "rows", floordiv: str = "//") -> str:
    """The row of a value whose leading dims `leading` (each 1 or the merged dim's size) broadcast
    over the kernel's rows, which span the dims `merged`, as an expression of the kernel's row
    `rows`: each run of dims the value keeps is the row's index there ((r / inner) % run) times
    the value's own stride of it; a run it broadcasts adds nothing (nor does a dim of size 1)."""
    dims = [(m, n) for m, n in zip(merged, leading) if m != 1]
    sizes, kept = [m for m, _ in dims], [n for _, n in dims]
    terms, dim = [], 0
    while dim < len(dims):
        keeps = kept[dim] != 1
        end = dim
        while end < len(dims) and (kept[end] != 1) == keeps:
            end += 1
        if keeps:
            inner = numel(sizes[end:])
            index = rows if inner == 1 else f"{rows} {floordiv} {inner}"
            if dim > 0:  # `//` (or C's `/`) and `%` bind alike, left to right
                index += f" % {numel(sizes[dim:end])}"
            stride = numel(kept[end:])
            terms.append(index if stride == 1 else f"{index} * {stride}")
        dim = end
    return " + ".join(terms) or "0"


@dataclass(frozen=True)
class Names:
    rows: str = "rows"
    cols: str = "cols"
    floordiv: str = "//"


class RowLayout:
    """The kinds and offsets of a row kernel's values; `values` maps each to (shape, blocked).
    `merged`: the leading dims the rows span, where they span several."""

    def __init__(self, values: dict, names: Names = Names(), merged: tuple = ()):
        self.names = names
        self.merged = tuple(merged)
        blocked = [shape for shape, is_blocked in values.values() if is_blocked]
        if not blocked:
            raise Unsupported("no value is read by rows")
        self.rank = max(len(shape) for shape in blocked)
        full = [shape[1:] for shape in blocked if len(shape) == self.rank and numel(shape[1:]) > 1]
        try:
            self.trailing = tuple(broadcast(full)) if full else (1,) * (self.rank - 1)
        except ValueError as error:
            raise Unsupported(str(error)) from None
        self.row_elements = numel(self.trailing)
        self.indices: dict[int, str] = {}  # trailing dim -> the expression of its index
        for shape, is_blocked in values.values():
            self.kind_of(shape, is_blocked)  # raises for shapes that fit no layout

    def kind_of(self, shape, blocked=True) -> str:
        if not blocked:
            if numel(shape) == 1:
                return "scalar"
            if len(shape) <= self.rank and right_aligned(shape, self.rank)[0] == 1:
                return "columns"
            raise Unsupported(f"a whole operand of shape {shape} does not broadcast over the rows")
        if numel(shape[1:]) == 1:
            return "row"
        if len(shape) == self.rank and all(n in (1, t) for n, t in zip(shape[1:], self.trailing)):
            return "full"
        raise Unsupported(f"a value of shape {shape} is neither a full row nor one value per row")

    def _index(self, dim: int) -> str:  # dim counts trailing dims from 0
        inner = numel(self.trailing[dim + 1 :])
        cols, div = self.names.cols, self.names.floordiv
        expression = cols if inner == 1 else f"{cols} {div} {inner}"
        if dim > 0:  # `//` (or C's `/`) and `%` bind alike, left to right
            expression += f" % {self.trailing[dim]}"
        self.indices[dim] = expression
        return f"index{dim}"

    def index_of(self, dim: int) -> str:
        """The name of trailing dim `dim`'s index (0 for the first trailing dim); see index_lines."""
        return self._index(dim)

    def trailing_offsets(self, trailing) -> str:
        """The offset within a row of `trailing`'s element at each position of the row."""
        if tuple(trailing) == self.trailing:
            return self.names.cols
        terms = [
            f"{self._index(d)} * {stride}" if stride != 1 else self._index(d)
            for d, (n, stride) in enumerate(zip(trailing, strides(trailing)))
            if n != 1
        ]
        return " + ".join(terms) or "0"

    def row_of(self, leading=None) -> str:
        """A row-indexed value's own row: the kernel's, or where its leading dims `leading` broadcast
        over some of the merged ones, the row they give (`row_index`)."""
        if leading is None or tuple(leading) == self.merged:
            return self.names.rows
        return row_index(leading, self.merged, self.names.rows, self.names.floordiv)

    def row_start(self, shape, leading=None) -> str:
        """Where a row-indexed value of `shape` has its row's first element."""
        row, size = self.row_of(leading), numel(shape[1:])
        if size == 1:
            return row
        return f"({row}) * {size}" if " " in row else f"{row} * {size}"

    def offsets(self, shape, blocked=True, leading=None) -> str | None:
        """The offsets of a value of `shape` in its own buffer; None for a scalar (read once).
        `leading`: a row-indexed value's own leading dims over the merged ones (see `row_of`)."""
        kind = self.kind_of(shape, blocked)
        if kind == "scalar":
            return None
        if kind == "row":
            return self.row_of(leading)
        if kind == "columns":
            return self.trailing_offsets(right_aligned(shape, self.rank)[1:])
        return f"{self.row_start(shape, leading)} + {self.trailing_offsets(shape[1:])}"

    def index_lines(self) -> list[tuple[str, str]]:
        """(name, expression) for each trailing-dim index the offsets use."""
        return [(f"index{d}", self.indices[d]) for d in sorted(self.indices)]
