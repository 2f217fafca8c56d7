"""Fusion: partition the graph's nodes into groups that run as one kernel each.

A group iterates over the rows of one array shape: every value in it either
has those rows as its leading dimension ("partitioned", and a kernel handles
a block of rows at a time while they sit in cache) or is read whole (a bias,
a scalar, a weight). That one rule covers the shapes fusion is for:

- elementwise chains over one iteration space, broadcasts included (a pure
  same-shape chain is flattened by codegen, so its "rows" are elements);
- a reduction over the non-leading dims with its prologue and epilogue
  (softmax and layer_norm over the last dim are one group: amax, sub, exp,
  sum and div all keep the rows);
- a reduction over the rows themselves (a full sum, or a bias gradient's sum
  over the batch) as an *accumulator*: each block adds its partial result,
  and elementwise nodes on whole values after it (mean's division) run once
  after the loop;
- a matmul whose left operand has the rows and right operand is a whole
  weight (x @ W), run over all rows before the loop (one BLAS call keeps
  BLAS's threads busy; blocks of 64 rows would not), with its bias and
  activation epilogue in the blocks.

Nodes join greedily in topological order: a node joins the group of one of
its producers when it fits that group's rows, and other producer groups
merge in when that creates no cycle. Then a group that only one other group
reads folds into it where it fits (an optimizer's decay terms into its
update), and independent groups of 0-d work (an optimizer's per-parameter
scalar arithmetic) fold into one kernel. What cannot join says why (logged at
debug level and kept in `graph.fusion_log` for the report). Nodes outside any
group (gathers, index ops, views of inputs, argmax) run as library calls.

The pass does not change the graph's nodes: it records `graph.groups`.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import networkx as nx

from genesis.compiler.ir import STRUCTURAL_OPS, Graph
from genesis.ops.op import OPS, IndexMap, Kind, numpy_snippet

log = logging.getLogger("genesis.compiler.fusion")

POST_LOOP_ELEMENTS = 1 << 12  # statements after the loop work on whole arrays: only small ones go there


@dataclass
class Group:
    id: int
    rows: int | None  # the leading dim every partitioned value shares; None: 0-d work
    members: list = field(default_factory=list)
    accumulators: set = field(default_factory=set)  # reductions over the rows: whole values, built blockwise
    post: set = field(default_factory=set)  # elementwise nodes on whole values, run after the loop
    pre: set = field(default_factory=set)  # matmuls over all rows, run before the loop

    @property
    def name(self) -> str:
        return f"g{self.id}"


def _reduced_dims(node) -> tuple:
    return tuple(node.attrs.get("dims") or ())


def read_mode(graph: Graph, group: Group, consumer, position: int, inside: bool) -> str | None:
    """How a block-phase statement reads its input at `position`: "blocked" (row by row),
    "whole", or None when the input does not fit the group's rows. `inside`: made in the group."""
    shape = graph[consumer.inputs[position]].shape
    kind = OPS[consumer.op].kind
    if kind is Kind.MATMUL and position == 1:
        return "whole" if not inside and len(shape) == 2 else None
    # an elementwise op, and expand, align their inputs to the output from the right (a (n,) value
    # expanded to (n, n, n) varies along the last dim, not the rows); the others read dim 0 as rows
    aligns_right = kind is Kind.ELEMENTWISE or OPS[consumer.op].index_map is IndexMap.BROADCAST
    ndim = len(consumer.shape) if aligns_right else len(shape)
    rows_match = bool(shape) and shape[0] == group.rows and len(shape) == ndim
    if inside:
        return "blocked" if rows_match else None
    if rows_match and group.rows != 1:
        return "blocked"
    if len(shape) < ndim or not shape or shape[0] == 1:
        return "whole"
    return None


def _any_output(graph: Graph, names: set) -> bool:
    """Whether one of `names` is a result of the program (its kernel must write it out)."""
    return any(name in names for name in graph.outputs)


