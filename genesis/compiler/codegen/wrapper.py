"""The program wrapper: one generated function that runs a graph's kernels and library calls in order.

Steps are the fusion groups (one kernel each) and the nodes outside any group
(library calls that run the op's eager kernel), in an order that respects
their data dependencies. The memory plan gives each kernel output a buffer:
a fresh one, or one whose values are all dead (liveness over the steps,
counting views of a buffer as keeping it alive), so activations are freed as
soon as their last reader has run. Graph outputs are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from genesis import dtypes
from genesis.compiler.codegen.kernel import lower
from genesis.compiler.codegen.numpy_backend import render_kernel
from genesis.compiler.codegen.numpy_dialect import np_dtype, numpy_snippet
from genesis.compiler.codegen.numpy_dialect import view as numpy_view
from genesis.compiler.ir import CONSTANT, INPUT, Graph
from genesis.compiler.templates import render
from genesis.ops.op import OPS, IndexMap, Kind
from genesis.runtime.memory import POOLED_FROM
from genesis.version import __version__

CODEGEN_VERSION = 17  # bump whenever generated code changes for the same graph


@dataclass
class Step:
    kind: str  # "kernel" or "library"
    reads: list  # graph values it reads
    writes: list  # graph values it defines
    kernel: object = None  # KernelSpec for a kernel step
    node: object = None  # the graph node for a library step
    library_index: int = -1


@dataclass
class ProgramSource:
    source: str
    steps: list
    library_nodes: list  # the nodes whose eager kernels `library[i]` runs
    kernels: list  # KernelSpecs
    stats: dict = field(default_factory=dict)
    native_source: str = ""  # the C backend's kernels


def schedule(graph: Graph) -> list[Step]:
    """Steps in dependency order: each group is one unit, every other op node its own."""
    unit_of, steps = {}, []
    for group in graph.groups:
        for name in group.members:
            unit_of[name] = group.name
    order = nx.DiGraph()
    for node in graph.nodes():
        if node.op in (INPUT, CONSTANT):
            continue
        unit = unit_of.get(node.name, node.name)
        order.add_node(unit)
        for producer in node.value_inputs():
            source = unit_of.get(producer, producer)
            if source != unit and graph[producer].op not in (INPUT, CONSTANT):
                order.add_edge(source, unit)
    groups = {g.name: g for g in graph.groups}
    position = {node.name: i for i, node in enumerate(graph.nodes())}
    first = {g.name: min(position[m] for m in g.members) for g in graph.groups}
    # a collective's start, and the unit that feeds it, run as soon as they can, and its wait when
    # nothing else can (Op.scheduled): the communication overlaps the steps between
    early = {unit for unit in order if unit in graph and _scheduled(graph[unit]) == "early"}
    early |= {source for unit in early for source in order.predecessors(unit)}
    late = {unit for unit in order if unit in graph and _scheduled(graph[unit]) == "late"}
    last = len(position)

    def key(unit):
        if unit in early:
            return -1
        return last + position[unit] if unit in late else first.get(unit, position.get(unit, 0))

    outputs_needed = _read_outside(graph)
    for unit in nx.lexicographical_topological_sort(order, key=key):
        if unit in groups:
            group = groups[unit]
            spec = lower(graph, group, outputs_needed, len(steps))
            reads = sorted({o.value for o in spec.operands})
            steps.append(Step("kernel", reads, list(spec.outputs), kernel=spec))
        else:
            node = graph[unit]
            steps.append(Step("library", list(node.value_inputs()), [node.name], node=node))
    return steps


def _scheduled(node) -> str | None:
    return OPS[node.op].scheduled if node.op in OPS else None


def _read_outside(graph: Graph) -> set:
    """Values that someone outside their group reads (or that the graph returns)."""
    group_of = {m: g.name for g in graph.groups for m in g.members}
    needed = set(graph.outputs)
    for node in graph.nodes():
        for producer in node.value_inputs():
            if group_of.get(producer) is not None and group_of.get(producer) != group_of.get(node.name):
                needed.add(producer)
    return needed


def inline_view(node) -> bool:
    """Views outside any kernel that the wrapper takes as numpy views: the same calls as their eager
    kernels, minus dispatch (an unrolled LSTM step slices its gates about 200 times)."""
    op = OPS[node.op]
    return op.index_map is not None or (op.kind is Kind.VIEW and "numpy_view" in op.codegen)


@dataclass
class Planned:
    """What every backend's program is built from: the steps, the wrapper's lines, the kernels."""

    steps: list
    library_nodes: list  # the nodes whose eager kernels `library[i]` runs
    lines: list  # the wrapper's body
    kernels: list  # KernelSpecs, in order
    stats: dict  # kernels, library calls, inline views, bytes allocated and reused
    contiguous: frozenset = frozenset()  # values the plan makes C-contiguous: kernel outputs, its buffers


def runs_inline(graph: Graph, node) -> bool:
    """Whether a node outside any group runs its op's kernel line into a buffer of the memory plan
    instead of calling the eager op: a matmul (a fresh numpy result would page-fault on every call:
    0.4-0.7 ms for an attention product of 1-2 MB) whose operands and result are all float32 or all
    float64 (eager multiplies fp16/bf16 in fp32, which the line would not), or an op with a
    "numpy_into" statement (cat: 30 us through the library, 3 as a line) whose operands all have
    its result's dtype, so that the statement computes what eager does."""
    dtypes_ = {graph[x].dtype for x in node.value_inputs()} | {node.dtype}
    op = OPS[node.op]
    if op.kind is Kind.MATMUL:
        return len(dtypes_) == 1 and node.dtype in (dtypes.float32, dtypes.float64)
    return "numpy_into" in op.codegen and len(dtypes_) == 1


