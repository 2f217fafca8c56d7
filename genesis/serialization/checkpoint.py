"""`save_checkpoint` / `load_checkpoint`: nested state in a safetensors file.

The tensors go into the safetensors data (written by `safetensors_io`), the
structure around them into the header's `__metadata__` as JSON under
`genesis.structure` (encoded by `structure`). Any safetensors reader can open
the file and see the tensors by their paths. A whole nn.Module (as
`torch.save(model)`) is the one pickle in a checkpoint (`pickled`): loading
runs no code unless `weights_only=False` asks for that module.

Choices, written down:
- `requires_grad` is restored (as torch.save does); loaded tensors are leaves
  with no `.grad`.
- A safetensors file without the genesis structure (written by another
  library) loads as a flat dict {name: tensor}, in header order.
- Saving to a path is atomic (see `atomic`); saving to an open binary stream
  writes straight into it, since a stream cannot be replaced. Saving or
  loading by path first removes what crashed saves left in that directory.
- Every tensor and the structure carry a CRC-32 (see `checksums`), checked on
  loading unless `verify=False`; a file without them loads unchecked.
"""

from __future__ import annotations

import json
import os

import numpy as np

from genesis import distributed
from genesis.runtime.devices import Device, cpu, device
from genesis.serialization import checksums, safetensors_io
from genesis.serialization.atomic import atomic_write, remove_stale_temporaries
from genesis.serialization.errors import CheckpointError
from genesis.serialization.structure import decode, encode
from genesis.tensor import Tensor

STRUCTURE_KEY = "genesis.structure"
VERSION_KEY = "genesis.format_version"
FORMAT_VERSION = "1"


def save_checkpoint(obj, path) -> None:
    """Write `obj` (dicts, lists, tuples of tensors, numbers, strings, None, nn.Modules) to `path` atomically.

    In a data-parallel run (genesis.distributed) every rank may call it: rank 0 writes the path, which
    every rank may load once the call returns on it (the ranks wait for each other). A stream is the
    caller's own and is written on every rank."""
    if not hasattr(path, "write") and distributed.is_initialized() and distributed.get_world_size() > 1:
        if distributed.get_rank() == 0:
            _save(obj, path)
        distributed.barrier()
        return
    _save(obj, path)


def _save(obj, path) -> None:
    tree, tensors = encode(obj)
    # as stored (C order, little-endian), which is what the checksums cover
    # a device's tensors are copied to the host first (explicit reads: .cpu())
    arrays = [(name, safetensors_io.little_endian(np.asarray(t.detach().cpu()._data)), t.dtype) for name, t in tensors]
    structure = json.dumps(tree, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    metadata = {
        STRUCTURE_KEY: structure,
        VERSION_KEY: FORMAT_VERSION,
        checksums.KEY: checksums.table(
            structure, [(name, safetensors_io.SAFETENSORS_DTYPE[dtype], array) for name, array, dtype in arrays]
        ),
    }
    if hasattr(path, "write"):
        safetensors_io.write_safetensors(path, arrays, metadata)
    else:
        atomic_write(path, lambda file: safetensors_io.write_safetensors(file, arrays, metadata))


def load_checkpoint(path, verify: bool = True, *, weights_only: bool | None = True, map_location=None):
    """Read a checkpoint written by `save_checkpoint`, or any safetensors file as a flat dict of tensors.

    `verify=False` skips the checksums, to rescue what a damaged checkpoint still holds. A pickled
    module loads only with `weights_only=False` (PyTorch's default, True, refuses it: unpickling runs
    code the file names); None means the default, as in torch.load. Tensors load on the CPU (a file
    records no device: a checkpoint saved from a GPU loads on a machine without one);
    `map_location` ("cuda", a device, or torch.load's {"cpu": "cuda:0"}) puts them on a device."""
    weights_only = True if weights_only is None else bool(weights_only)
    device = _device_of(map_location)
    if hasattr(path, "read"):
        return _load(path, str(getattr(path, "name", None) or "<stream>"), verify, weights_only, device)
    where = os.fspath(path)
    if os.path.isdir(where):
        raise IsADirectoryError(f"cannot load a checkpoint from {where}: it is a directory")
    remove_stale_temporaries(os.path.dirname(os.path.abspath(where)))
    with open(where, "rb") as file:
        return _load(file, where, verify, weights_only, device)


def _device_of(map_location):
    if isinstance(map_location, dict):  # the tensors are read on the CPU: where "cpu" maps to
        map_location = map_location.get("cpu", map_location.get(cpu, None))
    if map_location is not None and not isinstance(map_location, (str, Device)):
        raise TypeError(
            f"load_checkpoint: map_location must be a device, a device name or a dict of them, got {map_location!r}"
        )
    return device(map_location)


def _load(file, where: str, verify: bool, weights_only: bool, to_device=cpu):
    entries, metadata, data_start = safetensors_io.read_header(file, where)
    structure_checksum, tensor_checksums = checksums.read_table(metadata, entries, where) if verify else (None, {})
    tensors = {
        name: Tensor._make(
            safetensors_io.read_tensor(file, where, name, entry, data_start, tensor_checksums.get(name)), entry[0]
        ).to(to_device)
        for name, entry in entries.items()
    }
    if STRUCTURE_KEY not in metadata and VERSION_KEY not in metadata:
        return tensors  # a plain safetensors file
    version = metadata.get(VERSION_KEY)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: genesis checkpoint format version {version!r} is not one this genesis reads ({FORMAT_VERSION!r})"
        )
    if STRUCTURE_KEY not in metadata:
        raise CheckpointError(f"{where}: a genesis checkpoint without its structure ({STRUCTURE_KEY})")
    if structure_checksum is not None:
        checksums.verify_structure(where, metadata[STRUCTURE_KEY], structure_checksum)
    try:
        tree = json.loads(metadata[STRUCTURE_KEY])
        return decode(tree, tensors, where, weights_only)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{where}: the stored structure is not JSON ({error})") from None
    except RecursionError:  # a crafted file can nest deeper than Python recurses
        raise CheckpointError(f"{where}: the stored structure is nested too deeply to load") from None
