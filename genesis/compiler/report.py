"""What a compilation did, as data (report.json) and as text (`genesis.compiler.explain`).

The report lists the graph's nodes, each fusion group with what it contains,
the kernels and library calls per call, the bytes a call reads and writes
when every op runs on its own (eager) against the fused program, and every
refusal to fuse with its reason. Byte counts are estimates from shapes: a
kernel reads each outside value once and writes each value read after it;
views move nothing.
"""

from __future__ import annotations

from collections import Counter

from genesis.compiler.ir import STRUCTURAL_OPS, Graph
from genesis.ops.op import OPS, Kind


def _nbytes(node) -> int:
    count = 1
    for n in node.shape:
        count *= n
    return count * node.dtype.itemsize


def bytes_eager(graph: Graph) -> int:
    """Every op reads its tensor inputs and writes its output (views are free)."""
    total = 0
    for node in graph.op_nodes():
        if OPS[node.op].kind is Kind.VIEW:
            continue
        total += _nbytes(node) + sum(_nbytes(graph[x]) for x in node.value_inputs())
    return total


def bytes_fused(graph: Graph) -> int:
    group_of = {m: g for g in graph.groups for m in g.members}
    total = 0
    for group in graph.groups:
        members = set(group.members)
        read = {x for m in group.members for x in graph[m].value_inputs() if x not in members}
        written = {
            m
            for m in group.members
            if m in graph.outputs or any(group_of.get(user) is not group for user in graph.users(m))
        }
        total += sum(_nbytes(graph[x]) for x in read | written)
    for node in graph.op_nodes():
        if node.name not in group_of and OPS[node.op].kind is not Kind.VIEW:
            total += _nbytes(node) + sum(_nbytes(graph[x]) for x in node.value_inputs())
    return total


def describe(graph: Graph, stats: dict, *, function: str, backend: str) -> dict:
    groups = [
        {
            "name": g.name,
            "rows": g.rows,
            "nodes": list(g.members),
            "ops": [graph[m].op for m in g.members],
            "accumulators": sorted(g.accumulators),
            "after_loop": sorted(g.post),
        }
        for g in graph.groups
    ]
    grouped = {m for g in graph.groups for m in g.members}
    unfused = [f"{n.name} = {n.op}" for n in graph.op_nodes() if n.name not in grouped]
    return {
        "function": function,
        "backend": backend,
        "nodes": len(graph.op_nodes()),
        "ops": dict(Counter(n.op for n in graph.op_nodes())),
        "inputs": len(graph.inputs),
        "outputs": len(graph.outputs),
        "groups": groups,
        "unfused": unfused,
        "kernels": stats.get("kernels", 0),
        "library_calls": stats.get("library_calls", 0),
        "views": stats.get("views", 0),
        "bytes_eager": bytes_eager(graph),
        "bytes_fused": bytes_fused(graph),
        "memory": {k: stats[k] for k in ("bytes_allocated", "bytes_reused") if k in stats},
        "fusion_refusals": list(graph.fusion_log),
        "cache_hit": stats.get("cache_hit"),
        # the Triton and C backends: groups that stayed numpy kernels, and why
        **({"backend_refusals": stats["backend_refusals"]} if stats.get("backend_refusals") else {}),
    }


def format_report(report: dict) -> str:
    lines = [
        f"{report['function']} on the {report['backend']} backend: {report['nodes']} ops -> "
        f"{report['kernels']} kernels, {report['library_calls']} library calls, {report['views']} views"
    ]
    eager, fused = report["bytes_eager"], report["bytes_fused"]
    ratio = f" ({eager / fused:.1f}x less traffic)" if fused else ""
    lines.append(f"bytes moved per call: eager {eager:,}, fused {fused:,}{ratio}")
    for group in report["groups"]:
        phases = ""
        if group["accumulators"]:
            phases += f"; accumulates {', '.join(group['accumulators'])} over the rows"
        if group["after_loop"]:
            phases += f"; then {', '.join(group['after_loop'])}"
        lines.append(f"  {group['name']} (rows={group['rows']}): {' '.join(group['ops'])}{phases}")
    if report["unfused"]:
        lines.append("not fused: " + ", ".join(report["unfused"]))
    for refusal in report["fusion_refusals"]:
        lines.append(f"  why: {refusal}")
    for group, why in report.get("backend_refusals", {}).items():
        lines.append(f"  {group} stays a numpy kernel: {why}")
    for part in ("backward",):
        if part in report:
            lines.append(f"{part}:")
            lines += ["  " + line for line in format_report(report[part]).splitlines()]
    return "\n".join(lines)


__all__ = ["describe", "format_report", "bytes_eager", "bytes_fused", "STRUCTURAL_OPS"]
