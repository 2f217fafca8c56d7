"""Reductions over any set of dims in Triton: kept positions down the tile, reduced ones across it.

The row layouts reduce a row's trailing dims, or the rows themselves. A reduction over other dims
(a mean over the tokens of (batch, tokens, features), BatchNorm's per-channel sums over
(batch, height, width)) takes this layout instead: the kernel's positions are the kept dims'
(numbered `k`, a block of them per program, along the tile's first axis) by the reduced dims'
(`r`, walked in blocks along the second axis, each block folded into the accumulators). Every
value is read at offsets that unravel `k` and `r` into the dims it has (a broadcast dim adds
nothing), so any dims may be kept or reduced.

Statements split in two: "inner" ones, which the reductions read (transitively), at every
position of the reduced source's shape; "outer" ones, the rest (what reads the reductions, and
values of the kept positions' shapes), once per kept position, after the loop. All reductions of
a group reduce the same dims of the same shape.
"""

from __future__ import annotations

from genesis.compiler.codegen.kernel import KernelSpec
from genesis.compiler.codegen.layout import Unsupported, next_power_of_2, numel, right_aligned, strides
from genesis.ops.op import IndexMap, Kind

BLOCK_ELEMENTS = 4096  # a tile's elements


def _elementwise_or_reduction(s) -> bool:
    """Elementwise statements, reductions, and expands (a view of its source's tile: every value
    is read at offsets of its own shape, so a broadcast is its source read in place)."""
    return s.kind in (Kind.ELEMENTWISE, Kind.REDUCTION) or s.index_map is IndexMap.BROADCAST


def _linear(index, shape) -> str:
    """The row-major offset of per-dim `index` expressions in `shape`."""
    terms = [f"({i}) * {stride}" for i, n, stride in zip(index, shape, strides(shape)) if n != 1 and i != "0"]
    return " + ".join(terms) or "0"


