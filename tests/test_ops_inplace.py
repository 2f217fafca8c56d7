"""In-place ops against PyTorch: values, gradients through them, and autograd's guards.

Each table row applies in-place ops to a non-leaf (`x * 1`, so autograd
allows the write) and goes on computing with it; the row runs through the
same lambda in genesis and torch over the four float dtypes, and through a
float64 numerical-gradient check. Then the rules autograd enforces: an
in-place change to a value a pending backward still needs fails at backward
with the op's name and the versions; an in-place op on a leaf that requires
grad is refused unless grad mode is off; an in-place result keeps the
target's dtype and shape or is refused as torch refuses it.
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, TORCH_DTYPE, assert_close, check_numerical_grad, check_torch, make_pair

import genesis

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def positive(*shape):
    return RNG.uniform(0.3, 3.0, shape)


def away_from_zero(*shape):
    return RNG.choice([-1.0, 1.0], shape) * RNG.uniform(0.2, 2.0, shape)


def constant(like):
    """A fresh tensor of `like`'s library, shape and dtype, with no history."""
    library = genesis if isinstance(like, genesis.Tensor) else torch
    return library.full(tuple(like.shape), 0.75, dtype=like.dtype)


def _iadd(x, y):
    x += y
    return x


def _isub(x, y):
    x -= y
    return x


def _imul(x, y):
    x *= y
    return x


def _idiv(x, y):
    x /= y
    return x


