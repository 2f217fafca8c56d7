"""A group as several Triton kernels that run one after another, and the launcher that runs them.

Some groups are more than one kernel's worth of work on a GPU: products before the loop over the
rows (`triton_matmul.split`), or statements after the loop over whole arrays of shapes of their
own, such as the optimizer update of every parameter after a gradient norm
(`after_the_loop`). Each part is a kernel description of its own; the values one part makes and
another reads go through memory: the group's output where the value is one, else a buffer the
launcher allocates. The launcher keeps the group's signature, so the program calls it as it
calls any kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from genesis.compiler.codegen.kernel import KernelSpec, Operand, Statement
from genesis.compiler.codegen.layout import numel, right_aligned
from genesis.compiler.codegen.numpy_dialect import np_dtype


@dataclass(frozen=True)
class Stage:
    """One kernel of a staged group: its launcher `name`, called with `reads` (operand locals of
    the group, or values earlier stages made), then the values it `writes`."""

    name: str
    reads: tuple
    writes: tuple


def launcher(spec: KernelSpec, stages: list[Stage], made: dict) -> str:
    """The group's launcher: `made` maps each value that a later stage reads to its statement; it
    is written into the group's output where it is one, else into a buffer of its own. Every
    other value a stage writes is an output of the group."""
    lines = []
    for value, s in made.items():
        if value in spec.outputs:
            lines.append(f"{value} = out_{value}")
        else:
            lines.append(f"{value} = empty({s.shape!r}, {np_dtype(s.dtype)})  # read by a later kernel")
    for stage in stages:
        writes = [value if value in made else f"out_{value}" for value in stage.writes]
        lines.append(f"{stage.name}({', '.join((*stage.reads, *writes))})")
    params = [o.local for o in spec.operands] + [f"out_{v}" for v in spec.outputs]
    doc = f'"""{spec.group}: {spec.summary()}, in {len(stages)} kernels"""'
    return f"def {spec.name}({', '.join(params)}):\n    {doc}" + "".join(f"\n    {line}" for line in lines)


def stage_of(spec: KernelSpec) -> Stage:
    """How a staged group's launcher calls the launcher of one of its parts."""
    return Stage(spec.name, tuple(o.local for o in spec.operands), tuple(spec.outputs))


def stays_in_the_loop(s: Statement, trailing: tuple, rank: int) -> bool:
    """Whether a statement after the loop is one value, or one per column of the rows, as the
    loop's accumulators are: what the loop's kernel computes once after the loop."""
    return numel(s.shape) == 1 or right_aligned(s.shape, rank) == (1, *trailing)


def after_the_loop(spec: KernelSpec, trailing: tuple, rank: int) -> tuple[KernelSpec, list[KernelSpec]] | None:
    """The loop's kernel (its blocks, sums and the single values after them), and the statements
    after the loop over whole arrays of other shapes as elementwise kernels, each over one shape;
    None when every statement after the loop stays in the loop's kernel.

    A statement goes into the last kernel of its shape that runs after everything it reads is
    made, else into a new one at the end; a value that may share its output's memory with an
    operand (an optimizer's in-place update, `wrapper._donor`) is written only after every
    statement that reads such an operand has run."""
    after = [s for s in spec.statements if s.phase == "post" and not stays_in_the_loop(s, trailing, rank)]
    if not after:
        return None
    moved = {s.value for s in after}
    if any(r in moved for s in spec.statements if s.value not in moved for r in s.reads):
        return None  # the loop's kernel would read a value made after it
    stage_of_value, stages = {}, []  # value -> index in `stages`; stages: (shape, [statements])
    operand_shapes = {o.local: (o.shape, o.dtype) for o in spec.operands}
    readers_of_operands = []  # (stage, shape, dtype) of each statement placed that reads an operand
    for s in after:
        earliest = max((stage_of_value.get(r, -1) for r in s.reads if isinstance(r, str)), default=-1)
        if s.value in spec.outputs:  # it may be written over an operand of its shape and dtype
            earliest = max(
                [earliest]
                + [index for index, shape, dtype in readers_of_operands if shape == s.shape and dtype is s.dtype]
            )
        index = next((i for i in range(len(stages) - 1, max(earliest, 0) - 1, -1) if stages[i][0] == s.shape), None)
        if index is None:
            stages.append((s.shape, []))
            index = len(stages) - 1
        stages[index][1].append(s)
        stage_of_value[s.value] = index
        readers_of_operands += [(index, *operand_shapes[r]) for r in s.reads if r in operand_shapes]
    read_later = {r for s in after for r in s.reads if isinstance(r, str)}
    in_the_loop = tuple(s for s in spec.statements if s.value not in moved)
    loop_reads = {r for s in in_the_loop for r in s.reads}
    loop = replace(
        spec,
        name=f"{spec.name}_loop",
        operands=tuple(o for o in spec.operands if o.local in loop_reads),
        statements=in_the_loop,
        outputs=tuple(s.value for s in in_the_loop if s.value in spec.outputs or s.value in read_later),
    )
    shapes_dtypes = {s.value: s for s in spec.statements}
    kernels = []
    for number, (shape, statements) in enumerate(stages):
        values = {s.value for s in statements}
        reads = list(dict.fromkeys(r for s in statements for r in s.reads if isinstance(r, str) and r not in values))
        operands = tuple(
            next(o for o in spec.operands if o.local == r)
            if r in operand_shapes
            else Operand(r, r, shapes_dtypes[r].shape, shapes_dtypes[r].dtype, False)
            for r in reads
        )
        later = {r for _, others in stages[number + 1 :] for s in others for r in s.reads}
        outputs = tuple(s.value for s in statements if s.value in spec.outputs or s.value in later)
        kernels.append(
            replace(
                spec,
                name=f"{spec.name}_after{number}",
                mode="flat",
                rows=numel(shape),
                operands=tuple(replace(o, blocked=False) for o in operands),
                statements=tuple(replace(s, phase="block") for s in statements),
                outputs=outputs,
                merged_dims=(),
                not_merged=None,
            )
        )
    return loop, kernels
