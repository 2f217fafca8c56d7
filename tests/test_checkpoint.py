"""Checkpoints: bit-exact round trips, interop with the safetensors library, atomic writes, corrupt files."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import struct
from collections import OrderedDict

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import torch

import genesis
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.serialization import safetensors_io

ALL_DTYPES = [
    genesis.float32,
    genesis.float16,
    genesis.bfloat16,
    genesis.float64,
    genesis.int8,
    genesis.int16,
    genesis.int32,
    genesis.int64,
    genesis.uint8,
    genesis.bool,
]


def random_array(dtype, shape, seed=0) -> np.ndarray:
    """Random bit patterns of `dtype` (NaNs with payloads, infinities, -0.0 and subnormals included)."""
    rng = np.random.default_rng(seed)
    np_dtype = NUMPY_DTYPE[dtype]
    if dtype is genesis.bool:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * np_dtype.itemsize, dtype=np.uint8)
    array = raw.view(np_dtype).reshape(shape).copy()
    if dtype.is_floating_point and array.size >= 4:
        flat = array.reshape(-1)
        bits = flat.view(f"u{np_dtype.itemsize}")
        bits[0] = np.iinfo(bits.dtype).max // 2 + 1  # only the sign bit: -0.0
        bits[1] = np.iinfo(bits.dtype).max  # all ones: a NaN with a full payload
        flat[2] = np.inf
        flat[3] = -np.inf
    return array


def make(array, dtype=None) -> genesis.Tensor:
    return genesis.Tensor._make(array, dtype or genesis.runtime.cpu.from_numpy_dtype(array.dtype))


def raw_bytes(t) -> bytes:
    return t._data.tobytes(order="C")


def assert_same_tensor(loaded, original):
    assert isinstance(loaded, genesis.Tensor)
    assert loaded.dtype is original.dtype
    assert loaded.shape == original.shape
    assert raw_bytes(loaded) == raw_bytes(original)
    assert loaded.requires_grad == original.requires_grad
    assert loaded.is_leaf


def assert_same_structure(loaded, original, path="obj"):
    """Equal values of exactly the same types, all the way down (NaN equals NaN, -0.0 differs from 0.0)."""
    if isinstance(original, genesis.Tensor):
        assert_same_tensor(loaded, original)
        return
    assert type(loaded) is type(original), f"{path}: {type(loaded)} != {type(original)}"
    if isinstance(original, dict):
        assert list(loaded.keys()) == list(original.keys()), path
        for key in original:
            assert type(key) is type(next(k for k in loaded if k == key)), f"{path}: key {key!r}"
            assert_same_structure(loaded[key], original[key], f"{path}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original), path
        for i, (a, b) in enumerate(zip(loaded, original)):
            assert_same_structure(a, b, f"{path}[{i}]")
    elif isinstance(original, float):
        assert struct.pack("<d", loaded) == struct.pack("<d", original), path
    else:
        assert loaded == original, path


def round_trip(obj, tmp_path, name="state.safetensors"):
    path = tmp_path / name
    genesis.save_checkpoint(obj, path)
    return genesis.load_checkpoint(path)


# ---- round trips -------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
def test_every_dtype_round_trips_bit_for_bit(dtype, tmp_path):
    tensors = {
        "awkward": make(random_array(dtype, (7, 13, 3), seed=1), dtype),
        "scalar": make(random_array(dtype, (), seed=2), dtype),
        "empty": make(random_array(dtype, (0, 5), seed=3), dtype),
        "transposed": make(random_array(dtype, (6, 11), seed=4).T, dtype),
        "strided": make(random_array(dtype, (9, 10), seed=5)[::2, 1::3], dtype),
    }
    assert not tensors["transposed"].is_contiguous() and not tensors["strided"].is_contiguous()
    loaded = round_trip(tensors, tmp_path)
    assert_same_structure(loaded, tensors)
    for t in loaded.values():  # a loaded tensor owns fresh, writable memory
        assert t._data.flags["WRITEABLE"] and t._data.flags["C_CONTIGUOUS"]


def test_nested_structure_round_trips_with_types(tmp_path):
    weight = genesis.randn(5, 3, requires_grad=True)
    state = {
        "model": OrderedDict([("fc.weight", weight), ("fc.bias", genesis.zeros(3))]),
        "optimizer": {
            "state": {0: {"step": 17, "exp_avg": genesis.randn(5, 3)}, 1: {"step": 17}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "amsgrad": False}],
        },
        "numbers": [0, -1, 2**100, 1.5, -0.0, math.inf, -math.inf, math.nan, 5e-324, True, False, None],
        "text": ["", 'naïve ✓ "quoted" \\ back', "\x00control"],
        "empties": ({}, [], ()),
        "keys": {1: "int", "1": "str", None: "none", 2.5: "float"},
        "bool_keys": {True: "yes", False: "no"},  # apart: True == 1 would merge with the int key
        "dtype": genesis.bfloat16,
        "nested": ((1, (2, [3, {"deep": genesis.arange(4)}])),),
    }
    loaded = round_trip(state, tmp_path)
    expected = dict(state, model=dict(state["model"]))  # an OrderedDict comes back as a dict, order kept
    assert_same_structure(loaded, expected)
    assert loaded["dtype"] is genesis.bfloat16


def test_top_level_values_other_than_dicts(tmp_path):
    t = genesis.randn(4, 2)
    assert_same_tensor(round_trip(t, tmp_path, "a"), t)
    assert_same_structure(round_trip([t, 3, "x"], tmp_path, "b"), [t, 3, "x"])
    assert round_trip(None, tmp_path, "c") is None
    assert_same_structure(round_trip(math.nan, tmp_path, "d"), math.nan)


def test_numpy_scalars_are_stored_as_python_numbers(tmp_path):
    loaded = round_trip({"a": np.float32(0.1), "b": np.int64(7), "c": np.bool_(True)}, tmp_path)
    assert loaded == {"a": float(np.float32(0.1)), "b": 7, "c": True}
    assert type(loaded["a"]) is float and type(loaded["b"]) is int and type(loaded["c"]) is bool


def test_requires_grad_is_restored_and_tensors_are_leaves(tmp_path):
    leaf = genesis.randn(3, 4, requires_grad=True)
    non_leaf = leaf * 2  # torch.save keeps requires_grad on such a tensor too; it loads as a leaf
    loaded = round_trip(
        {"leaf": leaf, "non_leaf": non_leaf, "plain": genesis.randn(2), "ints": genesis.arange(3)}, tmp_path
    )
    assert loaded["leaf"].requires_grad and loaded["leaf"].is_leaf and loaded["leaf"].grad is None
    assert loaded["non_leaf"].requires_grad and loaded["non_leaf"].is_leaf
    assert not loaded["plain"].requires_grad and not loaded["ints"].requires_grad
    (loaded["leaf"] * loaded["non_leaf"]).sum().backward()
    np.testing.assert_array_equal(loaded["leaf"].grad._data, non_leaf._data)


def test_shared_tensor_is_stored_once_and_loads_as_one_object(tmp_path):
    shared = genesis.randn(6, 5)
    state = {"model": {"weight": shared}, "optimizer": {"params": [shared, shared]}, "other": genesis.randn(6, 5)}
    path = tmp_path / "shared.safetensors"
    genesis.save_checkpoint(state, path)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == ["model.weight", "other"]
    loaded = genesis.load_checkpoint(path)
    assert loaded["model"]["weight"] is loaded["optimizer"]["params"][0] is loaded["optimizer"]["params"][1]
    assert loaded["other"] is not loaded["model"]["weight"]
    assert_same_tensor(loaded["model"]["weight"], shared)


def test_tensor_names_that_collide_get_distinct_names(tmp_path):
    a, b, c = genesis.randn(2), genesis.randn(3), genesis.randn(4)
    state = {"a.b": a, "a": {"b": b}, "__metadata__": c}
    path = tmp_path / "names.safetensors"
    genesis.save_checkpoint(state, path)
    assert len(safetensors.numpy.load_file(str(path))) == 3
    assert_same_structure(genesis.load_checkpoint(path), state)


def test_generator_state_round_trips_and_resumes_the_stream(tmp_path):
    generator = genesis.Generator().manual_seed(1234)
    genesis.randn(10, generator=generator)
    loaded = round_trip({"rng": generator.get_state()}, tmp_path)
    expected = genesis.randn(7, generator=generator)
    resumed = genesis.Generator()
    resumed.set_state(loaded["rng"])
    np.testing.assert_array_equal(genesis.randn(7, generator=resumed)._data, expected._data)


def test_streams_and_aliases(tmp_path):
    state = {"w": genesis.randn(3, 2, dtype=genesis.float16), "step": 4}
    buffer = io.BytesIO()
    genesis.save(state, buffer)
    buffer.seek(0)
    assert_same_structure(genesis.load(buffer), state)
    assert genesis.save is genesis.save_checkpoint and genesis.load is genesis.load_checkpoint
    prefixed = io.BytesIO()
    prefixed.write(b"other data first")
    genesis.save(state, prefixed)
    prefixed.seek(len(b"other data first"))
    assert_same_structure(genesis.load(prefixed), state)
    genesis.save(state, str(tmp_path / "as_str"))  # a str path works as well as a PathLike
    assert_same_structure(genesis.load(str(tmp_path / "as_str")), state)


def test_unsupported_values_are_refused_with_their_path(tmp_path):
    with pytest.raises(TypeError, match=r"set.*obj\['a'\]\[1\]"):
        genesis.save_checkpoint({"a": [1, {2}]}, tmp_path / "x")
    with pytest.raises(TypeError, match="key"):
        genesis.save_checkpoint({(1, 2): 3}, tmp_path / "x")
    looped = [1]
    looped.append(looped)
    with pytest.raises(ValueError, match="contains itself"):
        genesis.save_checkpoint({"loop": looped}, tmp_path / "x")
    assert os.listdir(tmp_path) == []


# ---- interop with the safetensors library ---------------------------------------


def test_files_open_with_the_safetensors_library(tmp_path):
    state = {f"t_{dt.name}": make(random_array(dt, (3, 5), seed=i), dt) for i, dt in enumerate(ALL_DTYPES)}
    state["nested"] = {"scalar": genesis.tensor(2.5), "empty": genesis.zeros(0, 4, dtype=genesis.int16)}
    path = tmp_path / "interop.safetensors"
    genesis.save_checkpoint(state, path)
    theirs = safetensors.numpy.load_file(str(path))
    expected = {
        "nested.scalar": state["nested"]["scalar"],
        "nested.empty": state["nested"]["empty"],
        **{name: t for name, t in state.items() if name != "nested"},
    }
    assert sorted(theirs) == sorted(expected)
    for name, t in expected.items():
        assert theirs[name].dtype == t._data.dtype and theirs[name].shape == t.shape
        assert theirs[name].tobytes() == raw_bytes(t), name
    with safetensors.safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        assert json.loads(metadata["genesis.structure"])["type"] == "dict"
        bf16 = f.get_tensor("t_bfloat16")
        assert bf16.dtype == torch.bfloat16
        assert bf16.view(torch.int16).numpy().tobytes() == raw_bytes(state["t_bfloat16"])


def test_foreign_safetensors_file_loads_as_flat_dict(tmp_path):
    rng = np.random.default_rng(0)
    theirs = {
        "encoder.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "encoder.ids": rng.integers(-5, 5, size=(7,)).astype(np.int64),
        "mask": rng.integers(0, 2, size=(2, 2)).astype(np.bool_),
    }
    path = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file(theirs, str(path), metadata={"format": "np"})
    loaded = genesis.load_checkpoint(path)
    assert sorted(loaded) == sorted(theirs)
    for name, array in theirs.items():
        assert loaded[name].dtype is genesis.runtime.cpu.from_numpy_dtype(array.dtype)
        np.testing.assert_array_equal(loaded[name]._data, array)


# ---- atomic writes ----------------------------------------------------------------


def _crash_after(monkeypatch, tensors_written: int):
    """Make the tensor writer write `tensors_written` tensors, half of the next one, then raise."""
    original = safetensors_io.write_tensor_bytes
    calls = []

    def failing(file, array):
        if len(calls) == tensors_written:
            file.write(array.reshape(-1).view(np.uint8)[: array.nbytes // 2].tobytes())
            raise OSError("disk full (simulated)")
        calls.append(1)
        original(file, array)

    monkeypatch.setattr(safetensors_io, "write_tensor_bytes", failing)


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    old_state = {"w": genesis.randn(50, 40), "step": 1}
    genesis.save_checkpoint(old_state, path)
    old_bytes = path.read_bytes()
    _crash_after(monkeypatch, tensors_written=1)
    new_state = {"a": genesis.randn(30, 30), "b": genesis.randn(100, 7), "step": 2}
    with pytest.raises(OSError, match="simulated"):
        genesis.save_checkpoint(new_state, path)
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["model.safetensors"]  # no temporary file left behind
    assert_same_structure(genesis.load_checkpoint(path), old_state)
    monkeypatch.undo()
    genesis.save_checkpoint(new_state, path)
    assert_same_structure(genesis.load_checkpoint(path), new_state)


def test_crash_on_first_save_leaves_nothing(tmp_path, monkeypatch):
    _crash_after(monkeypatch, tensors_written=0)
    with pytest.raises(OSError):
        genesis.save_checkpoint({"a": genesis.randn(8)}, tmp_path / "new.safetensors")
    assert os.listdir(tmp_path) == []


def test_saved_file_gets_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "perm.safetensors"
    genesis.save_checkpoint({"a": genesis.ones(2)}, path)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_missing_directory_and_directory_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        genesis.save_checkpoint({}, tmp_path / "no_such_dir" / "x.safetensors")
    with pytest.raises(FileNotFoundError):
        genesis.load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(IsADirectoryError):
        genesis.load_checkpoint(tmp_path)


# ---- truncated, corrupt and foreign files ---------------------------------------------


def write_raw(path, header, data=b"", header_length=None):
    """A file laid out as safetensors, with whatever header and data a test wants."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(encoded) if header_length is None else header_length
    path.write_bytes(struct.pack("<Q", length) + encoded + data)
    return path


