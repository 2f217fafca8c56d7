"""Lower a fusion group to a small kernel description that a template renders.

The description says, in backend-neutral terms, how the group iterates and
what each statement computes:

- `mode`: "flat" (every row-blocked value has one shape: iterate over its
  elements), "rows" (iterate over the leading dim, each value keeping its
  trailing dims) or "whole" (0-d work, no loop);
- operands (graph values read from outside: row-blocked or whole), outputs
  (values read after the kernel), and per statement its op, operands,
  attributes, dtypes and phase ("block" inside the loop, "accumulate" for a
  reduction over the rows, "post" after the loop).

Dtypes follow eager exactly: a statement computes in the op's compute dtype
(fp16/bf16 compute in fp32) and a value whose eager dtype is fp16/bf16 is
rounded to it right away, so the kernel's numbers are eager's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from genesis import dtypes
from genesis.compiler.codegen.layout import numel
from genesis.compiler.codegen.row_merge import merge_leading_dims
from genesis.compiler.ir import Graph
from genesis.compiler.passes.fusion import read_mode
from genesis.ops.op import OPS, Combine, IndexMap, Kind, Op, helpers_of

# per value and block: 64K elements (256 KB in float32). 128K measured 10-17% faster on the fusion
# benchmarks (less Python per element, which the GIL serialises across the threads), but its scratch
# raised a small training step's peak memory from 0.58x to 0.73x of eager's; 256K spills the cache.
BLOCK_ELEMENTS = 1 << 16


def helpers(specs, dialect: str) -> list[tuple[str, str]]:
    """(file name, source) of the helper functions that the `dialect` snippets of these kernels'
    statements call (`ops/helpers/`), each once: what a program defines before its kernels."""
    return helpers_of([s.record for spec in specs for s in spec.statements], dialect)


def kernel_dtype(dtype: dtypes.DType) -> dtypes.DType:
    """The dtype a value is held in inside a kernel: fp16/bf16 as fp32, the rest as themselves."""
    return dtypes.float32 if dtype.is_low_precision else dtype


def compute_dtype(graph: Graph, node) -> dtypes.DType | None:
    op = OPS[node.op]
    metas = [graph[x].meta if isinstance(x, str) else x for x in node.inputs]
    compute, _ = op.dtype(metas, **node.attrs)
    if compute is not None and op.upcasts_low_precision:
        compute = kernel_dtype(compute)
    return compute


@dataclass(frozen=True)
class Operand:
    value: str
    local: str  # the kernel's name for it: one per way it is read
    shape: tuple
    dtype: dtypes.DType
    blocked: bool  # read block by block (else whole)
    # over merged rows: its own leading dims where they broadcast over the merged ones (1 where
    # broadcast; a (seq, seq) mask over (batch, heads, seq) rows: (1, 1, seq)). Its array holds
    # `stored_shape`, and each merged row reads the row `layout.row_index` gives
    leading: tuple | None = None

    @property
    def stored_shape(self) -> tuple:
        """The shape of its array as the kernel indexes it: its own rows, then the row's dims."""
        return self.shape if self.leading is None else (numel(self.leading),) + tuple(self.shape[1:])


@dataclass(frozen=True)
class Statement:
    value: str
    op: str
    reads: tuple  # per input: a local name (a kernel value or an operand) or a Python literal
    attrs: dict
    shape: tuple
    dtype: dtypes.DType  # the value's eager dtype
    compute: dtypes.DType | None
    input_dtypes: tuple  # kernel dtype of each input (None for literals)
    phase: str  # "pre" (before the loop), "block", "accumulate" or "post" (after the loop)
    # a sum over merged rows that keeps some of the merged dims (a (seq, features) table's gradient,
    # summed over the batch): its own leading dims over them, 1 where it sums (see Operand.leading)
    leading: tuple | None = None

    @property
    def literal_dtype(self) -> dtypes.DType:
        """The dtype a Python number read by this statement takes, as eager's dispatch gives it: the
        compute dtype, or the result's for an op that computes on its operands as they are (`where`
        picks between values of the result's dtype; uint8 `where(c, -2, x)` stores 254)."""
        return self.compute if self.compute is not None else self.dtype

    @property
    def record(self) -> Op:
        return OPS[self.op]

    @property
    def kind(self) -> Kind:
        return OPS[self.op].kind

    @property
    def combine(self) -> Combine | None:
        """How the statement's reduction folds partial results (None: not blockwise, or no reduction)."""
        return OPS[self.op].combine

    @property
    def index_map(self) -> IndexMap | None:
        """How the statement's view reads its source (None: not a view kernels fold)."""
        return OPS[self.op].index_map


