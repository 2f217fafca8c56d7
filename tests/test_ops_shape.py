"""Shape and view ops against PyTorch: values (exact: these ops move bits), dtypes, gradients.

One table row per op case: a lambda that reads the same in genesis and torch
(or a separate torch lambda where the APIs differ, as for pad), run over every
float dtype, contiguous and not, plus a float64 numerical-gradient check.
Then views (shared memory and version counters), mixed-dtype cat, and the
errors that must name the shapes and dims.
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, TOLERANCE, check_numerical_grad, check_torch

import genesis

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def tpad(x, widths, value=0.0):
    return torch.nn.functional.pad(x, widths, value=value)


# (id, inputs, genesis fn, torch fn or None when the same lambda serves both)
CASES = [
    ("reshape_-1", [rand(3, 5)], lambda x: x.reshape(5, -1), None),
    ("reshape_flat", [rand(3, 5)], lambda x: x.reshape(-1), None),
    ("reshape_tuple_split", [rand(3, 5, 7)], lambda x: x.reshape((3, 35)), None),
    ("view_-1", [rand(3, 5)], lambda x: x.contiguous().view(-1, 3), None),
    ("permute", [rand(3, 5, 7)], lambda x: x.permute(2, 0, 1), None),
    ("permute_negative", [rand(3, 5, 7)], lambda x: x.permute(-1, 0, -2), None),
    ("transpose", [rand(3, 5, 7)], lambda x: x.transpose(0, -1), None),
    ("T", [rand(3, 5)], lambda x: x.T, None),
    ("mT", [rand(2, 3, 5)], lambda x: x.mT, None),
    ("t", [rand(3, 5)], lambda x: x.t(), None),
    ("squeeze_all", [rand(1, 5, 1)], lambda x: x.squeeze(), None),
    ("squeeze_int", [rand(1, 5, 1)], lambda x: x.squeeze(-1), None),
    ("squeeze_non_one", [rand(3, 5)], lambda x: x.squeeze(1), None),
    ("squeeze_tuple", [rand(1, 5, 1, 3)], lambda x: x.squeeze((0, 2)), None),
    ("unsqueeze_0", [rand(3, 5)], lambda x: x.unsqueeze(0), None),
    ("unsqueeze_-1", [rand(3, 5)], lambda x: x.unsqueeze(-1), None),
    ("unsqueeze_-2", [rand(3, 5)], lambda x: x.unsqueeze(-2), None),
    ("unsqueeze_end", [rand(3, 5)], lambda x: x.unsqueeze(2), None),
    ("expand_-1", [rand(3, 1)], lambda x: x.expand(2, -1, 5), None),
    ("expand_tuple", [rand(1, 5)], lambda x: x.expand((3, 5)), None),
    ("broadcast_to", [rand(5)], lambda x: x.broadcast_to((3, 5)), None),
    ("expand_as", [rand(3, 1), rand(3, 5)], lambda x, y: x.expand_as(y) * y, None),
    ("flatten", [rand(2, 3, 5)], lambda x: x.flatten(), None),
    ("flatten_start", [rand(2, 3, 5)], lambda x: x.flatten(1), None),
    ("flatten_range", [rand(2, 3, 5, 1)], lambda x: x.flatten(0, -2), None),
    ("unflatten", [rand(3, 15)], lambda x: x.unflatten(1, (5, 3)), None),
    ("unflatten_-1", [rand(15, 2)], lambda x: x.unflatten(0, (-1, 5)), None),
    ("contiguous", [rand(3, 5)], lambda x: x.contiguous(), None),
    ("clone", [rand(3, 5)], lambda x: x.clone(), None),
    ("narrow", [rand(3, 7)], lambda x: x.narrow(1, 2, 4), None),
    ("narrow_negative", [rand(5, 3)], lambda x: x.narrow(0, -3, 2), None),
    ("flip", [rand(3, 5)], lambda x: x.flip(0), None),
    ("flip_dims", [rand(2, 3, 5)], lambda x: x.flip((0, -1)), None),
    ("tril", [rand(3, 5)], lambda x: x.tril(), None),
    ("tril_offset", [rand(2, 3, 5)], lambda x: x.tril(1), None),
    ("tril_negative", [rand(5, 3)], lambda x: x.tril(-1), None),
    ("triu", [rand(2, 3, 5)], lambda x: x.triu(), None),
    ("triu_offset", [rand(5, 3)], lambda x: x.triu(2), None),
    ("triu_negative", [rand(3, 5)], lambda x: x.triu(-2), None),
    ("pad_last", [rand(3, 5)], lambda x: genesis.pad(x, (1, 2)), lambda x: tpad(x, (1, 2))),
    (
        "pad_two_dims_value",
        [rand(3, 5)],
        lambda x: genesis.pad(x, (0, 2, 3, 1), value=2.5),
        lambda x: tpad(x, (0, 2, 3, 1), 2.5),
    ),
    (
        "pad_three_dims",
        [rand(2, 3, 5)],
        lambda x: genesis.pad(x, (1, 0, 0, 1, 2, 1)),
        lambda x: tpad(x, (1, 0, 0, 1, 2, 1)),
    ),
    ("movedim", [rand(2, 3, 5)], lambda x: x.movedim(0, -1), None),
    ("movedim_tuple", [rand(2, 3, 5)], lambda x: x.movedim((0, 1), (2, 0)), None),
    ("cat", [rand(3, 5), rand(2, 5)], lambda x, y: genesis.cat([x, y]), lambda x, y: torch.cat([x, y])),
    (
        "cat_negative_dim",
        [rand(3, 2), rand(3, 5), rand(3, 1)],
        lambda x, y, z: genesis.cat([x, y, z], -1),
        lambda x, y, z: torch.cat([x, y, z], -1),
    ),
    ("cat_one", [rand(3, 5)], lambda x: genesis.cat([x], 1), lambda x: torch.cat([x], 1)),
    ("stack", [rand(3, 5), rand(3, 5)], lambda x, y: genesis.stack([x, y]), lambda x, y: torch.stack([x, y])),
    (
        "stack_last",
        [rand(3, 5), rand(3, 5), rand(3, 5)],
        lambda x, y, z: genesis.stack((x, y, z), -1),
        lambda x, y, z: torch.stack((x, y, z), -1),
    ),
    ("split_int", [rand(3, 7)], lambda x: x.split(3, dim=1), None),
    ("split_sections", [rand(3, 7)], lambda x: x.split([1, 4, 2], 1), None),
    ("chunk_uneven", [rand(7, 3)], lambda x: x.chunk(3), None),
    ("chunk_fewer", [rand(3, 6)], lambda x: x.chunk(4, -1), None),
    ("unbind", [rand(3, 5)], lambda x: x.unbind(1), None),
    # 0-d tensors
    ("0d_reshape", [rand()], lambda x: x.reshape(1, 1), None),
    ("0d_unsqueeze", [rand()], lambda x: x.unsqueeze(-1), None),
    ("0d_expand", [rand()], lambda x: x.expand(3, 5), None),
    ("0d_flatten", [rand()], lambda x: x.flatten(), None),
    ("0d_squeeze", [rand()], lambda x: x.squeeze(), None),
    ("0d_t", [rand()], lambda x: x.t(), None),
    ("0d_stack", [rand(), rand()], lambda x, y: genesis.stack([x, y]), lambda x, y: torch.stack([x, y])),
    # empty dims
    ("empty_reshape", [rand(0, 5)], lambda x: x.reshape(5, 0), None),
    ("empty_permute", [rand(3, 0, 5)], lambda x: x.permute(2, 0, 1), None),
    ("empty_expand", [rand(0, 1)], lambda x: x.expand(0, 5), None),
    ("empty_cat", [rand(0, 5), rand(3, 5)], lambda x, y: genesis.cat([x, y]), lambda x, y: torch.cat([x, y])),
    ("empty_cat_1d", [rand(0), rand(3, 5)], lambda x, y: genesis.cat([x, y]), lambda x, y: torch.cat([x, y])),
    ("empty_split", [rand(0, 5)], lambda x: x.split(2), None),
    ("empty_chunk", [rand(0, 5)], lambda x: x.chunk(3), None),
    ("empty_flip", [rand(3, 0)], lambda x: x.flip(1), None),
    ("empty_tril", [rand(0, 3)], lambda x: x.tril(), None),
    ("empty_pad", [rand(0, 3)], lambda x: genesis.pad(x, (1, 1)), lambda x: tpad(x, (1, 1))),
]


def _can_be_strided(name, inputs):
    """The strided variant swaps the last two dims' strides: it needs them both larger than 1."""
    matrices = [np.shape(a)[-2:] for a in inputs if np.ndim(a) >= 2]
    return name != "view_-1" and matrices and all(min(m) > 1 for m in matrices)


