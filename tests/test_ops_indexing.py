"""Indexing against PyTorch: x[key], x[key] = v, gather, scatter_add, index_select, masked_fill, one_hot.

Table rows are lambdas that read the same in genesis and torch; integer and
bool numpy arrays among a row's inputs become index tensors (no gradient),
float arrays become differentiable inputs. Every row runs over the float
dtypes (values exact: indexing moves bits), contiguous and strided, and
through a float64 numerical-gradient check.
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, TOLERANCE, TORCH_DTYPE, check_numerical_grad, check_torch

import genesis
from genesis.ops import movement as M

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def ints(*values):
    return np.array(values, dtype=np.int64)


def mask(*shape, p=0.5):
    return RNG.random(shape) < p


ROWS = mask(5)
ROWS[[0, 2, 3]] = [True, False, True]

# (id, inputs, fn): x is (5, 7, 3) unless said otherwise
GETITEM = [
    ("int", [rand(5, 7, 3)], lambda x: x[2]),
    ("negative_int", [rand(5, 7, 3)], lambda x: x[-1]),
    ("two_ints", [rand(5, 7, 3)], lambda x: x[1, -2]),
    ("all_ints_0d", [rand(5, 7, 3)], lambda x: x[4, 6, -3]),
    ("slice", [rand(5, 7, 3)], lambda x: x[1:4]),
    ("slice_steps", [rand(5, 7, 3)], lambda x: x[::2, 1:6:3]),
    ("slice_negative_bounds", [rand(5, 7, 3)], lambda x: x[-3:-1, :-2]),
    ("slice_past_the_end", [rand(5, 7, 3)], lambda x: x[3:100, 5:]),
    ("slice_empty", [rand(5, 7, 3)], lambda x: x[3:1]),
    ("none", [rand(5, 7, 3)], lambda x: x[None, 1]),
    ("none_middle", [rand(5, 7, 3)], lambda x: x[:, None, 2]),
    ("ellipsis", [rand(5, 7, 3)], lambda x: x[..., 1]),
    ("ellipsis_middle", [rand(5, 7, 3)], lambda x: x[1, ..., None]),
    ("combination", [rand(5, 7, 3)], lambda x: x[1:, None, ..., ::2]),
    ("true_scalar", [rand(5, 7, 3)], lambda x: x[True]),
    ("int_tensor_duplicates", [rand(5, 7, 3), ints(0, 4, -1, 0)], lambda x, i: x[i]),
    ("list", [rand(5, 7, 3)], lambda x: x[[0, 2, 2]]),
    ("index_tensor_2d", [rand(5, 7, 3), ints([0, 1, 4], [3, 3, -2])], lambda x, i: x[i]),
    ("two_tensors_broadcast", [rand(5, 7, 3), ints([0], [4], [2]), ints(1, 6)], lambda x, i, j: x[i, j]),
    ("tensors_split_by_slice", [rand(5, 7, 3), ints(0, 4, 1), ints(2, 0, 2)], lambda x, i, k: x[i, :, k]),
    ("int_and_tensor_split_by_slice", [rand(5, 7, 3), ints(0, 2)], lambda x, k: x[0, :, k]),
    ("tensor_int_tensor", [rand(5, 7, 3), ints(0, 2), ints(1, 1)], lambda x, i, k: x[i, 3, k]),
    ("tensor_then_int", [rand(5, 7, 3), ints(4, 1)], lambda x, i: x[i, 2]),
    ("slice_then_tensor", [rand(5, 7, 3), ints(6, 0, 3)], lambda x, j: x[1:4, j]),
    ("tensor_and_none", [rand(5, 7, 3), ints(3, 1)], lambda x, i: x[i, None]),
    ("none_and_tensor", [rand(5, 7, 3), ints(3, 1)], lambda x, i: x[None, i]),
    ("tensor_none_tensor", [rand(5, 7, 3), ints(3, 1), ints(0, 6)], lambda x, i, j: x[i, None, j]),
    ("ellipsis_tensor", [rand(5, 7, 3), ints(2, -3)], lambda x, k: x[..., k]),
    ("index_tensor_0d", [rand(5, 7, 3), np.array(3)], lambda x, i: x[i]),
    ("empty_index", [rand(5, 7, 3), ints()], lambda x, i: x[i]),
    ("mask_full", [rand(5, 7, 3), mask(5, 7, 3)], lambda x, m: x[m]),
    ("mask_rows", [rand(5, 7, 3), ROWS], lambda x, m: x[m]),
    ("mask_two_dims", [rand(5, 7, 3), mask(5, 7)], lambda x, m: x[m]),
    ("slice_then_mask", [rand(5, 7, 3), mask(7)], lambda x, m: x[1:, m]),
    ("mask_then_int", [rand(5, 7, 3), ROWS], lambda x, m: x[m, 2]),
    ("mask_all_false", [rand(5, 7, 3), np.zeros(5, dtype=bool)], lambda x, m: x[m]),
    ("0d_empty_key", [rand()], lambda x: x[()]),
    ("0d_ellipsis", [rand()], lambda x: x[...]),
    ("0d_none", [rand()], lambda x: x[None]),
    ("empty_dim", [rand(0, 3)], lambda x: x[:, 1]),
]


SRC_4x6 = rand(4, 6)


def _constant(like, array):
    """`array` as a constant tensor of `like`'s library and dtype (no gradient)."""
    if isinstance(like, torch.Tensor):
        return torch.tensor(array).to(like.dtype)
    return genesis.tensor(array).to(like.dtype)


