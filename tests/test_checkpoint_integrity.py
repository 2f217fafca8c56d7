"""Checkpoint integrity: per-tensor checksums, and clear errors for every malformed header.

Every single flipped bit of a checkpoint must be reported (or be harmless, such as the case of a
hexadecimal digit); the checksums stay standard safetensors metadata that the reference reader
ignores; and a header that no genesis wrote (random JSON, hostile numbers) gives a CheckpointError
that names the file and the tensor or field, never a numpy or Python error from deep inside.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import genesis
from genesis.nn.parameter import Parameter


def saved_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    genesis.save_checkpoint(obj, buffer)
    return buffer.getvalue()


def split(data: bytes) -> tuple[dict, int]:
    """(the header as JSON, where the tensor data starts)."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), 8 + length


def with_header(header: dict, data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def expect_error(path, *words):
    with pytest.raises(genesis.CheckpointError) as info:
        genesis.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


def small_state():
    return {
        "model": {
            "w": Parameter(genesis.randn(3, 2)),
            "mask": genesis.tensor([True, False]),
            "empty": genesis.zeros(2, 0, dtype=genesis.int16),
            "scale": genesis.tensor(2.5, dtype=genesis.float16),
        },
        "epoch": 3,
        "lr": 0.125,
        "name": "run",
        "betas": (0.9, 0.99),
    }


# ---- checksums ------------------------------------------------------------------------------------


def test_every_single_bit_flip_is_reported_or_changes_nothing():
    data = saved_bytes(small_state())
    assert saved_bytes(genesis.load_checkpoint(io.BytesIO(data))) == data
    silent = []
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            loaded = genesis.load_checkpoint(io.BytesIO(bytes(flipped)))
        except genesis.CheckpointError:
            continue
        if saved_bytes(loaded) != data:  # loaded, but not what was saved
            silent.append(bit)
    assert silent == [], f"{len(silent)} flipped bits load as different checkpoints, e.g. bit {silent[0]}"


def test_a_flipped_bit_names_the_tensor_and_verify_false_loads_it_anyway(tmp_path):
    state = {"a": genesis.randn(40, 30), "b": genesis.randn(64, 64), "c": genesis.arange(10)}
    path = tmp_path / "model.safetensors"
    genesis.save_checkpoint(state, path)
    data = bytearray(path.read_bytes())
    header, start = split(bytes(data))
    begin = header["b"]["data_offsets"][0]
    data[start + begin + 4 * 1000 + 2] ^= 0x10  # one bit of b's element 1000
    path.write_bytes(bytes(data))
    message = expect_error(path, "tensor 'b'", "corrupt", "verify=False")
    assert "'a'" not in message and "'c'" not in message
    loaded = genesis.load_checkpoint(path, verify=False)
    for name in ("a", "c"):
        np.testing.assert_array_equal(loaded[name]._data, state[name]._data)
    changed = np.flatnonzero(loaded["b"]._data.reshape(-1) != state["b"]._data.reshape(-1))
    assert changed.tolist() == [1000]


def test_checksums_are_standard_metadata_computed_as_documented(tmp_path):
    state = {"w": genesis.randn(3, 5), "ids": genesis.arange(4), "empty": genesis.zeros(0, 2)}
    path = tmp_path / "model.safetensors"
    genesis.save_checkpoint(state, path)
    with safetensors.safe_open(str(path), framework="numpy") as f:  # the reference reader still opens it
        metadata = f.metadata()
        theirs = {name: f.get_tensor(name) for name in f.keys()}
    table = json.loads(metadata["genesis.crc32"])
    for name, tensor in state.items():
        np.testing.assert_array_equal(theirs[name], tensor._data)
        descriptor = f"{split(path.read_bytes())[0][name]['dtype']}:{','.join(map(str, tensor.shape))}"
        expected = zlib.crc32(tensor._data.tobytes(), zlib.crc32(descriptor.encode()))
        assert table["tensors"][name] == f"{expected:08x}"
    assert table["structure"] == f"{zlib.crc32(metadata['genesis.structure'].encode()):08x}"


def test_files_without_checksums_still_load(tmp_path):
    older = {
        "genesis.structure": json.dumps({"type": "dict", "items": [["x", {"type": "tensor", "name": "x"}]]}),
        "genesis.format_version": "1",
    }  # a checkpoint of a genesis from before checksums
    ids = np.arange(3, dtype=np.int64)
    safetensors.numpy.save_file({"x": ids}, str(tmp_path / "older"), metadata=older)
    np.testing.assert_array_equal(genesis.load_checkpoint(tmp_path / "older")["x"]._data, ids)
    safetensors.numpy.save_file({"y": ids}, str(tmp_path / "foreign"))
    np.testing.assert_array_equal(genesis.load_checkpoint(tmp_path / "foreign")["y"]._data, ids)


@pytest.mark.parametrize(
    "table, words",
    [
        ("{not json", ["genesis.crc32", "not JSON"]),
        ('["00000000"]', ["genesis.crc32", "'tensors' object"]),
        ('{"tensors": {"a": "xyz"}}', ["tensor 'a'", "8 hexadecimal digits"]),
        ('{"tensors": {"a": "0000000g", "b": "00000000"}}', ["tensor 'a'", "8 hexadecimal digits"]),
        ('{"tensors": {"a": "00000000"}}', ["tensor 'b' has no checksum"]),
        ('{"tensors": {"a": "00000000", "b": "00000000", "z": "00000000"}}', ["tensor 'z'", "does not hold"]),
        ('{"tensors": {}, "structure": 12}', ["the structure", "8 hexadecimal digits"]),
    ],
)
def test_a_damaged_checksum_table_is_reported_and_verify_false_ignores_it(tmp_path, table, words):
    state = {"a": genesis.randn(2), "b": genesis.randn(3)}
    header, start = split(saved_bytes(state))
    header["__metadata__"]["genesis.crc32"] = table
    path = tmp_path / "table.safetensors"
    path.write_bytes(with_header(header, saved_bytes(state)[start:]))
    expect_error(path, *words)
    loaded = genesis.load_checkpoint(path, verify=False)
    np.testing.assert_array_equal(loaded["b"]._data, state["b"]._data)


def test_a_corrupt_structure_names_the_structure(tmp_path):
    header, start = split(saved_bytes({"epoch": 3, "w": genesis.ones(2)}))
    header["__metadata__"]["genesis.structure"] = header["__metadata__"]["genesis.structure"].replace("3", "7")
    path = tmp_path / "epoch.safetensors"
    path.write_bytes(with_header(header, saved_bytes({"epoch": 3, "w": genesis.ones(2)})[start:]))
    expect_error(path, "stored structure", "corrupt")
    assert genesis.load_checkpoint(path, verify=False)["epoch"] == 7


# ---- malformed headers ------------------------------------------------------------------------------


def f32(shape, offsets, **changes):
    return {"dtype": "F32", "shape": shape, "data_offsets": offsets, **changes}


HUGE = 2**64 + 1


# id: (header, data, words the error must hold; None: the file is valid)
MALFORMED = {
    "dtype-list": ({"t": f32([2], [0, 8], dtype=["F32"])}, bytes(8), ["tensor 't'", "unknown dtype ['F32']"]),
    "dtype-object": ({"t": f32([2], [0, 8], dtype={"F": 32})}, bytes(8), ["tensor 't'", "unknown dtype"]),
    "dtype-int": ({"t": f32([2], [0, 8], dtype=4)}, bytes(8), ["tensor 't'", "unknown dtype 4"]),
    "shape-not-list": ({"t": f32(2, [0, 8])}, bytes(8), ["tensor 't'", "shape 2", "not a list"]),
    "shape-float": ({"t": f32([2.0], [0, 8])}, bytes(8), ["tensor 't'", "dimension 0 is not an integer"]),
    "shape-bool": ({"t": f32([True, 2], [0, 8])}, bytes(8), ["tensor 't'", "dimension 0 is not an integer"]),
    "shape-negative": ({"t": f32([2, -1], [0, 8])}, bytes(8), ["tensor 't'", "dimension 1 is negative"]),
    "shape-huge": ({"t": f32([HUGE], [0, 4 * HUGE])}, bytes(8), ["tensor 't'", "larger than any array"]),
    "empty-but-huge": ({"t": f32([2**62, 2**62, 0], [0, 0])}, b"", ["tensor 't'", "larger than any array"]),
    "empty-but-too-big": ({"t": f32([2**61, 0], [0, 0])}, b"", ["tensor 't'", "larger than any array"]),
    "65-dims": ({"t": f32([1] * 65, [0, 4])}, bytes(4), ["tensor 't'", "65 dimensions", "64"]),
    "offset-negative": ({"t": f32([2], [-8, 0])}, bytes(8), ["tensor 't'", "data_offsets", "negative"]),
    "three-offsets": ({"t": f32([2], [0, 8, 16])}, bytes(8), ["tensor 't'", "data_offsets", "[begin, end]"]),
    "offsets-string": ({"t": f32([2], "0-8")}, bytes(8), ["tensor 't'", "data_offsets", "[begin, end]"]),
    "offset-float": ({"t": f32([2], [0, 8.0])}, bytes(8), ["tensor 't'", "data_offsets", "[begin, end]"]),
    "offsets-past-the-end": (
        {"t": f32([2], [HUGE, HUGE + 8])},
        bytes(8),
        ["tensor 't'", "ends at byte", "only 8 data bytes"],
    ),
    "data-short": ({"t": f32([2], [0, 8]), "u": f32([2], [8, 16])}, bytes(12), ["tensor 'u'", "shorter than"]),
    "header-order-differs": ({"t": f32([2], [8, 16]), "u": f32([2], [0, 8])}, bytes(16), None),  # allowed
    "entry-string": ({"t": "F32"}, b"", ["tensor 't'", "needs dtype, shape and data_offsets"]),
    "entry-null": ({"t": None}, b"", ["tensor 't'", "needs dtype, shape and data_offsets"]),
    "metadata-list": ({"__metadata__": ["a", "b"]}, b"", ["__metadata__", "it is ['a', 'b']"]),
    "metadata-int-value": ({"__metadata__": {"fine": "x", "step": 3}}, b"", ["__metadata__", "'step' maps to 3"]),
    "metadata-null": ({"__metadata__": None, "t": f32([1], [0, 4])}, bytes(4), None),  # the reference's "none"
    "header-string": (b'"just a string"', b"", ["not an object", "str"]),
    "header-null": (b"null", b"", ["not an object", "NoneType"]),
    "header-number": (b"17", b"", ["not an object", "int"]),
    "5000-digit-number": (
        b'{"t": {"dtype": "U8", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 1]}}',
        bytes(1),
        ["not JSON"],
    ),
}


@pytest.mark.parametrize("header, data, words", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_headers_are_reported_with_the_file_and_field(tmp_path, header, data, words):
    path = tmp_path / "bad.safetensors"
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    if words is None:
        assert isinstance(genesis.load_checkpoint(path), dict)
    else:
        expect_error(path, *words)


@pytest.mark.parametrize(
    "structure, words",
    [
        ({"type": "tensor", "name": ["x"]}, ["refers to tensor ['x']"]),
        ({"type": "tensor", "name": {"x": 1}}, ["refers to tensor"]),
        ({"type": "float", "value": ["nan"]}, ["unknown entry"]),
        ({"type": "dtype", "name": ["float32"]}, ["unknown dtype"]),
    ],
)
def test_structures_with_values_of_the_wrong_type_are_reported(tmp_path, structure, words):
    metadata = {"genesis.structure": json.dumps(structure), "genesis.format_version": "1"}
    safetensors.numpy.save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "s"), metadata=metadata)
    expect_error(tmp_path / "s", "structure is corrupt", *words)


def test_a_genesis_checkpoint_that_lost_its_structure_is_not_read_as_a_flat_file(tmp_path):
    metadata = {"genesis.format_version": "1"}
    safetensors.numpy.save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "s"), metadata=metadata)
    expect_error(tmp_path / "s", "without its structure")


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.sampled_from(["F32", "BOOL", "U8", "I64", "__metadata__"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "t", "u"]), inner, max_size=4)
    ),
    max_leaves=12,
)
_ENTRY = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "U8", "BOOL"]) | _JSON,
        "shape": st.lists(st.integers(-1, 4), max_size=3) | _JSON,
        "data_offsets": st.lists(st.integers(-1, 24), min_size=2, max_size=2) | _JSON,
    }
)


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(st.sampled_from(["t", "u", "__metadata__"]), _ENTRY | _JSON, max_size=3) | _JSON,
    data=st.binary(max_size=24),
)
def test_any_header_loads_or_gives_a_checkpoint_error(header, data):
    try:
        loaded = genesis.load_checkpoint(io.BytesIO(with_header(header, data)))
    except genesis.CheckpointError as error:
        assert "<stream>" in str(error)
        return
    assert isinstance(loaded, dict) and all(isinstance(t, genesis.Tensor) for t in loaded.values())
