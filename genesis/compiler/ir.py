"""The IR: a graph of op applications over symbolic values.

A `Graph` wraps a `networkx.DiGraph` whose nodes are value names ("v0",
"v1", ...). Each carries one frozen `Node` record: the op (a name in the op
table, or one of the structural ops `input` and `constant`), its ordered
inputs, its attributes, and the meta every pass needs (shape, dtype, the user's
source line).

A DiGraph keeps one edge per pair of nodes, so `x * x` has a single edge:
a node's ordered `inputs` tuple is the truth, and the edges serve traversal and
topological order only. An input is either the name of another node or a Python
scalar (a literal such as the 2.0 in `x * 2.0`), which is why `inputs` holds
both and `Graph.value_inputs` filters the names out.

Text form, one node a line in topological order::

    v3 = mul(v1, 2.0)  shape=(4, 8) float32  # model.py:12
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import networkx as nx

from genesis import dtypes
from genesis.amp.autocast import cast_targets
from genesis.ops.op import OPS

INPUT = "input"  # a graph input: a user argument, a parameter, a buffer
CONSTANT = "constant"  # a tensor captured by value (attrs["value"] holds it)
STRUCTURAL_OPS = (INPUT, CONSTANT)


@dataclass(frozen=True)
class Meta:
    """What the op table's shape and dtype rules read from a value."""

    shape: tuple
    dtype: dtypes.DType

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple
    attrs: dict = field(default_factory=dict, hash=False, compare=False)
    shape: tuple = ()
    dtype: dtypes.DType = dtypes.float32
    source: str | None = None
    # Per input, how a gradient flows back through this node, as autograd recorded it while
    # tracing: False (none: not a tensor, or one that needs no grad), True (into the input's
    # producer), or an int (into the leaf tensor of that id: a parameter). None: the node is not
    # differentiable (recorded under no_grad, or nothing it reads needs grad). The autodiff pass reads it.
    grads: tuple | None = field(default=None, hash=False, compare=False)
    # A marker: the op ran inside an autocast region of this dtype, and its inputs are the values
    # before autocast's casts; the autocast pass inserts the casts (see passes/autocast.py).
    autocast: dtypes.DType | None = field(default=None, hash=False, compare=False)

    @property
    def meta(self) -> Meta:
        return Meta(self.shape, self.dtype)

    def value_inputs(self) -> tuple:
        return tuple(x for x in self.inputs if isinstance(x, str))

    def format(self) -> str:
        args = [x if isinstance(x, str) else repr(x) for x in self.inputs]
        args += [f"{k}={_format_attr(v)}" for k, v in self.attrs.items() if k != "value"]
        if self.autocast is not None:
            args.append(f"autocast={self.autocast.name}")
        text = f"{self.name} = {self.op}({', '.join(args)})  shape={self.shape} {self.dtype.name}"
        return text + (f"  # {self.source}" if self.source else "")


def _format_attr(value) -> str:
    if isinstance(value, dtypes.DType):
        return value.name
    return repr(value)


class GraphError(ValueError):
    """A graph that breaks an invariant: a cycle, a dangling input, meta that disagrees with its op."""


