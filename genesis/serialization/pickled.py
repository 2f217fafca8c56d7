"""Whole modules in a checkpoint, as `torch.save(model)` stores them: pickled, their tensors set aside.

A checkpoint is otherwise a tree of plain values (`structure`) that loads without running code. A
module is an object of the user's classes, so it is pickled, and the pickle goes into the tree as
`{"type": "pickle", "class": "pkg.Net", "data": base64}`. Each tensor the pickle reaches becomes a
persistent id, the tensor's own entry in the tree (`{"type": "tensor", "name": ...}`), so its bytes
sit in the safetensors data, named by the module's state_dict keys, checksummed and shared like any
other tensor's.

Unpickling runs code that the file names, so `load_checkpoint` unpickles only with
`weights_only=False`; with PyTorch's default (True, since 2.6) a pickled entry is refused with
`WeightsOnlyError` before a byte of it is read.
"""

from __future__ import annotations

import base64
import binascii
import io
import pickle

from genesis.serialization.errors import CheckpointError
from genesis.tensor import Tensor

# pinned rather than pickle.HIGHEST_PROTOCOL, so a checkpoint loads on every Python genesis supports
PROTOCOL = 4


class _Pickler(pickle.Pickler):
    def __init__(self, file, tensor_entry):
        super().__init__(file, protocol=PROTOCOL)
        self.tensor_entry = tensor_entry

    def persistent_id(self, obj):
        return self.tensor_entry(obj) if isinstance(obj, Tensor) else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, tensor_of):
        super().__init__(file)
        self.tensor_of = tensor_of

    def persistent_load(self, pid):
        return self.tensor_of(pid)


def class_name(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def dumps(obj, tensor_entry, where: str) -> dict:
    """The tree's entry for `obj`; `tensor_entry(tensor)` registers a tensor and returns its entry."""
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, tensor_entry).dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise TypeError(f"save_checkpoint: cannot pickle the {class_name(obj)} at {where}: {error}") from error
    return {"type": "pickle", "class": class_name(obj), "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def loads(node: dict, tensor_of, where: str, path_text: str):
    """The object an entry of `dumps` holds; `tensor_of(entry)` gives the loaded tensor of an entry."""
    data = node.get("data")
    if not isinstance(data, str):
        raise CheckpointError(f"{where}: the stored structure is corrupt at {path_text}: a pickle without data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{where}: the pickled {node.get('class')} at {path_text} is not base64") from None
    try:
        return _Unpickler(io.BytesIO(raw), tensor_of).load()
    except CheckpointError:
        raise
    except Exception as error:  # a missing class, a truncated stream, whatever the pickled code raised
        raise CheckpointError(
            f"{where}: the pickled {node.get('class')} at {path_text} does not load: {type(error).__name__}: {error}"
        ) from error


__all__ = ["dumps", "loads", "class_name", "PROTOCOL"]
