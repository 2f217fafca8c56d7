"""A whole nn.Module in a checkpoint, as torch.save(model) stores one.

The module is pickled with its tensors set aside in the safetensors data (named
by its state_dict keys); it loads with weights_only=False, and PyTorch's default
(weights_only=True) refuses it before unpickling anything, as torch.load does.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle

import numpy as np
import pytest
import safetensors.numpy
import torch

import genesis
from genesis import nn
from genesis.serialization import CheckpointError, WeightsOnlyError


def model():
    genesis.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    net[3].bias.requires_grad_(False)
    net(genesis.randn(5, 3))  # moves the batch norm's running statistics off their initial values
    return net.eval()


def saved(obj) -> io.BytesIO:
    buffer = io.BytesIO()
    genesis.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_a_module_round_trips_with_its_state_and_classes(tmp_path):
    original = model()
    genesis.save(original, tmp_path / "model.pt")
    loaded = genesis.load(tmp_path / "model.pt", weights_only=False)
    assert type(loaded) is nn.Sequential and [type(m) for m in loaded] == [type(m) for m in original]
    assert not loaded.training and not loaded[1].training
    expected_tensors = original.state_dict(keep_vars=True)
    for name, got in loaded.state_dict(keep_vars=True).items():
        expected = expected_tensors[name]
        assert type(got) is type(expected) and got.dtype is expected.dtype, name
        assert got.requires_grad == expected.requires_grad, name
        np.testing.assert_array_equal(got.detach().numpy(), expected.detach().numpy(), err_msg=name)
    assert list(loaded.state_dict()) == list(expected_tensors)
    x = genesis.randn(6, 3)
    np.testing.assert_array_equal(loaded(x).detach().numpy(), original(x).detach().numpy())


def test_its_tensors_are_stored_under_its_state_dict_keys(tmp_path):
    original = model()
    genesis.save({"model": original, "epoch": 7}, tmp_path / "checkpoint.safetensors")
    theirs = safetensors.numpy.load_file(str(tmp_path / "checkpoint.safetensors"))
    assert sorted(theirs) == sorted(f"model.{key}" for key in original.state_dict())
    np.testing.assert_array_equal(theirs["model.1.running_mean"], original[1].running_mean.numpy())


def test_a_tensor_shared_with_the_rest_of_the_checkpoint_loads_as_one_object():
    original = model()
    loaded = genesis.load(saved({"model": original, "head": original[3].weight}), weights_only=False)
    assert loaded["head"] is loaded["model"][3].weight
    assert type(loaded["head"]) is nn.Parameter


def test_a_compiled_module_saves_its_model():
    original = model()
    loaded = genesis.load(saved(genesis.compile(original)), weights_only=False)
    x = genesis.randn(4, 3)
    np.testing.assert_allclose(loaded(x).detach().numpy(), original(x).detach().numpy(), rtol=1e-6)


class Recorder(nn.Module):
    """Notes every unpickling of one of its instances."""

    unpickled = []

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(genesis.ones(2))

    def __setstate__(self, state):
        Recorder.unpickled.append(True)
        self.__dict__.update(state)


def test_weights_only_refuses_a_module_before_unpickling_it_as_torch_does(tmp_path):
    t_buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 3), t_buffer)
    t_buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        torch.load(t_buffer)
    Recorder.unpickled.clear()
    path = tmp_path / "recorder.pt"
    genesis.save({"net": Recorder()}, path)
    for weights_only in (True, None):
        with pytest.raises(pickle.UnpicklingError, match=r"Recorder at obj\['net'\].*weights_only=False"):
            genesis.load(path, weights_only=weights_only)
    assert Recorder.unpickled == []
    with pytest.raises(CheckpointError, match="weights-only"):  # a CheckpointError too (a ValueError)
        genesis.load(path)
    assert issubclass(WeightsOnlyError, ValueError)
    loaded = genesis.load(path, weights_only=False)
    assert Recorder.unpickled == [True] and loaded["net"].weight.tolist() == [1.0, 1.0]


def test_a_state_dict_still_loads_with_weights_only():
    original = model()
    loaded = genesis.load(saved(original.state_dict()))
    assert list(loaded) == list(original.state_dict())


def test_a_module_that_cannot_be_pickled_is_refused_and_nothing_is_written(tmp_path):
    class Local(nn.Module):  # a class defined in a function cannot be found again by name
        pass

    with pytest.raises(TypeError, match=r"cannot pickle the .*Local at obj\['net'\]"):
        genesis.save({"net": Local()}, tmp_path / "x.pt")
    assert os.listdir(tmp_path) == []


def _forged(tmp_path, name, entry):
    """A checkpoint whose structure holds one forged pickle entry."""
    path = tmp_path / name
    metadata = {"genesis.structure": json.dumps(entry), "genesis.format_version": "1"}
    safetensors.numpy.save_file({"w": np.arange(3, dtype=np.float32)}, str(path), metadata=metadata)
    return path


def test_a_damaged_pickle_is_a_checkpoint_error(tmp_path):
    cases = {
        "not base64": {"type": "pickle", "class": "x.Net", "data": "@@not base64@@"},
        "does not load": {"type": "pickle", "class": "x.Net", "data": base64.b64encode(b"\x80\x04garbage").decode()},
        "without data": {"type": "pickle", "class": "x.Net"},
    }
    buffer = io.BytesIO()  # a pickle whose persistent id names a tensor the file does not hold
    pickler = pickle.Pickler(buffer, protocol=4)
    pickler.persistent_id = lambda obj: {"type": "tensor", "name": "missing"} if obj == "t" else None
    pickler.dump(["t"])
    missing = base64.b64encode(buffer.getvalue()).decode()
    cases["which the file does not hold"] = {"type": "pickle", "class": "x.Net", "data": missing}
    for i, (message, entry) in enumerate(cases.items()):
        with pytest.raises(CheckpointError, match=message):
            genesis.load(_forged(tmp_path, f"f{i}", entry), weights_only=False)
    with pytest.raises(WeightsOnlyError):  # refused before its data is even looked at
        genesis.load(_forged(tmp_path, "g", cases["not base64"]))


def test_a_changed_pickle_fails_its_checksum(tmp_path):
    path = tmp_path / "model.pt"
    genesis.save(model(), path)
    data = bytearray(path.read_bytes())
    field = b'\\"data\\":\\"'  # the structure is JSON inside the header's JSON: its quotes are escaped
    marker = data.index(field) + len(field) + 40
    data[marker : marker + 4] = b"AAAA" if data[marker : marker + 4] != b"AAAA" else b"BBBB"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum|CRC|crc"):
        genesis.load(path, weights_only=False)