LAYOUTS = [(False, c) for c in CASES] + [(True, c) for c in CASES if _can_be_strided(c[0], c[1])]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("non_contiguous,case", LAYOUTS, ids=[("strided-" if s else "") + c[0] for s, c in LAYOUTS])
def test_shape_op_matches_torch(case, non_contiguous, dtype):
    name, inputs, fn, torch_fn = case
    grad_rtol, grad_atol = TOLERANCE[dtype]
    check_torch(
        fn,
        inputs,
        dtype=dtype,
        torch_fn=torch_fn,
        rtol=0,
        atol=0,
        grad_rtol=grad_rtol,
        grad_atol=grad_atol,
        non_contiguous=non_contiguous,
    )


def _total(out):
    """One tensor from an op that may return several (split, chunk, unbind), for the numerical check."""
    if isinstance(out, (tuple, list)):
        return genesis.cat([o.reshape(-1) for o in out])
    return out


@pytest.mark.parametrize("name,inputs,fn,torch_fn", CASES, ids=[c[0] for c in CASES])
def test_shape_op_numerical_gradient(name, inputs, fn, torch_fn):
    check_numerical_grad(lambda *xs: _total(fn(*xs)), inputs)


# ---- integer and bool dtypes: the same ops move their bits unchanged ------------------
INT_CASES = [
    ("permute", lambda x: x.permute(1, 0)),
    ("flip", lambda x: x.flip(-1)),
    ("tril", lambda x: x.triu(1)),
    ("expand", lambda x: x.unsqueeze(0).expand(2, -1, -1)),
    ("cat", lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).cat([x, x.flip(0)], 1)),
    ("split", lambda x: x.split([2, 3], 1)),
]


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32, genesis.uint8, genesis.bool], ids=str)
@pytest.mark.parametrize("name,fn", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_shape_op_on_integer_and_bool_tensors(name, fn, dtype):
    from optest import TORCH_DTYPE

    data = RNG.integers(0, 2 if dtype is genesis.bool else 100, (3, 5))
    g = genesis.tensor(data).to(dtype)
    t = torch.from_numpy(data).to(TORCH_DTYPE[dtype])
    g_outs, t_outs = fn(g), fn(t)
    for go, to in zip(*(o if isinstance(o, tuple) else (o,) for o in (g_outs, t_outs))):
        assert TORCH_DTYPE[go.dtype] == to.dtype
        np.testing.assert_array_equal(go.numpy(), to.numpy())


def test_low_precision_values_survive_bit_for_bit():
    """fp16/bf16 never pass through fp32 here: NaN payloads, -0.0 and subnormals are kept."""
    bits = np.array([0x7E01, 0x8000, 0x0001, 0x7BFF, 0xFC00, 0x3C00], dtype=np.uint16)
    for dtype in [genesis.float16, genesis.bfloat16]:
        x = genesis.from_numpy(bits.view(genesis.zeros(1, dtype=dtype).numpy().dtype).reshape(2, 3))
        for out in [x.T.contiguous(), x.flip(1), genesis.cat([x, x]), x.reshape(-1), genesis.pad(x, (1, 0))]:
            got = out.numpy().view(np.uint16)
            assert set(bits.tolist()) <= set(got.reshape(-1).tolist()), (dtype, got)


# ---- cat promotes mixed dtypes as torch does ------------------------------------------
MIXED = [
    (genesis.int64, genesis.float32),
    (genesis.float16, genesis.bfloat16),
    (genesis.int32, genesis.bool),
    (genesis.float32, genesis.float64),
    (genesis.uint8, genesis.int8),
    (genesis.float16, genesis.int64),
]


@pytest.mark.parametrize("a,b", MIXED, ids=lambda d: d.name)
def test_cat_of_mixed_dtypes_promotes_like_torch(a, b):
    from optest import TORCH_DTYPE

    x, y = RNG.integers(0, 2, (2, 3)), RNG.integers(0, 2, (1, 3))
    out = genesis.cat([genesis.tensor(x).to(a), genesis.tensor(y).to(b)])
    expected = torch.cat([torch.from_numpy(x).to(TORCH_DTYPE[a]), torch.from_numpy(y).to(TORCH_DTYPE[b])])
    assert TORCH_DTYPE[out.dtype] == expected.dtype
    np.testing.assert_array_equal(out.to(genesis.float64).numpy(), expected.double().numpy())


def test_cat_promotes_with_a_skipped_empty_tensor_and_sends_gradients_back_in_each_dtype():
    empty = genesis.zeros(0, dtype=genesis.int64)
    assert genesis.cat([empty, genesis.ones(2, 3)]).dtype is genesis.float32
    x = genesis.tensor([[1.0, 2.0]], requires_grad=True)
    y = genesis.tensor([[3.0, 4.0]], dtype=genesis.float64, requires_grad=True)
    out = genesis.cat([x, y], -1)
    assert out.dtype is genesis.float64
    (out * genesis.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=genesis.float64)).sum().backward()
    assert x.grad.dtype is genesis.float32 and x.grad.tolist() == [[1.0, 2.0]]
    assert y.grad.dtype is genesis.float64 and y.grad.tolist() == [[3.0, 4.0]]