# (id, inputs, fn): x * 1 is a non-leaf copy of the input that may be written in place
CASES = [
    ("add_", [rand(3, 5), rand(3, 5)], lambda x, y: (x * 1).add_(y)),
    ("add_broadcast", [rand(3, 5), rand(5)], lambda x, y: (x * 1).add_(y)),
    ("add_alpha", [rand(3, 5), rand(3, 1)], lambda x, y: (x * 1).add_(y, alpha=-2)),
    ("add_scalar", [rand(3, 5)], lambda x: (x * 1).add_(2.5)),
    ("sub_", [rand(3, 5), rand(5)], lambda x, y: (x * 1).sub_(y)),
    ("mul_", [rand(3, 5), rand(3, 5)], lambda x, y: (x * 1).mul_(y)),
    ("mul_scalar", [rand(3, 5)], lambda x: (x * 1).mul_(-3)),
    ("div_", [rand(3, 5), away_from_zero(3, 1)], lambda x, y: (x * 1).div_(y)),
    ("pow_", [positive(3, 5)], lambda x: (x * 1).pow_(1.5)),
    ("clamp_", [rand(3, 5)], lambda x: (x * 1).clamp_(-0.45, 0.55)),
    ("clamp_min_only", [rand(3, 5)], lambda x: (x * 1).clamp_(min=0.15)),
    ("clip_", [rand(3, 5)], lambda x: (x * 1).clip_(max=0.25)),
    ("neg_", [rand(3, 5)], lambda x: (x * 1).neg_()),
    ("abs_", [away_from_zero(3, 5)], lambda x: (x * 1).abs_()),
    ("exp_", [rand(3, 5)], lambda x: (x * 1).exp_()),
    ("log_", [positive(3, 5)], lambda x: (x * 1).log_()),
    ("sqrt_", [positive(3, 5)], lambda x: (x * 1).sqrt_()),
    ("sigmoid_", [rand(3, 5)], lambda x: (x * 1).sigmoid_()),
    ("tanh_", [rand(3, 5)], lambda x: (x * 1).tanh_()),
    ("relu_", [away_from_zero(3, 5)], lambda x: (x * 1).relu_()),
    ("lerp_", [rand(3, 5), rand(3, 5)], lambda x, y: (x * 1).lerp_(y, 0.3)),
    # zero_, fill_ and copy_ give the history they overwrite a zero gradient: the x * y adds nothing
    ("zero_", [rand(3, 5), rand(3, 5)], lambda x, y: (x * y).zero_() + x * y),
    ("fill_", [rand(3, 5), rand(3, 5)], lambda x, y: (x * y).fill_(1.5) * x * y),
    ("copy_", [rand(3, 5), rand(3, 5)], lambda x, y: (x * 2).copy_(y) * x),
    ("copy_broadcast", [rand(3, 5), rand(5)], lambda x, y: (x * 2).copy_(y) + x),
    ("fill_with_a_0d_tensor", [rand(3, 5), rand()], lambda x, v: (x * 1).fill_(v * 2) * x),
    # a target without history takes the history of what is written into it
    ("copy_into_a_tensor_without_grad", [rand(3, 5), rand(3, 5)], lambda x, y: constant(x).copy_(y) * x),
    ("add_into_a_tensor_without_grad", [rand(3, 5), rand(5)], lambda x, y: constant(x).add_(y) * y),
    ("mul_into_a_tensor_without_grad", [rand(3, 5), rand(3, 5)], lambda x, y: constant(y).mul_(y)),
    ("iadd", [rand(3, 5), rand(5)], lambda x, y: _iadd(x * 1, y)),
    ("isub", [rand(3, 5), rand(3, 1)], lambda x, y: _isub(x * 1, y)),
    ("imul", [rand(3, 5), rand(3, 5)], lambda x, y: _imul(x * 1, y)),
    ("idiv", [rand(3, 5), away_from_zero(5)], lambda x, y: _idiv(x * 1, y)),
    # the op reads the target's old value (torch saves `original_self`)
    ("mul_by_itself", [rand(3, 5)], lambda x: (x * 1).mul_(x * 1)),
    ("div_by_itself_plus", [positive(3, 5)], lambda x: (lambda t: t.div_(t + 1))(x * 1)),
    ("chain", [rand(3, 5), rand(5)], lambda x, y: (x * 1).add_(y).mul_(y).sub_(x).tanh_()),
    ("in_place_then_reuse", [rand(3, 5), rand(3, 5)], lambda x, y: (lambda t: t.mul_(y) + t * t)(x + 0)),
    (
        "earlier_use_needs_no_saved_value",
        [rand(3, 5), rand(3, 5)],
        lambda x, y: (lambda t: (t + y) * 2 + t.mul_(3))(x * 1),
    ),
    # a write through a view changes the base's history too (torch's CopySlices)
    ("write_through_a_view", [rand(3, 5), rand(5)], lambda x, y: (lambda t: (t[1].mul_(y), t * t)[1])(x * 1)),
    (
        "write_through_a_view_of_a_view",
        [rand(3, 5), rand(3)],
        lambda x, y: (lambda t: (t.T[2:].add_(y), t * t)[1])(x * 1),
    ),
    (
        "write_through_a_reshaped_view",
        [rand(3, 4), rand(2)],
        lambda x, y: (lambda t: (t.reshape(6, 2)[1:4].mul_(y), t.exp())[1])(x * 1),
    ),
    (
        "two_writes_through_views",
        [rand(3, 5), rand(5)],
        lambda x, y: (lambda t: (t[0].mul_(y), t[2].sub_(y * y), t[:, 1].exp_(), t.sin())[-1])(x * 1),
    ),
    ("zero_through_a_view", [rand(3, 5)], lambda x: (lambda t: (t[:, 1:3].zero_(), t * x)[1])(x * 1)),
    ("copy_through_a_view", [rand(3, 5), rand(5)], lambda x, y: (lambda t: (t[2].copy_(y), t * x)[1])(x * 1)),
    (
        "view_then_base_then_view",
        [rand(3, 5), rand(5)],
        lambda x, y: (lambda t, v: (v.mul_(y), t.add_(1), v.tanh())[-1])(*(lambda t: (t, t[1]))(x * 1)),
    ),
    (
        "setitem_on_a_view",
        [rand(3, 5), rand(2)],
        lambda x, y: (lambda t: (t[1].__setitem__(slice(1, 3), y), t * t)[1])(x * 1),
    ),
    # squeeze_/unsqueeze_ change the tensor's shape, but what was recorded before keeps the old one
    (
        "write_between_in_place_reshapes",
        [rand(3, 5)],
        lambda x: (lambda t: (t.unsqueeze_(0), t[0].add_(1.0), t.squeeze_(0), t * 1)[-1])(x * 2),
    ),
    (
        "view_made_before_unsqueeze_then_written",
        [rand(3, 5), rand(5)],
        lambda x, y: (lambda t, v: (t.unsqueeze_(0), v.mul_(y), t * t)[-1])(*(lambda t: (t, t[1]))(x * 2)),
    ),
    (
        "base_written_after_unsqueeze_then_old_view_read",
        [rand(3, 5)],
        lambda x: (lambda t, v: (t.unsqueeze_(0), t.mul_(3), v * v)[-1])(*(lambda t: (t, t[1]))(x * 2)),
    ),
    (
        "transposed_view_written_after_unsqueeze",
        [rand(3, 5), rand(5, 3)],
        lambda x, y: (lambda t, v: (t.unsqueeze_(1), v.mul_(y), t * t)[-1])(*(lambda t: (t, t.T))(x * 2)),
    ),
    ("reduction_then_unsqueeze", [rand(3, 5)], lambda x: (lambda t: (t.sum(0), t.unsqueeze_(0))[0])(x * 2)),
    ("broadcast_then_squeeze", [rand(3, 1), rand(3, 5)], lambda x, y: (lambda t: (t + y, t.squeeze_(1))[0])(x * 2)),
    # 0-d and empty
    ("0d", [rand(), rand()], lambda x, y: (x * 1).mul_(y).add_(1)),
    ("0d_into_matrix", [rand(3, 5), rand()], lambda x, y: (x * 1).sub_(y)),
    ("empty", [rand(0, 5), rand(5)], lambda x, y: (x * 1).add_(y)),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name,inputs,fn", CASES, ids=[c[0] for c in CASES])
def test_inplace_op_matches_torch(name, inputs, fn, dtype):
    check_torch(fn, inputs, dtype=dtype)


@pytest.mark.parametrize("name,inputs,fn", CASES, ids=[c[0] for c in CASES])
def test_inplace_op_numerical_gradient(name, inputs, fn):
    check_numerical_grad(fn, inputs)


def test_inplace_op_returns_the_target_and_every_alias_sees_the_change():
    x = genesis.tensor([1.0, 2.0])
    alias = x
    for method, args in [
        ("add_", (1,)),
        ("mul_", (2,)),
        ("clamp_", (0, 5)),
        ("zero_", ()),
        ("fill_", (3,)),
        ("copy_", (genesis.tensor([7.0, 8.0]),)),
    ]:
        assert getattr(x, method)(*args) is x
    assert alias.tolist() == [7.0, 8.0]


def test_inplace_op_bumps_the_version_shared_with_views():
    x = genesis.zeros(3, 4)
    view = x[1]
    before = x._version[0]
    view.add_(1)
    x.mul_(2)
    assert x._version[0] == view._version[0] == before + 2


# ---- autograd's guards ---------------------------------------------------------------------
def _failed_backward(make, library, message):
    """Run `make` in `library`; its backward must fail, in genesis with `message`."""
    leaf = library.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], requires_grad=True)
    out = make(leaf)
    if library is torch:
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()
    else:
        with pytest.raises(RuntimeError, match=message):
            out.sum().backward()