def _set(y, key, value):
    y[key] = value
    return y


def _iadd(y, key, value):
    y[key] += value
    return y


# x * 1 makes a non-leaf to write into: gradients flow to x (outside the written region) and to v
SETITEM = [
    ("scalar", [rand(5, 7)], lambda x: _set(x * 1, 1, 2.5)),
    ("scalar_0d_region", [rand(5, 7)], lambda x: _set(x * 1, (1, 2), -1.0)),
    ("tensor_broadcast_rows", [rand(5, 7), rand(7)], lambda x, v: _set(x * 1, slice(1, 4), v)),
    (
        "slices_with_steps",
        [rand(5, 7), rand(3, 2)],
        lambda x, v: _set(x * 1, (slice(None, None, 2), slice(1, None, 3)), v),
    ),
    ("value_with_leading_ones", [rand(5, 7), rand(1, 7)], lambda x, v: _set(x * 1, 0, v)),
    ("ellipsis", [rand(5, 7), rand(5)], lambda x, v: _set(x * 1, (Ellipsis, 2), v)),
    ("0d_value_tensor", [rand(5, 7), rand()], lambda x, v: _set(x * 1, (slice(None), 3), v)),
    ("int_tensor", [rand(5, 7), rand(2, 7), ints(0, 3)], lambda x, v, i: _set(x * 1, i, v)),
    ("int_tensor_broadcast_value", [rand(5, 7), rand(7), ints(4, -1 - 1)], lambda x, v, i: _set(x * 1, i, v)),
    ("two_tensors", [rand(5, 7), rand(2, 3), ints([0], [4]), ints(1, 6, 2)], lambda x, v, i, j: _set(x * 1, (i, j), v)),
    (
        "tensors_split_by_slice",
        [rand(5, 7, 3), rand(2, 7), ints(0, 4), ints(2, 0)],
        lambda x, v, i, k: _set(x * 1, (i, slice(None), k), v),
    ),
    (
        "int_and_tensor_split_by_slice",
        [rand(5, 7, 3), rand(7, 2), ints(0, 2)],
        lambda x, v, k: _set(x * 1, (0, slice(None), k), v),
    ),
    ("mask_scalar", [rand(5, 7), mask(5, 7)], lambda x, m: _set(x * 1, m, 0.0)),
    ("mask_rows_tensor", [rand(5, 7), rand(7), ROWS], lambda x, v, m: _set(x * 1, m, v)),
    ("iadd_slice", [rand(5, 7), rand(2, 7)], lambda x, v: _iadd(x * 1, slice(1, 3), v)),
    ("iadd_tensor", [rand(5, 7), rand(2, 7), ints(4, 0)], lambda x, v, i: _iadd(x * 1, i, v)),
    ("empty_region", [rand(5, 7), rand(7)], lambda x, v: _set(x * 1, slice(3, 3), v)),
    ("0d_target", [rand(), rand()], lambda x, v: _set(x * 1, (), v)),
]