class Graph:
    def __init__(self):
        self.nx = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.groups: list = []  # fusion groups, once the fusion pass has run
        self.fusion_log: list[str] = []  # why nodes did not fuse
        self.donations: dict[str, str] = {}  # output -> the input whose buffer may hold it (an in-place update)
        self.next_name = 0  # the number of the next value: names are never reused, even after a removal

    # ---- building ---------------------------------------------------------------
    def add(
        self,
        op: str,
        inputs=(),
        attrs=None,
        *,
        shape,
        dtype,
        source=None,
        name=None,
        grads=None,
        autocast=None,
        before=None,
    ) -> Node:
        """Add a node; it prints after the nodes added before it, or just before the node `before`."""
        if name is None:
            name, self.next_name = f"v{self.next_name}", self.next_name + 1
        if name in self.nx:
            raise GraphError(f"value {name} is defined twice")
        node = Node(name, op, tuple(inputs), dict(attrs or {}), tuple(shape), dtype, source, grads, autocast)
        order = len(self.nx) if before is None else self.nx.nodes[before]["order"] - 0.5 + len(self.nx) * 1e-9
        self.nx.add_node(name, node=node, order=order)
        for producer in node.value_inputs():
            if producer not in self.nx:
                raise GraphError(f"{name} = {op}(...) reads {producer}, which is not in the graph")
            self.nx.add_edge(producer, name)
        return node

    def add_input(self, shape, dtype, *, name=None, source=None) -> Node:
        node = self.add(INPUT, (), {"index": len(self.inputs)}, shape=shape, dtype=dtype, name=name, source=source)
        self.inputs.append(node.name)
        return node

    # ---- reading ------------------------------------------------------------------
    def __getitem__(self, name: str) -> Node:
        return self.nx.nodes[name]["node"]

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def __len__(self) -> int:
        return len(self.nx)

    def nodes(self) -> list[Node]:
        """Every node in a stable topological order (ties broken by creation order)."""
        order = nx.get_node_attributes(self.nx, "order")
        return [self[n] for n in nx.lexicographical_topological_sort(self.nx, key=order.__getitem__)]

    def users(self, name: str) -> list[str]:
        return list(self.nx.successors(name))

    def op_nodes(self) -> list[Node]:
        return [n for n in self.nodes() if n.op not in STRUCTURAL_OPS]

    # ---- rewriting ------------------------------------------------------------------
    def replace(self, name: str, **changes) -> Node:
        """Swap a node's record for an edited copy (inputs, attrs, op, meta), keeping its name."""
        old = self[name]
        new = replace(old, **changes)
        if "inputs" in changes:
            for producer in set(old.value_inputs()):  # `x * x` has one edge for two inputs
                self.nx.remove_edge(producer, name)
            for producer in set(new.value_inputs()):
                self.nx.add_edge(producer, name)
        self.nx.nodes[name]["node"] = new
        return new

    def replace_uses(self, old: str, new: str) -> None:
        """Point every reader of `old` (and the outputs) at `new`."""
        for user in self.users(old):
            node = self[user]
            self.replace(user, inputs=tuple(new if x == old else x for x in node.inputs))
        self.outputs = [new if x == old else x for x in self.outputs]

    def remove(self, name: str) -> None:
        if self.users(name) or name in self.outputs:
            raise GraphError(f"cannot remove {name}: it is still read")
        if name in self.inputs:
            raise GraphError(f"cannot remove {name}: it is a graph input")
        self.nx.remove_node(name)

    def remove_input(self, name: str) -> None:
        """Take back an input nothing reads yet (one added for a step that did not happen)."""
        if self.users(name) or name in self.outputs:
            raise GraphError(f"cannot remove input {name}: it is read")
        self.inputs.remove(name)
        self.nx.remove_node(name)

    def copy(self) -> Graph:
        other = Graph()
        other.nx = self.nx.copy()
        other.inputs = list(self.inputs)
        other.outputs = list(self.outputs)
        other.groups = copy.deepcopy(self.groups)
        other.fusion_log = list(self.fusion_log)
        other.donations = dict(self.donations)
        other.next_name = self._next_index()
        return other

    def _next_index(self) -> int:
        """One past the highest numbered value in the graph."""
        numbers = [int(n[1:]) for n in self.nx if n[:1] == "v" and n[1:].isdigit()]
        return max(numbers, default=-1) + 1

    def units(self, groups=None) -> nx.DiGraph:
        """The graph of what runs as one: each group (default: `self.groups`) a node named by the
        group, each node outside the groups itself; an edge where one reads a value of the other."""
        groups = self.groups if groups is None else groups
        group_of = {member: group.name for group in groups for member in group.members}
        units = nx.DiGraph()
        for node in self.nodes():
            unit = group_of.get(node.name, node.name)
            units.add_node(unit)
            units.add_edges_from(
                (source, unit) for source in (group_of.get(x, x) for x in node.value_inputs()) if source != unit
            )
        return units

    # ---- checking and printing ---------------------------------------------------------
    def verify(self) -> Graph:
        """Raise GraphError unless the graph is acyclic, closed, every node's meta is its op's, and
        the fusion groups (if any) can run in some order, each node in at most one."""
        if not nx.is_directed_acyclic_graph(self.nx):
            cycle = nx.find_cycle(self.nx)
            raise GraphError(f"the graph has a cycle: {' -> '.join(a for a, _ in cycle)}")
        if self.groups:
            self._verify_groups()
        for name in self.outputs:
            if name not in self.nx:
                raise GraphError(f"output {name} is not in the graph")
        for node in self.nodes():
            for producer in node.value_inputs():
                if producer not in self.nx or not self.nx.has_edge(producer, node.name):
                    raise GraphError(f"{node.name} reads {producer} without an edge from it")
            if node.op in STRUCTURAL_OPS:
                continue
            if node.op not in OPS:
                raise GraphError(f"{node.name}: unknown op {node.op!r}")
            self._verify_meta(node)
        return self

    def _verify_groups(self) -> None:
        seen = {}
        for group in self.groups:
            for member in group.members:
                if member not in self.nx:
                    raise GraphError(f"group {group.name} holds {member}, which is not in the graph")
                if member in seen:
                    raise GraphError(f"{member} is in both group {seen[member]} and group {group.name}")
                seen[member] = group.name
        units = self.units()
        if not nx.is_directed_acyclic_graph(units):
            cycle = nx.find_cycle(units)
            raise GraphError(f"the fusion groups read each other round a cycle: {' -> '.join(a for a, _ in cycle)}")

    def _verify_meta(self, node: Node) -> None:
        op = OPS[node.op]
        metas = [self[x].meta if isinstance(x, str) else x for x in node.inputs]
        if node.autocast is not None:  # the dtypes the op sees once the autocast pass has cast its inputs
            metas = [
                Meta(m.shape, target) if target is not None else m
                for m, target in zip(metas, cast_targets(op, metas, node.autocast))
            ]
        shapes = [m.shape if isinstance(m, Meta) else () for m in metas]
        shape = tuple(op.shape(*shapes, **node.attrs))
        _, dtype = op.dtype(metas, **node.attrs)
        if shape != node.shape or dtype is not node.dtype:
            raise GraphError(
                f"{node.name} = {node.op}: recorded {node.shape} {node.dtype.name}, "
                f"but the op's meta gives {shape} {dtype.name}"
            )

    def __str__(self) -> str:
        lines = [node.format() for node in self.nodes()]
        lines.append(f"return ({', '.join(self.outputs)})")
        for group in self.groups:
            phases = "".join(
                f" [{kind}: {', '.join(sorted(names))}]"
                for kind, names in (("accumulate", group.accumulators), ("post", group.post))
                if names
            )
            lines.append(f"# {group.name} rows={group.rows}: {' '.join(group.members)}{phases}")
        return "\n".join(lines)

    def signature(self) -> str:
        """The graph as text without source lines: equal for graphs that compute the same thing."""
        lines = [node.format().split("  # ")[0] for node in self.nodes()]
        lines.append(f"inputs {self.inputs} outputs {self.outputs} donations {sorted(self.donations.items())}")
        lines += [f"{g.name} {g.rows} {g.members} {sorted(g.accumulators)} {sorted(g.post)}" for g in self.groups]
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz source: one box per node, labelled with its op, shape and dtype."""
        lines = ["digraph genesis {", "  node [shape=box, fontname=monospace];"]
        for node in self.nodes():
            style = ', style=filled, fillcolor="#e8f0fe"' if node.op in STRUCTURAL_OPS else ""
            label = f"{node.name}: {node.op}\\n{node.shape} {node.dtype.name}"
            lines.append(f'  "{node.name}" [label="{label}"{style}];')
        for a, b in self.nx.edges:
            lines.append(f'  "{a}" -> "{b}";')
        for i, name in enumerate(self.outputs):
            lines.append(f'  "out{i}" [shape=plaintext];')
            lines.append(f'  "{name}" -> "out{i}";')
        lines.append("}")
        return "\n".join(lines)