def _sin_then_change_input(x):
    hidden = x * 2
    out = hidden.sin()  # sin's backward reads `hidden`
    hidden.add_(1)
    return out


def _exp_then_change_output(x):
    out = x.exp()  # exp's backward reads its output
    out.add_(2)
    return out


def _mul_then_change_operand(x):
    y = x * 3
    out = x * y  # mul's backward reads y
    y.zero_()
    return out


def _matmul_then_change_operand(x):
    w = x * 1
    out = x @ w.T
    w.fill_(0.0)
    return out


def _pow_then_change_through_a_view(x):
    base = x * 1
    out = base**3
    base[0].mul_(2)
    return out


def _mul_then_unsqueeze_operand(x):
    y = x * 3
    out = x * y  # mul's backward reads y, with its shape then: unsqueeze_ counts as a write
    y.unsqueeze_(0)
    return out


GUARDS = [
    ("operand_saved_by_mul_then_unsqueezed", _mul_then_unsqueeze_operand, r"gradient of mul.*version 1, expected 0"),
    ("input_saved_by_sin", _sin_then_change_input, r"gradient of sin.*modified by an in-place operation.*version"),
    ("output_saved_by_exp", _exp_then_change_output, r"output of exp.*modified by an in-place operation"),
    ("operand_saved_by_mul", _mul_then_change_operand, r"gradient of mul.*version 1, expected 0"),
    ("operand_saved_by_matmul", _matmul_then_change_operand, r"gradient of matmul.*in-place"),
    ("changed_through_a_view", _pow_then_change_through_a_view, r"gradient of pow.*in-place"),
]