class ReduceLayout:
    template = "triton_reduce.py.j2"

    def __init__(self, spec: KernelSpec):
        self.spec = spec
        shapes = {o.local: o.shape for o in spec.operands}
        shapes.update((s.value, s.shape) for s in spec.statements)
        self.shapes = shapes
        # views that move elements, of an operand (or of such a view): read from the operand at
        # the offsets the chain of views gives, as their own tiles (the attention's heads merged)
        operand_locals = {o.local for o in spec.operands}
        self.chains = {}  # view value -> (operand local, [(index map, attrs, shape before, after)])
        for s in spec.statements:
            source = s.reads[0] if s.reads else None
            if s.index_map in (IndexMap.PERMUTE, IndexMap.RESHAPE) and (
                source in operand_locals or source in self.chains
            ):
                root, chain = self.chains.get(source, (source, []))
                self.chains[s.value] = (root, [*chain, (s.index_map, s.attrs, tuple(shapes[source]), tuple(s.shape))])
        reductions = [s for s in spec.statements if s.kind is Kind.REDUCTION]
        if not reductions or not all(_elementwise_or_reduction(s) or s.value in self.chains for s in spec.statements):
            raise Unsupported("not elementwise statements around reductions")
        sources = {(tuple(shapes[s.reads[0]]), tuple(sorted(s.attrs["dims"]))) for s in reductions}
        if len(sources) != 1:
            raise Unsupported("reductions of different shapes or over different dims")
        ((self.full, self.reduced),) = sources
        self.rank = len(self.full)
        self.reduced = tuple(d % self.rank for d in self.reduced) if self.rank else ()
        keepdims = {bool(s.attrs.get("keepdim")) for s in reductions}
        if len(keepdims) != 1:
            raise Unsupported("reductions that keep their dims and reductions that drop them")
        # the values after the reductions broadcast among themselves in the reductions' rank: the
        # source's with 1s where it reduced (keepdim), or without those dims; frame dim i is dim
        # `self.frame_dims[i]` of the source
        self.kept_shape = tuple(1 if d in self.reduced else n for d, n in enumerate(self.full))
        self.frame_dims = (
            tuple(range(self.rank)) if keepdims.pop() else tuple(d for d in range(self.rank) if d not in self.reduced)
        )
        self.frame = tuple(self.full[d] if d not in self.reduced else 1 for d in self.frame_dims)
        # outer: the reductions, what reads them (transitively), and what only those read; the rest
        # is inner, computed at every position in the loop (what the reductions read among it)
        values = {s.value for s in spec.statements}
        after = set()
        for s in spec.statements:
            if s.kind is Kind.REDUCTION or any(r in after for r in s.reads):
                after.add(s.value)
        needed_by = {"inner": set(), "outer": set()}
        for s in reversed(spec.statements):
            if s.kind is Kind.REDUCTION or s.value in needed_by["inner"]:
                side = "inner"
            elif s.value in after or s.value in needed_by["outer"]:
                side = "outer"
            else:
                continue  # read by neither: computed at every position, an output of its own
            needed_by[side].update(r for r in s.reads if isinstance(r, str) and r in values and r not in after)
        both = needed_by["inner"] & needed_by["outer"]
        if both:
            raise Unsupported(f"{sorted(both)[0]} is read both before and after the reductions")
        self.outer = after | needed_by["outer"]
        for s in spec.statements:
            if s.kind is Kind.REDUCTION and s.reads[0] in self.outer:
                raise Unsupported(f"{s.value} = {s.op} reduces a value made after a reduction")
            if (
                s.value in self.outer
                and s.kind is not Kind.REDUCTION
                and any(r in values and r not in self.outer for r in s.reads)
            ):
                raise Unsupported(f"{s.value} = {s.op} reads a value of every position after the reductions")
            if s.value in self.chains and not self.read_as_a_tile(s.value):
                continue  # a step of a chain of views: only the chain's last view is a tile
            self._check_shape(s.value, self.frame if s.value in self.outer else self.full)
        self.reads = {}  # operand local -> "inner" / "outer" / "both"
        for value in self.chains:
            if value in self.outer:
                raise Unsupported(f"{value}, a view that moves an operand's elements, is read after the reductions")
        for s in spec.statements:
            if s.value in self.chains:  # read through its chain, not at the operand's own offsets
                continue
            level = "outer" if s.value in self.outer and s.kind is not Kind.REDUCTION else "inner"
            for r in s.reads:
                if isinstance(r, str) and r in {o.local for o in spec.operands}:
                    self.reads[r] = level if self.reads.get(r, level) == level else "both"
        for local, level in self.reads.items():
            if level in ("inner", "both"):
                self._check_shape(local, self.full)
            if level in ("outer", "both"):
                self._check_shape(local, self.frame)
        for v in spec.outputs:
            target = self.frame if v in self.outer else self.full
            aligned = right_aligned(shapes[v], len(target))
            if any(n != t for n, t in zip(aligned, target)):
                raise Unsupported(f"{v}, an output, is broadcast over the positions that write it")
        self.kept = numel(self.frame)
        self.reduced_count = numel(self.full) // self.kept
        self.indices: dict[str, str] = {}

    def _check_shape(self, name, target):
        shape = self.shapes[name]
        if len(shape) > len(target) or any(n not in (1, t) for n, t in zip(right_aligned(shape, len(target)), target)):
            raise Unsupported(f"{name} of shape {list(shape)} does not broadcast to {list(target)}")

    def why_not(self):
        if numel(self.full) >= 1 << 31:
            return "a reduction over 2**31 elements or more"
        return None

    def is_outer(self, value) -> bool:
        return value in self.outer

    # ---- offsets ------------------------------------------------------------------------------
    def _index(self, d: int) -> str:
        """The expression of dim d's index at each position: from `ks` for a kept dim, from `rs` for
        a reduced one, named `index<d>` (the lines `index_lines` gives)."""
        dims = [e for e in range(self.rank) if (e in self.reduced) == (d in self.reduced)]
        sizes = [self.full[e] for e in dims]
        position = dims.index(d)
        inner = numel(sizes[position + 1 :])
        name = "rs" if d in self.reduced else "ks"
        expression = name if inner == 1 else f"{name} // {inner}"
        if position > 0:
            expression += f" % {sizes[position]}"
        self.indices[d] = expression
        return f"index{d}"

    def offsets(self, shape, outer: bool) -> str:
        """The offsets of a value of `shape` at each position: in the source's frame for a value
        before the reductions, in the reductions' (`frame_dims`) for one after them."""
        dims = self.frame_dims if outer else tuple(range(self.rank))
        aligned = right_aligned(shape, len(dims))
        terms = [
            self._index(d) if stride == 1 else f"{self._index(d)} * {stride}"
            for d, n, stride in zip(dims, aligned, strides(aligned))
            if n != 1
        ]
        if outer:
            return " + ".join(terms) or "ks * 0"
        # a whole tile of positions, even where the value varies along one axis only: a store's
        # pointers must have its mask's shape (a value of the source's shape with every reduced
        # dim of size 1 is stored at r = 0 alone)
        reduced = any(d in self.reduced and n != 1 for d, n in zip(dims, aligned))
        kept = any(d not in self.reduced and n != 1 for d, n in zip(dims, aligned))
        return " + ".join(terms + ([] if kept else ["ks * 0"]) + ([] if reduced else ["rs * 0"]))

    def read_as_a_tile(self, value) -> bool:
        """Whether a statement other than a view in its chain reads `value`, or it is an output."""
        readers = (s for s in self.spec.statements if value in s.reads)
        return value in self.spec.outputs or any(s.value not in self.chains for s in readers)

    def chain_offsets(self, value) -> str:
        """Where each position's element of `value`, a chain of views of an operand, lies in the
        operand: its index per dim, walked back through the views (a permute moves indices to
        the source's dims, a reshape ravels them and unravels them in the source's shape)."""
        root, chain = self.chains[value]
        shape = self.shapes[value]
        aligned = right_aligned(shape, self.rank)
        index = [self._index(d) if n != 1 else "0" for d, n in enumerate(aligned)][self.rank - len(shape) :]
        for index_map, attrs, before, after in reversed(chain):
            if index_map is IndexMap.PERMUTE:
                moved = ["0"] * len(before)
                for d, source_dim in enumerate(attrs["dims"]):
                    moved[source_dim] = index[d]
                index = moved
            else:  # the same elements in the same row-major order
                flat = _linear(index, after)
                index = [f"(({flat}) // {inner}) % {n}" if n != 1 else "0" for n, inner in zip(before, strides(before))]
        return f"{_linear(index, self.shapes[root])} + ks * 0 + rs * 0"  # a whole tile, for a store too

    def kept_index_lines(self) -> list[tuple[str, str]]:
        return [(f"index{d}", e) for d, e in sorted(self.indices.items()) if d not in self.reduced]

    def reduced_index_lines(self) -> list[tuple[str, str]]:
        return [(f"index{d}", e) for d, e in sorted(self.indices.items()) if d in self.reduced]

    def reduce_mask(self, shape) -> str:
        return "mask"

    def context(self) -> dict:
        block_r = max(16, min(next_power_of_2(self.reduced_count), 1024))
        block_k = max(1, min(next_power_of_2(self.kept), BLOCK_ELEMENTS // block_r))
        return {"kept": self.kept, "reduced": self.reduced_count, "block_k": block_k, "block_r": block_r}
