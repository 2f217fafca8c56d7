"""Encoding a nested Python structure as JSON, with its tensors set aside by name.

A checkpoint is a tree of dicts, lists and tuples whose leaves are tensors,
numbers, strings, None and dtypes. `encode` turns it into a JSON-able tree
and a list of (name, tensor); the tensors go into the safetensors data and
the tree into its metadata. JSON keeps lists, str, int (of any size), bool
and None apart on its own; everything else is a JSON object with a "type" field:

    {"type": "tensor", "name": "model.fc.weight", "requires_grad": true}   (+ "parameter": true for an
                                                                           nn.Parameter, which loads as one)
    {"type": "tuple", "items": [...]}
    {"type": "dict", "items": [[key, value], ...]}   keys keep their type (int keys of optimizer state)
    {"type": "float", "value": "nan" | "inf" | "-inf"}   finite floats stay JSON numbers (exact in Python)
    {"type": "dtype", "name": "float16"}
    {"type": "pickle", "class": "pkg.Net", "data": base64}   a whole nn.Module (see `pickled`); its tensors
                                                            are entries of the tree, named by its state_dict

Tensor names follow the path to the tensor ("model.fc.weight", "optimizer.state.0.exp_avg"), so a
flat state dict saved by genesis reads like any other safetensors model file. A tensor object that
appears twice is stored once and comes back as one object in both places, as with torch.save.

Choices, written down: numpy scalars are stored as the Python numbers they equal (numpy is no part of
the format); dict subclasses (OrderedDict) come back as plain dicts, whose order is kept; a list or
dict that appears twice comes back as two equal copies (only tensors are shared); a container that
contains itself is refused.
"""

from __future__ import annotations

import math

import numpy as np

from genesis import dtypes
from genesis.nn.modules.module import Module
from genesis.nn.parameter import Parameter
from genesis.serialization import pickled
from genesis.serialization.errors import CheckpointError, WeightsOnlyError
from genesis.tensor import Tensor

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _path_text(path) -> str:
    return "obj" + "".join(f"[{part!r}]" for part in path)


class _Encoder:
    def __init__(self):
        self.tensors: list[tuple[str, Tensor]] = []
        self.names_by_id: dict[int, str] = {}
        self.used_names = {"__metadata__"}  # the one key a safetensors header reserves
        self.open_containers: set[int] = set()

    def encode(self, obj, path):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"type": "float", "value": repr(float(obj))}
        if isinstance(obj, np.generic) and isinstance(obj, (np.bool_, np.integer, np.floating)):
            return self.encode(obj.item(), path)
        if isinstance(obj, Tensor):
            return self.encode_tensor(obj, path)
        if isinstance(obj, dtypes.DType):
            return {"type": "dtype", "name": obj.name}
        if isinstance(obj, Module):
            return self.encode_module(obj, path)
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self.open_containers:
                raise ValueError(f"save_checkpoint: {_path_text(path)} contains itself; a checkpoint must be a tree")
            self.open_containers.add(id(obj))
            try:
                return self.encode_container(obj, path)
            finally:
                self.open_containers.discard(id(obj))
        raise TypeError(
            f"save_checkpoint: cannot store a {type(obj).__name__} at {_path_text(path)}; checkpoints "
            f"hold tensors, numbers, strings, None, dtypes, nn.Modules and dicts, lists and tuples of them"
        )

    def encode_module(self, module, path):
        """A module pickled whole; its state_dict's tensors first, so they take its keys as names."""
        for key, tensor in module.state_dict(keep_vars=True).items():
            self.encode_tensor(tensor, path + (key,))
        return pickled.dumps(module, lambda tensor: self.encode_tensor(tensor, path), _path_text(path))

    def encode_container(self, obj, path):
        if isinstance(obj, list):
            return [self.encode(item, path + (i,)) for i, item in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"type": "tuple", "items": [self.encode(item, path + (i,)) for i, item in enumerate(obj)]}
        items = []
        for key, value in obj.items():
            if not (key is None or isinstance(key, (str, int, float))):
                raise TypeError(
                    f"save_checkpoint: dict key {key!r} at {_path_text(path)} is a "
                    f"{type(key).__name__}; keys must be str, int, float, bool or None"
                )
            items.append([self.encode(key, path), self.encode(value, path + (key,))])
        return {"type": "dict", "items": items}

    def encode_tensor(self, tensor: Tensor, path):
        name = self.names_by_id.get(id(tensor))
        if name is None:
            name = self.fresh_name(".".join(str(part) for part in path) or "tensor")
            self.names_by_id[id(tensor)] = name
            self.tensors.append((name, tensor))
        node = {"type": "tensor", "name": name, "requires_grad": bool(tensor.requires_grad)}
        if _is_parameter(tensor):
            node["parameter"] = True
        return node

    def fresh_name(self, name: str) -> str:
        # "a.b" can name both obj["a.b"] and obj["a"]["b"]; the second one gets a suffix
        candidate, count = name, 1
        while candidate in self.used_names:
            candidate, count = f"{name}#{count}", count + 1
        self.used_names.add(candidate)
        return candidate