@dataclass(frozen=True)
class KernelSpec:
    name: str
    group: str
    mode: str
    rows: int
    block_rows: int
    operands: tuple
    statements: tuple
    outputs: tuple  # value names the kernel writes for later readers
    merged_dims: tuple = ()  # the leading dims the rows span, where several: arrays are reshaped on entry
    not_merged: str | None = None  # why the rows stay over one leading dim, where a reduction wanted several

    @property
    def merged(self) -> bool:
        return bool(self.merged_dims)

    def summary(self) -> str:
        return " -> ".join(s.op for s in self.statements)


def lower(graph: Graph, group, outputs: set, index: int) -> KernelSpec:
    members = set(group.members)
    statements, operands = [], {}
    for name in group.members:
        node = graph[name]
        phase = (
            "accumulate"
            if name in group.accumulators
            else "post"
            if name in group.post
            else "pre"
            if name in group.pre
            else "block"
        )
        reads, input_dtypes = [], []
        for position, x in enumerate(node.inputs):
            if not isinstance(x, str):
                reads.append(x)
                input_dtypes.append(None)
                continue
            producer = graph[x]
            input_dtypes.append(kernel_dtype(producer.dtype))
            if x in members:
                reads.append(x)
                continue
            blocked = (
                group.rows is not None
                and phase not in ("post", "pre")
                and read_mode(graph, group, node, position, inside=False) == "blocked"
            )
            local = f"{x}_{'blocked' if blocked else 'whole'}"
            operands.setdefault(local, Operand(x, local, producer.shape, producer.dtype, blocked))
            reads.append(local)
        statements.append(
            Statement(
                name,
                node.op,
                tuple(reads),
                dict(node.attrs),
                node.shape,
                node.dtype,
                compute_dtype(graph, node),
                tuple(input_dtypes),
                phase,
            )
        )
    operands = tuple(operands.values())
    rows = group.rows
    merged, not_merged = merge_leading_dims(statements, operands, group)
    merged_dims = ()
    if merged is not None:
        statements, operands, rows, merged_dims = merged
    # a view made outside (a transpose) is strided: flattening it would copy it, rows slice it for free
    strided = any(o.blocked and graph[o.value].op in OPS and OPS[graph[o.value].op].kind is Kind.VIEW for o in operands)
    mode, rows = _mode(statements, operands, group, strided, rows)
    widest = max(
        [_row_elements(s.shape, mode) for s in statements if s.phase in ("block", "pre")]
        + [_row_elements(o.shape, mode) for o in operands if o.blocked]
        + [1]
    )
    block_rows = max(1, min(rows, BLOCK_ELEMENTS // widest))  # scratch no larger than the work
    kept = tuple(s.value for s in statements if s.value in outputs)
    name = f"k{index}_" + "_".join(dict.fromkeys(s.op for s in statements))[:48]
    return KernelSpec(
        name, group.name, mode, rows, block_rows, operands, tuple(statements), kept, merged_dims, not_merged
    )


def _mode(statements, operands, group, strided=False, rows=None):
    rows = group.rows if rows is None else rows
    if group.rows is None:
        return "whole", 1
    if strided or any(s.phase == "pre" for s in statements):  # a product before the loop keeps its rows
        return "rows", rows
    block_shapes = {s.shape for s in statements if s.phase == "block"} | {o.shape for o in operands if o.blocked}
    plain = all(OPS[s.op].kind is Kind.ELEMENTWISE for s in statements if s.phase == "block") and all(
        len(s.attrs["dims"]) == len(input_shape(s, statements, operands)) for s in statements if s.phase == "accumulate"
    )  # flattened blocks can only be reduced whole
    whole_operands_scalar = all(numel(o.shape) == 1 for o in operands if not o.blocked)
    # a flat loop reads and sums every value at its own element, not at a row of its own
    own_rows = all(v.leading is None for v in (*operands, *statements))
    if len(block_shapes) == 1 and plain and whole_operands_scalar and own_rows:
        (shape,) = block_shapes
        return "flat", numel(shape)
    return "rows", rows


def input_shape(statement, statements, operands) -> tuple:
    """The shape of the statement's first input (a kernel value or an operand)."""
    read = statement.reads[0]
    for s in statements:
        if s.value == read:
            return s.shape
    return next(o.shape for o in operands if o.local == read)


def _row_elements(shape, mode) -> int:
    if mode == "flat" or not shape:
        return 1
    return numel(shape[1:])