# ---- views share memory and version counters with their base ----------------------------
VIEWS = [
    ("reshape", lambda x: x.reshape(-1)),
    ("view", lambda x: x.view(5, 3)),
    ("permute", lambda x: x.permute(1, 0)),
    ("T", lambda x: x.T),
    ("narrow", lambda x: x.narrow(1, 1, 3)),
    ("squeeze_unsqueeze", lambda x: x.unsqueeze(0).squeeze(0)),
    ("split_piece", lambda x: x.split(2)[1]),
    ("chunk_piece", lambda x: x.chunk(2, 1)[0]),
    ("unbind_piece", lambda x: x.unbind(0)[2]),
    ("flatten", lambda x: x.flatten()),
    ("unflatten", lambda x: x.unflatten(1, (1, 5))),
    ("movedim", lambda x: x.movedim(0, 1)),
    ("detach", lambda x: x.detach()),
    ("unsqueeze_of_transposed", lambda x: x.T.unsqueeze(1)),
    ("contiguous_of_contiguous", lambda x: x.contiguous()),
]


@pytest.mark.parametrize("name,make_view", VIEWS, ids=[v[0] for v in VIEWS])
def test_in_place_change_through_a_view_shows_in_the_base(name, make_view):
    base = genesis.arange(15, dtype=genesis.float32).reshape(3, 5)
    reference = torch.arange(15, dtype=torch.float32).reshape(3, 5)
    view, torch_view = make_view(base), make_view(reference)
    view.mul_(-2)
    torch_view.mul_(-2)
    np.testing.assert_array_equal(base.numpy(), reference.numpy())
    base.add_(100)  # and the other way round
    reference.add_(100)
    np.testing.assert_array_equal(view.numpy(), torch_view.numpy())


