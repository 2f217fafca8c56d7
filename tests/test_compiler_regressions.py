"""Programs that once compiled to wrong values or crashed: each runs compiled on every CPU backend
and must equal eager, values and gradients (with a fixed random upstream gradient)."""

import numpy as np
import pytest

import genesis

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

BACKENDS = ["c", "numpy", "triton", "eager"]


def leaf(shape, seed, requires_grad=True):
    values = np.random.default_rng(seed).uniform(-2.0, 2.0, shape).astype(np.float32)
    return genesis.tensor(values, requires_grad=requires_grad)


def assert_compiled_matches_eager(fn, shapes, backend, grad=True, rtol=1e-5, atol=1e-6):
    eager_args = [leaf(shape, seed, grad) for seed, shape in enumerate(shapes)]
    fused_args = [leaf(shape, seed, grad) for seed, shape in enumerate(shapes)]
    expected = fn(*eager_args)
    got = genesis.compile(fn, backend=backend)(*fused_args)
    assert got.shape == expected.shape and got.dtype is expected.dtype
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
    if grad:
        upstream = leaf(expected.shape, 99, requires_grad=False)
        (expected * upstream).sum().backward()
        (got * upstream).sum().backward()
        for e, g in zip(eager_args, fused_args):
            np.testing.assert_allclose(g.grad.numpy(), e.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reshape_that_broadcasts_differently_from_its_source(backend):
    # C read x.unsqueeze(2) at x's own position in the loop: off by up to 2.0
    assert_compiled_matches_eager(lambda x: x + x.unsqueeze(2), [(1, 3, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_sum_plus_a_vector_over_merged_leading_dims(backend):
    # the vector varies along a merged dim: a numpy broadcast error inside the kernel
    assert_compiled_matches_eager(lambda a, b: a.sum(-1) + b, [(4, 3, 8), (3,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_mean_times_the_tensor_with_its_gradient(backend):
    # the backward has a 0-d group holding a reshape: the numpy kernel had no form for it
    assert_compiled_matches_eager(lambda x: x.mean() * x, [(4,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_permute_times_the_tensor_with_its_gradient(backend):
    # the backward sums over a middle dim of merged rows, reading a whole operand with leading 1s
    assert_compiled_matches_eager(lambda x: x.permute(2, 0, 1, 3) * x, [(1, 1, 5, 4)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reductions_with_keepdim_over_size_one_dims(backend):
    assert_compiled_matches_eager(
        lambda x: x.sum(dim=(1, 3), keepdim=True) * x + x.amax(1, keepdim=True), [(2, 1, 3, 1)], backend
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_maximum_with_a_single_element_feeding_a_matmul(backend):
    assert_compiled_matches_eager(lambda a, b: genesis.maximum(a, b) @ a, [(2, 3, 4, 4), (1, 1, 1, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_with_a_zero_dim_base(backend):
    assert_compiled_matches_eager(lambda a, b: a.abs() ** b, [(), (3,)], backend)


# ---- memory layout: view() and is_contiguous() decide as eager does ----------------------------------

VIEW_REFUSED = "view of a tensor of shape .* is not possible"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_view_of_an_expanded_value_is_refused_as_in_eager(backend):
    fn = lambda x: x.expand(-1, 8, -1, 2).view(160)  # noqa: E731
    x = leaf((5, 1, 2, 2), 0, requires_grad=False)
    with pytest.raises(RuntimeError, match=VIEW_REFUSED):
        fn(x)
    with pytest.raises(RuntimeError, match=VIEW_REFUSED):
        genesis.compile(fn, backend=backend)(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contiguous_then_view_of_a_transpose_compiles_whole(backend):
    fn = lambda x: x.transpose(0, 1).contiguous().view(-1) * 2.0  # noqa: E731
    compiled = genesis.compile(fn, backend=backend)
    x = leaf((3, 4), 0, requires_grad=False)
    np.testing.assert_array_equal(compiled(x).numpy(), fn(x).numpy())
    assert compiled.graph_break is None


def test_a_view_of_a_value_whose_layout_the_trace_cannot_know_runs_eagerly():
    fn = lambda x: (x.transpose(0, 1) * 2.0).view(-1)  # noqa: E731  (numpy keeps the transposed order)
    compiled = genesis.compile(fn)
    x = leaf((3, 4), 0, requires_grad=False)
    with pytest.raises(RuntimeError, match=VIEW_REFUSED):
        fn(x)
    with pytest.warns(UserWarning, match="memory layout"), pytest.raises(RuntimeError, match=VIEW_REFUSED):
        compiled(x)


def test_the_layout_of_each_argument_is_guarded():
    branchy = lambda x: x * 2.0 if x.is_contiguous() else x * 3.0  # noqa: E731
    flat = lambda x: x.view(-1) + 1.0  # noqa: E731
    compiled_branchy, compiled_flat = genesis.compile(branchy), genesis.compile(flat)
    x = leaf((3, 4), 0, requires_grad=False)
    for arg in (x, x.T, x):
        np.testing.assert_array_equal(compiled_branchy(arg).numpy(), branchy(arg).numpy())
    compiled_flat(x)
    with pytest.raises(RuntimeError, match=VIEW_REFUSED):
        compiled_flat(x.T)


# ---- found by the program fuzzer (genesis/testing) ---------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_input_written_in_place_is_saved_for_the_backward_as_it_was_read(backend):
    def fn(x, y):  # seed 1039: the backward read x after the call had written y * x into it
        x *= y
        return x

    grads = []
    for compiled in (False, True):
        x, y = genesis.tensor(2.0), genesis.tensor(3.0, requires_grad=True)
        out = (genesis.compile(fn, backend=backend) if compiled else fn)(x, y)
        (out * 5.0).backward()
        grads.append((y.grad.item(), x.item()))
    assert grads[0] == grads[1] == (10.0, 6.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_with_no_elements(backend):
    def fn(x, y):  # seed 1013: a C kernel over zero rows indexed an empty list of chunks
        return genesis.where(y > 0, y, x @ y)

    x, y = genesis.zeros(0), genesis.zeros(0, 5)
    np.testing.assert_array_equal(genesis.compile(fn, backend=backend)(x, y).numpy(), fn(x, y).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_over_one_element_after_a_mean_with_keepdim(backend):
    # seed 1124: a reduction over merged rows read a whole operand renumbered for them
    fn = lambda x, w, b: genesis.nn.functional.layer_norm(x.mean(dim=(0,), keepdim=True), (1,), w, b)  # noqa: E731
    assert_compiled_matches_eager(fn, [(4, 1, 1), (1,), (1,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_maximum_over_no_elements_is_refused_as_in_eager(backend):
    fn = lambda x: x.exp().amin()  # noqa: E731  (seed 1130: numpy's own error from inside a kernel)
    x = genesis.zeros(6, 0)
    for run in (fn, genesis.compile(fn, backend=backend)):
        with pytest.raises(ValueError, match="cannot reduce over a zero-size dimension"):
            run(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backward_through_a_value_changed_in_place_is_refused_when_it_runs(backend):
    def fn(x, y):  # seed 1074: eager refuses the backward; the compiled one computed a gradient
        product = x * y
        x.mul_(2.0)
        return product

    for compiled in (False, True):
        x, y = leaf((3,), 0, requires_grad=False).exp(), leaf((3,), 1)
        x.requires_grad = True
        x = x * 1.0  # not a leaf: an in-place write into it is allowed, and changes what mul saved
        out = (genesis.compile(fn, backend=backend) if compiled else fn)(x, y)
        with pytest.raises(RuntimeError, match="modified by an in-place operation"):
            out.sum().backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_through_an_argument_the_function_writes_in_place(backend):
    def fn(x, y):  # x has a history (not a leaf): eager allows the write, and x's gradient is its value's
        total = x + y.exp()
        x.mul_(2.0)
        return total * x

    results = []
    for compiled in (False, True):
        a, y = leaf((3,), 0), leaf((3,), 1)
        out = (genesis.compile(fn, backend=backend) if compiled else fn)(a * 1.0, y)
        out.sum().backward()
        results.append([out.detach().numpy(), a.grad.numpy(), y.grad.numpy()])
    for got, expected in zip(results[1], results[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [genesis.uint8, genesis.int8, genesis.int32], ids=str)
def test_integer_literals_outside_the_dtype_wrap_as_in_eager(backend, dtype):
    fn = lambda a: (a + -2) * 3 - 300  # noqa: E731  (numpy refuses uint8 + -2; eager and C wrap it)
    x = genesis.tensor([1, 2, 100]).to(dtype)
    np.testing.assert_array_equal(genesis.compile(fn, backend=backend)(x).numpy(), fn(x).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vector_expanded_over_new_leading_dims(backend):
    # seed 5313: the expand read x by rows, though its one dim lines up with the output's last
    assert_compiled_matches_eager(lambda x: x * x.broadcast_to((5, 5, -1)), [(5,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_products_of_single_elements_in_a_flat_group(backend):
    # seed 5407: the backward's group of one element flattened the operands of its matmul to scalars
    assert_compiled_matches_eager(
        lambda a, b, c: b.mm(c) * 2.0 + (a @ b).sum(), [(1, 1, 1, 1), (1, 1), (1, 8)], backend
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fused_value_expanded_over_a_new_leading_dim(backend):
    # seed 329: merging the groups let the expand read its (4, 1, 1) input by rows
    fn = lambda x: genesis.nn.functional.leaky_relu(x, 0.1).expand(4, -1, 1, -1)  # noqa: E731
    assert_compiled_matches_eager(fn, [(4, 1, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gram_matrix_of_a_maximum_with_its_gradient(backend):
    # seed 44: the backward merged the rows of a product over its columns too
    assert_compiled_matches_eager(lambda x, w: genesis.maximum(w, x).T @ genesis.maximum(w, x), [(1,), (6, 8)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_values_in_pointwise_kernels(backend):
    # seeds 3, 207, 266, 286: Triton's interpreter on bool scalars, one-element outputs, -inf literals
    a, b = genesis.tensor([[0.0], [1.0], [-2.0]]), genesis.tensor(0.0)
    ints = genesis.tensor([[[[1, -2, 3, 0, 5, -1]]]])
    programs = [
        (lambda a, b: genesis.logical_or(a, b), (a, b)),
        (lambda a, b: ((a[:1, :1] > 0) != ints) & (a[:1, :1] > 0), (a, b)),
        (lambda a, b: (genesis.where(a[:1] > 0, a[:1] * 2, b), a[:1] > -1), (a, b)),
        (lambda a, b: genesis.where(a > 0, a, float("-inf")), (a, b)),
        (lambda a, b: (ints.ceil(), ints.floor() + 1), (a, b)),
    ]
    for fn, args in programs:
        got, expected = genesis.compile(fn, backend=backend)(*args), fn(*args)
        got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
        for g, e in zip(got, expected):
            assert g.dtype is e.dtype
            np.testing.assert_array_equal(g.numpy(), e.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_library_call_that_hands_back_its_input_keeps_its_own_buffer(backend):
    def fn(x):  # seed 30185: the memory plan reused the divisor's buffer, which the check handed back
        lower = x.tril(0)
        return lower // (x.abs() + 1), lower.any()

    x = genesis.tensor(np.random.default_rng(0).integers(-4, 5, (8, 1)), dtype=genesis.int16)
    for got, expected in zip(genesis.compile(fn, backend=backend)(x), fn(x)):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_groups_that_would_read_each_other_through_another_kernel_stay_apart(backend):
    # seed 30663: merging two 0-d groups made a cycle through the kernel between them
    fn = lambda x, y: genesis.where(x == 0, (x.sum().abs() + 0.5) ** x.clamp(-2, 2), y)  # noqa: E731
    assert_compiled_matches_eager(fn, [(5, 4, 4, 1), ()], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bool_of_a_single_value_in_a_reduction_kernel(backend):
    # seed 31693: Triton's interpreter and `&` of bool scalars, in the backward's row kernel
    assert_compiled_matches_eager(lambda x, y: (x.abs() + 0.5) ** y.clamp(-2, 2), [(1, 1, 1, 3), (1, 1, 1, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_integer_clamp_bound_outside_the_dtype_is_refused(backend):
    # seed 30931: PyTorch wraps -2 into uint8's 254 but refuses 300; genesis refuses both, compiled too
    x = genesis.tensor([0, 1, 5, 200]).to(genesis.uint8)
    for bounds in ((-2, 2), (0, 300)):
        for fn in (lambda x: x.clamp(*bounds), genesis.compile(lambda x: x.clamp(*bounds), backend=backend)):
            with pytest.raises(ValueError, match="outside the range of uint8"):
                fn(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_result_that_views_an_input_the_function_then_writes(backend):
    def fn(x, y, z):  # seed 100122: x held a view of y's memory, and y's write then showed through it
        x.copy_(y)
        y.div_(z.abs() + 1)
        return x

    make = lambda: (leaf((5, 8), 0, False), leaf((8,), 1, False), leaf((), 2, False))  # noqa: E731
    (ex, ey, ez), (gx, gy, gz) = make(), make()
    expected, got = fn(ex, ey, ez), genesis.compile(fn, backend=backend)(gx, gy, gz)
    for g, e in ((got, expected), (gx, ex), (gy, ey)):
        np.testing.assert_array_equal(g.numpy(), e.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_view_of_a_view_sees_a_later_write_into_their_base(backend):
    def fn(x):  # seed 100217: unbind's views are views of a narrow, which the write did not find
        first = x.unbind(0)[0]
        x[::2] = 2.0
        return first * 1.0

    for compiled in (False, True):
        x = leaf((3, 2), 0, False)
        got = (genesis.compile(fn, backend=backend) if compiled else fn)(x)
        np.testing.assert_array_equal(got.numpy(), [2.0, 2.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_in_place_write_into_a_cast_with_a_gradient(backend):
    def fn(x):  # seed 101082: the write's cast back to fp16 had no history, and autodiff stopped there
        half = x.half()
        half.sub_(x * 3)
        return half * x

    assert_compiled_matches_eager(fn, [(2,)], backend, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stack_of_matrices_times_a_vector(backend):
    # seed 103910: numpy lays the products out transposed, which a trace takes to be contiguous
    assert_compiled_matches_eager(lambda a, v: (a.transpose(-3, 0) * 2) @ v, [(5, 2, 1, 5), (5,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_where_over_no_elements_beside_a_comparison_over_some(backend):
    # seed 101923: Triton launched no lane for the (4, 1) comparison when the group's shape was (4, 0)
    fn = lambda x, y, z: (genesis.where(x > 0, y, z), x > 0)  # noqa: E731
    x, y, z = genesis.tensor([[1], [-2], [3], [0]]), genesis.zeros(4, 0), genesis.zeros(1, 0)
    for got, expected in zip(genesis.compile(fn, backend=backend)(x, y, z), fn(x, y, z)):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_a_negative_fill_of_an_unsigned_tensor_wraps_as_in_torch():
    torch = pytest.importorskip("torch")
    got = genesis.zeros(3, dtype=genesis.uint8).fill_(-2)
    np.testing.assert_array_equal(got.numpy(), torch.zeros(3, dtype=torch.uint8).fill_(-2).numpy())
    with pytest.raises(ValueError, match="fill value 300 does not fit uint8"):
        genesis.full((2,), 300, dtype=genesis.uint8)


def test_attention_with_no_features_averages_the_values_as_torch_does():
    torch = pytest.importorskip("torch")
    q, v = np.zeros((1, 2, 3, 0), np.float32), np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(np.float32)
    got = genesis.nn.functional.scaled_dot_product_attention(genesis.tensor(q), genesis.tensor(q), genesis.tensor(v))
    expected = torch.nn.functional.scaled_dot_product_attention(torch.tensor(q), torch.tensor(q), torch.tensor(v))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)


INTEGER_LITERALS = {
    "compare": lambda x: x == -1,  # C compared 255 with -1 as ints: false where eager says true
    "order": lambda x: x > -1,
    "masked_fill": lambda x: x.masked_fill(x > 0, -2),  # numpy and Triton refused -2 for a uint8 where
    "where": lambda x: x.where(x <= 0, -2),
    "add": lambda x: x + 300,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("name", INTEGER_LITERALS)
def test_integer_literals_outside_the_dtype_wrap_as_in_torch(name, dtype, backend):
    # seed 201016: masked_fill_(mask, -2) on a uint8 value
    torch = pytest.importorskip("torch")
    fn = INTEGER_LITERALS[name]
    values = np.array([0, 1, 127, -128 if dtype == "int8" else 255], dtype=dtype)
    expected = fn(torch.tensor(values)).numpy()
    got = genesis.compile(fn, backend=backend)(genesis.tensor(values))
    np.testing.assert_array_equal(got.numpy(), expected)
    np.testing.assert_array_equal(fn(genesis.tensor(values)).numpy(), expected)


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sum_of_a_value_broadcast_within_the_rows_counts_each_element_once(backend, grad):
    # seed 314394: C summed a (4, 2, 1) value over the (4, 2, 8) rows it was read in, 8 times over
    def fn(x, y):
        rows = x.reshape(4, 2, 1)
        return rows / (y.abs() + 1), rows.sum()

    eager_args = [leaf((1, 8), 0, grad), leaf((4, 2, 8), 1, grad)]
    fused_args = [leaf((1, 8), 0, grad), leaf((4, 2, 8), 1, grad)]
    expected, got = fn(*eager_args), genesis.compile(fn, backend=backend)(*fused_args)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.detach().numpy(), e.detach().numpy(), rtol=1e-6, atol=1e-6)
    if grad:
        (expected[0].sum() + expected[1]).backward()
        (got[0].sum() + got[1]).backward()
        for e, g in zip(eager_args, fused_args):
            np.testing.assert_allclose(g.grad.numpy(), e.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reshape_that_copies_in_eager_is_no_view_of_the_leaf_it_was_sliced_from(backend):
    # seed 400765: eager's reshape of a strided slice copies, so an in-place tanh_ on it is allowed; the
    # trace took the reshape for a view of the leaf and refused the write with a RuntimeError
    def fn(x):
        sliced = x[1:3, :, None, 1:, 3:]
        sliced.reshape(-1).tanh_()
        return sliced * 2

    assert_compiled_matches_eager(fn, [(4, 4, 3, 4)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_variance_of_a_value_the_group_reads_broadcast(backend):
    # seed 316453: the same, through var's mean: (3, 1, 2) read in (3, 8, 2) rows; off by 16.0
    from genesis.nn import functional as F

    def fn(x, w, y):
        z = F.softmax(x, dim=-1) @ w
        return z.var(), z + y

    args = [leaf(shape, seed, False) for seed, shape in enumerate([(3, 1, 2), (2, 2), (3, 8, 1)])]
    expected, got = fn(*args), genesis.compile(fn, backend=backend)(*args)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_low_precision_product_over_merged_rows_that_is_also_an_output(backend):
    # seed 800969: a bf16 matmul before the loop, written into the merged rows (4, 3), was copied
    # out into its own shape (4, 1, 1, 3) by broadcasting, which numpy refused
    def fn(x, w):
        return (x @ w).sin().sum(dim=3, keepdim=True)

    rng = np.random.default_rng(800969)
    x_values, w_values = rng.uniform(-2.0, 2.0, (4, 1, 1, 1)), rng.uniform(-2.0, 2.0, (1, 3))
    results = []
    for run in (fn, genesis.compile(fn, backend=backend)):
        x = genesis.tensor(x_values, dtype=genesis.bfloat16)
        w = genesis.tensor(w_values, dtype=genesis.bfloat16, requires_grad=True)
        out = run(x, w)
        out.float().sum().backward()
        results.append((out.detach().float().numpy(), w.grad.float().numpy()))
    (expected, expected_grad), (got, got_grad) = results
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-2)  # bf16: 8 bits of mantissa
    np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-2, atol=1e-2)


OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5)),
]


@pytest.mark.parametrize("name, options", OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
def test_an_optimizer_step_compiled_alone_reads_each_calls_gradients(name, options):
    # the step reads p.grad before p, so the first trace captured the gradient as a constant: every
    # later call updated the parameters with the second call's gradients (SGD 0.48 off after 4 steps);
    # and a parameter whose gradient went None was updated with zeros, where eager skips it
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal(shape).astype(np.float32) for shape in ((3, 4), (5,))]
    eager = [genesis.nn.Parameter(genesis.tensor(x.copy())) for x in starts]
    fused = [genesis.nn.Parameter(genesis.tensor(x.copy())) for x in starts]
    eager_optimizer = getattr(genesis.optim, name)(eager, **options)
    fused_step = genesis.compile(getattr(genesis.optim, name)(fused, **options).step, fullgraph=True)
    for call in range(6):
        for index, (e, f) in enumerate(zip(eager, fused)):
            gradient = rng.standard_normal(e.shape).astype(np.float32)
            e.grad, f.grad = (
                (None, None) if (call, index) == (3, 1) else (genesis.tensor(gradient), genesis.tensor(gradient))
            )
        eager_optimizer.step()
        fused_step()
        for e, f in zip(eager, fused):
            np.testing.assert_array_equal(f.detach().numpy(), e.detach().numpy())


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_clipping_compiled_alone_clips_each_calls_gradients(clip):
    rng = np.random.default_rng(1)
    eager = [
        genesis.nn.Parameter(genesis.tensor(rng.standard_normal(shape).astype(np.float32))) for shape in ((3, 4), (5,))
    ]
    fused = [genesis.nn.Parameter(genesis.tensor(p.detach().numpy().copy())) for p in eager]

    def clip_gradients(parameters):
        if clip == "norm":
            return genesis.nn.utils.clip_grad_norm_(parameters, 1.0)
        genesis.nn.utils.clip_grad_value_(parameters, 0.5)

    fused_clip = genesis.compile(lambda: clip_gradients(fused), fullgraph=True)
    for call in range(4):
        for index, (e, f) in enumerate(zip(eager, fused)):
            gradient = 3 * rng.standard_normal(e.shape).astype(np.float32)
            e.grad, f.grad = (
                (None, None) if (call, index) == (2, 1) else (genesis.tensor(gradient), genesis.tensor(gradient))
            )
        expected, got = clip_gradients(eager), fused_clip()
        if clip == "norm":  # a float32 sum of 17 squares, in another order: a few ulps
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
        for e, f in zip(eager, fused):
            assert (f.grad is None) == (e.grad is None)
            if e.grad is not None:
                np.testing.assert_allclose(f.grad.numpy(), e.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_a_write_through_a_view_into_a_saved_output_is_refused_in_backward_as_eager_refuses():
    """Fuzz seed 790334: `v1[None].mul_(2)` changes std's output, which sqrt saved for its gradient.
    Traced, the view did not share its base's version counter, so the compiled backward ran."""
    from genesis.autograd.engine import VersionError

    def fn(x):
        v = x.to(genesis.bfloat16).std(correction=0)
        v[None].mul_(2.0)
        return v

    for run in (fn, genesis.compile(fn, backend="numpy")):
        x = genesis.tensor(np.random.default_rng(0).uniform(-2, 2, (6, 6, 1)), requires_grad=True)
        with pytest.raises(VersionError, match="the output of sqrt"):
            run(x).sum().backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_group_of_one_reshape_that_leaves_it(backend):
    # a dot product's reshape, read only by a stack, left its group empty: fusion then crashed
    assert_compiled_matches_eager(lambda a, b, c: genesis.stack([a.dot(b), c], dim=0), [(8,), (8,), ()], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reshape_of_a_value_read_whole_gives_the_blocks_rows(backend):
    # a (1, 8, 4) product reshaped to the group's (8, 4, 1, 1) rows: numpy's kernel took the block as a
    # reshape of the whole value and failed (ResNet-18's 1x1 weight gradients under gradient clipping)
    def fn(a, b):  # enough rows for several blocks
        w = genesis.matmul(a, b).reshape(2048, 64, 1, 1)
        return (w * w).sum().sqrt() + w * 2

    assert_compiled_matches_eager(fn, [(1, 2048, 3), (3, 64)], backend, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_half_precision_sum_with_a_broadcast_is_contiguous_so_a_reshape_of_it_is_a_view(backend):
    """Fuzz seed 71001: eager float16 `x + x.expand(...)` runs in float32, and casting the expanded
    view copied it in numpy's own order, so the sum came out permuted, its reshape a copy, and an
    in-place add into the sum did not show through the reshape, as it does in PyTorch and compiled."""

    def fn(x0, x1):
        v1 = x0 + x0.expand(2, 8, 2, 2)
        v2 = v1.reshape(2, 32)
        v1 += x1
        return v2

    rng = np.random.default_rng(71001)
    a, b = (rng.uniform(-2.0, 2.0, shape).astype(np.float16) for shape in ((2, 8, 1, 2), (2, 1, 2, 1)))
    expected = ((a + a) + b).reshape(2, 32).astype(np.float64)  # float16 rounds each sum, as genesis does
    for run in (fn, genesis.compile(fn, backend=backend)):
        got = run(genesis.tensor(a), genesis.tensor(b))
        assert got.dtype is genesis.float16
        np.testing.assert_allclose(got.numpy().astype(np.float64), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_input_without_gradient_returned_as_it_is_keeps_requiring_none(backend):
    """Fuzz seed 172487: a compiled function that returns an input without gradient as it is (here
    through a cast to its own dtype) next to one with a gradient marked the user's tensor as
    requiring grad, so a loss over every output drew its weights differently from eager's."""

    def fn(x0, x1):
        return x1.to(genesis.float32), x1, x0

    x0 = genesis.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    x1 = genesis.tensor(np.ones(1, np.float32))
    compiled = genesis.compile(fn, backend=backend)
    for _ in range(2):  # the compile, and its confirming trace
        cast, same, grad_one = compiled(x0, x1)
        assert cast is x1 and same is x1 and grad_one is x0
        assert not x1.requires_grad and x1.grad_fn is None and x0.requires_grad


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_result_returned_twice_then_an_input_as_it_is(backend):
    """(fuzz seed 87793) a tensor returned twice is one graph output: the results after it were
    matched to their gradients one place off, so y's gradient was x's upstream (or a crash)."""

    def fn(x, y):
        spread = y.std(dim=(0, -1))
        return spread, spread, x, y * 2.0

    def grads(f):
        x, y = leaf((8, 6), 0), leaf((8, 6), 1)
        results = f(x, y)
        upstreams = [leaf(r.shape, 10 + i, requires_grad=False) for i, r in enumerate(results)]
        sum((r * u).sum() for r, u in zip(results, upstreams)).backward()
        return [t.detach().numpy() for t in results] + [x.grad.numpy(), y.grad.numpy()]

    for got, expected in zip(grads(genesis.compile(fn, backend=backend)), grads(fn)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("write", ["sigmoid_", "exp_"])
def test_an_in_place_op_that_saves_its_output_on_a_view_of_an_intermediate(backend, write):
    # seed 97522: the base's new history reads the written value, whose version counter was its own,
    # so the trace's backward took the saved output for modified and refused what eager runs
    def fn(x):
        y = x * 1.0
        getattr(y[..., 1:-1], write)()
        return y

    assert_compiled_matches_eager(fn, [(3, 8)], backend)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_an_output_saved_then_written_over_still_refuses_the_backward(backend):
    def fn(x):
        y = x * 1.0
        y[1:3].sigmoid_()
        y.mul_(2.0)  # sigmoid's saved output changes: eager's backward refuses, and so must this
        return y

    for f in (fn, genesis.compile(fn, backend=backend)):
        x = leaf((8,), 0)
        with pytest.raises(genesis.autograd.engine.VersionError):
            f(x).sum().backward()
