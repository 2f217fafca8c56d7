"""Which C loops a kernel description becomes: which values live per kernel, per row or per
element, how views fold into indexing, and whether C takes the kernel at all (`Refused` says why).
`c_emit.py` writes the loops; `c_dialect.py` spells values, literals and reductions.

- flat groups: one loop over the elements, every statement a local of the
  loop body, reductions over everything as OpenMP SIMD reductions;
- row groups (a row layout, `layout.py`): a loop over the rows; within a row,
  statements are split into passes over the row's elements wherever a value
  needs a whole row reduced first (softmax: max, then exp and sum, then the
  division). A full-row value that a later pass reads is kept in a per-row
  scratch buffer. Each pass is a nest of loops (`c_nest.py`) whose innermost
  SIMD loop reads every value at an affine offset: a per-channel operand is
  read once per channel, outside it. Reductions over the rows themselves (a
  bias gradient) accumulate into per-chunk partials that the shim combines in
  chunk order, so results do not depend on thread timing; where the SIMD loop
  runs within one partial (a per-channel sum over height and width), it
  reduces into a local first;
- work on single values (an optimizer's bias corrections) is a flat loop over
  one element.
"""

from __future__ import annotations

from genesis import dtypes
from genesis.compiler import native
from genesis.compiler.codegen.c_dialect import FLOAT_ROW_SUM_LIMIT, Refused, propagates_nan
from genesis.compiler.codegen.c_nest import LoopNest, broadcast_strides, collapse
from genesis.compiler.codegen.kernel import KernelSpec, kernel_dtype
from genesis.compiler.codegen.layout import (
    Names,
    RowLayout,
    Unsupported,
    numel,
    rank_broadcast,
    right_aligned,
    same_positions,
    strides,
)
from genesis.ops.op import IndexMap, Kind

__all__ = ["FLOAT_ROW_SUM_LIMIT", "STREAM_BYTES", "KernelLoops", "Refused"]

_LOOP_NAMES = Names(rows="r", cols="j", floordiv="/")

