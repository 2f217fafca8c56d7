"""A graph as JSON and back: what the dump writes next to `00_traced.txt`, so that a person (or a
test) can run the passes again on exactly the graph a trace made, without the program that made it.

Every node keeps its name, op, inputs, attributes, meta, source line, gradient edges, autocast
marker and print position; the graph keeps its inputs, outputs, donations and the number of its
next value, so that a pass run on the loaded graph names what it adds as it did in the compile.
Values that are not JSON (tuples, dtypes, slices, arrays of a captured constant) are tagged.
"""

from __future__ import annotations

import json

import numpy as np

from genesis import dtypes
from genesis.compiler.ir import Graph, GraphError, Node

FORMAT = "genesis-graph/1"


def _encode(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, dtypes.DType):
        return {"dtype": value.name}
    if isinstance(value, slice):
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "array_dtype": str(value.dtype)}
    raise TypeError(f"a graph attribute of type {type(value).__name__} has no JSON form: {value!r}")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    if "dict" in value:
        return {_decode(k): _decode(v) for k, v in value["dict"]}
    if "dtype" in value:
        return dtypes.as_dtype(value["dtype"])
    if "slice" in value:
        return slice(*(_decode(v) for v in value["slice"]))
    if "ellipsis" in value:
        return Ellipsis
    if "array" in value:
        return np.array(value["array"], dtype=value["array_dtype"])
    raise GraphError(f"unknown tagged value in a graph file: {value!r}")


def _node(node: Node, order: float) -> dict:
    return {
        "name": node.name,
        "op": node.op,
        "inputs": _encode(list(node.inputs)),
        "attrs": _encode(node.attrs),
        "shape": list(node.shape),
        "dtype": node.dtype.name,
        "source": node.source,
        "grads": _encode(node.grads),
        "autocast": None if node.autocast is None else node.autocast.name,
        "order": order,
    }


def to_json(graph: Graph) -> str:
    if graph.groups:
        raise GraphError("a graph with fusion groups has no JSON form: write it before the fusion pass")
    order = graph.nx.nodes.data("order")
    return json.dumps(
        {
            "format": FORMAT,
            "nodes": [_node(node, order[node.name]) for node in graph.nodes()],
            "inputs": graph.inputs,
            "outputs": graph.outputs,
            "donations": graph.donations,
            "next_name": graph.next_name,
        },
        indent=1,
    )


def from_json(text: str) -> Graph:
    """The graph `to_json` wrote; a file of another format is a GraphError that says so."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise GraphError(f"not a graph file: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraphError(f"not a graph file of format {FORMAT}")
    graph = Graph()
    for record in data["nodes"]:
        grads = _decode(record["grads"])
        node = graph.add(
            record["op"],
            _decode(record["inputs"]),
            _decode(record["attrs"]),
            shape=tuple(record["shape"]),
            dtype=dtypes.as_dtype(record["dtype"]),
            source=record["source"],
            name=record["name"],
            grads=tuple(grads) if grads is not None else None,
            autocast=None if record["autocast"] is None else dtypes.as_dtype(record["autocast"]),
        )
        graph.nx.nodes[node.name]["order"] = record["order"]
    graph.inputs = list(data["inputs"])
    graph.outputs = list(data["outputs"])
    graph.donations = dict(data["donations"])
    graph.next_name = data["next_name"]
    return graph.verify()
