"""Gradient clipping and parameter flattening against torch.nn.utils.

Every case builds the same parameters and gradients in genesis and torch,
runs the function on both, and compares the returned norm (value and dtype)
and every gradient after the in-place update.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, TORCH_DTYPE, assert_close, make_pair, to_numpy

import genesis
from genesis.nn import utils as U

# inf and nan are the subject of several tests here: numpy's warnings about making them are expected
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)
# mixed shapes: a matrix, a vector, a 0-d tensor, an empty tensor, and one parameter without a gradient
SHAPES = [(3, 5), (7,), (), (2, 0), (4, 3)]
NO_GRAD = 4
NORM_TYPES = [0.0, 0.5, 1.0, 2.0, 3.0, math.inf, -math.inf]


def make_params(dtype, shapes=SHAPES, *, seed=0, no_grad=(NO_GRAD,), scale=1.0, non_contiguous=False):
    """Parameters with gradients (the same values in genesis and torch)."""
    rng = np.random.default_rng(seed)
    g_params, t_params = [], []
    for i, shape in enumerate(shapes):
        g, t = make_pair(rng.standard_normal(shape), dtype, True)
        if i not in no_grad:
            grad = rng.standard_normal(shape) * scale
            transposed = non_contiguous and len(shape) == 2 and min(shape) > 1  # a transposed buffer
            g.grad, _ = make_pair(grad, dtype, False, non_contiguous=transposed)
            t.grad = torch.tensor(grad).to(TORCH_DTYPE[dtype])
        g_params.append(g)
        t_params.append(t)
    return g_params, t_params


def assert_grads_match(g_params, t_params, dtype, rtol=None, atol=None):
    for i, (g, t) in enumerate(zip(g_params, t_params)):
        if t.grad is None:
            assert g.grad is None, f"parameter {i}: genesis has a gradient, torch none"
            continue
        assert g.grad.dtype is dtype, f"parameter {i}: gradient dtype {g.grad.dtype}"
        assert_close(g.grad, t.grad, dtype, f"gradient {i}", rtol, atol)


def assert_norm_matches(g_norm, t_norm, dtype, rtol=None):
    assert isinstance(g_norm, genesis.Tensor) and g_norm.shape == ()
    assert TORCH_DTYPE[g_norm.dtype] == t_norm.dtype, f"norm dtype {g_norm.dtype} != torch's {t_norm.dtype}"
    assert not g_norm.requires_grad
    assert_close(g_norm, t_norm, dtype, "total norm", rtol)


def shapes_for(norm_type):
    # max and min have no identity: torch refuses the inf norms of an empty gradient (tested below)
    return [s for s in SHAPES if 0 not in s] if math.isinf(norm_type) else SHAPES


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=str)
@pytest.mark.parametrize("max_norm", [0.3, 1e4], ids=["clips", "keeps"])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    shapes = shapes_for(norm_type)
    g_params, t_params = make_params(dtype, shapes, no_grad=(len(shapes) - 1,), non_contiguous=True)
    g_norm = U.clip_grad_norm_(g_params, max_norm, norm_type=norm_type)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type=norm_type)
    assert_norm_matches(g_norm, t_norm, dtype)
    assert_grads_match(g_params, t_params, dtype)


def test_clipping_really_changes_the_gradients():
    # guards the test above against a clip that silently does nothing on both sides
    g_params, _ = make_params(genesis.float32)
    before = [to_numpy(p.grad).copy() for p in g_params if p.grad is not None]
    norm = U.clip_grad_norm_(g_params, 0.5).item()
    after = [to_numpy(p.grad) for p in g_params if p.grad is not None]
    assert norm > 0.5
    np.testing.assert_allclose(math.sqrt(sum((a**2).sum() for a in after)), 0.5, rtol=1e-5)
    for b, a in zip(before, after):
        np.testing.assert_allclose(a, b * 0.5 / (norm + 1e-6), rtol=1e-5)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, math.inf], ids=str)
def test_mixed_dtype_gradients(norm_type):
    shapes, dtypes = [(3, 5), (7,), (2, 3)], [genesis.float16, genesis.float32, genesis.bfloat16]
    g_params, t_params = [], []
    for i, (shape, dtype) in enumerate(zip(shapes, dtypes)):
        g, t = make_params(dtype, [shape], seed=i, no_grad=())
        g_params += g
        t_params += t
    g_norm = U.clip_grad_norm_(g_params, 0.4, norm_type=norm_type)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, 0.4, norm_type=norm_type)
    assert_norm_matches(g_norm, t_norm, genesis.float32)
    for g, t, dtype in zip(g_params, t_params, dtypes):
        assert_grads_match([g], [t], dtype)


def test_single_tensor_and_generator():
    g_params, t_params = make_params(genesis.float32, [(3, 5)], no_grad=())
    g_norm = U.clip_grad_norm_(g_params[0], 1.0, norm_type=3)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params[0], 1.0, norm_type=3)
    assert_norm_matches(g_norm, t_norm, genesis.float32)
    assert_grads_match(g_params, t_params, genesis.float32)
    g_params, t_params = make_params(genesis.float64, no_grad=())
    g_norm = U.clip_grad_norm_((p for p in g_params), 0.5)
    t_norm = torch.nn.utils.clip_grad_norm_((p for p in t_params), 0.5)
    assert_norm_matches(g_norm, t_norm, genesis.float64)
    assert_grads_match(g_params, t_params, genesis.float64)


def test_norm_type_given_as_string():
    g_params, t_params = make_params(genesis.float32, [(3, 5), (7,)], no_grad=())
    g_norm = U.clip_grad_norm_(g_params, 0.5, norm_type="inf")
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, 0.5, norm_type="inf")
    assert_norm_matches(g_norm, t_norm, genesis.float32)
    assert_grads_match(g_params, t_params, genesis.float32)


def test_no_gradients_at_all():
    g = genesis.zeros(3, requires_grad=True)
    norm = U.clip_grad_norm_([g], 1.0)
    expected = torch.nn.utils.clip_grad_norm_([torch.zeros(3, requires_grad=True)], 1.0)
    assert_norm_matches(norm, expected, genesis.float32)
    assert g.grad is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert U.clip_grad_norm_((p for p in []), 1.0).item() == 0.0
    assert any("empty generator" in str(w.message) for w in caught)


@pytest.mark.parametrize("bad", [math.inf, math.nan], ids=["inf", "nan"])
@pytest.mark.parametrize("norm_type", [2.0, math.inf], ids=str)
def test_nonfinite_gradients(bad, norm_type):
    g_params, t_params = make_params(genesis.float32, [(3, 5), (7,)], no_grad=())
    for p in (g_params[1].grad, t_params[1].grad):
        p[2] = bad
    with pytest.raises(RuntimeError, match="non-finite"):
        U.clip_grad_norm_(g_params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(t_params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    # refused: the gradients are untouched
    assert math.isnan(g_params[1].grad[2].item()) or math.isinf(g_params[1].grad[2].item())
    assert_grads_match(g_params, t_params, genesis.float32)
    # allowed: scaled by the non-finite norm exactly as torch does (zeros and nans)
    g_norm = U.clip_grad_norm_(g_params, 1.0, norm_type=norm_type)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, 1.0, norm_type=norm_type)
    assert_norm_matches(g_norm, t_norm, genesis.float32)
    assert_grads_match(g_params, t_params, genesis.float32)


@pytest.mark.parametrize("norm_type", [math.inf, -math.inf], ids=str)
def test_inf_norm_of_an_empty_gradient_is_refused(norm_type):
    g_params, t_params = make_params(genesis.float32, [(2, 0), (3,)], no_grad=())
    with pytest.raises(RuntimeError, match="empty tensor"):
        U.clip_grad_norm_(g_params, 1.0, norm_type=norm_type)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(t_params, 1.0, norm_type=norm_type)


def test_get_total_norm_and_clip_grads_with_norm():
    g_params, t_params = make_params(genesis.float32)
    g_grads = [p.grad for p in g_params if p.grad is not None]
    t_grads = [p.grad for p in t_params if p.grad is not None]
    g_norm = U.get_total_norm(g_grads, 3.0)
    t_norm = torch.nn.utils.get_total_norm(t_grads, 3.0)
    assert_norm_matches(g_norm, t_norm, genesis.float32)
    U.clip_grads_with_norm_(g_params, 0.2, g_norm)
    torch.nn.utils.clip_grads_with_norm_(t_params, 0.2, t_norm)
    assert_grads_match(g_params, t_params, genesis.float32)


def test_clipping_records_no_graph():
    g_params, _ = make_params(genesis.float32, [(3, 5)], no_grad=())
    g_params[0].grad.requires_grad = True  # even a gradient that would record: clipping runs under no_grad
    norm = U.clip_grad_norm_(g_params, 0.1)
    assert norm._node is None and not norm.requires_grad
    assert g_params[0].grad._node is None


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("clip_value", [0.5, 1.7])
def test_clip_grad_value_matches_torch(dtype, clip_value):
    g_params, t_params = make_params(dtype, scale=2.0, non_contiguous=True)
    for p in (g_params[0].grad, t_params[0].grad):
        p[1, 2] = math.nan
    assert U.clip_grad_value_(g_params, clip_value) is None
    torch.nn.utils.clip_grad_value_(t_params, clip_value)
    assert_grads_match(g_params, t_params, dtype)
    bound = genesis.full((), clip_value, dtype=dtype).item()  # the clip value as the dtype holds it
    assert np.nanmax(np.abs(to_numpy(g_params[0].grad))) == bound


def test_clip_grad_value_single_tensor():
    g_params, t_params = make_params(genesis.float32, [(7,)], no_grad=(), scale=3.0)
    U.clip_grad_value_(g_params[0], 1)
    torch.nn.utils.clip_grad_value_(t_params[0], 1)
    assert_grads_match(g_params, t_params, genesis.float32)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.bfloat16], ids=lambda d: d.name)
def test_parameters_to_vector_matches_torch_and_is_differentiable(dtype):
    g_params, t_params = make_params(dtype, [(3, 5), (7,), (), (2, 0)], no_grad=(0, 1, 2, 3))
    g_vec = U.parameters_to_vector(g_params)
    t_vec = torch.nn.utils.parameters_to_vector(t_params)
    assert g_vec.shape == (23,) and g_vec.dtype is dtype
    assert_close(g_vec, t_vec, dtype, "vector")
    weights = np.arange(23.0)
    (g_vec * genesis.tensor(weights, dtype=dtype)).sum().backward()
    (t_vec * torch.tensor(weights).to(TORCH_DTYPE[dtype])).sum().backward()
    assert_grads_match(g_params, t_params, dtype)


def test_parameters_to_vector_owns_its_memory():
    p = genesis.ones(2, 3, requires_grad=True)
    vec = U.parameters_to_vector([p])
    with genesis.no_grad():
        vec.mul_(5.0)
    assert p.sum().item() == 6.0


def test_vector_to_parameters_matches_torch():
    g_params, t_params = make_params(genesis.float32, [(3, 5), (7,), ()], no_grad=(0, 1, 2))
    values = np.random.default_rng(3).standard_normal(23)
    U.vector_to_parameters(genesis.tensor(values, dtype=genesis.float32), g_params)
    torch.nn.utils.vector_to_parameters(torch.tensor(values, dtype=torch.float32), t_params)
    for g, t in zip(g_params, t_params):
        assert g.shape == tuple(t.shape) and g.is_leaf and g.requires_grad
        assert_close(g, t, genesis.float32, "parameter")
    # a round trip gives the vector back
    np.testing.assert_allclose(
        to_numpy(U.parameters_to_vector(g_params).detach()), values.astype(np.float32), rtol=0, atol=0
    )


def test_vector_to_parameters_errors():
    params = [genesis.zeros(3, requires_grad=True), genesis.zeros(2, 2, requires_grad=True)]
    with pytest.raises(TypeError, match="genesis.Tensor"):
        U.vector_to_parameters(np.zeros(7), params)
    with pytest.raises(ValueError, match="7 elements"):
        U.vector_to_parameters(genesis.zeros(6), params)
    with pytest.raises(ValueError, match="1-D"):
        U.vector_to_parameters(genesis.zeros(7, 1), params)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, math.inf], ids=str)
def test_clip_grad_norm_never_reads_the_host(monkeypatch, norm_type):
    # the coefficient stays a tensor, so the compiler can trace the clip into the training step
    shapes = shapes_for(norm_type)
    g_params, t_params = make_params(genesis.float32, shapes, no_grad=(len(shapes) - 1,))

    def refuse(*args):
        raise AssertionError("a host read")

    for name in ("item", "__bool__", "__float__", "tolist", "numpy"):
        monkeypatch.setattr(genesis.Tensor, name, refuse)
    g_norm = U.clip_grad_norm_(g_params, 0.3, norm_type=norm_type)
    monkeypatch.undo()
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, 0.3, norm_type=norm_type)
    assert_norm_matches(g_norm, t_norm, genesis.float32)
    assert_grads_match(g_params, t_params, genesis.float32)