def expect_error(path, *words):
    with pytest.raises(genesis.CheckpointError) as info:
        genesis.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def f32(shape, offsets):
    return {"dtype": "F32", "shape": shape, "data_offsets": offsets}


def test_checkpoint_error_is_a_value_error():
    assert issubclass(genesis.CheckpointError, ValueError)


def test_empty_and_too_short_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    expect_error(tmp_path / "empty", "empty")
    (tmp_path / "short").write_bytes(b"\x05\x00\x00")
    expect_error(tmp_path / "short", "too short")


def test_header_length_larger_than_the_file(tmp_path):
    expect_error(write_raw(tmp_path / "f", b"{}", header_length=1000), "header length 1000", "larger than the file")


def test_header_not_json(tmp_path):
    expect_error(write_raw(tmp_path / "a", b"{not json at all"), "not JSON")
    expect_error(write_raw(tmp_path / "b", b"\xff\xfe\x00{}"), "not JSON")
    expect_error(write_raw(tmp_path / "c", b"[1, 2]"), "not an object")


@pytest.mark.parametrize(
    "header, data, words",
    [
        ({"a": f32([2], [8, 16])}, bytes(8), ["shorter than declared", "'a'"]),
        ({"a": f32([2], [0, 8]), "b": f32([2], [4, 12])}, bytes(12), ["overlapping", "'a'", "'b'"]),
        ({"a": f32([1], [0, 4]), "b": f32([1], [8, 12])}, bytes(12), ["hole", "'b'"]),
        ({"a": f32([1], [0, 4])}, bytes(8), ["4 bytes after the last tensor"]),
        ({"a": f32([3], [0, 8])}, bytes(8), ["needs 12 bytes", "span 8"]),
        ({"a": f32([2], [8, 0])}, bytes(8), ["malformed data_offsets"]),
        ({"a": f32([-2], [0, 8])}, bytes(8), ["malformed shape"]),
        ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), ["needs dtype, shape and data_offsets"]),
        ({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, bytes(2), ["unknown dtype 'F8_E4M3'"]),
        ({"a": {"dtype": "U16", "shape": [1], "data_offsets": [0, 2]}}, bytes(2), ["unknown dtype 'U16'"]),
        ({"a": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\x00\x01\x07", ["bytes other than 0 and 1"]),
        ({"__metadata__": {"k": 1}}, b"", ["__metadata__ must map strings to strings"]),
        (
            b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
            b'"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}',
            bytes(2),
            ["names 'a' twice"],
        ),
    ],
)
def test_malformed_tensor_tables(tmp_path, header, data, words):
    expect_error(write_raw(tmp_path / "bad.safetensors", header, data), *words)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "truncated.safetensors"
    genesis.save_checkpoint({"a": genesis.randn(10, 10), "b": genesis.randn(3)}, path)
    full = path.read_bytes()
    path.write_bytes(full[:-5])
    expect_error(path, "shorter than declared")
    path.write_bytes(full[:20])
    expect_error(path, "larger than the file")


def test_random_binary_file(tmp_path):
    path = tmp_path / "noise.bin"
    for seed in range(5):
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        expect_error(path)


_unpickled = []


def _record_unpickling():
    _unpickled.append(True)
    return "ran"


class _Booby:
    def __reduce__(self):
        return _record_unpickling, ()


def test_pickle_files_are_refused_without_running_them(tmp_path):
    path = tmp_path / "state.pkl"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "trap": _Booby()}, protocol=protocol))
        expect_error(path, "pickle")
    assert _unpickled == []
    torch_path = tmp_path / "state.pt"
    torch.save({"w": torch.ones(3)}, torch_path)
    expect_error(torch_path, "zip archive")