def _is_parameter(tensor) -> bool:
    # checked by name so that saving never imports genesis.nn; loading imports it only when needed
    cls = type(tensor)
    return cls.__name__ == "Parameter" and cls.__module__ == "genesis.nn.parameter"


def _as_parameter(tensor: Tensor, requires_grad: bool):
    return Parameter(tensor, requires_grad=requires_grad)


def encode(obj):
    """(a JSON-able tree, [(name, tensor), ...]) for a checkpoint structure."""
    encoder = _Encoder()
    tree = encoder.encode(obj, ())
    return tree, encoder.tensors


def decode(tree, tensors: dict, where: str, weights_only: bool = True):
    """Rebuild the structure from `tree`; `tensors` maps a name to a freshly loaded Tensor. A pickled
    module is unpickled only when not `weights_only`; else it is refused before it is read."""

    def fail(path, problem):
        raise CheckpointError(f"{where}: the stored structure is corrupt at {_path_text(path)}: {problem}")

    def build_tensor(node, path):
        if not (isinstance(node, dict) and node.get("type") == "tensor"):
            fail(path, f"a pickled object refers to {node!r:.200}, not to a tensor entry")
        name = node.get("name")
        if not isinstance(name, str) or name not in tensors:
            fail(path, f"it refers to tensor {name!r}, which the file does not hold")
        tensor = tensors[name]
        requires_grad = bool(node.get("requires_grad"))
        if requires_grad and not tensor.dtype.is_floating_point:
            fail(path, f"tensor {name!r} of dtype {tensor.dtype.name} is marked requires_grad")
        if node.get("parameter") and not _is_parameter(tensor):
            tensor = tensors[name] = _as_parameter(tensor, requires_grad)  # later references share it
        elif requires_grad and not tensor.requires_grad:
            tensor.requires_grad_(True)
        return tensor

    def build(node, path):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [build(item, path + (i,)) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            fail(path, f"unexpected {type(node).__name__}")
        kind = node.get("type")
        if kind == "pickle":
            if weights_only:
                raise WeightsOnlyError(
                    f"{where}: weights-only load refused the pickled {node.get('class')} at {_path_text(path)}: "
                    "loading it runs code that the file names. genesis.load(..., weights_only=False) loads it; "
                    "do that only for a file from a trusted source (or save its state_dict instead)"
                )
            return pickled.loads(node, lambda entry: build_tensor(entry, path), where, _path_text(path))
        if kind == "tensor":
            return build_tensor(node, path)
        items = node.get("items")
        if kind in ("tuple", "dict") and not isinstance(items, list):
            fail(path, f"a {kind} without a list of items")
        if kind == "tuple":
            return tuple(build(item, path + (i,)) for i, item in enumerate(items))
        if kind == "dict":
            result = {}
            for pair in items:
                if not (isinstance(pair, list) and len(pair) == 2):
                    fail(path, f"a dict item must be a [key, value] pair, got {pair!r:.200}")
                key = build(pair[0], path)
                if not (key is None or isinstance(key, (str, int, float))):
                    fail(path, f"a dict key must be a str, number or None, got {type(key).__name__}")
                result[key] = build(pair[1], path + (key,))
            return result
        if kind == "float" and isinstance(node.get("value"), str) and node["value"] in _NON_FINITE:
            return _NON_FINITE[node["value"]]
        if kind == "dtype":
            try:
                return dtypes.as_dtype(node.get("name"))
            except TypeError:
                fail(path, f"unknown dtype {node.get('name')!r}")
        fail(path, f"unknown entry {node!r:.200}")

    return build(tree, ())