@pytest.mark.parametrize("name,make,message", GUARDS, ids=[g[0] for g in GUARDS])
def test_changing_a_value_backward_needs_fails_at_backward_like_torch(name, make, message):
    _failed_backward(make, torch, message)
    _failed_backward(make, genesis, message)


def test_an_op_whose_own_backward_reads_the_target_keeps_the_old_value():
    """y.mul_(w) needs y's old value for w's gradient: it is kept, as torch keeps `original_self`.
    genesis goes one step further than torch: exp's saved output, overwritten by mul_, is the kept
    copy too, so backward gives the out-of-place answer where torch refuses."""
    x_np, w_np = rand(3, 4), rand(3, 4)
    x, w = genesis.tensor(x_np, requires_grad=True), genesis.tensor(w_np, requires_grad=True)
    out = x.exp()
    out.mul_(w)
    out.sum().backward()
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    (tx.exp() * tw).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6)


def test_changing_a_value_no_backward_rule_reads_is_allowed_like_torch():
    """add saves nothing, so a later in-place change to its operand is harmless (torch agrees)."""
    for library in (torch, genesis):
        x = library.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        out = (y + 1) * 3
        y.mul_(5)
        (out.sum() + y.sum()).backward()
        assert x.grad.tolist() == [8.0, 8.0]


@pytest.mark.parametrize(
    "operation",
    [
        lambda x: x.add_(1),
        lambda x: x.mul_(2),
        lambda x: x.zero_(),
        lambda x: x.fill_(3.0),
        lambda x: x.copy_(x.detach() * 2),
        lambda x: x.clamp_(0, 1),
        lambda x: x.exp_(),
        lambda x: x.__iadd__(1),
    ],
    ids=["add_", "mul_", "zero_", "fill_", "copy_", "clamp_", "exp_", "iadd"],
)
def test_inplace_on_a_leaf_that_requires_grad_is_refused_like_torch(operation):
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        operation(torch.ones(2, 3, requires_grad=True))
    leaf = genesis.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad \(shape \[2, 3\]\).*no_grad"):
        operation(leaf)
    assert leaf.tolist() == [[1.0] * 3] * 2 and leaf.is_leaf  # refused before anything was written


@pytest.mark.parametrize(
    "operation",
    [lambda x: x[1].add_(1), lambda x: x.T[0].zero_(), lambda x: x.view(-1).mul_(2)],
    ids=["index", "transpose_index", "view"],
)
def test_inplace_on_a_view_of_a_leaf_that_requires_grad_is_refused_like_torch(operation):
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        operation(torch.ones(2, 3, requires_grad=True))
    leaf = genesis.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"a view of a leaf tensor that requires grad \(shape \[2, 3\]\)"):
        operation(leaf)
    assert leaf.tolist() == [[1.0] * 3] * 2 and leaf.is_leaf


@pytest.mark.parametrize(
    "operation",
    [
        lambda x: x.add_(1),
        lambda x: x.mul_(2),
        lambda x: x.zero_(),
        lambda x: x.fill_(3.0),
        lambda x: x.copy_(x * 2),
        lambda x: x.clamp_(0.5, 0.75),
        lambda x: x.sub_(x * 0.5),
    ],
    ids=["add_", "mul_", "zero_", "fill_", "copy_", "clamp_", "sub_self"],
)
def test_inplace_on_a_leaf_under_no_grad_is_allowed_and_keeps_it_a_leaf(operation):
    expected_leaf = torch.full((2, 3), 0.6, requires_grad=True)
    leaf = genesis.full((2, 3), 0.6, requires_grad=True)
    with torch.no_grad():
        operation(expected_leaf)
    with genesis.no_grad():
        operation(leaf)
    np.testing.assert_allclose(leaf.detach().numpy(), expected_leaf.detach().numpy(), rtol=1e-6)
    assert leaf.is_leaf and leaf.requires_grad and leaf.grad_fn is None
    (leaf * 2).sum().backward()  # still a working leaf, as after an optimizer step
    assert leaf.grad.tolist() == [[2.0] * 3] * 2


def test_a_leaf_changed_under_no_grad_after_use_fails_backward_like_torch():
    """An optimizer step between forward and backward: torch catches it, and so does genesis."""
    for library in (torch, genesis):
        w = library.tensor([1.0, 2.0], requires_grad=True)
        out = (w * w).sum()
        with library.no_grad():
            w.sub_(0.1)
        with pytest.raises(RuntimeError, match="modified by an in-?place operation"):
            out.backward()


