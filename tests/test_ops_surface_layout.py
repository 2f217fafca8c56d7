"""repeat, tile, Tensor.unfold, swapaxes, the flips and rot90, the in-place shape and triangle forms, and
the layout introspection (stride, storage_offset, element_size, nelement, data_ptr) against PyTorch."""

import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE, check_compiled, check_torch, make_pair

import genesis
from genesis.errors import ShapeError

RNG = np.random.default_rng(4)
X = RNG.standard_normal((2, 3, 4))


def test_repeat_and_tile():
    check_torch(lambda x: x.repeat(2, 1, 3), [X])
    check_torch(lambda x: x.repeat(2, 2, 1, 1), [X])
    check_torch(lambda x: x.repeat((1, 0, 2)), [X])
    check_torch(lambda x: x.repeat(3), [np.array(1.5)])
    check_torch(lambda x: x.repeat(2, 3), [np.array([1, 2])], dtype=genesis.int64)
    check_torch(lambda x: x.tile(2), [X])
    check_torch(lambda x: x.tile(2, 1, 1, 2), [X])
    check_torch(lambda x: x.tile((3, 2)), [X[0]])
    check_torch(lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).tile(x, (2, 2)), [X[0]])
    with pytest.raises(ShapeError, match="repeat"):
        genesis.tensor(X).repeat(2, 2)


@pytest.mark.parametrize("dimension,size,step", [(0, 1, 1), (1, 2, 1), (2, 2, 2), (-1, 3, 1), (2, 4, 3), (1, 1, 5)])
def test_unfold_windows(dimension, size, step):
    check_torch(lambda x: x.unfold(dimension, size, step), [X])


def test_unfold_edges():
    check_torch(lambda x: x.unfold(0, 3, 2), [np.arange(7)], dtype=genesis.int64)
    check_torch(lambda x: x.unfold(0, 1, 1), [np.array(2.0)])
    check_torch(lambda x: x.unfold(-1, 0, 3), [np.array(2.0)])
    check_torch(lambda x: x.unfold(0, 0, 2), [np.arange(5.0)])
    check_torch(lambda x: x.unfold(1, 2, 1), [X], non_contiguous=True)
    with pytest.raises(ShapeError, match="size"):
        genesis.tensor(X).unfold(1, 4, 1)
    with pytest.raises(ValueError, match="step"):
        genesis.tensor(X).unfold(1, 2, 0)


@pytest.mark.parametrize("dtype", [genesis.float16, genesis.bfloat16])
def test_unfold_gradient_adds_overlapping_windows_in_low_precision(dtype):
    check_torch(lambda x: x.unfold(2, 3, 1) * 3, [X], dtype=dtype)


def test_unfold_differentiates_twice():
    weights = RNG.standard_normal((3, 3, 2))
    results = []
    for lib, x in (
        (genesis, genesis.tensor(X[0], requires_grad=True)),
        (torch, torch.tensor(X[0], requires_grad=True)),
    ):
        w = lib.tensor(weights)
        (first,) = lib.autograd.grad((x.unfold(1, 2, 1) ** 3 * w).sum(), [x], create_graph=True)
        (second,) = lib.autograd.grad((first * lib.tensor(X[1])).sum(), [x])
        results.append((first.detach().numpy(), second.numpy()))
    for g, t in zip(*results):
        np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape,dimension,size,step", [((2, 3, 4), 2, 2, 1), ((2, 3, 4), 1, 3, 1), ((10,), 0, 3, 3), ((6,), 0, 0, 1)]
)
def test_unfold_is_a_view_with_pytorchs_layout(shape, dimension, size, step):
    g, t = genesis.zeros(*shape), torch.zeros(*shape)
    g_view, t_view = g.unfold(dimension, size, step), t.unfold(dimension, size, step)
    assert g_view.stride() == t_view.stride()
    assert g_view.is_contiguous() == t_view.is_contiguous()
    assert g_view.storage_offset() == t_view.storage_offset() == 0
    assert g_view._version is g._version  # one counter, as PyTorch's view and base share
    reverse = list(range(len(shape)))[::-1]  # the windows of a transposed tensor
    g_turned, t_turned = g.permute(*reverse).unfold(0, 1, 1), t.permute(*reverse).unfold(0, 1, 1)
    assert g_turned.stride() == t_turned.stride() and g_turned.is_contiguous() == t_turned.is_contiguous()


@pytest.mark.parametrize("step", [2, 3])
def test_writes_into_unfold_windows_reach_the_tensor(step):
    def write(x):
        y = x * 1
        y.unfold(1, 2, step).mul_(3)
        return y

    check_torch(write, [X])
    g, t = genesis.zeros(3, 7), torch.zeros(3, 7)
    g.unfold(1, 2, step).fill_(5.0), t.unfold(1, 2, step).fill_(5.0)
    np.testing.assert_array_equal(g.numpy(), t.numpy())
    assert g._version[0] == t._version == 1


def test_writes_into_overlapping_unfold_windows_are_refused():
    # PyTorch writes overlapping windows in memory order (mul_ scales an element once per window it is in);
    # genesis refuses, as it does for an expand, eagerly and compiled alike
    def write(x):
        y = x * 1
        y.unfold(1, 3, 1).mul_(2)
        return y

    with pytest.raises(RuntimeError, match="overlap"):
        write(genesis.tensor(X))
    with pytest.raises(RuntimeError, match="overlap"):
        genesis.compile(write)(genesis.tensor(X, requires_grad=True))


