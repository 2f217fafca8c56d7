"""`genesis.compile(module)` is the module for every purpose a ported program uses it for."""

import copy
import pickle

import numpy as np
import pytest

import genesis
from genesis import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.norm = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)
        self.temperature = 1.0

    def forward(self, x):
        return self.head(self.norm(self.fc(x)).relu()) / self.temperature

    def predict(self, x):
        """A method of the model's own class: reachable through the compiled module too."""
        return self(x).argmax(dim=-1)


def values(t):
    return t.detach().numpy()


def make(seed=0):
    genesis.manual_seed(seed)
    model = Net()
    return model, genesis.compile(model)


def test_the_compiled_module_is_an_instance_of_the_models_class_and_shares_its_state():
    model, compiled = make()
    assert isinstance(compiled, Net) and isinstance(compiled, nn.Module)
    assert list(compiled.named_parameters()) == list(model.named_parameters())
    assert all(a is b for a, b in zip(compiled.parameters(), model.parameters()))
    assert list(compiled.state_dict()) == list(model.state_dict())  # no "_orig_mod." prefix
    assert compiled.fc is model.fc and compiled.temperature == 1.0
    compiled.temperature = 2.0  # one object under two names
    assert model.temperature == 2.0
    assert repr(compiled) == repr(model)


def test_calls_run_the_program_and_match_the_module_in_train_and_eval():
    model, compiled = make()
    x = genesis.randn(5, 4)
    expected = model(x)
    model.norm.reset_running_stats()
    np.testing.assert_allclose(values(compiled(x)), values(expected), rtol=1e-5, atol=1e-6)
    assert compiled.eval() is compiled and not model.training and not model.norm.training
    np.testing.assert_allclose(values(compiled(x)), values(model(x)), rtol=1e-5, atol=1e-6)
    assert compiled.stats["compiles"] == 2 and compiled.stats["fallbacks"] == []
    np.testing.assert_array_equal(compiled.predict(x).numpy(), model(x).argmax(dim=-1).numpy())


def test_training_through_the_compiled_module_updates_the_models_parameters():
    model, compiled = make()
    reference, _ = make()
    x, y = genesis.randn(8, 4), genesis.randint(0, 3, (8,))
    for module in (compiled, reference):
        optimizer = genesis.optim.SGD(module.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(module(x), y).backward()
            optimizer.step()
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(values(mine), values(theirs), rtol=1e-5, atol=1e-6)


def test_to_and_state_dict_round_trips_including_pytorchs_prefixed_keys():
    model, compiled = make()
    assert compiled.to(genesis.float64) is compiled and model.fc.weight.dtype == genesis.float64
    other, other_compiled = make(seed=1)
    other_compiled.to(genesis.float64)
    prefixed = {"_orig_mod." + key: value for key, value in compiled.state_dict().items()}
    assert not other_compiled.load_state_dict(prefixed).missing_keys
    x = genesis.randn(3, 4, dtype=genesis.float64)
    np.testing.assert_array_equal(values(other(x)), values(model(x)))
    with pytest.raises(RuntimeError, match="Missing key"):
        other_compiled.load_state_dict({"_orig_mod.fc.weight": model.fc.weight})


def test_deepcopy_and_pickle_give_an_independent_compiled_model():
    model, compiled = make()
    x = genesis.randn(5, 4)
    for twin in (copy.deepcopy(compiled), pickle.loads(pickle.dumps(compiled))):
        assert isinstance(twin, Net) and twin.fc.weight is not model.fc.weight
        assert twin.stats["calls"] == 0
        np.testing.assert_allclose(values(twin(x)), values(model(x)), rtol=1e-5, atol=1e-6)
        assert twin.stats["compiles"] == 1


def test_a_compiled_module_inside_a_compiled_model_becomes_part_of_its_graph():
    inner = genesis.compile(nn.Linear(4, 3))
    outer = nn.Sequential(inner, nn.Tanh())
    compiled = genesis.compile(outer)
    x = genesis.randn(2, 4)
    np.testing.assert_allclose(values(compiled(x)), values(outer(x)), rtol=1e-6, atol=1e-6)
    assert compiled.stats["compiles"] == 1 and compiled.stats["fallbacks"] == []
    assert list(compiled.state_dict()) == ["0.weight", "0.bias"]


def test_torch_compiles_arguments_are_accepted_so_a_ported_call_runs():
    model, _ = make()
    x = genesis.randn(5, 4)
    model.eval()
    expected = model(x)
    for kwargs in (
        dict(mode="max-autotune", dynamic=False),
        dict(mode="reduce-overhead", fullgraph=True, options={"triton.cudagraphs": False}),
        dict(backend="inductor", dynamic=True),
    ):
        compiled = genesis.compile(model, **kwargs)
        np.testing.assert_allclose(values(compiled(x)), values(expected), rtol=1e-5, atol=1e-6)
        assert compiled.stats["compiles"] == 1
    assert genesis.compile(model, disable=True) is model
    with pytest.raises(ValueError, match="unknown mode 'fastest'"):
        genesis.compile(model, mode="fastest")
    decorated = genesis.compile(mode="default")(lambda t: t * 2)
    np.testing.assert_array_equal(values(decorated(x)), values(x) * 2)
