"""Per-tensor checksums in the safetensors header, so a flipped bit is reported, never loaded.

`save_checkpoint` stores, under the metadata key `genesis.crc32`, a JSON object

    {"structure": "<crc>", "tensors": {"<tensor name>": "<crc>", ...}}

of 8-digit hexadecimal CRC-32s. A tensor's covers its dtype code, shape and
bytes as stored (the CRC of its bytes, started from the CRC of "F32:3,5"),
so a bit flipped in its data or in its header entry is caught and named; the
structure's covers the `genesis.structure` text, so a flipped digit cannot
turn `epoch: 3` into `epoch: 7` unnoticed. The file stays a standard
safetensors file (metadata is free-form str -> str), and one without the
table (written by another library, or an older genesis) loads unchecked.

Why CRC-32 (zlib's): measured on a 100 MB float32 tensor on the project's
machine (AMD EPYC, 2 cores), CRC-32 takes 23.5 ms (4.3 GB/s) against 55 ms for
SHA-256 (1.8 GB/s, with the CPU's SHA instructions; several times slower on
CPUs without them), about the cost of one more memory copy. A CRC catches
every single flipped bit and every burst of up to 32, and misses random
damage once in 2**32: it guards against accidents, not tampering, which is
all a checkpoint's checksum is for.
"""

from __future__ import annotations

import json
import string
import zlib

import numpy as np

from genesis.serialization.errors import CheckpointError

KEY = "genesis.crc32"


def tensor_checksum(code: str, shape, array: np.ndarray) -> int:
    """The CRC-32 of a tensor's dtype code, shape and raw bytes; `array` is C-contiguous, as stored."""
    described = zlib.crc32(f"{code}:{','.join(map(str, shape))}".encode())
    return zlib.crc32(array.reshape(-1).view(np.uint8), described)


def text_checksum(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def table(structure: str, tensors) -> str:
    """The metadata value for `tensors`, a list of (name, dtype code, C-contiguous little-endian array)."""
    return json.dumps(
        {
            "structure": f"{text_checksum(structure):08x}",
            "tensors": {name: f"{tensor_checksum(code, array.shape, array):08x}" for name, code, array in tensors},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def read_table(metadata: dict, names, where: str) -> tuple[int | None, dict[str, int]]:
    """(the structure's checksum, {tensor name: checksum}) from the metadata; (None, {}) for a file without
    checksums. The table must cover exactly the file's tensors: anything else means an edited header."""
    if KEY not in metadata:
        return None, {}
    try:
        stored = json.loads(metadata[KEY])
    except ValueError:
        raise CheckpointError(f"{where}: the checksum table {KEY} in the metadata is not JSON") from None
    if not (isinstance(stored, dict) and isinstance(stored.get("tensors"), dict)):
        raise CheckpointError(f"{where}: the checksum table {KEY} must be an object with a 'tensors' object")
    tensors = {name: _hex(value, where, f"tensor {name!r}") for name, value in stored["tensors"].items()}
    structure = _hex(stored["structure"], where, "the structure") if "structure" in stored else None
    missing = [name for name in names if name not in tensors]
    if missing:
        raise CheckpointError(
            f"{where}: tensor {missing[0]!r} has no checksum in {KEY} although the file carries "
            f"checksums (the header was edited or is corrupt)"
        )
    unknown = [name for name in tensors if name not in names]
    if unknown:
        raise CheckpointError(
            f"{where}: {KEY} holds a checksum for tensor {unknown[0]!r}, which the file does not "
            f"hold (the header was edited or is corrupt)"
        )
    return structure, tensors


def _hex(value, where: str, what: str) -> int:
    if isinstance(value, str) and len(value) == 8 and all(c in string.hexdigits for c in value):
        return int(value, 16)
    raise CheckpointError(f"{where}: the checksum of {what} in {KEY} is {value!r:.100}, not 8 hexadecimal digits")


def verify_tensor(where: str, name: str, code: str, array: np.ndarray, expected: int) -> None:
    if tensor_checksum(code, array.shape, array) != expected:
        raise CheckpointError(
            f"{where}: tensor {name!r} is corrupt: its dtype, shape or bytes do not match the "
            f"checksum saved with it (damaged on disk or in transfer); "
            f"load_checkpoint(..., verify=False) loads it anyway"
        )


def verify_structure(where: str, structure: str, expected: int) -> None:
    if text_checksum(structure) != expected:
        raise CheckpointError(
            f"{where}: the stored structure (genesis.structure) is corrupt: it does not match "
            f"the checksum saved with it; load_checkpoint(..., verify=False) loads it anyway"
        )