# gather/scatter_add/index_select/masked_fill: `x` is (3, 5) unless said otherwise
OTHER = [
    ("gather_dim1", [rand(3, 5), RNG.integers(0, 5, (3, 4))], lambda x, i: x.gather(1, i)),
    ("gather_dim0_duplicates", [rand(3, 5), ints([0, 2, 2, 0, 1], [2, 2, 2, 2, 2])], lambda x, i: x.gather(0, i)),
    ("gather_smaller_index", [rand(3, 5), ints([4, 0, 1], [2, 2, 3])], lambda x, i: x.gather(1, i)),
    ("gather_negative_dim_3d", [rand(2, 3, 5), RNG.integers(0, 5, (2, 3, 2))], lambda x, i: x.gather(-1, i)),
    ("gather_empty_index", [rand(3, 5), np.zeros((3, 0), dtype=np.int64)], lambda x, i: x.gather(1, i)),
    (
        "scatter_add_duplicates",
        [rand(3, 5), rand(2, 5), ints([0, 2, 2, 0, 1], [0, 0, 2, 1, 1])],
        lambda x, s, i: x.scatter_add(0, i, s),
    ),
    (
        "scatter_add_negative_dim",
        [rand(2, 3, 5), rand(2, 3, 2), RNG.integers(0, 5, (2, 3, 2))],
        lambda x, s, i: x.scatter_add(-1, i, s),
    ),
    (
        "scatter_add_larger_src_constant",
        [rand(3, 5), ints([1, 1, 4], [0, 3, 3])],
        lambda x, i: x.scatter_add(1, i, _constant(x, SRC_4x6)),
    ),
    (
        "scatter_add_empty_index_constant",
        [rand(3, 5), np.zeros((0, 5), dtype=np.int64)],
        lambda x, i: x.scatter_add(0, i, _constant(x, SRC_4x6[:3, :5])),
    ),
    ("index_select_dim0", [rand(3, 5), ints(2, 0, 2)], lambda x, i: x.index_select(0, i)),
    ("index_select_last", [rand(2, 3, 5), ints(4, 1, 1, 0)], lambda x, i: x.index_select(-1, i)),
    ("index_select_0d_index", [rand(3, 5), np.array(1)], lambda x, i: x.index_select(1, i)),
    ("index_select_empty", [rand(3, 5), ints()], lambda x, i: x.index_select(1, i)),
    ("masked_fill_scalar", [rand(3, 5), mask(3, 5)], lambda x, m: x.masked_fill(m, 2.5)),
    ("masked_fill_broadcast_mask", [rand(3, 5), mask(5)], lambda x, m: x.masked_fill(m, -1.0)),
    ("masked_fill_0d_tensor", [rand(3, 5), rand(), mask(3, 5)], lambda x, v, m: x.masked_fill(m, v)),
    ("masked_fill_0d", [rand(), np.array(True)], lambda x, m: x.masked_fill(m, 3.0)),
]

# PyTorch cannot differentiate scatter_add with respect to a src larger than the index: its
# ScatterAddBackward0 returns a gradient of the index's shape and autograd rejects it. genesis
# zero-pads that gradient to src's shape; these rows check it against numerical gradients only.
NUMERICAL_ONLY = [
    (
        "scatter_add_larger_src",
        [rand(3, 5), rand(4, 6), ints([1, 1, 4], [0, 3, 3])],
        lambda x, s, i: x.scatter_add(1, i, s),
    ),
    (
        "scatter_add_empty_index",
        [rand(3, 5), rand(3, 5), np.zeros((0, 5), dtype=np.int64)],
        lambda x, s, i: x.scatter_add(0, i, s),
    ),
]

