"""Flatten nested arguments and results into leaves and a spec that rebuilds them.

A compiled function takes and returns tensors inside tuples, lists and dicts;
the graph only knows a flat list of inputs and outputs. `flatten` walks the
structure in a fixed order (dicts in insertion order) and `unflatten` puts new
leaves back in the same places.
"""

from __future__ import annotations


def flatten(obj) -> tuple[list, object]:
    leaves: list = []
    spec = _flatten(obj, leaves)
    return leaves, spec


def _flatten(obj, leaves):
    if isinstance(obj, (tuple, list)):
        return (type(obj), [_flatten(x, leaves) for x in obj])
    if isinstance(obj, dict):
        return (dict, [(k, _flatten(v, leaves)) for k, v in obj.items()])
    leaves.append(obj)
    return None


def unflatten(spec, leaves) -> object:
    iterator = iter(leaves)
    return _unflatten(spec, iterator)


def _unflatten(spec, leaves):
    if spec is None:
        return next(leaves)
    kind, children = spec
    if kind is dict:
        return {k: _unflatten(child, leaves) for k, child in children}
    items = [_unflatten(child, leaves) for child in children]
    return kind(items) if kind in (tuple, list) else kind(*items)  # namedtuples take positions