# A kernel that moves at least this many bytes per call (what it reads and writes: the last-level
# cache) writes its float32 rows with streaming stores: a row is computed into a buffer, then copied
# out without first reading the output's lines into the cache. Such a kernel's first rows have left
# the cache by its end anyway; a smaller kernel's output is still there for the next kernel to read
# (a batch_norm's centred input, written by one kernel and read by the next). Measured on the 2-core
# machine (32 MiB L3), in alternating blocks, against streaming every output of 4 MiB or more:
# batch_norm + relu over (32, 64, 32, 32) 0.58x (1.65 -> 1.04 ms) in training, 0.65x in eval mode;
# layer_norm over (1024, 1024) and (2048, 1024) and softmax over (2048, 1024) 0.81-0.90x. At this
# size and above streaming still wins for layer_norm ((4096, 1024): plain stores 1.07-1.20x slower,
# (16384, 1024): 1.2-1.6x) but not for softmax (plain stores 0.84-0.88x at both sizes): telling the
# two apart would take more than their sizes.
STREAM_BYTES = native.last_level_cache_bytes()


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
        # operands broadcast over some of the merged leading dims: their own leading dims (layout.row_of)
        self.leading = {o.local: o.leading for o in spec.operands if o.leading is not None}
        inputs.update((s.value, (s.shape, kernel_dtype(s.dtype), True)) for s in self.pre)
        self.inputs = {name: value for name, value in inputs.items() if name in self._read_names()}
        for s in self.statements:  # a whole operand reshaped into rows reads as rows of that shape
            source = s.reads[0]
            if (
                s.index_map is IndexMap.RESHAPE
                and source in self.inputs
                and not self.inputs[source][2]
                and numel(self.inputs[source][0]) == numel(s.shape)
                and self._readers(source) == 1
            ):
                self.inputs[source] = (s.shape, self.inputs[source][1], True)
            elif (  # a row-blocked operand (contiguous: the shim passes it so) reshaped within its rows
                s.index_map is IndexMap.RESHAPE
                and source in self.inputs
                and source in {o.local for o in spec.operands}
                and self.inputs[source][2]
                and self._readers(source) == 1
                and numel(self.inputs[source][0]) == numel(s.shape)
                and tuple(self.inputs[source][0][:1]) == tuple(s.shape[:1])
            ):
                self.inputs[source] = (s.shape, self.inputs[source][1], True)
        self.shapes = {s.value: s.shape for s in self.statements}
        for s in self.statements:  # splitting a row's dims (heads out of features), for output only:
            source = s.reads[0]  # the same elements in the same order, stored where its source would be
            if (
                s.index_map is IndexMap.RESHAPE
                and s.phase == "block"
                and self._readers(s.value) == 0
                and isinstance(source, str)
                and self._shape_of(source)[:1] == s.shape[:1]
                and numel(self._shape_of(source)[1:]) == numel(s.shape[1:])
            ):
                self.shapes[s.value] = self._shape_of(source)
        self.permuted = {}  # a permute of a row's dims, only stored: computed as its source, stored permuted
        for s in self.statements:
            if s.index_map is IndexMap.PERMUTE:
                if s.attrs["dims"][0] != 0 or self._readers(s.value) or not isinstance(s.reads[0], str):
                    raise Refused(f"{s.value} = permute moves the rows, or a later statement reads it")
                self.shapes[s.value] = self._shape_of(s.reads[0])
                self.permuted[s.value] = (tuple(s.attrs["dims"]), s.shape)
        for s in self.statements:  # any other reshape is computed as its source at the same position
            if s.index_map is IndexMap.RESHAPE and not same_positions(self._shape_of(s.reads[0]), self.shapes[s.value]):
                raise Refused(
                    f"{s.value} = reshape {self._shape_of(s.reads[0])} -> {self.shapes[s.value]} "
                    f"moves elements to other positions of the loop"
                )
        values = {name: (shape, blocked) for name, (shape, _, blocked) in self.inputs.items()}
        values.update((s.value, (self.shapes[s.value], True)) for s in self.statements if s.phase == "block")
        try:
            self.layout = None if self.flat else RowLayout(values, _LOOP_NAMES, spec.merged_dims)
        except Unsupported as error:
            raise Refused(str(error)) from None
        self.row_elements = 1 if self.flat else self.layout.row_elements
        # big float32 outputs, one per element of a row: written a row at a time around the caches
        self.streamed = (
            set()
            if self.flat or self.bytes_moved() < STREAM_BYTES
            else {
                s.value
                for s in self.statements
                if s.phase == "block"
                and s.value in self.outputs
                and s.dtype is dtypes.float32
                and s.value not in self.permuted
                and tuple(self.shapes[s.value][1:]) == self.layout.trailing
            }
        )
        for value in self.permuted:
            if self.flat or tuple(self.shapes[value][1:]) != self.layout.trailing:
                raise Refused(f"{value} = permute of a value that is not one element per row position")
        self.level = {}
        for name, (shape, _, blocked) in self.inputs.items():
            self.level[name] = self._level_of_shape(shape, blocked)
        for s in self.statements:
            self.level[s.value] = self._level_of(s)
        self.nest = None if self.flat else self._nest()

    def bytes_moved(self) -> int:
        """What one call reads from and writes to row-blocked arrays."""
        own_rows = {name: numel(leading) for name, leading in self.leading.items()}  # a mask's rows, read once
        read = sum(
            numel(shape[1:]) * own_rows.get(name, shape[0] if shape else 1) * dtype.itemsize
            for name, (shape, dtype, blocked) in self.inputs.items()
            if blocked
        )
        stored = (s for s in self.statements if s.phase == "block" and s.value in self.outputs)
        return read + sum(numel(s.shape) * s.dtype.itemsize for s in stored)

    # ---- checks -----------------------------------------------------------------------------
    def _readers(self, name) -> int:
        return sum(r == name for s in self.statements for r in s.reads)

    def _read_names(self) -> set:
        return {r for s in self.statements for r in s.reads if isinstance(r, str)}

    def _check(self, s) -> None:
        if s.kind is Kind.VIEW:
            if s.index_map is None:
                raise Refused(f"{s.value} = {s.op}: only reshape, expand and permute fold into C indexing")
            return
        if s.kind is Kind.MATMUL:
            raise Refused(f"{s.value} = {s.op}: a matmul inside the loop")
        if s.kind is Kind.REDUCTION:
            if s.combine is None or s.compute is None:
                raise Refused(f"{s.value} = {s.op}: no combine for C's accumulators")
            if propagates_nan(s.combine) and not s.compute.is_floating_point:
                raise Refused(f"{s.value} = {s.op}: integer extrema stay numpy kernels")
            return
        if "c" not in s.record.codegen:
            raise Refused(f"{s.op} has no C snippet")

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
        kind = s.kind
        if s.phase == "accumulate":
            return 0
        if self.flat:  # every statement of a flat loop is computed per element (x + 1 over one element)
            return 2
        if kind is Kind.REDUCTION:
            source = self._shape_of(s.reads[0])
            if tuple(s.attrs["dims"]) != tuple(range(1, len(source))):
                rows = f" (rows over several leading dims: {self.spec.not_merged})" if self.spec.not_merged else ""
                raise Refused(f"{s.value} = {s.op} reduces dims {s.attrs['dims']}, not all trailing dims{rows}")
            if self._level_of_read(s.reads[0]) == 2 and tuple(source[1:]) != self.layout.trailing:
                raise Refused(f"{s.value} = {s.op} reduces a broadcast value")
            return 1
        if kind is Kind.VIEW:
            return self._level_of_shape(self.shapes[s.value], True)
        why = rank_broadcast(
            s,
            [
                self._shape_of(r) if isinstance(r, str) and (r not in self.inputs or self.inputs[r][2]) else None
                for r in s.reads
            ],
        )
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
    def _nest(self) -> LoopNest:
        """The loops over a row's elements, from the steps of every value the loops index: level-2
        operands, stored values and partials kept per element (see `c_nest.py`)."""
        rank, trailing = self.layout.rank, self.layout.trailing
        steps, self.bases = {}, {}
        for name, (shape, _, blocked) in self.inputs.items():
            if self.level[name] == 2:
                steps[name] = broadcast_strides(right_aligned(shape, rank)[1:])
                self.bases[name] = self.layout.row_start(shape, self.leading.get(name)) if blocked else None
        for s in self.statements:
            if s.phase == "block" and s.value in self.outputs and self.level[s.value] == 2:
                shape = self.shapes[s.value]
                steps[s.value] = broadcast_strides(shape[1:])
                self.bases[s.value] = f"r * {numel(shape[1:])}"
            if s.phase == "accumulate" and self.partial_size(s) > 1:  # kept dims: theirs, reduced: none
                reduced = {d - 1 for d in s.attrs["dims"] if d > 0}
                kept = [1 if d in reduced else n for d, n in enumerate(trailing)]
                steps[s.value] = broadcast_strides(kept)
                # a sum that keeps some merged dims adds each row into its own row of the partial
                self.bases[s.value] = None if s.leading is None else self.layout.row_start((0, *kept), s.leading)
        for name, (dims, stored) in self.permuted.items():  # element (i1, ..., ik) to (i[dims[1]], ...)
            stored_steps = dict(zip(dims[1:], strides(stored[1:])))
            steps[name] = tuple(stored_steps[d + 1] for d in range(len(trailing)))
            self.bases[name] = f"r * {numel(stored[1:])}"
        return collapse(trailing, steps)

    def offset(self, name, inner: bool = True) -> str:
        """Where `name`'s element for the current (row, element) lies in its buffer; with `inner`
        false, for a value constant along the SIMD loop, where it lies for the whole of that loop."""
        if name in self.inputs:
            shape, _, blocked = self.inputs[name]
        else:
            shape, blocked = self.shapes[name], True
        if self.flat:
            return "j" if blocked else "0"
        if name in self.nest.steps:
            return self.nest.offset(name, self.bases[name], inner)
        return self.layout.offsets(shape, blocked, self.leading.get(name)) or "0"

    # ---- partials of reductions over the rows -----------------------------------------------------
    def partial_size(self, s) -> int:
        source = self._shape_of(s.reads[0])
        # the element loop visits every element of the row; a value broadcast within the row (a
        # (rows, 2, 1) value in (rows, 2, 8) rows) would be added once per copy
        if not self.flat and self._level_of_read(s.reads[0]) == 2 and tuple(source[1:]) != self.layout.trailing:
            raise Refused(f"{s.value} = {s.op} accumulates {s.reads[0]}, which is broadcast within its rows")
        size = numel(s.shape)
        if size == 1:
            return 1
        if (
            self.flat
            or 0 not in s.attrs["dims"]
            or self._level_of_read(s.reads[0]) != 2
            or tuple(source[1:]) != self.layout.trailing
        ):
            raise Refused(f"{s.value} = {s.op} over dims {s.attrs['dims']} keeps a shape C does not index")
        return size
