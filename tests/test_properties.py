"""Property tests: broadcasting and reductions over shapes hypothesis chooses, against PyTorch.

Table-driven tests cover the shapes someone thought of; these cover the
ones nobody did (size-1 dims meeting size-0 dims, rank-0 operands, negative
and repeated-in-spirit dims, keepdim on a 0-d tensor). Every example checks
the forward values, shape and dtype, and the gradients for a random
cotangent, against torch. Incompatible shape pairs are built by breaking one
aligned dimension of a compatible pair, so each has exactly one reason to
fail, and the error must name both shapes. Example counts stay small so the
file runs in seconds.
"""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from optest import TORCH_DTYPE, assert_close

import genesis
from genesis.errors import ShapeError

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)

BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "remainder": lambda a, b: a % b,
    "maximum": lambda a, b: a.maximum(b),
    "pow": lambda a, b: a.abs() ** b,
    "lt": lambda a, b: a < b,
}
DTYPES = [genesis.float32, genesis.float64, genesis.int64]


def leaf_pair(shape, dtype, seed):
    """The same values as a genesis and a torch leaf; floats away from 0 so div and pow stay tame."""
    rng = np.random.default_rng(seed)
    if dtype.is_floating_point:
        array = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    else:
        array = rng.integers(1, 5, shape)
    g = genesis.tensor(array, dtype=dtype, requires_grad=dtype.is_floating_point)
    t = torch.tensor(array).to(TORCH_DTYPE[dtype])
    if dtype.is_floating_point:
        t.requires_grad_(True)
    return g, t


def compare_with_gradients(g_out, t_out, g_leaves, t_leaves, what):
    assert g_out.shape == tuple(t_out.shape), f"{what}: shape {g_out.shape} != torch's {tuple(t_out.shape)}"
    assert TORCH_DTYPE[g_out.dtype] == t_out.dtype, f"{what}: dtype {g_out.dtype} != torch's {t_out.dtype}"
    dtype = g_out.dtype if g_out.dtype.is_floating_point else genesis.float64
    assert_close(g_out, t_out, dtype, what)
    if not t_out.requires_grad:
        return
    seed = np.random.default_rng(3).standard_normal(g_out.shape)
    (g_out * genesis.tensor(seed, dtype=g_out.dtype)).sum().backward()
    (t_out * torch.tensor(seed).to(t_out.dtype)).sum().backward()
    for i, (g, t) in enumerate(zip(g_leaves, t_leaves)):
        if t.requires_grad:
            assert g.grad is not None and g.grad.shape == g.shape, f"{what}: gradient {i} has the wrong shape"
            # a float64 leaf of a float32 op gets a gradient summed in float32: judge it as float32
            precision = min((g.dtype, g_out.dtype), key=lambda d: d.itemsize)
            assert_close(g.grad, t.grad, precision, f"{what}: gradient of input {i}")


# ---- broadcasting -------------------------------------------------------------
@PROPERTY_SETTINGS
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4),
    op=st.sampled_from(sorted(BINARY_OPS)),
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)),
    seed=st.integers(0, 2**16),
)
def test_binary_ops_broadcast_like_torch(shapes, op, dtypes, seed):
    (a_shape, b_shape), expected_shape = shapes.input_shapes, shapes.result_shape
    ga, ta = leaf_pair(a_shape, dtypes[0], seed)
    gb, tb = leaf_pair(b_shape, dtypes[1], seed + 1)
    fn = BINARY_OPS[op]
    g_out, t_out = fn(ga, gb), fn(ta, tb)
    assert g_out.shape == expected_shape
    compare_with_gradients(g_out, t_out, [ga, gb], [ta, tb], f"{op}{list(a_shape)},{list(b_shape)}")


