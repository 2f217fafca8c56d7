"""A small reader and writer of the safetensors format, with no pickle anywhere.

The format (https://github.com/huggingface/safetensors) is:

    8 bytes   little-endian unsigned header length N
    N bytes   a UTF-8 JSON object: for each tensor name
              {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
              plus an optional "__metadata__" object of str -> str
    the rest  the tensors' raw little-endian bytes, C order, offsets relative
              to the end of the header, covering the buffer with no holes

Loading only parses JSON and copies bytes into fresh numpy arrays, so a file
can never run code. Every way a file can be wrong (too short, a header length
past the end of the file, a header that is not JSON, offsets that overlap,
leave holes or run past the data, an unknown dtype, a field of the wrong type
or out of range, more dimensions than numpy's 64, bool bytes other than 0/1,
data that does not match its checksum) raises `CheckpointError` naming the
file and the tensor or field, and files that are recognisably something else
(pickles, torch's zip archives) say so. The order of the entries in the
header need not follow the order of their data (the reference reader sorts
them by offset too).

Tensor bytes are written one tensor at a time by `write_tensor_bytes`, so a
large checkpoint is never assembled in memory; tests replace that function to
simulate a crash half-way through a save.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from genesis import dtypes
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.serialization import checksums
from genesis.serialization.errors import CheckpointError

SAFETENSORS_DTYPE = {
    dtypes.float32: "F32",
    dtypes.float16: "F16",
    dtypes.bfloat16: "BF16",
    dtypes.float64: "F64",
    dtypes.int8: "I8",
    dtypes.int16: "I16",
    dtypes.int32: "I32",
    dtypes.int64: "I64",
    dtypes.uint8: "U8",
    dtypes.bool_: "BOOL",
}
GENESIS_DTYPE = {code: dt for dt, code in SAFETENSORS_DTYPE.items()}

METADATA_KEY = "__metadata__"
# The reference implementation refuses headers above 100 MB; so do we, before
# allocating anything for a length read from a file that may be garbage.
MAX_HEADER_BYTES = 100 * 1024 * 1024
ALIGNMENT = 8  # the header is padded with spaces so tensor data starts 8-byte aligned
MAX_DIMS = 64  # numpy's limit on an array's rank
MAX_BYTES = 2**63 - 1  # numpy's limit on an array's extent, counting a 0-length dimension as 1


def little_endian(array: np.ndarray) -> np.ndarray:
    """`array` as a C-contiguous little-endian array (a no-op on the usual machines)."""
    if not array.flags["C_CONTIGUOUS"]:
        array = array.copy(order="C")  # not np.ascontiguousarray, which turns a 0-d array into 1-d
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def write_tensor_bytes(file, array: np.ndarray) -> None:
    """Write one tensor's raw bytes; `array` is C-contiguous and little-endian."""
    if array.size:
        file.write(array.reshape(-1).view(np.uint8).data)


def write_safetensors(file, tensors, metadata: dict) -> None:
    """Write `tensors`, a list of (name, numpy array, genesis dtype), and a str -> str `metadata` map."""
    header = {}
    arrays = []
    offset = 0
    for name, array, dtype in tensors:
        array = little_endian(array)
        size = array.size * array.itemsize
        header[name] = {
            "dtype": SAFETENSORS_DTYPE[dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + size],
        }
        arrays.append(array)
        offset += size
    if metadata:
        header = {METADATA_KEY: dict(metadata), **header}
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % ALIGNMENT)
    file.write(struct.pack("<Q", len(encoded)))
    file.write(encoded)
    for array in arrays:
        write_tensor_bytes(file, array)


def _file_size(file) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # an in-memory stream has no descriptor
        position = file.tell()
        size = file.seek(0, os.SEEK_END)
        file.seek(position)
        return size


def _foreign_format_hint(first_bytes: bytes) -> str:
    if first_bytes[:1] == b"\x80" and first_bytes[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return " (it looks like a Python pickle; genesis never unpickles files, since that can run code)"
    if first_bytes[:4] == b"PK\x03\x04":
        return " (it looks like a zip archive, e.g. a file written by torch.save, which genesis cannot read)"
    return ""


def read_header(file, where: str):
    """(tensor entries in header order, the metadata map, the file position where the data starts)."""
    start = file.tell()  # a stream may hold the checkpoint after other data
    size = _file_size(file) - start
    if size == 0:
        raise CheckpointError(f"{where}: the file is empty")
    prefix = file.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"{where}: the file has only {size} bytes, too short for a safetensors header")
    (header_length,) = struct.unpack("<Q", prefix)
    hint = _foreign_format_hint(prefix)
    if header_length > size - 8:
        raise CheckpointError(
            f"{where}: the header length {header_length} is larger than the file "
            f"({size} bytes); the file is truncated or not a safetensors checkpoint{hint}"
        )
    if header_length > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{where}: the header length {header_length} exceeds the {MAX_HEADER_BYTES}-byte limit{hint}"
        )
    raw = file.read(header_length)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys)
    except (ValueError, RecursionError) as error:  # ValueError: bad UTF-8, bad JSON, a 5000-digit number
        raise CheckpointError(f"{where}: the header is not JSON ({error!s:.200}){hint}") from None
    except _DuplicateKey as duplicate:
        raise CheckpointError(f"{where}: the header names {duplicate.args[0]!r} twice") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: the header is JSON but not an object (got {type(header).__name__})")
    metadata = header.pop(METADATA_KEY, None)
    metadata = {} if metadata is None else metadata  # null is what the reference writes for "none"
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{where}: {METADATA_KEY} must map strings to strings, but it is {metadata!r:.100}")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise CheckpointError(
                f"{where}: {METADATA_KEY} must map strings to strings, but {key!r} maps to {value!r:.100}"
            )
    entries = _check_entries(header, where, size - 8 - header_length)
    return entries, metadata, start + 8 + header_length