CASES = [("getitem_" + c[0],) + c[1:] for c in GETITEM] + [("setitem_" + c[0],) + c[1:] for c in SETITEM] + OTHER


def _strided(inputs):
    """The strided variant swaps the last two dims' strides of float inputs with 2+ dims larger than 1."""
    matrices = [np.shape(a)[-2:] for a in inputs if np.ndim(a) >= 2 and np.asarray(a).dtype.kind == "f"]
    return bool(matrices) and all(min(m) > 1 for m in matrices)


LAYOUTS = [(False, c) for c in CASES] + [(True, c) for c in CASES if _strided(c[1])]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("non_contiguous,case", LAYOUTS, ids=[("strided-" if s else "") + c[0] for s, c in LAYOUTS])
def test_indexing_matches_torch(case, non_contiguous, dtype):
    name, inputs, fn = case
    grad_rtol, grad_atol = TOLERANCE[dtype]
    check_torch(
        fn, inputs, dtype=dtype, rtol=0, atol=0, grad_rtol=grad_rtol, grad_atol=grad_atol, non_contiguous=non_contiguous
    )


@pytest.mark.parametrize("name,inputs,fn", CASES + NUMERICAL_ONLY, ids=[c[0] for c in CASES + NUMERICAL_ONLY])
def test_indexing_numerical_gradient(name, inputs, fn):
    check_numerical_grad(fn, inputs)


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32, genesis.uint8, genesis.bool], ids=str)
def test_indexing_integer_and_bool_tensors(dtype):
    data = RNG.integers(0, 2 if dtype is genesis.bool else 50, (5, 7))
    g, t = genesis.tensor(data).to(dtype), torch.from_numpy(data).to(TORCH_DTYPE[dtype])
    i, m = ints(4, 0, 4), ROWS
    for fn in [
        lambda x, i, m: x[1:, ::3],
        lambda x, i, m: x[i, 2:],
        lambda x, i, m: x[m],
        lambda x, i, m: x.gather(1, i.reshape(1, 3)),
        lambda x, i, m: x.index_select(1, i),
        lambda x, i, m: x.masked_fill(m.reshape(5, 1), 1),
        lambda x, i, m: _set(x.clone(), (i, 1), 0),
    ]:
        go, to = fn(g, genesis.tensor(i), genesis.tensor(m)), fn(t, torch.from_numpy(i), torch.from_numpy(m))
        assert TORCH_DTYPE[go.dtype] == to.dtype
        np.testing.assert_array_equal(go.numpy(), to.numpy())


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the helper's loss sums +inf and -inf
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
def test_masked_fill_with_infinity(dtype):
    check_torch(lambda x, m: x.masked_fill(m, float("-inf")), [rand(3, 5), mask(3, 1)], dtype=dtype, rtol=0, atol=0)


# ---- setitem: autograd and in-place semantics ----------------------------------------
def test_setitem_takes_the_value_gradient_into_a_tensor_that_did_not_require_grad():
    v = genesis.tensor(rand(7), requires_grad=True)
    y = genesis.zeros(5, 7)
    y[ints(1, 3)] = v
    assert y.requires_grad
    (y * genesis.arange(35.0).reshape(5, 7)).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), np.arange(35.0).reshape(5, 7)[[1, 3]].sum(0))


def test_setitem_keeps_the_history_that_earlier_consumers_used():
    """An op that read y before `y[0] = ...` differentiates through y's old history."""
    results = []
    for lib in (genesis, torch):
        x = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
        v = lib.tensor([7.0, 8.0, 9.0], requires_grad=True)
        y = x * 2
        shifted = y - 1  # sub reads no values, but its gradient must still flow into
        y[0] = v * x[1]  # y's old history (x * 2), not into this index_put
        ((shifted * shifted.detach()).sum() + (y * y).sum()).backward()
        results.append((x.grad, v.grad))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)