def _with_metadata(path, metadata, tensors=None):
    """A safetensors file written by the reference library with chosen genesis metadata."""
    tensors = tensors if tensors is not None else {"x": np.arange(3, dtype=np.int64)}
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)
    return path


def test_corrupt_structure(tmp_path):
    version = {"genesis.format_version": "1"}
    expect_error(_with_metadata(tmp_path / "a", {"genesis.structure": "{oops", **version}), "structure is not JSON")
    missing = json.dumps({"type": "tensor", "name": "nope", "requires_grad": False})
    expect_error(_with_metadata(tmp_path / "b", {"genesis.structure": missing, **version}), "'nope'", "does not hold")
    unknown = json.dumps({"type": "dict", "items": [["k", {"type": "lambda", "code": "x"}]]})
    expect_error(_with_metadata(tmp_path / "c", {"genesis.structure": unknown, **version}), "unknown entry", "['k']")
    int_grad = json.dumps({"type": "tensor", "name": "x", "requires_grad": True})
    expect_error(_with_metadata(tmp_path / "d", {"genesis.structure": int_grad, **version}), "int64", "requires_grad")
    bad_pair = json.dumps({"type": "dict", "items": [["only key"]]})
    expect_error(_with_metadata(tmp_path / "e", {"genesis.structure": bad_pair, **version}), "[key, value]")
    deep = "[" * 100_000 + "]" * 100_000
    expect_error(_with_metadata(tmp_path / "g", {"genesis.structure": deep, **version}), "nested too deeply")
    expect_error(write_raw(tmp_path / "h", ("[" * 100_000 + "]" * 100_000).encode()), "not JSON")
    future = {"genesis.structure": "null", "genesis.format_version": "99"}
    expect_error(_with_metadata(tmp_path / "f", future), "version '99'")