@pytest.mark.parametrize(
    "name,make_copy",
    [
        ("reshape_of_transposed", lambda x: x.T.reshape(-1)),
        ("flatten_of_transposed", lambda x: x.T.flatten()),
        ("clone", lambda x: x.clone()),
        ("contiguous_of_transposed", lambda x: x.T.contiguous()),
        ("cat_of_one", lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).cat([x])),
        ("stack_of_one", lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).stack([x])),
        ("flip", lambda x: x.flip(0)),
    ],
)
def test_copies_do_not_alias_their_input(name, make_copy):
    base = genesis.arange(15, dtype=genesis.float32).reshape(3, 5)
    reference = torch.arange(15, dtype=torch.float32).reshape(3, 5)
    copy, torch_copy = make_copy(base), make_copy(reference)
    copy.add_(1)
    torch_copy.add_(1)
    np.testing.assert_array_equal(base.numpy(), reference.numpy())
    np.testing.assert_array_equal(base.numpy(), np.arange(15.0).reshape(3, 5))


def test_in_place_change_through_a_view_of_a_saved_tensor_fails_backward_clearly():
    leaf = genesis.tensor(rand(3, 5), requires_grad=True)
    hidden = leaf * 2
    out = hidden.sin()  # sin's backward reads `hidden`
    hidden.T.narrow(0, 1, 2).add_(1)
    with pytest.raises(RuntimeError, match=r"sin.*modified by an in-place operation.*version"):
        out.sum().backward()