class _DuplicateKey(Exception):
    pass


def _refuse_duplicate_keys(pairs):
    # json.loads would keep the last of two entries of one name silently, hiding what the file says
    result = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _check_entries(header: dict, where: str, data_length: int) -> dict:
    """Validate every tensor entry and the layout of the data buffer; name -> (dtype, shape, begin, end)."""
    entries = {}
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise CheckpointError(f"{where}: tensor {name!r} needs dtype, shape and data_offsets, got {info!r:.200}")
        code = info["dtype"]
        if not isinstance(code, str) or code not in GENESIS_DTYPE:
            raise CheckpointError(
                f"{where}: tensor {name!r} has unknown dtype {code!r:.200}; genesis reads {', '.join(GENESIS_DTYPE)}"
            )
        dtype = GENESIS_DTYPE[code]
        shape = _check_shape(info["shape"], dtype.itemsize, name, where)
        begin, end = _check_offsets(info["data_offsets"], name, where)
        expected = math.prod(shape) * dtype.itemsize
        if end - begin != expected:
            raise CheckpointError(
                f"{where}: tensor {name!r} of dtype {code} and shape {list(shape)} needs "
                f"{expected} bytes but its data_offsets {[begin, end]} span {end - begin}"
            )
        entries[name] = (dtype, shape, begin, end)
    _check_layout(entries, where, data_length)
    return entries


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_shape(shape, itemsize: int, name: str, where: str) -> tuple:
    def refuse(problem):
        raise CheckpointError(f"{where}: tensor {name!r} has a malformed shape {shape!r:.200}: {problem}")

    if not isinstance(shape, list):
        refuse("it is not a list")
    if len(shape) > MAX_DIMS:
        refuse(f"{len(shape)} dimensions, more than the {MAX_DIMS} an array can have")
    extent = itemsize
    for axis, size in enumerate(shape):
        if not _is_integer(size):
            refuse(f"dimension {axis} is not an integer")
        if size < 0:
            refuse(f"dimension {axis} is negative")
        extent *= max(size, 1)  # numpy refuses a zero-size array whose other dimensions are too large, too
        if extent > MAX_BYTES:
            refuse(f"larger than any array can be ({MAX_BYTES} bytes)")
    return tuple(shape)


def _check_offsets(offsets, name: str, where: str) -> tuple[int, int]:
    def refuse(problem):
        raise CheckpointError(f"{where}: tensor {name!r} has malformed data_offsets {offsets!r:.200}: {problem}")

    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_integer, offsets))):
        refuse("expected [begin, end], two integers")
    begin, end = offsets
    if begin < 0 or end < 0:
        refuse("an offset is negative")
    if begin > end:
        refuse("it begins after it ends")
    return begin, end


def _check_layout(entries: dict, where: str, data_length: int) -> None:
    """The data buffer must be covered exactly: no overlaps, no holes, nothing past the end."""
    position, previous = 0, None
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: (item[1][2], item[1][3])):
        if end > data_length:
            raise CheckpointError(
                f"{where}: the data is shorter than declared: tensor {name!r} ends at byte "
                f"{end} of the data but the file holds only {data_length} data bytes "
                f"(offsets out of range, or the file is truncated)"
            )
        if begin < position:
            raise CheckpointError(f"{where}: tensors {previous!r} and {name!r} have overlapping data_offsets")
        if begin > position:
            raise CheckpointError(
                f"{where}: a hole in the data before tensor {name!r} (bytes {position}..{begin} belong to no tensor)"
            )
        position, previous = end, name
    if position != data_length:
        raise CheckpointError(f"{where}: {data_length - position} bytes after the last tensor belong to no tensor")


def read_tensor(file, where: str, name: str, entry, data_start: int, checksum: int | None = None) -> np.ndarray:
    """A fresh, writable numpy array holding tensor `name`'s bytes, checked against `checksum` if given."""
    dtype, shape, begin, end = entry
    array = np.empty(shape, dtype=NUMPY_DTYPE[dtype].newbyteorder("<"))
    if end > begin:
        file.seek(data_start + begin)
        count = file.readinto(array.reshape(-1).view(np.uint8))
        if count != end - begin:
            raise CheckpointError(
                f"{where}: the data is shorter than declared: tensor {name!r} needs "
                f"{end - begin} bytes, the file gave {count}"
            )
    if checksum is not None:
        checksums.verify_tensor(where, name, SAFETENSORS_DTYPE[dtype], array, checksum)
    if dtype is dtypes.bool_ and array.size and array.view(np.uint8).max() > 1:
        raise CheckpointError(f"{where}: bool tensor {name!r} holds bytes other than 0 and 1")
    if array.dtype.byteorder == ">":  # only on big-endian machines
        array = array.astype(NUMPY_DTYPE[dtype])
    return array