# ---- dtype and shape of the target are kept -----------------------------------------------
DTYPE_CASES = [
    (genesis.float16, genesis.float32, lambda x, y: x.add_(y)),
    (genesis.float32, genesis.float64, lambda x, y: x.mul_(y)),
    (genesis.bfloat16, genesis.int64, lambda x, y: x.sub_(y)),
    (genesis.int32, genesis.int64, lambda x, y: x.add_(y)),
    (genesis.int64, genesis.bool, lambda x, y: x.mul_(y)),
    (genesis.float32, genesis.float16, lambda x, y: x.copy_(y)),
    (genesis.int64, genesis.float32, lambda x, y: x.copy_(y)),  # copy_ casts, truncating
    (genesis.float16, genesis.float32, lambda x, y: x.clamp_(0.5, 2)),
    (genesis.int64, genesis.float32, lambda x, y: x.add_(y)),  # refused: float into int
    (genesis.int32, genesis.float32, lambda x, y: x.div_(2)),  # refused: true division is float
    (genesis.bool, genesis.int64, lambda x, y: x.add_(y)),  # refused: int into bool
]


@pytest.mark.parametrize(
    "target,source,fn", DTYPE_CASES, ids=[f"{t.name}-{s.name}-{i}" for i, (t, s, _) in enumerate(DTYPE_CASES)]
)
def test_inplace_result_keeps_the_target_dtype_or_is_refused_like_torch(target, source, fn):
    x_np, y_np = np.array([[1.5, 2.0, 0.0], [3.25, 1.0, 2.0]]), np.array([1.75, 0.0, 2.0])
    tx, ty = torch.from_numpy(x_np).to(TORCH_DTYPE[target]), torch.from_numpy(y_np).to(TORCH_DTYPE[source])
    gx, gy = genesis.tensor(x_np).to(target), genesis.tensor(y_np).to(source)
    try:
        fn(tx, ty)
    except RuntimeError:
        with pytest.raises((TypeError, RuntimeError), match=rf"{source.name}|{target.name}|float"):
            fn(gx, gy)
        return
    assert fn(gx, gy) is gx and gx.dtype is target
    np.testing.assert_array_equal(gx.to(genesis.float64).numpy(), tx.double().numpy())