def is_accumulator(node) -> bool:
    """A reduction over the leading dim: each block adds its part into a whole result."""
    return OPS[node.op].combine is not None and 0 in _reduced_dims(node)


class _Partition:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.group_of: dict[str, Group] = {}
        self.groups: list[Group] = []
        self.log: list[str] = []
        self.order = {node.name: i for i, node in enumerate(graph.nodes())}
        # who reads each value, looked up once: partitioning asks millions of times for a big
        # training step (ResNet-18: 2M lookups, 5 s through networkx's views), and nodes do not change
        self.users = {name: tuple(graph.nx.successors(name)) for name in self.order}
        self.ids = itertools.count()

    def refuse(self, node, why: str) -> None:
        message = f"{node.name} = {node.op}: {why}"
        self.log.append(message)
        log.debug("cannot fuse %s", message)

    def fit(self, node, group: Group) -> tuple[str, str | None]:
        """(the phase `node` would run in as a member of `group`, None or the reason it cannot join)."""
        op = OPS[node.op]
        inputs = [(i, x) for i, x in enumerate(node.inputs) if isinstance(x, str)]
        inside = {x: self.group_of.get(x) is group for _, x in inputs}
        late = {x for x in inside if inside[x] and (x in group.accumulators or x in group.post)}
        if group.rows is None:  # 0-d work: everything is whole
            return "block", None if not node.shape else "the group works on 0-d values"
        if op.kind is Kind.ELEMENTWISE and late and all(not inside[x] or x in late for x in inside):
            # after the loop, on accumulated values (mean's division): whole arrays, so small ones only
            if math.prod(node.shape) > POST_LOOP_ELEMENTS:
                return "post", f"its {math.prod(node.shape)} elements are too many to compute after the loop"
            return "post", None
        if late:
            return "block", f"it reads {sorted(late)[0]}, which is complete only after the loop"
        if is_accumulator(node):
            mode = read_mode(self.graph, group, node, inputs[0][0], inside[inputs[0][1]])
            return "accumulate", None if mode == "blocked" else "it reduces over rows that are not the group's"
        if not node.shape or node.shape[0] != group.rows:
            return "block", f"its leading dim {node.shape[:1]} is not the group's rows ({group.rows})"
        if op.kind is Kind.MATMUL:
            # one library call over all rows (BLAS's own threads) before the loop; its epilogue is blocked
            if any(inside.values()):
                return "pre", "a matmul runs before the loop, so its operands must come from outside the group"
            if read_mode(self.graph, group, node, 1, False) != "whole":
                return "pre", "a batched matmul's right operand must be a whole 2-d weight"
            return "pre", None
        if op.kind is Kind.REDUCTION and 0 in _reduced_dims(node):
            return "block", "it reduces over the rows but cannot accumulate them"
        if op.index_map is IndexMap.PERMUTE and node.attrs["dims"][0] != 0:
            return "block", "it moves the rows away from the leading dim"
        for position, x in inputs:
            if read_mode(self.graph, group, node, position, inside[x]) is None:
                return "block", f"its input {x} of shape {self.graph[x].shape} does not split into the group's rows"
        return "block", None

    def fusible(self, node) -> str | None:
        op = OPS.get(node.op)
        if op is None or node.op in STRUCTURAL_OPS:
            return "not an op"
        if op.kind is Kind.MATMUL:
            return None if len(node.shape) >= 2 else "a vector matmul"
        if op.kind is Kind.VIEW and op.index_map is None:
            return f"{node.op} is a view that codegen does not fold"
        if op.kind in (Kind.OPAQUE,):
            return f"{node.op} is opaque to fusion"
        if op.kind is not Kind.VIEW and numpy_snippet(op, node.attrs) is None:
            return f"{node.op} has no kernel snippet"
        return None

    # ---- the greedy walk -------------------------------------------------------------------
    def run(self) -> None:
        for node in self.graph.nodes():
            why = self.fusible(node)
            if why is not None:
                if node.op not in STRUCTURAL_OPS:
                    self.refuse(node, why)
                continue
            self.place(node)

    def place(self, node) -> None:
        candidates = []
        for producer in node.value_inputs():
            group = self.group_of.get(producer)
            if group is not None and group not in candidates:
                candidates.append(group)
        chosen, phase = None, None
        for group in sorted(candidates, key=lambda g: -len(g.members)):
            phase, why = self.fit(node, group)
            if why is None and self._cycle(group, {node.name}):
                why = "joining would create a cycle through another kernel"
            if why is None:
                chosen = group
                break
            self.refuse(node, f"cannot join {group.name}: {why}")
        if chosen is None:
            chosen = Group(next(self.ids), self._rows_of(node))
            phase, why = self.fit(node, chosen)
            if why is not None:
                self.refuse(node, why)
                return
            self.groups.append(chosen)
        self.join(node, chosen, phase)
        for other in candidates:
            if other is not chosen and other.rows == chosen.rows:
                self.try_merge(chosen, other)

    def _rows_of(self, node):
        """The rows a new group iterates over: the node's leading dim, or what an accumulator reduces."""
        if is_accumulator(node):
            source = self.graph[node.value_inputs()[0]].shape
            return source[0] if source else None
        return node.shape[0] if node.shape else None

    def join(self, node, group: Group, phase: str) -> None:
        if phase == "pre":
            group.pre.add(node.name)
        elif phase == "accumulate":
            group.accumulators.add(node.name)
        elif phase == "post":
            group.post.add(node.name)
        group.members.append(node.name)
        self.group_of[node.name] = group

    def try_merge(self, keep: Group, other: Group) -> None:
        """Fold `other` into `keep` when every member of `other` fits in the same phase, acyclically."""
        if other.accumulators or other.post or other.pre or self._cycle(keep, set(other.members)):
            return
        joining = set(other.members)
        if any(x in joining for name in keep.post | keep.pre for x in self.graph[name].value_inputs()):
            return  # statements before or after the loop read whole values, never row blocks
        previous = list(keep.members)
        for name in other.members:
            self.group_of[name] = keep  # provisional: fit() reads membership
        keep.members = sorted(keep.members + other.members, key=self.order.__getitem__)
        # other's members, and keep's that read them: a value read from outside (whole) may not be
        # read the same way from inside (by rows), as x of shape (4, 1, 1) in x.expand(4, 4, 1, 1)
        readers = [name for name in previous if joining & set(self.graph[name].value_inputs())]
        if any(self.fit(self.graph[name], keep)[1] is not None for name in readers) or any(
            self.fit(self.graph[name], keep) != ("block", None) for name in other.members
        ):
            keep.members = previous
            for name in other.members:
                self.group_of[name] = other
            return
        self.groups.remove(other)

    def sink_into_readers(self) -> None:
        """Fold a group into the one group that reads its values, where they fit there.

        The walk places a node with its producers, so work that waits on nothing of its reader
        lands in a kernel of its own ahead of it: an optimizer's weight decay and moment decay
        (`p * (1 - lr * wd)`, `m * beta1`) do not wait for the gradients, yet only the update
        reads them. Small values join the reader's statements after the loop; values over
        the reader's rows join its loop."""
        for group in list(self.groups):
            if group.rows is None or group.accumulators or group.post or group.pre:
                continue
            members = set(group.members)
            readers = {
                id(self.group_of.get(user)): self.group_of.get(user)
                for name in group.members
                for user in self.users[name]
                if user not in members
            }
            if len(readers) != 1 or _any_output(self.graph, members):
                continue
            (reader,) = readers.values()
            if reader is None:  # a library call or the program's result reads it
                continue
            if reader.rows is None or self._cycle(reader, members):
                continue
            read_after_loop = all(
                user in reader.post for name in members for user in self.users[name] if user not in members
            )
            small = all(
                OPS[self.graph[name].op].kind is Kind.ELEMENTWISE
                and math.prod(self.graph[name].shape) <= POST_LOOP_ELEMENTS
                for name in members
            )
            if read_after_loop and small:
                for name in group.members:
                    self.group_of[name] = reader
                reader.post |= members
                reader.members = sorted(reader.members + group.members, key=self.order.__getitem__)
                self.groups.remove(group)
            elif reader.rows == group.rows:
                self.try_merge(reader, group)

    def sink_values_read_by_one_later_group(self) -> None:
        """Move an elementwise member into the one other group that reads it, where its inputs leave
        its group anyway: the walk places a node with its producers, so a vjp's `1 - s` of a
        forward's sigmoid s joined the forward kernel, which then stored s and 1 - s for the
        backward (an LSTM's gate kernel wrote 12 outputs, 5 of them such terms); in the reader it is
        computed from s as it is read. Latest first, so a chain of such terms moves whole."""
        for group in list(self.groups):
            if group.rows is None:
                continue
            for name in reversed(list(group.members)):
                reader = self._sink_target(group, name)
                if reader is None:
                    continue
                group.members.remove(name)
                self.group_of[name] = reader
                readers = [user for user in self.users[name] if user in reader.members]
                if any(self.fit(self.graph[n], reader) != ("block", None) for n in [name, *readers]):
                    group.members.append(name)
                    group.members.sort(key=self.order.__getitem__)
                    self.group_of[name] = group
                    continue
                reader.members = sorted([*reader.members, name], key=self.order.__getitem__)
                self.log.append(f"{name} = {self.graph[name].op} moves from {group.name} to {reader.name}, its reader")
        self.groups = [group for group in self.groups if group.members]

    def _sink_target(self, group: Group, name: str) -> Group | None:
        """The one other group that alone reads `name` (an elementwise block member of `group` whose
        inputs `group` hands out anyway), or None."""
        node = self.graph[name]
        if OPS[node.op].kind is not Kind.ELEMENTWISE or name in self.graph.outputs:
            return None
        if name in group.pre or name in group.post or name in group.accumulators:
            return None
        readers = {id(self.group_of.get(user)): self.group_of.get(user) for user in self.users[name]}
        if len(readers) != 1:
            return None
        (reader,) = readers.values()
        if reader is None or reader is group or reader.rows != group.rows:
            return None
        if any(user in reader.pre or user in reader.post for user in self.users[name]):
            return None
        for x in node.value_inputs():  # each input is read outside the group already: no new output
            if self.group_of.get(x) is group and not any(
                u != name and self.group_of.get(u) is not group for u in self.users[x]
            ):
                return None
        return reader

    def hoist_transposes_read_by_matmuls(self) -> None:
        """Leave out of a group a permute that only matmuls read, keeping each matrix's last dim
        among its two: BLAS reads the transposed view as it is, so the group need not store it
        transposed (a store C cannot do when the permute moves dims the group's rows span: the
        attention probabilities' transpose for the backward), and the view costs nothing."""
        for group in self.groups:
            members = set(group.members)
            for name in list(group.members):
                node = self.graph[name]
                users = self.users[name]
                if (
                    OPS[node.op].index_map is not IndexMap.PERMUTE
                    or not users
                    or name in self.graph.outputs
                    or len(node.shape) - 1 not in node.attrs["dims"][-2:]
                    or any(user in members or OPS[self.graph[user].op].kind is not Kind.MATMUL for user in users)
                ):
                    continue
                group.members.remove(name)
                members.discard(name)
                del self.group_of[name]
                self.log.append(f"{name} = permute leaves {group.name}: only matmuls read it, as a strided view")

    def release_reshapes_read_outside(self) -> None:
        """Leave out of a group a reshape that only other kernels and library calls read: its input,
        stored by the group anyway or read from outside it, is the same bytes in another shape,
        which the program views for free, where the group would store a second copy (the CNN's
        activations, reshaped for max-pooling's gather: 8 MB more written per layer). Latest first,
        so a chain of reshapes leaves whole."""
        for group in self.groups:
            for name in reversed(list(group.members)):
                users = self.users[name]
                if (
                    OPS[self.graph[name].op].index_map is not IndexMap.RESHAPE
                    or not users
                    or name in self.graph.outputs
                    or any(self.group_of.get(user) is group for user in users)
                ):
                    continue
                group.members.remove(name)
                for phase in (group.pre, group.post, group.accumulators):
                    phase.discard(name)
                del self.group_of[name]
                self.log.append(f"{name} = reshape leaves {group.name}: only other kernels read it, as a view")
        self.groups = [group for group in self.groups if group.members]

    def merge_scalar_groups(self) -> None:
        """Fold independent groups of 0-d work into one kernel (horizontal fusion): an optimizer's
        per-parameter step-count arithmetic is a few scalar ops each, and one kernel call per
        parameter would cost more than the arithmetic. Two join only when neither reaches the other
        through the kernels between them (the units' graph: groups as one node each)."""
        scalar = [g for g in self.groups if g.rows is None]
        if len(scalar) < 2:
            return
        units = self.graph.units(self.groups)
        reach = {g.name: nx.descendants(units, g.name) for g in scalar}
        merged: list[tuple[Group, set]] = []  # (the kernel, the names of the groups folded into it)
        for group in scalar:
            target = next(
                (m for m, names in merged if not any(n in reach[group.name] or group.name in reach[n] for n in names)),
                None,
            )
            if target is None:
                merged.append((group, {group.name}))
                continue
            next(names for m, names in merged if m is target).add(group.name)
            for name in group.members:
                self.group_of[name] = target
            target.members = sorted(target.members + group.members, key=self.order.__getitem__)
            self.groups.remove(group)

    def no_cycles(self) -> None:
        """The kernels must run in some order: where groups read each other round a cycle (which the
        fast check of `_cycle` can miss), the groups on it are dissolved into single nodes, each a
        library call, and the log says so. Slower, never wrong."""
        while True:
            try:
                cycle = nx.find_cycle(self.graph.units(self.groups))
            except nx.NetworkXNoCycle:
                return
            on_cycle = {name for edge in cycle for name in edge[:2]}
            for group in [g for g in self.groups if g.name in on_cycle]:
                self.groups.remove(group)
                self.log.append(f"{group.name} dissolved: its kernel and others read each other round a cycle")

    def _cycle(self, group: Group, joining: set) -> bool:
        """Whether some path leaves `group` ∪ `joining` and comes back into it.

        Another group runs as one kernel, so a path that reaches one of its members goes on from
        all of them: their values exist only once the whole kernel has run. A path of single nodes
        only moves later in topological order, so the search stops at the last node inside; a group
        with members on both sides of it can lead back past that, which this quick search misses
        and `no_cycles` catches."""
        inside = set(group.members) | joining
        last = max(self.order[name] for name in inside)
        frontier = [s for name in inside for s in self.users[name] if s not in inside and self.order[s] < last]
        seen = set(frontier)
        while frontier:
            name = frontier.pop()
            other = self.group_of.get(name)
            reached = other.members if other is not None and other is not group else (name,)
            for member in reached:
                for successor in self.users[member]:
                    if successor in inside:
                        return True
                    if successor not in seen and self.order[successor] < last:
                        seen.add(successor)
                        frontier.append(successor)
        return False


def fusion(graph: Graph) -> Graph:
    graph = graph.copy()
    partition = _Partition(graph)
    partition.run()
    partition.sink_into_readers()
    partition.sink_values_read_by_one_later_group()
    partition.hoist_transposes_read_by_matmuls()
    partition.release_reshapes_read_outside()
    partition.merge_scalar_groups()
    # a group of views only would copy what a library call merely re-indexes (ids keep their gaps, so the
    # refusal log's group names stay true)
    partition.groups = [g for g in partition.groups if any(OPS[graph[n].op].kind is not Kind.VIEW for n in g.members)]
    partition.no_cycles()
    graph.groups = partition.groups
    graph.fusion_log = partition.log
    return graph