def inline_statement(node, arguments) -> str:
    """The line that computes a node that `runs_inline` into its planned buffer, named as the node."""
    op = OPS[node.op]
    if "numpy_into" in op.codegen:
        return op.codegen["numpy_into"](node.attrs).format(inputs=", ".join(arguments), out=node.name)
    return numpy_snippet(op).format(*arguments, out=node.name)


def plan(graph: Graph) -> Planned:
    steps = schedule(graph)
    library_nodes, library_calls = [], 0
    for step in steps:
        if step.kind == "library" and not inline_view(step.node):
            library_calls += 1
            if not runs_inline(graph, step.node):
                step.library_index = len(library_nodes)
                library_nodes.append(step.node)
    lines, allocations = _plan(graph, steps)
    kernels = [s.kernel for s in steps if s.kind == "kernel"]
    views = sum(step.kind == "library" and inline_view(step.node) for step in steps)
    stats = {"kernels": len(kernels), "library_calls": library_calls, "views": views, **allocations}
    return Planned(steps, library_nodes, lines, kernels, stats, _contiguous(graph, steps))


def _contiguous(graph: Graph, steps) -> frozenset:
    """The values `_plan` gives C-contiguous arrays: what kernels write (a fresh buffer, a dead
    value's, or a donor that is contiguous, else a fresh one), what runs inline into a planned
    buffer, and the transposed matrices it copies for their products."""
    made = set()
    for step in steps:
        if step.kind == "kernel":
            made.update(step.writes)
        elif runs_inline(graph, step.node):
            made.add(step.node.name)
        elif inline_view(step.node) and _read_transposed_by_products(graph, step.node):
            made.add(step.node.name)
    return frozenset(made)


def program_context(graph: Graph, planned: Planned, summary: str, stats: dict) -> dict:
    """What every backend's program template is filled with: its header, the wrapper's body, the
    library's nodes and the program's figures (each backend adds its kernels and its own parts)."""
    return {
        "version": __version__,
        "codegen_version": CODEGEN_VERSION,
        "summary": summary,
        "inputs": list(graph.inputs),
        "steps": planned.lines,
        "outputs": list(graph.outputs),
        "library": repr([n.name for n in planned.library_nodes]),
        "stats": repr(stats),
    }


def build_source(graph: Graph) -> ProgramSource:
    planned = plan(graph)
    summary = f"{len(planned.kernels)} kernels, {len(planned.library_nodes)} library calls"
    source = render(
        "numpy_program.py.j2",
        kernels=[render_kernel(k) for k in planned.kernels],
        **program_context(graph, planned, summary, planned.stats),
    )
    return ProgramSource(source, planned.steps, planned.library_nodes, planned.kernels, planned.stats)


