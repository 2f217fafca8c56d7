"""Module bookkeeping against torch.nn: names, state_dict keys, loading, repr, modes, dtype moves, hooks.

The same architecture is built in genesis and in torch; every name list,
key list and repr string must be identical. A short training loop runs the
same SGD steps in both and compares the parameters number for number.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from optest import assert_close, to_numpy
from test_nn_layers import copy_into_torch

import genesis
import genesis.nn as nn
import genesis.nn.functional as F


def build(lib):
    """One architecture with every container and most layers, in genesis or torch."""
    n = lib.nn

    class Block(n.Module):
        def __init__(self):
            super().__init__()
            self.conv = n.Conv2d(2, 4, 3, padding=1)
            self.bn = n.BatchNorm2d(4)
            self.pool = n.MaxPool2d(2)
            self.layers = n.ModuleList([n.Linear(16, 8), n.ReLU(), n.Linear(8, 8, bias=False)])
            self.heads = n.ModuleDict({"norm": n.LayerNorm(8), "act": n.GELU(approximate="tanh")})
            self.attn = n.MultiheadAttention(8, 2, batch_first=True)
            self.embed = n.Embedding(10, 8, padding_idx=0)
            self.register_buffer("steps", lib.zeros(3))
            self.register_buffer("scratch", lib.ones(2), persistent=False)
            self.scale = n.Parameter(lib.ones(1))

        def forward(self, x):
            x = self.pool(self.bn(self.conv(x)))  # (N, 4, 2, 2)
            x = x.flatten(1)
            for layer in self.layers:
                x = layer(x)
            return self.heads["act"](self.heads["norm"](x)) * self.scale

    return n.Sequential(Block(), n.Dropout(0.1), n.Linear(8, 3))


def test_names_and_state_dict_keys_match_torch():
    g_model, t_model = build(genesis), build(torch)
    assert [n for n, _ in g_model.named_parameters()] == [n for n, _ in t_model.named_parameters()]
    assert [n for n, _ in g_model.named_buffers()] == [n for n, _ in t_model.named_buffers()]
    assert [n for n, _ in g_model.named_modules()] == [n for n, _ in t_model.named_modules()]
    assert [n for n, _ in g_model.named_children()] == [n for n, _ in t_model.named_children()]
    assert list(g_model.state_dict()) == list(t_model.state_dict())
    for (name, gp), (_, tp) in zip(g_model.named_parameters(), t_model.named_parameters()):
        assert tuple(gp.shape) == tuple(tp.shape), name
        assert isinstance(gp, nn.Parameter) and gp.requires_grad
    assert "0.scratch" not in g_model.state_dict() and "0.scratch" in dict(g_model.named_buffers())
    assert len(list(g_model.parameters())) == len(list(t_model.parameters()))
    assert len(list(g_model.modules())) == len(list(t_model.modules()))


def test_repr_matches_torch():
    assert repr(build(genesis)) == repr(build(torch))
    for args in [(3, 4, 3), (3, 4, (2, 3))]:
        assert repr(nn.Conv2d(*args, stride=2, dilation=2, groups=1, bias=False)) == repr(
            torch.nn.Conv2d(*args, stride=2, dilation=2, groups=1, bias=False)
        )
    for g, t in [
        (nn.Conv2d(4, 4, 3, padding="same", groups=2), torch.nn.Conv2d(4, 4, 3, padding="same", groups=2)),
        (nn.AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1)),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.RMSNorm([2, 3]), torch.nn.RMSNorm([2, 3])),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None)),
        (nn.Dropout(0.2), torch.nn.Dropout(0.2)),
        (nn.Identity(), torch.nn.Identity()),
        (nn.LayerNorm([2, 3], elementwise_affine=False), torch.nn.LayerNorm([2, 3], elementwise_affine=False)),
        (nn.Embedding(5, 2), torch.nn.Embedding(5, 2)),
        (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
    ]:
        assert repr(g) == repr(t)
    assert repr(nn.Parameter(genesis.zeros(2))).startswith("Parameter containing:\n")


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    model[0].extra = model[0].weight  # the same Parameter under two names
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias"]
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert len(list(model.named_parameters(remove_duplicate=False))) == 6
    assert list(model.state_dict()) == ["0.weight", "0.bias", "0.extra", "2.weight", "2.bias", "2.extra"]
    assert list(model.named_parameters(recurse=False)) == []


def test_load_state_dict_round_trip_and_errors():
    source, target = build(genesis), build(genesis)
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert str(result) == "<All keys matched successfully>"
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=name)
    weight = target[2].weight
    state = source.state_dict()
    del state["2.bias"]
    state["2.extra"] = genesis.zeros(1)
    state["0.conv.weight"] = genesis.zeros(1, 2, 3, 3)
    with pytest.raises(RuntimeError) as info:
        target.load_state_dict(state)
    message = str(info.value)
    assert message.startswith("Error(s) in loading state_dict for Sequential:")
    assert 'Missing key(s) in state_dict: "2.bias".' in message
    assert 'Unexpected key(s) in state_dict: "2.extra".' in message
    assert (
        "size mismatch for 0.conv.weight: copying a param with shape [1, 2, 3, 3] from checkpoint, "
        "the shape in current model is [4, 2, 3, 3]." in message
    )
    del state["0.conv.weight"]
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.conv.weight", "2.bias"] and result.unexpected_keys == ["2.extra"]
    assert target[2].weight is weight  # loaded in place: optimizers keep the same tensors
    # torch raises a size mismatch even with strict=False, and so does genesis
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        nn.Linear(2, 3).load_state_dict({"weight": genesis.zeros(3, 3), "bias": genesis.zeros(3)}, strict=False)


def test_load_state_dict_from_torch_gives_same_outputs():
    g_model, t_model = build(genesis).eval(), build(torch).eval()
    state = {k: genesis.tensor(v.numpy()) for k, v in t_model.state_dict().items()}
    g_model.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    out = g_model(genesis.tensor(x, dtype=genesis.float32))
    assert_close(out, t_model(torch.tensor(x, dtype=torch.float32)), genesis.float32, "outputs")


def test_state_dict_is_detached_and_keep_vars():
    model = nn.Linear(2, 2)
    state = model.state_dict()
    assert not state["weight"].requires_grad and not isinstance(state["weight"], nn.Parameter)
    assert model.state_dict(keep_vars=True)["weight"] is model.weight
    with genesis.no_grad():
        model.weight.fill_(3.0)
    assert float(state["weight"][0, 0]) == 3.0  # shares memory, as in PyTorch


def test_train_eval_and_requires_grad():
    model = build(genesis)
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError):
        model.train("yes")


def test_to_dtype_keeps_objects_and_integer_buffers():
    model = build(genesis)
    param = model[2].weight
    model.double()
    assert model[2].weight is param and param.dtype is genesis.float64 and isinstance(param, nn.Parameter)
    assert model[0].bn.running_mean.dtype is genesis.float64
    assert model[0].bn.num_batches_tracked.dtype is genesis.int64
    model.to(genesis.float32)
    assert param.dtype is genesis.float32
    for method, dtype in [("half", genesis.float16), ("bfloat16", genesis.bfloat16), ("float", genesis.float32)]:
        getattr(model, method)()
        assert all(p.dtype is dtype for p in model.parameters())
    assert model.to("cpu") is model
    with pytest.raises(TypeError, match="floating point"):
        model.to(genesis.int32)


def test_zero_grad_apply_and_setattr_rules():
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    model(genesis.randn(4, 3)).sum().backward()
    assert model[0].weight.grad is not None
    model.zero_grad(set_to_none=False)
    assert not np.any(to_numpy(model[0].weight.grad))
    model.zero_grad()
    assert model[0].weight.grad is None
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Tanh", "Sequential"]
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        layer.weight = genesis.zeros(2, 2)
    layer.weight = None
    assert "weight" not in dict(layer.named_parameters())
    layer.child = nn.ReLU()
    assert "child" in dict(layer.named_children())
    del layer.child
    assert "child" not in dict(layer.named_children())
    layer.register_buffer("buf", genesis.zeros(1))
    layer.buf = genesis.ones(2)
    assert layer.state_dict()["buf"].shape == (2,)
    with pytest.raises(KeyError, match="already exists"):
        layer.register_buffer("in_features", genesis.zeros(1))
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        layer.missing
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)
    layer.extra_param = nn.Parameter(genesis.zeros(1))
    assert layer.get_parameter("extra_param") is layer.extra_param
    assert model.get_submodule("0") is model[0]


def test_hooks():
    layer = nn.Linear(2, 2)
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    out = layer(genesis.randn(3, 2))
    np.testing.assert_allclose(to_numpy(out), np.broadcast_to(to_numpy(layer.bias), (3, 2)))
    assert calls == [(3, 2)]
    pre.remove()
    post.remove()
    layer(genesis.randn(3, 2))
    assert calls == [(3, 2)]


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and isinstance(seq[1:], nn.Sequential)
    assert len(seq[1:]) == 2 and [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert seq(genesis.randn(4, 2)).shape == (4, 1)
    with pytest.raises(IndexError):
        seq[3]
    del seq[1]
    assert list(seq._modules) == ["0", "1"]
    layers = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    layers.append(nn.ReLU())
    layers += [nn.Tanh()]
    assert len(layers) == 5 and isinstance(layers[-1], nn.Tanh)
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    heads = nn.ModuleDict({"a": nn.Linear(1, 2)})
    heads["b"] = nn.ReLU()
    assert list(heads.keys()) == ["a", "b"] and "a" in heads and len(heads) == 2
    params = nn.ParameterList([nn.Parameter(genesis.zeros(2)), genesis.ones(3)])
    assert [n for n, _ in params.named_parameters()] == ["0", "1"] and params[1].requires_grad


def test_parameter():
    data = genesis.randn(2, 3)
    p = nn.Parameter(data)
    assert isinstance(p, genesis.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    with genesis.no_grad():
        p.fill_(1.0)
    assert float(data[0, 0]) == 1.0  # shares the data
    y = p * 2
    assert type(y) is genesis.Tensor
    with pytest.raises(RuntimeError, match="floating-point"):
        nn.Parameter(genesis.tensor([1, 2]))


def test_deepcopy_and_pickle():
    model = build(genesis)
    clone = copy.deepcopy(model)
    assert clone[2].weight is not model[2].weight and isinstance(clone[2].weight, nn.Parameter)
    np.testing.assert_array_equal(to_numpy(clone[2].weight), to_numpy(model[2].weight))
    with genesis.no_grad():
        clone[2].weight.fill_(0.0)
    assert np.any(to_numpy(model[2].weight))
    plain = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    restored = pickle.loads(pickle.dumps(plain))
    assert list(restored.state_dict()) == list(plain.state_dict())
    np.testing.assert_array_equal(to_numpy(restored[0].weight), to_numpy(plain[0].weight))
    assert isinstance(restored[0].weight, nn.Parameter) and restored[0].weight.requires_grad


def test_training_loop_matches_torch_step_for_step():
    """Five SGD steps on an MLP with cross-entropy: identical parameters in genesis and torch."""

    def mlp(lib):
        n = lib.nn
        return n.Sequential(n.Linear(6, 16), n.LayerNorm(16), n.GELU(), n.Linear(16, 4))

    g_model, t_model = mlp(genesis).double(), mlp(torch).double()
    copy_into_torch(g_model, t_model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6))
    y = rng.integers(0, 4, 32)
    losses = []
    for _ in range(5):
        g_loss = F.cross_entropy(g_model(genesis.tensor(x)), genesis.tensor(y), label_smoothing=0.1)
        t_loss = torch.nn.functional.cross_entropy(t_model(torch.tensor(x)), torch.tensor(y), label_smoothing=0.1)
        g_model.zero_grad()
        t_model.zero_grad()
        g_loss.backward()
        t_loss.backward()
        with genesis.no_grad():
            for p in g_model.parameters():
                p -= p.grad * 0.5
        with torch.no_grad():
            for p in t_model.parameters():
                p -= p.grad * 0.5
        assert_close(g_loss, t_loss, genesis.float64, "loss")
        losses.append(g_loss.item())
    assert losses[-1] < losses[0]
    for (name, gp), (_, tp) in zip(g_model.named_parameters(), t_model.named_parameters()):
        assert_close(gp, tp, genesis.float64, name)