def test_setitem_on_a_leaf_that_requires_grad_is_refused():
    x = genesis.zeros(3, 5, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad.*in-place"):
        x[0] = 1.0
    with genesis.no_grad():
        x[0] = 1.0
    assert x.detach().numpy()[0].tolist() == [1.0] * 5


def test_setitem_on_a_tensor_whose_old_value_backward_needs_fails_clearly():
    x = genesis.tensor(rand(3, 5), requires_grad=True)
    y = x * 1
    z = y.sin()
    y[0] = 1.0
    with pytest.raises(RuntimeError, match="sin.*modified by an in-place operation"):
        z.sum().backward()


def test_setitem_casts_the_value_to_the_target_dtype_like_torch():
    g, t = genesis.zeros(3, 5, dtype=genesis.int64), torch.zeros(3, 5, dtype=torch.int64)
    for target in (g, t):
        target[1] = 2.7
        target[:, 0] = -1.9
    np.testing.assert_array_equal(g.numpy(), t.numpy())


def test_setitem_and_basic_indexing_share_memory_with_the_base():
    x = genesis.arange(15.0).reshape(3, 5)
    row, element = x[1], x[2, 3]
    x[1, 2] = -1.0  # visible in an earlier view
    assert row.tolist()[2] == -1.0
    x[0][4] = -2.0  # setitem on a view writes into the base
    element.fill_(-3.0)  # an all-int index is a 0-d view, not a copy
    x[1:, ::2].mul_(10)
    expected = torch.arange(15.0).reshape(3, 5)
    expected[1, 2], expected[0][4], expected[2, 3] = -1.0, -2.0, -3.0
    expected[1:, ::2].mul_(10)
    np.testing.assert_array_equal(x.numpy(), expected.numpy())


def test_advanced_indexing_returns_a_copy():
    x = genesis.arange(15.0).reshape(3, 5)
    picked = x[[0, 2]]
    picked.add_(100)
    selected = x.index_select(1, genesis.tensor([1]))
    selected.add_(100)
    np.testing.assert_array_equal(x.numpy(), np.arange(15.0).reshape(3, 5))


def test_shape_rule_of_indexing_allocates_nothing():
    """The tracer asks for the shape of huge tensors: the probe must have zero strides.

    The int applies first (PyTorch's rule), so the index tensor's dims stay in place.
    """
    key = (("i", 3), ("s", 0, 10**6, 7), ("t", 0))
    assert M._index_shape((10**6, 10**6, 10**6), (2, 4), key=key) == (142858, 2, 4)


# ---- negative and out-of-range index tensors: PyTorch's rule, path by path --------------------
def nnf(x):
    return genesis.nn.functional if isinstance(x, genesis.Tensor) else torch.nn.functional


# x[i] and x[i] = v count a negative index from the end; index_select, gather, scatter_add, embedding,
# the class targets of nll_loss and cross_entropy (other than ignore_index), and one_hot take positions
# from 0 only. `x` is (4, 4): 4 rows, 4 columns, 4 classes. The message names the bad index and the size.
BOUNDS = [
    ("getitem", lambda x, i: x[i], "index {bad} is out of range for dim 0 with size 4"),
    ("getitem_dim1", lambda x, i: x[1:, i], "index {bad} is out of range for dim 1 with size 4"),
    ("setitem", lambda x, i: _set(x * 1, i, 0.5), "index {bad} is out of range for dim 0 with size 4"),
    (
        "index_put",
        lambda x, i: x.index_put((i,), x[:2] * 2, accumulate=True),
        "index {bad} is out of range for dim 0 with size 4",
    ),
    ("index_select", lambda x, i: x.index_select(0, i), "index {bad} is out of range for dim 0 with size 4"),
    ("index_select_dim1", lambda x, i: x.index_select(1, i), "index {bad} is out of range for dim 1 with size 4"),
    ("gather", lambda x, i: x.gather(1, i.reshape(1, 2)), "index {bad} is out of range for dim 1 with size 4"),
    (
        "scatter_add",
        lambda x, i: x.scatter_add(1, i.reshape(1, 2), x[:1, :2]),
        "index {bad} is out of range for dim 1 with size 4",
    ),
    ("embedding", lambda x, i: nnf(x).embedding(i, x), "index {bad} is out of range for an embedding of 4 rows"),
    (
        "embedding_2d_indices",
        lambda x, i: nnf(x).embedding(i.reshape(1, 2), x, padding_idx=0),
        "index {bad} is out of range for an embedding of 4 rows",
    ),
    ("nll_loss", lambda x, i: nnf(x).nll_loss(x[:2], i), "target {bad} is out of range for 4 classes"),
    ("cross_entropy", lambda x, i: nnf(x).cross_entropy(x[:2], i), "target {bad} is out of range for 4 classes"),
    (
        "cross_entropy_weighted_smoothed",
        lambda x, i: nnf(x).cross_entropy(x[:2], i, weight=x[3].abs(), label_smoothing=0.1),
        "target {bad} is out of range for 4 classes",
    ),
    ("one_hot", lambda x, i: nnf(x).one_hot(i, 4), "class value {bad} is out of range for 4 classes"),
    ("one_hot_counted", lambda x, i: nnf(x).one_hot(i), "class value {bad} is negative"),
]


@pytest.mark.parametrize("bad", [-1, -4, -5, 4, -100])
@pytest.mark.parametrize("name,fn,message", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_negative_and_out_of_range_indices_follow_torch(name, fn, message, bad):
    values = RNG.standard_normal((4, 4))
    try:
        expected = fn(torch.from_numpy(values), torch.tensor([2, bad]))
    except (IndexError, RuntimeError):
        with pytest.raises(IndexError, match=message.format(bad=bad)):
            fn(genesis.tensor(values), genesis.tensor([2, bad]))
        return
    got = fn(genesis.tensor(values), genesis.tensor([2, bad]))
    assert TORCH_DTYPE[got.dtype] == expected.dtype
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_an_index_out_of_range_raises_in_compiled_code_too(backend):
    embed = genesis.compile(lambda w, i: genesis.nn.functional.embedding(i, w) * 2, backend=backend)
    w = genesis.randn(4, 3)
    np.testing.assert_array_equal(embed(w, genesis.tensor([3, 0])).numpy(), w.numpy()[[3, 0]] * 2)
    with pytest.raises(IndexError, match="index -1 is out of range for dim 0 with size 4"):
        embed(w, genesis.tensor([3, -1]))


def test_index_put_takes_pytorchs_arguments():
    values = RNG.standard_normal((4, 3))
    for accumulate in (False, True):
        for key in [(ints(0, -1, 0),), (ints(1, 2), ints(-1, 0))]:
            g = genesis.tensor(values).index_put(
                tuple(genesis.tensor(k) for k in key), genesis.tensor(7.5, dtype=genesis.float64), accumulate=accumulate
            )
            t = torch.from_numpy(values).index_put(
                tuple(torch.from_numpy(k) for k in key), torch.tensor(7.5, dtype=torch.float64), accumulate=accumulate
            )
            np.testing.assert_array_equal(g.numpy(), t.numpy())
    with pytest.raises(RuntimeError):
        torch.zeros(3).index_put((torch.tensor([0]),), torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(TypeError, match="index_put: values of dtype float64 do not match the tensor's float32"):
        genesis.zeros(3).index_put((genesis.tensor([0]),), genesis.tensor(1.0, dtype=genesis.float64))


@pytest.mark.parametrize("in_c", [True, False], ids=["C", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("table,index_shape", [((50, 8), (40,)), ((9, 3, 4), (5, 6)), ((7,), (30,))])
def test_index_put_accumulating_whole_rows_adds_repeated_rows_in_order_as_torch(
    dtype, table, index_shape, in_c, monkeypatch
):
    # an embedding's gradient: token rows added into a table, many tokens naming one row, some from the end
    if not in_c:  # a machine without the ops' C library
        monkeypatch.setattr(M.C_KERNELS, "kernel", lambda stem, dtype: None)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(table).astype(dtype)
    index = rng.integers(-table[0], table[0], index_shape)
    values = rng.standard_normal(index_shape + table[1:]).astype(dtype)
    got = genesis.tensor(x).index_put((genesis.tensor(index),), genesis.tensor(values), accumulate=True)
    want = torch.from_numpy(x).index_put((torch.from_numpy(index),), torch.from_numpy(values), accumulate=True)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=4 * np.finfo(dtype).eps, atol=8 * np.finfo(dtype).eps)
    expected = x.copy()
    np.add.at(expected, index, values)  # the same additions in the same order: the same bits
    np.testing.assert_array_equal(got.numpy(), expected)
    with pytest.raises(IndexError, match=f"index {table[0]} is out of range for dim 0 with size {table[0]}"):
        genesis.tensor(x).index_put(
            (genesis.tensor(index.reshape(-1)[:1] * 0 + table[0]),),
            genesis.tensor(values.reshape(-1, *table[1:])[:1]),
            accumulate=True,
        )


# ---- one_hot and nonzero --------------------------------------------------------------
@pytest.mark.parametrize(
    "index,num_classes",
    [
        (ints(0, 2, 1, 2), 3),
        (ints(0, 2, 1, 2), -1),
        (ints([0, 4], [1, 1]), 6),
        (np.array(2), 4),
        (ints(), 3),
    ],
)
def test_one_hot_matches_torch(index, num_classes):
    got = genesis.one_hot(genesis.tensor(index), num_classes)
    expected = torch.nn.functional.one_hot(torch.from_numpy(index), num_classes)
    assert got.dtype is genesis.int64
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("data", [rand(3, 5) > 0, ints(0, 3, 0, 1), np.array(2.0), np.array(0), np.zeros((2, 0))])
def test_nonzero_matches_torch(data):
    g, t = genesis.tensor(data), torch.from_numpy(data)
    np.testing.assert_array_equal(g.nonzero().numpy(), t.nonzero().numpy())
    for a, b in zip(genesis.nonzero(g, as_tuple=True), t.nonzero(as_tuple=True)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---- errors name the index, dim and size ----------------------------------------------
def _float_index(x):
    return x[genesis.tensor([0.0])]


ERRORS = [
    ("int_out_of_range", lambda x: x[5], IndexError, r"index 5 is out of range for dim 0 with size 5"),
    ("negative_int_out_of_range", lambda x: x[:, -8], IndexError, r"index -8 is out of range for dim 1 with size 7"),
    (
        "tensor_out_of_range",
        lambda x: x[genesis.tensor([0, 9])],
        IndexError,
        r"index 9 is out of range for dim 0 with size 5",
    ),
    (
        "tensor_negative_out_of_range",
        lambda x: x[1:, [0, -8]],
        IndexError,
        r"index -8 is out of range for dim 1 with size 7",
    ),
    (
        "setitem_tensor_out_of_range",
        lambda x: _set(x, (slice(None), ints(7)), 0.0),
        IndexError,
        r"index 7 is out of range for dim 1 with size 7",
    ),
    ("too_many_indices", lambda x: x[0, 0, 0, 0], IndexError, r"too many indices.*dimension 3.*\[5, 7, 3\]"),
    ("too_many_with_mask", lambda x: x[genesis.ones(5, 7, dtype=genesis.bool), 0, 0], IndexError, "too many indices"),
    ("float_index_tensor", _float_index, IndexError, r"integer or bool tensors, got float32"),
    ("float_index", lambda x: x[1.5], IndexError, r"unsupported index 1.5"),
    (
        "mask_shape",
        lambda x: x[genesis.ones(5, 3, dtype=genesis.bool)],
        IndexError,
        r"mask of shape \[5, 3\] does not match the indexed shape \[5, 7\] at dim 0",
    ),
    ("negative_step", lambda x: x[::-1], ValueError, r"step must be positive"),
    ("two_ellipses", lambda x: x[..., 0, ...], IndexError, r"single ellipsis"),
    (
        "setitem_shape",
        lambda x: _set(x, 0, genesis.zeros(3, 7)),
        ValueError,
        r"values of shape \[3, 7\].*region of shape \[7, 3\]",
    ),
    (
        "gather_rank",
        lambda x: x.gather(1, genesis.tensor([0, 1])),
        ValueError,
        r"gather: index has 1 dims but input has 3",
    ),
    (
        "gather_out_of_range",
        lambda x: x.gather(1, genesis.zeros(1, 1, 1, dtype=genesis.int64) + 7),
        IndexError,
        r"index 7 is out of range for dim 1 with size 7",
    ),
    (
        "gather_negative",
        lambda x: x.gather(2, genesis.zeros(1, 1, 1, dtype=genesis.int64) - 1),
        IndexError,
        r"index -1 is out of range for dim 2 with size 3",
    ),
    ("gather_float_index", lambda x: x.gather(0, genesis.zeros(1, 1, 1)), TypeError, r"gather.*integer.*float32"),
    (
        "gather_index_too_big",
        lambda x: x.gather(0, genesis.zeros(1, 8, 1, dtype=genesis.int64)),
        ValueError,
        r"index shape \[1, 8, 1\] is larger than input shape \[5, 7, 3\] at dim 1",
    ),
    (
        "scatter_add_shapes",
        lambda x: x.scatter_add(0, genesis.zeros(2, 2, 2, dtype=genesis.int64), genesis.zeros(1, 2, 2)),
        ValueError,
        r"index shape \[2, 2, 2\] is larger than src shape \[1, 2, 2\]",
    ),
    (
        "scatter_add_rank",
        lambda x: x.scatter_add(0, genesis.zeros(2, dtype=genesis.int64), genesis.zeros(2)),
        ValueError,
        r"same number of dims",
    ),
    (
        "scatter_add_out_of_range",
        lambda x: x.scatter_add(2, genesis.full((1, 1, 1), 3, dtype=genesis.int64), genesis.zeros(1, 1, 1)),
        IndexError,
        r"index 3 is out of range for dim 2 with size 3",
    ),
    (
        "index_select_2d",
        lambda x: x.index_select(0, genesis.zeros(2, 2, dtype=genesis.int64)),
        ValueError,
        r"1-D index",
    ),
    (
        "index_select_out_of_range",
        lambda x: x.index_select(2, genesis.tensor([3])),
        IndexError,
        r"index 3 is out of range for dim 2 with size 3",
    ),
    ("masked_fill_mask_dtype", lambda x: x.masked_fill(genesis.zeros(5, 7, 3), 1.0), TypeError, r"bool mask"),
    (
        "masked_fill_value_dims",
        lambda x: x.masked_fill(genesis.ones(3, dtype=genesis.bool), genesis.zeros(3)),
        ValueError,
        r"0-d tensor value",
    ),
    (
        # out of place the mask broadcasts x, as in PyTorch; in place x keeps its shape
        "masked_fill_mask_too_big",
        lambda x: x.masked_fill_(genesis.ones(2, 5, 7, 3, dtype=genesis.bool), 0.0),
        ValueError,
        r"result of shape \[2, 5, 7, 3\] does not fit the target of shape \[5, 7, 3\]",
    ),
    (
        "one_hot_range",
        lambda x: genesis.one_hot(genesis.tensor([0, 3]), 3),
        IndexError,
        r"class value 3 is out of range for 3 classes",
    ),
]


@pytest.mark.parametrize("name,fn,kind,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_indexing_errors_are_clear(name, fn, kind, message):
    with pytest.raises(kind, match=message):
        fn(genesis.zeros(5, 7, 3))


def test_zero_dim_index_tensors_give_zero_dim_results_as_in_pytorch():
    import torch

    x = np.arange(12.0).reshape(3, 4)
    g, t = genesis.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    for key in [(1,), (1, 2), (slice(None), 2), (1, [0, 3])]:
        g_key = tuple(genesis.tensor(k) if not isinstance(k, slice) else k for k in key)
        t_key = tuple(torch.tensor(k) if not isinstance(k, slice) else k for k in key)
        got, expected = g[g_key], t[t_key]
        assert tuple(got.shape) == tuple(expected.shape), key
        np.testing.assert_array_equal(got.detach().numpy(), expected.detach().numpy())
        got.sum().backward()
        expected.sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())