def _plan(graph: Graph, steps) -> tuple[list[str], dict]:
    """The wrapper's lines, with a buffer for every kernel output chosen by liveness."""
    last_step = {}
    for index, step in enumerate(steps):
        for value in step.reads:
            last_step[value] = index
    root = {}  # value -> the planned buffer it lives in (views keep their base's buffer alive)
    holders: dict[str, set] = {}  # buffer -> live values in it
    free: list[tuple[int, str]] = []  # (nbytes, buffer value name)
    outputs = set(graph.outputs)
    view_last = _view_last_reads(graph, last_step)
    lines, fresh_bytes, reused = [], 0, 0

    def allocate(value) -> None:
        """A buffer for `value`: a dead value's that fits, else a fresh one (a graph output always)."""
        nonlocal fresh_bytes, reused
        node = graph[value]
        nbytes = _nbytes(node)
        choice = None
        if value not in outputs:
            fitting = [entry for entry in free if entry[0] >= nbytes]
            if fitting:
                choice = min(fitting)
                free.remove(choice)
        # an LSTM step's program has about 700 of these lines: each costs what its call costs
        if choice is None:
            allocator = "np.empty" if nbytes < POOLED_FROM else "empty"
            lines.append(f"{value} = {allocator}({node.shape!r}, {np_dtype(node.dtype)})")
            fresh_bytes += nbytes
            buffer = value
        else:
            buffer = choice[1]
            if graph[buffer].shape == node.shape and graph[buffer].dtype is node.dtype:
                lines.append(f"{value} = buffer_{buffer}")  # the dead value's array as it is
            else:
                lines.append(f"{value} = reuse(buffer_{buffer}, {node.shape!r}, {np_dtype(node.dtype)})")
            reused += nbytes
        if value not in outputs:
            lines.append(f"buffer_{buffer} = {value}" if buffer == value else "")
        root[value] = buffer
        holders.setdefault(buffer, set()).add(value)

    for index, step in enumerate(steps):
        if step.kind == "kernel":
            for value in step.writes:
                node = graph[value]
                donor = _donor(graph, step, value, index, last_step, view_last)
                if donor is not None:
                    lines.append(
                        f"{value} = {donor} if {donor}.flags.c_contiguous and {donor}.flags.writeable "
                        f"else empty({node.shape!r}, {np_dtype(node.dtype)})  # updated in place"
                    )
                    reused += _nbytes(node)
                    continue
                allocate(value)
            spec = step.kernel
            arguments = [o.value for o in spec.operands] + list(spec.outputs)
            lines.append(f"{spec.name}({', '.join(arguments)})")
        else:
            node = step.node
            arguments = node.value_inputs()  # the library call puts the literals back in place
            if inline_view(node):
                op = OPS[node.op]
                view = (
                    numpy_view(op.index_map, arguments[0], node.attrs)
                    if op.index_map is not None
                    else op.codegen["numpy_view"](node.attrs).format(arguments[0])
                )
                if _read_transposed_by_products(graph, node):
                    lines.append(f"{node.name} = np.ascontiguousarray({view})  # {node.op}, copied for its products")
                else:
                    lines.append(f"{node.name} = {view}  # {node.op}")
            elif runs_inline(graph, node):
                allocate(node.name)
                lines.append(inline_statement(node, arguments) + f"  # {node.op}")
            else:
                lines.append(f"{node.name} = library[{step.library_index}]({', '.join(arguments)})  # {node.op}")
            if OPS[node.op].kind is Kind.VIEW and node.value_inputs() and node.value_inputs()[0] in root:
                buffer = root[node.value_inputs()[0]]
                root[node.name] = buffer
                holders[buffer].add(node.name)
        for value in list(step.reads) + list(step.writes):
            if last_step.get(value, -1) <= index and value not in outputs and value in root:
                buffer = root.pop(value)
                holders[buffer].discard(value)
                if not holders[buffer]:
                    free.append((_nbytes(graph[buffer]), buffer))
    lines = [line for line in lines if line]
    return lines, {"bytes_allocated": fresh_bytes, "bytes_reused": reused}


def _read_transposed_by_products(graph: Graph, node) -> bool:
    """Whether a transposed matrix (an LSTM's W_hh.T, a linear layer's W.T) is the right operand of
    several products: the program then copies it once, as OpenBLAS multiplies a transposed right
    operand at about half speed when the left one has few rows (16x128 by 128x512: 39 us against
    23; 32 products per step of an LSTM over 32 tokens)."""
    if OPS[node.op].index_map is not IndexMap.PERMUTE or tuple(node.attrs["dims"]) != (1, 0):
        return False
    readers = [graph[u] for u in graph.users(node.name)]
    return sum(OPS[r.op].kind is Kind.MATMUL and r.inputs[1] == node.name for r in readers) >= 2


def _view_last_reads(graph: Graph, last_step: dict) -> dict:
    """For each graph input, the last step that reads a view of it (a transposed weight)."""
    root, latest = {}, {}
    for node in graph.nodes():
        if node.op in OPS and OPS[node.op].kind is Kind.VIEW and node.value_inputs():
            base = node.value_inputs()[0]
            root[node.name] = root.get(base, base)
            origin = root[node.name]
            latest[origin] = max(latest.get(origin, -1), last_step.get(node.name, -1))
    return latest


def _donor(graph: Graph, step, value, index, last_step, view_last):
    """The input whose buffer `value` (an in-place update of it) may be computed into, or None.

    Safe when nothing reads the input after this kernel, no view of it is read here or later, and
    inside the kernel the input is never read after the statement that writes `value`: within a
    block each row is read before it is overwritten, and after the loop the write comes last."""
    donor = graph.donations.get(value)
    spec = step.kernel
    if donor is None or donor in graph.outputs or spec.mode == "whole":
        return None
    if last_step.get(donor, -1) > index or view_last.get(donor, -1) >= index:
        return None
    if graph[donor].shape != graph[value].shape or graph[donor].dtype is not graph[value].dtype:
        return None
    operands = [o for o in spec.operands if o.value == donor]
    position = next(i for i, s in enumerate(spec.statements) if s.value == value)
    phase = spec.statements[position].phase
    # a block statement must read the input's rows as it writes them; after the loop, whole is whole
    if phase not in ("block", "post") or (phase == "block" and any(not o.blocked for o in operands)):
        return None
    locals_ = {o.local for o in operands}
    if any(r in locals_ for s in spec.statements[position + 1 :] for r in s.reads if isinstance(r, str)):
        return None
    return donor


def _nbytes(node) -> int:
    count = 1
    for n in node.shape:
        count *= n
    return count * node.dtype.itemsize