def test_writing_a_reshaped_copy_leaves_saved_tensors_valid():
    """reshape of a transposed tensor copies: changing the copy is not a change to the base."""
    leaf = genesis.tensor(rand(3, 5), requires_grad=True)
    hidden = leaf * 2
    out = hidden.sin()
    flat = hidden.T.reshape(-1)
    flat.add_(1)
    out.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), 2 * np.cos(2 * leaf.detach().numpy()), rtol=1e-6)


def test_view_refuses_strides_it_cannot_share():
    x = genesis.zeros(3, 5)
    with pytest.raises(RuntimeError, match=r"view of a tensor of shape \[5, 3\] as \[15\].*reshape"):
        x.T.view(-1)
    assert x.T.view(5, 1, 3).shape == (5, 1, 3)  # adding a unit dim needs no copy, even transposed


def test_expanded_view_refuses_in_place_writes():
    x = genesis.zeros(3, 1).expand(3, 5)
    with pytest.raises(RuntimeError, match="expanded"):
        x.add_(1)


# ---- errors name the shapes and dims --------------------------------------------------
ERRORS = [
    ("reshape_count", lambda x: x.reshape(4, 4), r"shape \[3, 5\] \(15 elements\).*shape \[4, 4\]"),
    ("reshape_infer", lambda x: x.reshape(4, -1), r"shape \[3, 5\].*\[4, -1\]"),
    ("reshape_two_-1", lambda x: x.reshape(-1, -1), r"only one dimension can be -1"),
    ("view_count", lambda x: x.view(2, 7), r"\[3, 5\].*\[2, 7\]"),
    ("cat_shapes", lambda x: genesis.cat([x, genesis.zeros(2, 4)]), r"dim 0.*\[3, 5\].*\[2, 4\]"),
    ("cat_ndims", lambda x: genesis.cat([x, genesis.zeros(5)], 0), r"same number of dims"),
    ("cat_0d", lambda x: genesis.cat([genesis.tensor(1.0)]), r"0-d tensor \(at position 0\)"),
    ("cat_dim", lambda x: genesis.cat([x, x], 2), r"dim 2 is out of range.*2 dims"),
    ("stack_shapes", lambda x: genesis.stack([x, x.T]), r"equal shape.*\[3, 5\].*\[5, 3\]"),
    ("expand_non_one", lambda x: x.expand(2, 3, 4), r"\[3, 5\].*\[2, 3, 4\].*size 5 is not 1"),
    ("expand_fewer", lambda x: x.expand(5), r"fewer dims"),
    ("permute_repeat", lambda x: x.permute(0, 0), r"\[0, 0\].*not a permutation.*\[3, 5\]"),
    ("transpose_dim", lambda x: x.transpose(0, 2), r"dim 2 is out of range"),
    ("squeeze_dim", lambda x: x.squeeze(3), r"dim 3 is out of range"),
    ("unsqueeze_dim", lambda x: x.unsqueeze(4), r"dim 4 is out of range"),
    ("flatten_order", lambda x: x.flatten(1, 0), r"start_dim 1 comes after end_dim 0"),
    ("unflatten_sizes", lambda x: x.unflatten(1, (2, 3)), r"\[2, 3\].*size 5 of dim 1"),
    ("split_sections", lambda x: x.split([1, 1], 0), r"\[1, 1\] add up to 2.*size 3"),
    ("split_size", lambda x: x.split(0), r"positive"),
    ("chunk_count", lambda x: x.chunk(0), r"positive"),
    ("narrow_range", lambda x: x.narrow(1, 3, 4), r"\[3, 7\) is out of range for dim 1 of size 5"),
    ("pad_pairs", lambda x: genesis.pad(x, (1, 2, 3)), r"\(left, right\) pairs"),
    ("pad_negative", lambda x: genesis.pad(x, (-1, 0)), r"negative"),
    ("tril_1d", lambda x: x[0].tril(), r"at least 2 dims.*\[5\]"),
    ("movedim_repeat", lambda x: x.movedim((0, 0), (0, 1)), r"repeated"),
]


@pytest.mark.parametrize("name,fn,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_clear(name, fn, message):
    with pytest.raises((ValueError, IndexError, RuntimeError, TypeError), match=message):
        fn(genesis.zeros(3, 5))