def test_inplace_result_that_would_change_the_shape_is_refused_like_torch():
    with pytest.raises(RuntimeError):
        torch.zeros(3, 1).add_(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"shape \[3, 5\] does not fit the target of shape \[3, 1\]"):
        genesis.zeros(3, 1).add_(genesis.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\[5\]"):
        genesis.zeros(5).mul_(genesis.zeros(2, 5))


def test_fill_with_a_tensor_that_is_not_0d_is_refused_like_torch():
    with pytest.raises(RuntimeError):
        torch.zeros(3).fill_(torch.ones(3))
    with pytest.raises(ValueError, match=r"0-d tensor, got a tensor of shape \[3\]"):
        genesis.zeros(3).fill_(genesis.ones(3))


def test_inplace_write_into_an_expanded_view_is_refused():
    with pytest.raises(RuntimeError, match="expanded"):
        genesis.zeros(3, 1).expand(3, 5).mul_(2)


def test_a_write_into_a_view_of_a_tensor_without_history_reaches_the_base():
    # the view op was not recorded (nothing required grad when it ran), yet the base must take the
    # written values' history, as PyTorch's CopySlices gives it
    g_y, t_y = make_pair(np.arange(1.0, 6.0), genesis.float64, True)
    g_t, t_t = genesis.ones(3, 5, dtype=genesis.float64), torch.ones(3, 5, dtype=torch.float64)
    g_t[1].mul_(g_y)
    t_t[1].mul_(t_y)
    (g_t * g_t).sum().backward()
    (t_t * t_t).sum().backward()
    assert_close(g_y.grad, t_y.grad, genesis.float64, "gradient through the written view")


@pytest.mark.parametrize("write", ["base", "sibling"])
def test_a_view_made_before_its_base_changes_takes_the_new_history(write):
    # PyTorch regenerates a view's grad_fn when its base is written in place after the view was made
    def run(lib, x):
        t = x * 1
        view, sibling = t[1], t[:, 0]
        if write == "base":
            t.mul_(2)
        else:
            sibling.mul_(3)
        return (view * view).sum()

    g_x, t_x = make_pair(np.arange(1.0, 7.0).reshape(3, 2), genesis.float64, True)
    run(genesis, g_x).backward()
    run(torch, t_x).backward()
    assert_close(g_x.grad, t_x.grad, genesis.float64, "gradient through the stale view")


# ---- a view's history when it is looked at after its memory was written ---------------------------
def _view_of_a_base_that_takes_a_history(lib, leaf):
    x = lib.ones(3, 4, dtype=leaf.dtype)
    view = x.transpose(0, 1)
    x.sub_(leaf)  # x had no history; the view, made before, must see the one it has now
    return view


def _view_of_a_zeroed_base(lib, leaf):
    y = leaf * 2
    view = y.unsqueeze(0)
    y.zero_()  # y keeps requiring grad, with a zero gradient to its old history
    return view


def _view_of_a_base_zeroed_under_no_grad(lib, leaf):
    y = leaf * 2
    view = y[1:]
    with lib.no_grad():
        y.zero_()  # y keeps its history: the view's renewed one leads through it
    return view


def _view_of_a_base_written_through_a_sibling(lib, leaf):
    y = lib.zeros(2, 4, dtype=leaf.dtype)
    view, sibling = y[0], y[1]
    sibling.add_(leaf)  # y takes the write's history; the view is untouched in value, not in history
    return view


def _view_of_a_base_filled_with_a_value_that_has_a_history(lib, leaf):
    y = lib.ones(4, dtype=leaf.dtype)
    view = y[::2]
    y.fill_(leaf.sum())
    return view


STALE_VIEWS = [
    _view_of_a_base_that_takes_a_history,
    _view_of_a_zeroed_base,
    _view_of_a_base_zeroed_under_no_grad,
    _view_of_a_base_written_through_a_sibling,
    _view_of_a_base_filled_with_a_value_that_has_a_history,
]


@pytest.mark.parametrize("make", STALE_VIEWS, ids=lambda f: f.__name__.removeprefix("_"))
@pytest.mark.parametrize("look", ["requires_grad", "grad_fn", "is_leaf", "an_op", "backward"])
def test_a_view_looked_at_after_a_write_has_its_bases_new_history_like_torch(make, look):
    # PyTorch regenerates a view's grad_fn when it is looked at after its memory was written: its
    # requires_grad, grad_fn and is_leaf, an op reading it and a backward from it all see the base's
    # history as it is now
    results = []
    for lib in (genesis, torch):
        leaf = lib.tensor(np.arange(1.0, 5.0), dtype=lib.float64, requires_grad=True)
        view = make(lib, leaf)
        if look == "requires_grad":
            results.append(view.requires_grad)
        elif look == "grad_fn":
            results.append(view.grad_fn is None)
        elif look == "is_leaf":
            results.append(view.is_leaf)
        else:
            cotangent = lib.tensor(np.linspace(-1.0, 2.0, view.numel()).reshape(view.shape), dtype=lib.float64)
            if look == "an_op":
                (view * cotangent).sum().backward()
            else:
                view.backward(cotangent)
            results.append(leaf.grad.detach().numpy().copy())
    if look in ("an_op", "backward"):
        np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    else:
        assert results[0] == results[1]


def test_a_view_made_a_leaf_of_its_own_stays_one_after_its_base_is_written_like_torch():
    for lib in (genesis, torch):
        x = lib.ones(4)
        view = x.view(2, 2)
        view.requires_grad_()
        x.add_(1)
        assert (view.requires_grad, view.is_leaf, view.grad_fn) == (True, True, None), lib.__name__


@pytest.mark.parametrize("overwrite", ["zero_", "fill_", "copy_"])
def test_an_overwritten_tensor_keeps_requiring_grad_with_a_zero_gradient_like_torch(overwrite):
    grads = []
    for lib in (genesis, torch):
        leaf = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = leaf * 2
        if overwrite == "zero_":
            y.zero_()
        elif overwrite == "fill_":
            y.fill_(0.5)
        else:
            y.copy_(lib.tensor([4.0, 5.0, 6.0]))
        assert y.requires_grad and not y.is_leaf
        (y * leaf).sum().backward()
        grads.append(leaf.grad.numpy().copy())
    np.testing.assert_array_equal(grads[0], grads[1])