def test_compiled_writes_into_unfold_windows_equal_eager():
    def write(x):
        y = x * 1
        y.unfold(2, 2, 2).mul_(x.unfold(2, 2, 2).exp())
        return y * 2

    check_compiled(write, [X], dtype=genesis.float64, rtol=1e-12, atol=1e-12)


def test_swaps_flips_rot90():
    check_torch(lambda x: x.swapaxes(0, 2), [X])
    check_torch(lambda x: x.swapdims(-1, 1), [X])
    check_torch(lambda x: x.fliplr(), [X])
    check_torch(lambda x: x.flipud(), [X])
    check_torch(lambda x: x.flipud(), [np.arange(5)], dtype=genesis.int64)
    for k in range(-5, 6):
        check_torch(lambda x: x.rot90(k), [X])
        check_torch(lambda x: x.rot90(k, (2, 0)), [X])
        check_torch(lambda x: x.rot90(k, [-1, -2]), [X])
    with pytest.raises(ShapeError, match="fliplr"):
        genesis.ones(3).fliplr()
    with pytest.raises(ValueError, match="differ"):
        genesis.ones(2, 2).rot90(1, (0, 0))


def test_squeeze_unsqueeze_in_place():
    g, t = make_pair(RNG.standard_normal((3, 1, 4)), genesis.float32, False)
    assert g.squeeze_(1) is g and t.squeeze_(1) is t
    assert g.shape == tuple(t.shape) == (3, 4)
    g.unsqueeze_(0), t.unsqueeze_(0)
    g.unsqueeze_(-1), t.unsqueeze_(-1)
    assert g.shape == tuple(t.shape) == (1, 3, 4, 1)
    np.testing.assert_array_equal(g.numpy(), t.numpy())


def test_squeeze_in_place_keeps_history():
    check_torch(lambda x: (x * 2).squeeze_(1).unsqueeze_(0) * 3, [RNG.standard_normal((3, 1, 4))])
    leaf = genesis.ones(3, 1, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf.squeeze_()


@pytest.mark.parametrize("diagonal", [0, 1, -1])
def test_triangles_in_place(diagonal):
    check_torch(lambda x: (x * 1).triu_(diagonal), [X])
    check_torch(lambda x: (x * 1).tril_(diagonal), [X])


def test_layout_introspection():
    g, t = make_pair(np.arange(24.0).reshape(2, 3, 4), genesis.float32, False)
    views = [
        (lambda x: x, "whole"),
        (lambda x: x.transpose(0, 2), "transposed"),
        (lambda x: x[1:, ::2, 1:], "sliced"),
        (lambda x: x[:, 0].expand(5, 2, 4), "expanded"),
    ]
    for view, what in views:
        gv, tv = view(g), view(t)
        assert gv.stride() == tv.stride(), what
        assert gv.stride(-1) == tv.stride(-1), what
        assert gv.storage_offset() == tv.storage_offset(), what
        assert gv.data_ptr() - g.data_ptr() == tv.data_ptr() - t.data_ptr(), what
    for dtype in (genesis.float16, genesis.bfloat16, genesis.float64, genesis.int8, genesis.int64, genesis.bool):
        assert genesis.zeros(2, dtype=dtype).element_size() == torch.zeros(2, dtype=TORCH_DTYPE[dtype]).element_size()
    assert g.nelement() == t.nelement() == genesis.numel(g) == 24
    assert genesis.zeros(0, 3).nelement() == 0


def test_index_put_in_place():
    g, t = make_pair(X, genesis.float32, False)
    index = (genesis.tensor([0, 1, 1]), genesis.tensor([2, 0, 0]))
    g.index_put_(index, genesis.tensor(1.5), accumulate=True)
    t.index_put_((torch.tensor([0, 1, 1]), torch.tensor([2, 0, 0])), torch.tensor(1.5), accumulate=True)
    np.testing.assert_allclose(g.numpy(), t.numpy())


def test_squeeze_in_place_of_a_traced_value_compiles_whole():
    def step(x):
        y = x * 2
        y.squeeze_(1)
        y.unsqueeze_(-1)
        return y + 1

    check_compiled(step, [RNG.standard_normal((3, 1, 4))], dtype=genesis.float64, rtol=1e-12, atol=1e-12)


def test_squeeze_in_place_of_an_argument_breaks_the_graph_and_reaches_the_caller():
    def step(x):
        x.squeeze_(1)
        return x + 1

    x, expected_x = genesis.tensor(RNG.standard_normal((3, 1, 4))), None
    expected_x = x.clone()
    expected = step(expected_x)
    with pytest.warns(UserWarning, match="squeeze_"):
        got = genesis.compile(step)(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy())
    assert x.shape == expected_x.shape == (3, 4)  # eager's run changed the caller's tensor
    with pytest.raises(Exception, match="squeeze_"):
        genesis.compile(step, fullgraph=True)(genesis.ones(3, 1))


def _grow_a_row_and_scale_it(x):
    y = x * 1
    row = y[1]
    row.unsqueeze_(0)
    row.mul_(3)  # a write into a reshaped view: y's history takes it
    return y


def test_writes_after_an_in_place_reshape_of_a_view():
    check_torch(_grow_a_row_and_scale_it, [RNG.standard_normal((2, 3))])
    check_compiled(_grow_a_row_and_scale_it, [RNG.standard_normal((2, 3))], dtype=genesis.float64)