@st.composite
def incompatible_shapes(draw):
    """Two shapes that broadcast everywhere but one aligned dim, where both sizes differ and neither is 1."""
    shapes = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=4, min_side=0, max_side=4))
    a, b = (list(s) for s in shapes.input_shapes)
    if not b:
        b = [draw(st.integers(0, 4))]
    aligned = min(len(a), len(b))
    if aligned == 0:
        a = [draw(st.integers(0, 4))]
        aligned = 1
    position = -draw(st.integers(1, aligned))
    size = draw(st.sampled_from([0, 2, 3, 4, 5]))
    a[position] = size
    b[position] = draw(st.sampled_from([s for s in (0, 2, 3, 4, 5, 6) if s != size]))
    if draw(st.booleans()):
        a, b = b, a
    return tuple(a), tuple(b)


@PROPERTY_SETTINGS
@given(shapes=incompatible_shapes(), op=st.sampled_from(sorted(BINARY_OPS)))
def test_incompatible_shapes_raise_an_error_naming_both(shapes, op):
    a_shape, b_shape = shapes
    ga, ta = leaf_pair(a_shape, genesis.float32, 0)
    gb, tb = leaf_pair(b_shape, genesis.float32, 1)
    try:
        BINARY_OPS[op](ta, tb)
    except RuntimeError:
        pass
    else:
        raise AssertionError(f"torch broadcast {a_shape} with {b_shape}: the strategy is wrong")
    try:
        BINARY_OPS[op](ga, gb)
    except ShapeError as error:
        message = str(error)
        # `pow` sees |a|, the same shape; every op reports the shapes as given
        assert str(list(a_shape)) in message and str(list(b_shape)) in message, message
        assert "broadcast" in message
    else:
        raise AssertionError(f"genesis broadcast {a_shape} with {b_shape}")


# ---- reductions -----------------------------------------------------------------
REDUCTIONS = {
    "sum": lambda x, dim, keepdim: x.sum(dim=dim, keepdim=keepdim),
    "mean": lambda x, dim, keepdim: x.mean(dim=dim, keepdim=keepdim),
    "amax": lambda x, dim, keepdim: x.amax(dim=dim if dim is not None else (), keepdim=keepdim),
    "var": lambda x, dim, keepdim: x.var(dim=dim, keepdim=keepdim),
    "var_biased": lambda x, dim, keepdim: x.var(dim=dim, keepdim=keepdim, correction=0),
}


@st.composite
def shape_and_dims(draw):
    """A shape and a dim argument for it: None, one dim, or a tuple of distinct dims, each possibly negative."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=4)))
    ndim = len(shape)
    rank = max(ndim, 1)  # a 0-d tensor accepts dim 0 and -1
    form = draw(st.sampled_from(["none", "int", "tuple"]))
    if form == "none":
        return shape, None
    if form == "int":
        return shape, draw(st.integers(-rank, rank - 1))
    if ndim == 0:
        return shape, (draw(st.sampled_from([0, -1])),)
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return shape, tuple(d - ndim if draw(st.booleans()) else d for d in chosen)


@PROPERTY_SETTINGS
@given(
    case=shape_and_dims(),
    keepdim=st.booleans(),
    op=st.sampled_from(sorted(REDUCTIONS)),
    dtype=st.sampled_from([genesis.float32, genesis.float64]),
    seed=st.integers(0, 2**16),
)
def test_reductions_match_torch_with_gradients(case, keepdim, op, dtype, seed):
    shape, dim = case
    gx, tx = leaf_pair(shape, dtype, seed)
    fn = REDUCTIONS[op]
    g_out, t_out = fn(gx, dim, keepdim), fn(tx, dim, keepdim)
    compare_with_gradients(g_out, t_out, [gx], [tx], f"{op}{list(shape)} dim={dim} keepdim={keepdim}")


@PROPERTY_SETTINGS
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=st.integers(0, 2**16))
def test_integer_sum_accumulates_in_int64_like_torch(case, keepdim, seed):
    shape, dim = case
    gx, tx = leaf_pair(shape, genesis.int64, seed)
    g32, t32 = gx.int(), tx.int()
    for g, t in ((gx, tx), (g32, t32)):
        g_out, t_out = g.sum(dim=dim, keepdim=keepdim), t.sum(dim=dim, keepdim=keepdim)
        assert TORCH_DTYPE[g_out.dtype] == t_out.dtype
        assert g_out.shape == tuple(t_out.shape) and g_out.tolist() == t_out.tolist()