# ---- with the training API ---------------------------------------------------------------


def test_parameters_come_back_as_parameters(tmp_path):
    from genesis.nn.parameter import Parameter

    weight = Parameter(genesis.randn(4, 3))
    frozen = Parameter(genesis.randn(2), requires_grad=False)
    loaded = round_trip({"params": [weight, frozen, weight], "plain": genesis.randn(2)}, tmp_path)
    first, second, again = loaded["params"]
    assert type(first) is Parameter and type(second) is Parameter and type(loaded["plain"]) is genesis.Tensor
    assert first is again and first.requires_grad and not second.requires_grad
    assert raw_bytes(first) == raw_bytes(weight) and raw_bytes(second) == raw_bytes(frozen)


def test_resuming_training_from_a_checkpoint_matches_uninterrupted_training(tmp_path):
    from genesis import nn, optim

    data = genesis.randn(16, 5, generator=genesis.Generator().manual_seed(1))
    target = genesis.randn(16, 3, generator=genesis.Generator().manual_seed(2))

    def build():
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
        return model, optim.Adam(model.parameters(), lr=0.05)

    def train(model, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            ((model(data) - target) ** 2).mean().backward()
            optimizer.step()

    model, optimizer = build()
    train(model, optimizer, 3)
    path = tmp_path / "resume.safetensors"
    genesis.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}, path)
    train(model, optimizer, 3)

    resumed_model, resumed_optimizer = build()
    checkpoint = genesis.load_checkpoint(path)
    resumed_model.load_state_dict(checkpoint["model"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert checkpoint["epoch"] == 3
    train(resumed_model, resumed_optimizer, 3)
    for (name, expected), (_, actual) in zip(model.state_dict().items(), resumed_model.state_dict().items()):
        assert raw_bytes(actual) == raw_bytes(expected), name
