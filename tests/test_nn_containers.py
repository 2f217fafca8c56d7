"""Containers against torch.nn's: the same edits (insert, pop, extend, +=, slicing, update, setdefault,
|, ...) give the same order, types, values and state_dict names."""

import pytest
import torch

import genesis
from genesis import nn


def containers(lib):
    """The same container edits in genesis.nn and torch.nn; their observable results."""
    seen = {}
    layers = lib.ModuleList([lib.Linear(2, 2), lib.ReLU(), lib.Tanh()])
    layers.insert(2, lib.Sigmoid())
    layers.insert(0, lib.Linear(2, 3))
    popped = layers.pop(1)
    layers.extend([lib.ELU()])
    layers += lib.ModuleList([lib.GELU()])
    joined = layers + lib.ModuleList([lib.Softsign()])
    del layers[1:3]
    seen["modulelist"] = [type(m).__name__ for m in layers], type(popped).__name__, len(joined)
    seen["modulelist slice"] = [type(m).__name__ for m in layers[-2:]], type(layers[::2]).__name__
    seen["modulelist state"] = list(layers.state_dict())
    heads = lib.ModuleDict({"b": lib.Linear(1, 1)})
    heads.update([("a", lib.Linear(1, 2))])
    heads.update({"c": lib.ReLU()})
    heads["d"] = lib.Linear(2, 1)
    removed = heads.pop("c")
    seen["moduledict"] = list(heads.keys()), type(removed).__name__, "a" in heads, list(iter(heads))
    seen["moduledict state"] = list(heads.state_dict()), [type(v).__name__ for v in heads.values()]
    params = lib.ParameterList([lib.Parameter(np_to(lib, [1.0, 2.0]))])
    params.append(np_to(lib, [3.0]))
    params.extend([np_to(lib, [4.0, 5.0, 6.0])])
    params += [np_to(lib, [7.0])]
    params[0] = np_to(lib, [0.5])
    seen["parameterlist"] = [p.tolist() for p in params], [type(p).__name__ for p in params[1:3]], len(params)
    seen["parameterlist state"] = list(params.state_dict()), all(p.requires_grad for p in params)
    table = lib.ParameterDict({"w": np_to(lib, [1.0]), "b": lib.Parameter(np_to(lib, [2.0]))})
    table["z"] = np_to(lib, [3.0, 4.0])
    table.update([("y", np_to(lib, [5.0]))])
    default = table.setdefault("x", np_to(lib, [6.0]))
    first = table.pop("b")
    merged = table | {"v": np_to(lib, [7.0])}
    seen["parameterdict"] = list(table.keys()), [v.tolist() for v in table.values()], default.tolist()
    seen["parameterdict more"] = first.tolist(), "w" in table, table.get("nothing") is None, list(reversed(table))
    seen["parameterdict merged"] = list(merged.keys()), list(table.copy().keys()), type(merged).__name__
    seen["parameterdict state"] = list(table.state_dict()), type(table["w"]).__name__, table["w"].requires_grad
    holder = lib.Module()
    holder.table = table
    holder.layers = layers
    seen["nested names"] = [name for name, _ in holder.named_parameters()]
    return seen


def np_to(lib, values):
    return genesis.tensor(values) if lib is nn else torch.tensor(values)


def test_containers_behave_as_torch_nn():
    ours, theirs = containers(nn), containers(torch.nn)
    for key in theirs:
        assert ours[key] == theirs[key], key


def test_parameterdict_refuses_a_key_that_is_not_a_string_and_holds_none():
    table = nn.ParameterDict()
    with pytest.raises(TypeError, match="strings"):
        table[1] = genesis.zeros(1)
    table["none"] = None
    assert "none" in table and list(table.state_dict()) == []
    assert list(nn.ParameterDict.fromkeys(["a", "b"]).keys()) == ["a", "b"]
