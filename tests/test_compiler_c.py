"""The C backend: generated C kernels, compiled by the system's compiler, equal eager.

Every elementwise op of the op table runs through a C kernel in every float
dtype (the table is the numpy backend's, imported); broadcasting operands,
softmax and layer_norm (one C kernel each), reductions over the rows, matmul
epilogues, work split across threads, the groups that stay numpy kernels (with
the reason in the stats), the disk cache of the compiled library and its
corruption, and a clear error without a compiler. Math functions are libm's
(vectorised through libmvec), so they agree with numpy's to a few ulp.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import genesis
from tests.test_compiler_codegen import (
    ELEMENTWISE,
    FLOATS,
    apply_random_program,
    broadcasting_case,
    data,
    layer_norm,
    softmax,
)
from tests.test_compiler_codegen import assert_matches_eager as compiled_matches_eager

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.c_compiler]

TOLERANCE = {genesis.float32: 4e-7, genesis.float64: 1e-15, genesis.float16: 1e-3, genesis.bfloat16: 8e-3}
# computed by libm/libmvec, not numpy: a few ulp apart (in fp16/bf16 the rounding to the dtype hides it)
TRANSCENDENTAL = {
    *("exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid", "erf", "pow", "rsqrt"),
    *("gelu", "gelu_backward", "gelu_tanh", "silu"),
}
# x * (erf(..) + 1) cancels where erf is near -1, and its derivative Phi + x phi where x is near -2.5:
# a few ulps of 1, times x, are no longer
# relative to the small result (|x| <= 4 in the cases)
CANCELS_NEAR_ONE = {"gelu", "gelu_backward", "gelu_tanh"}


def assert_matches_eager(fn, *args, rtol=0.0, atol=0.0, c_kernels=None, kernels=None):
    """The numpy backend's check, on the C backend, then its count of C kernels."""
    compiled = compiled_matches_eager(fn, *args, backend="c", rtol=rtol, atol=atol, kernels=kernels)
    (program,) = compiled.programs
    if c_kernels is not None:
        assert program.info["c_kernels"] == c_kernels, program.info
    return compiled, program.info


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_op_in_a_c_kernel_equals_eager(name, dtype):
    x = data(37, 65, dtype=dtype, low=0.1, high=3.0)
    y = data(37, 65, seed=1, dtype=dtype)
    rtol = (
        TOLERANCE[dtype] * (8 if name in TRANSCENDENTAL else 1)
        if name in TRANSCENDENTAL or dtype.is_low_precision
        else 0.0
    )
    atol = rtol * (4 if name in CANCELS_NEAR_ONE else 1e-3)
    _, program = assert_matches_eager(ELEMENTWISE[name], x, y, rtol=rtol, atol=atol)
    # every group is a C kernel; sign alone is never fused (the numpy kernels have no line for it)
    assert program["c_kernels"] == program["kernels"] >= (0 if name == "sign" else 1), program


def test_every_elementwise_op_has_a_c_snippet_and_every_reduction_a_combine():
    from genesis.ops import OPS, Kind

    missing = [name for name, op in OPS.items() if op.kind is Kind.ELEMENTWISE and "c" not in op.codegen]
    missing += [
        name
        for name, op in OPS.items()
        if op.kind is Kind.REDUCTION and op.combine is None and name not in ("all", "any", "argmax", "argmin")
    ]
    assert missing == []


def test_integer_arithmetic_wraps_as_numpy_does():
    fn = lambda a, b: (a * b + 7) * -3 - (a ^ b)  # noqa: E731
    a = genesis.tensor(np.random.default_rng(0).integers(-(2**31), 2**31 - 1, (40, 33)), dtype=genesis.int32)
    b = genesis.tensor(np.random.default_rng(1).integers(-(2**31), 2**31 - 1, (40, 33)), dtype=genesis.int32)
    assert_matches_eager(fn, a, b, c_kernels=1)


def test_nan_and_inf_propagate_as_in_numpy():
    values = np.array([[np.nan, 1.0, -np.inf, 3.0], [0.5, np.inf, -2.0, np.nan], [1.0, 2.0, 3.0, 4.0]])
    x = genesis.tensor(values, dtype=genesis.float32)

    def fn(x):
        return (
            genesis.maximum(x, 1.0) + genesis.minimum(x, 2.0),
            x.clamp(-1, 1),
            x.relu(),
            x.amax(dim=1),
            x.amin(dim=1),
            x.sum(dim=0),
            (x * 2).amax(),
        )

    assert_matches_eager(fn, x)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64, genesis.int32], ids=str)
def test_relu_and_its_mask_equal_numpy_bit_for_bit(dtype):
    special = [-0.0, 0.0, -1e-40, 1e-40, -np.inf, np.inf, np.nan, -np.nan, -3.5, 2.25]
    values = np.concatenate([special, np.random.default_rng(0).standard_normal(1000)])
    x = genesis.tensor(values if dtype.is_floating_point else values.clip(-1e6, 1e6) * 1000, dtype=dtype)
    compiled = genesis.compile(lambda x: (x.relu(), x.relu() > 0), backend="c")
    (got, got_mask), (want, want_mask) = compiled(x), (x.relu(), x.relu() > 0)
    assert got.numpy().tobytes() == want.numpy().tobytes()  # -0.0 becomes +0.0, NaN stays NaN, as numpy's
    np.testing.assert_array_equal(got_mask.numpy(), want_mask.numpy())


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=str)
def test_where_equals_numpy_bit_for_bit(dtype):
    special = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, 1e-40, -2.5, 3.0] * 4)
    rng = np.random.default_rng(0)
    a, b = (genesis.tensor(rng.permutation(special), dtype=dtype) for _ in range(2))
    mask = genesis.tensor(rng.integers(0, 2, special.size).astype(bool))
    fn = lambda m, a, b: (genesis.where(m, a, b) * 2, genesis.where(m, a, 0.0))  # noqa: E731
    for got, want in zip(genesis.compile(fn, backend="c")(mask, a, b), fn(mask, a, b)):
        assert got.numpy().tobytes() == want.numpy().tobytes()


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_reductions_over_the_rows_and_some_of_a_rows_dims_are_c_kernels(backend, small_chunks):
    def batch_norm_statistics(x, g):  # per channel over (batch, height, width); over batch and a middle dim
        centred = x - x.mean(dim=(0, 2, 3), keepdim=True)
        return (
            (centred * g).sum(dim=(0, 2, 3)),
            (g.relu() > 0).sum(dim=(0, 2, 3)),
            x.amax(dim=(0, 2, 3)),
            (x * g).sum(dim=(0, 3)),
            (x * g).sum(dim=(0, 2)),
        )

    x, g = data(16, 3, 9, 11), data(16, 3, 9, 11, seed=1)
    compiled = compiled_matches_eager(batch_norm_statistics, x, g, backend=backend, rtol=1e-5, atol=1e-5)
    (program,) = compiled.programs
    if backend == "c":
        assert program.info["c_kernels"] == program.info["kernels"], program.info["backend_refusals"]


@pytest.fixture
def small_chunks(monkeypatch):
    """Work splits into chunks (a few per thread, taken as threads come free) from 4096 elements on."""
    from genesis.runtime import native

    monkeypatch.setattr(native, "GRAIN", 4096)
    assert len(native.row_chunks(3000, 97)) == min(native.THREADS * native.CHUNKS_PER_THREAD, 3000 * 97 // 4096)


def test_a_long_chain_split_over_threads_equals_eager(small_chunks):
    fn = lambda x, y: (x * y + 1).tanh() * 0.5 + (-x).exp() * y  # noqa: E731
    x, y = data(40_001), data(40_001, seed=1)
    assert_matches_eager(fn, x, y, rtol=3e-6, atol=1e-7, kernels=1, c_kernels=1)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float16], ids=lambda d: d.name)
def test_broadcasting_operands_are_read_at_their_own_strides(dtype):
    fn, args = broadcasting_case(dtype)
    assert_matches_eager(fn, *args, kernels=1, c_kernels=1)


def test_strided_inputs_are_read_as_their_values():
    fn = lambda x, y: x * 2 + y  # noqa: E731
    x = data(20, 30).transpose(0, 1)
    y = data(30, 40, seed=1)[:, ::2]
    assert_matches_eager(fn, x, y, c_kernels=1)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_softmax_and_layer_norm_are_one_c_kernel_each(dtype):
    x = data(37, 65, dtype=dtype)
    tolerance = TOLERANCE[dtype] * 8
    assert_matches_eager(softmax, x, rtol=tolerance, atol=tolerance * 1e-2, kernels=1, c_kernels=1)
    w, b = data(65, seed=1, dtype=dtype), data(65, seed=2, dtype=dtype)
    assert_matches_eager(layer_norm, x, w, b, rtol=tolerance, atol=tolerance * 10, kernels=1, c_kernels=1)


def test_row_reductions_over_several_trailing_dims_with_and_without_keepdim():
    def fn(x):
        low = x.amin(dim=(1, 2), keepdim=True)
        return (x - low).sum(dim=(1, 2)) * 0.5, x.amax(dim=(1, 2)), (x * x).mean(dim=(1, 2), keepdim=True)

    compiled, program = assert_matches_eager(fn, data(19, 5, 13), rtol=1e-6)
    assert program["c_kernels"] == program["kernels"] >= 2


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_views_of_the_trailing_dims_merge_with_rows_over_several_leading_dims(backend):
    def softmax_backward(p, g):  # over the last dim of (batch, heads, seq, seq): the row sum expanded back
        return p * (g - (g * p).sum(dim=-1, keepdim=True).expand(*p.shape))

    def centred_and_transposed(x):  # reduces the last two dims; the permute keeps batch and heads in place
        y = x - x.mean(dim=(2, 3), keepdim=True)
        return y.permute(0, 1, 3, 2), (y * y).sum(dim=(2, 3))

    p, g, x = data(4, 3, 5, 6), data(4, 3, 5, 6, seed=1), data(4, 3, 5, 6, seed=2)
    for fn, args in [(softmax_backward, (p, g)), (centred_and_transposed, (x,))]:
        compiled = compiled_matches_eager(fn, *args, backend=backend, rtol=1e-6, atol=1e-6)
        (program,) = compiled.programs
        if backend == "c":
            assert program.info["c_kernels"] == program.info["kernels"], program.info["backend_refusals"]


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_matmul_before_the_loop_or_a_reshaped_operand_merge_with_rows_over_several_leading_dims(backend):
    def linear_backward(g, x, w):  # over (batch, seq, features): an activation's gradient, a bias's over two dims
        pre_activation = (g @ w) * x.sigmoid()
        return pre_activation, pre_activation.sum(dim=(0, 1))

    def heads_bias_backward(g):  # heads joined back into features (a strided view), summed over batch and seq
        joined = g.permute(2, 0, 1, 3).reshape(5, 4, 6)
        return joined.sum(dim=(0, 1)), joined * 3

    for fn, args in [
        (linear_backward, (data(4, 6, 5), data(4, 6, 3, seed=1), data(5, 3, seed=2))),
        (heads_bias_backward, (data(4, 2, 5, 3),)),
    ]:
        compiled = compiled_matches_eager(fn, *args, backend=backend, rtol=1e-5, atol=1e-6)
        (program,) = compiled.programs
        if backend == "c":
            assert program.info["c_kernels"] == program.info["kernels"], program.info["backend_refusals"]


def test_hypothesis_random_graphs_over_four_dims_match_eager_on_merged_rows():
    """Reductions over the last dim or two of (batch, heads, seq, seq) values, their expands back over
    the rows, permutes and reshapes of the trailing dims: groups that iterate over merged rows."""
    full = (3, 2, 4, 5)
    # exp of a clamped value, as in the two-dim test
    unary = [lambda a: a.clamp(-6, 6).exp(), lambda a: a.tanh(), lambda a: a * 1.5, lambda a: -a, lambda a: a.relu()]
    binary = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b]
    reductions = [
        lambda a: a.sum(dim=-1, keepdim=True),
        lambda a: a.amax(dim=-1, keepdim=True),
        lambda a: a.sum(dim=(-2, -1), keepdim=True),
        lambda a: a.mean(dim=-1, keepdim=True),
        lambda a: a.sum(dim=(0, 1)),
    ]
    views = [
        lambda a: a.expand(*full) if a.ndim == 4 else a,  # a view of a reduced value stays as it is
        lambda a: a.permute(0, 1, 3, 2) if a.ndim == 4 else a,
        lambda a: a.reshape(3, 2, -1).reshape(*a.shape) if a.ndim == 4 else a,
        lambda a: a.transpose(-1, -2) if a.ndim == 4 else a,
    ]

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 5), st.integers(0, 5)),
            min_size=1,
            max_size=9,
        )
    )
    def check(program):
        def fn(x, y):
            values = apply_random_program(program, [x, y], [unary, binary, reductions, views])
            last = values[-1]
            if last.ndim == 4 and tuple(last.shape) != full:
                last = last.expand(*full) * x  # a row's reduction expanded back over the row
            return last * 2, values[-2] + 1

        x, y = data(*full), data(*full, seed=1)
        try:
            fn(x, y)
        # an expand of a value that is not a row's reduction; a reduction over two dims of a 0-d sum
        except (genesis.errors.ShapeError, IndexError):
            assume(False)
        for backend in ("numpy", "c"):
            compiled_matches_eager(fn, x, y, backend=backend, rtol=2e-5, atol=2e-5)

    check()


def test_a_view_that_moves_the_leading_dims_keeps_its_group_off_merged_rows():
    def fn(x):  # the permute moves the reduced dim among the leading ones: no merge, still eager's values
        y = x - x.amax(dim=-1, keepdim=True)
        return y.permute(0, 1, 3, 2) * 3

    compiled_matches_eager(fn, data(4, 3, 5, 6), backend="c", rtol=1e-6)
    compiled_matches_eager(fn, data(4, 3, 5, 6), backend="numpy", rtol=1e-6)


def test_a_transpose_only_matmuls_read_leaves_the_softmax_group_for_c():
    def attention_backward_part(scores, v):  # the probabilities' transpose feeds the value gradient's matmul
        probabilities = genesis.nn.functional.softmax(scores, dim=-1)
        return probabilities.transpose(-1, -2) @ v

    compiled, program = assert_matches_eager(
        attention_backward_part, data(4, 3, 5, 5), data(4, 3, 5, 6, seed=1), rtol=1e-5, atol=1e-6
    )  # C's exp is within an ulp of numpy's
    assert program["c_kernels"] == 1 and program["backend_refusals"] == {}, program
    assert any("permute leaves" in line for line in compiled.graphs[0].fusion_log)


def test_a_reshape_only_other_kernels_read_leaves_its_group_as_a_view():
    def pooled(x, positions):  # max-pooling's gather reads the activation reshaped to planes
        activation = genesis.nn.functional.relu(x * 2.0 + 1.0)
        planes = activation.reshape(4, 3, 36)
        return genesis.gather(planes, 2, positions), activation * 3.0

    positions = genesis.tensor(np.random.default_rng(2).integers(0, 36, (4, 3, 9)))
    compiled, program = assert_matches_eager(pooled, data(4, 3, 6, 6), positions)
    assert any("reshape leaves" in line for line in compiled.graphs[0].fusion_log)
    (group,) = compiled.graphs[0].groups
    assert all(compiled.graphs[0][name].op != "reshape" for name in group.members)


def test_basic_indexing_is_an_inline_view_of_the_program():
    def gates(x, h):  # an LSTM's gates: slices of one product, each read by the cell's kernel
        z = x @ h
        i, f, g = z[:, 0:4], z[:, 4:8], z[:, 8:]
        return i.sigmoid() * g.tanh() + f.sigmoid() * z[1:, None, 2, ...].sum()

    compiled, program = assert_matches_eager(gates, data(5, 7), data(7, 12, seed=1), rtol=1e-5, atol=1e-6)
    assert program["views"] >= 4 and program["library_calls"] == 0, program


def test_reducing_a_value_that_has_one_element_per_row_is_the_value():
    def fn(x):
        total = x.sum(dim=-1, keepdim=True)
        return total.sum(dim=-1, keepdim=True) + total.amax(dim=1, keepdim=True) * x

    assert_matches_eager(fn, data(17, 9), rtol=1e-5, c_kernels=1)


def test_reductions_over_the_rows_accumulate_per_chunk(small_chunks):
    def fn(x, y):
        bias_grad = (x * y).sum(dim=0)  # a vector partial per chunk
        total = (x * x).sum() / 3  # a scalar partial, then after the loop
        peak = (x - y).amax(dim=(0, 1), keepdim=True)
        return bias_grad, total, peak, x * 2

    x, y = data(3000, 97), data(3000, 97, seed=1)
    # sums over floats accumulate in double: here 25x closer to the float64 sum than eager's float32 one
    _, program = assert_matches_eager(fn, x, y, rtol=1e-5, atol=5e-4)
    assert program["c_kernels"] == program["kernels"], program


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.bfloat16], ids=lambda d: d.name)
def test_statements_after_the_loop_run_in_c_too(tmp_path, dtype):
    def fn(x, w):  # as a clipped optimizer step: a norm over the rows, then updates of small tensors
        norm = (x * x).sum().sqrt()
        coefficient = (1.0 / (norm + 1e-6)).clamp(max=1.0)
        return w - coefficient * w * 0.1, norm

    x, w = data(300, 7, dtype=dtype), data(7, seed=1, dtype=dtype)
    compiled = genesis.compile(fn, backend="c", dump_dir=tmp_path)
    got, expected = compiled(x, w), fn(x, w)
    for g, e in zip(got, expected):
        assert g.dtype is e.dtype
        np.testing.assert_allclose(g.numpy().astype(np.float64), e.numpy().astype(np.float64), rtol=TOLERANCE[dtype])
    (folder,) = tmp_path.iterdir()
    assert "after the loop: sqrt" in (folder / "kernels.c").read_text()


def test_statements_after_the_loop_share_one_loop_per_size(tmp_path):
    def fn(x, w, m, b):  # a clipped update of two small tensors of two sizes, each a chain of ops
        coefficient = (1.0 / ((x * x).sum().sqrt() + 1e-6)).clamp(max=1.0)
        m_next = m * 0.9 + (coefficient * w) * 0.1
        return w - (m_next / (m_next * m_next + 1.0).sqrt()) * 0.01, m_next, b * coefficient - b * 0.5

    args = data(300, 7), data(7, seed=1), data(7, seed=2), data(3, seed=3)
    compiled = genesis.compile(fn, backend="c", dump_dir=tmp_path)
    for got, expected in zip(compiled(*args), fn(*args)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
    (folder,) = tmp_path.iterdir()
    source = (folder / "kernels.c").read_text()
    post = source[source.index("after the loop:") :]
    post = post[: post.index("return 0;")]
    # the coefficient, then one loop over 7 elements and one over 3; only the coefficient is buffered
    assert [int(n) for n in re.findall(r"j < (\d+);", post)] == [1, 7, 3], post
    assert post.count("malloc(") == 1, post
    # one chunk of rows: one call runs the loop, casts its partial sum and runs the statements after
    assert "_whole(" in source and "_whole, [" in (folder / "program.py").read_text()


def test_shims_pass_what_the_plan_made_contiguous_as_it_is_and_copy_the_rest():
    from genesis.compiler.codegen.c_backend import build_program_source

    def fn(x, w):
        h = (x * 2).exp()  # a kernel's output: contiguous, passed as it is
        return (h.flip(0) + h + x.t()).tanh()  # a library call's result and a transposed input: copied

    compiled, _ = assert_matches_eager(fn, data(24, 24), data(24, 24, seed=1), rtol=1e-6, atol=1e-6)
    source = build_program_source(compiled.graphs[0]).source
    calls = re.findall(r"run_native\(NATIVE\.\w+, \[([^\]]*)\]", source)
    wrapped = [a for call in calls for a in call.split(", ") if a.startswith("np.ascontiguousarray")]
    plain = [a for call in calls for a in call.split(", ") if not a.startswith(("np.", "out_"))]
    assert len(wrapped) == 3 and len(plain) == 1, calls  # x (an input), flip and x.t() copied; h not


def test_work_splits_into_a_multiple_of_the_threads_unless_rows_are_fewer(monkeypatch):
    from genesis.runtime import native

    monkeypatch.setattr(native, "THREADS", 2)
    monkeypatch.setattr(native, "GRAIN", 1000)
    assert native.row_chunks(512, 1) == [(0, 512)]  # under two grains: one chunk, no pool
    # 3 grains of work: 4 chunks, two per thread, where 3 would leave one thread a chunk behind
    assert native.row_chunks(30, 100) == [(0, 7), (7, 15), (15, 22), (22, 30)]
    assert len(native.row_chunks(3000, 97)) == 2 * native.CHUNKS_PER_THREAD
    monkeypatch.setattr(native, "THREADS", 4)
    assert native.row_chunks(3, 1000) == [(0, 1), (1, 2), (2, 3)]  # no more chunks than rows


def test_the_one_chunk_entry_and_the_chunked_path_both_equal_eager(monkeypatch):
    from genesis.runtime import native

    def fn(x, w):
        coefficient = 1.0 / ((x * x).sum().sqrt() + 1.0)
        return x.sum(dim=0) * coefficient, w * coefficient, (x - 1).amax(dim=0)

    x, w = data(1000, 97), data(5, seed=1)
    assert len(native.row_chunks(1000, 97)) == 1  # the `_whole` entry runs
    one_chunk, _ = assert_matches_eager(fn, x, w, rtol=1e-5, atol=5e-4)
    monkeypatch.setattr(native, "GRAIN", 4096)  # the same program's rows now split into chunks
    assert len(native.row_chunks(1000, 97)) > 1
    chunked, program = assert_matches_eager(fn, x, w, rtol=1e-5, atol=5e-4)
    assert program["c_kernels"] == program["kernels"], program
    for a, b in zip(one_chunk(x, w), chunked(x, w)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_a_matmul_epilogue_reads_the_product_computed_before_the_loop():
    fn = lambda x, w, b: (x @ w + b).relu() * 2  # noqa: E731
    assert_matches_eager(fn, data(33, 8), data(8, 17, seed=1), data(17, seed=2), rtol=1e-6, c_kernels=1)


def test_groups_c_does_not_take_run_as_numpy_kernels_and_say_why():
    fn = lambda x: x.exp().sum(dim=1, keepdim=True) + 1  # noqa: E731
    _, program = assert_matches_eager(fn, data(9, 4, 5), rtol=1e-6)
    assert program["c_kernels"] == 0 and "not all trailing dims" in " ".join(program["backend_refusals"].values())
    from genesis.compiler import explain

    assert "stays a numpy kernel" in explain(fn, data(9, 4, 5), backend="c")


def test_a_training_step_on_the_c_backend_matches_eager():
    from genesis import nn, optim

    def make():
        genesis.manual_seed(0)
        model = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 5))
        return model, optim.AdamW(model.parameters(), lr=1e-2)

    def step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    eager_model, eager_optimizer = make()
    model, optimizer = make()
    compiled = genesis.compile(lambda x, y: step(model, optimizer, x, y), backend="c")
    rng = np.random.default_rng(0)
    for _ in range(8):
        x = genesis.tensor(rng.normal(size=(64, 12)), dtype=genesis.float32)
        y = genesis.tensor(rng.integers(0, 5, 64), dtype=genesis.int64)
        np.testing.assert_allclose(compiled(x, y).item(), step(eager_model, eager_optimizer, x, y).item(), rtol=1e-5)
    for got, expected in zip(model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-6)
    (program,) = compiled.programs
    assert program.info["c_kernels"] >= program.info["kernels"] - 2, program.info


# ---- the compiled library: cache, corruption, no compiler ------------------------------------------
_CHILD = (
    "import warnings, genesis, numpy as np\n"
    "from genesis.compiler import native\n"
    "calls = []\n"
    "original = native.build_library\n"
    "native.build_library = lambda *a: calls.append(1) or original(*a)\n"
    "f = genesis.compile(lambda x: (x * 3).exp().sum(dim=1), backend='c')\n"
    "x = genesis.tensor(np.arange(12.0).reshape(3, 4), dtype=genesis.float32)\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    got = f(x).numpy()\n"
    "assert np.allclose(got, np.exp(np.arange(12.0).reshape(3, 4) * 3).sum(1), rtol=1e-5)\n"
    "print(len(calls), f.stats['disk_cache_hits'], sum('corrupt cache entry' in str(w.message) for w in caught))\n"
)


def _run_child(cache_dir, source=_CHILD):
    env = {"GENESIS_CACHE_DIR": str(cache_dir), "PATH": "/usr/bin:/bin", "HOME": str(cache_dir)}
    run = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def _pool_libraries(cache_dir) -> set:
    """Build the C thread pool's library into the cache, in a process of its own, and name it: the
    program's executor loads the pool too (in a cold cache, builds it), so the tests tell it apart."""
    _run_child(cache_dir, "from genesis.compiler import native\nassert native.thread_pool() is not None")
    return set(cache_dir.glob("*.so"))


def test_a_second_process_loads_the_cached_library_without_compiling(tmp_path):
    pool = _pool_libraries(tmp_path)
    # builds: library compiles, warm-cache hits, corrupt-entry warnings
    assert _run_child(tmp_path) == ["1", "0", "0"]
    assert _run_child(tmp_path) == ["0", "1", "0"]
    assert len(set(tmp_path.glob("*.so")) - pool) == 1


def test_a_corrupt_library_is_rebuilt_with_a_warning_and_never_loaded(tmp_path):
    pool = _pool_libraries(tmp_path)
    _run_child(tmp_path)
    (library,) = set(tmp_path.glob("*.so")) - pool
    library.write_bytes(library.read_bytes()[:100])  # truncated: loading it would crash the process
    assert _run_child(tmp_path) == ["1", "1", "1"]
    assert library.stat().st_size > 100


def test_c_the_compiler_rejects_runs_as_numpy_kernels_with_a_warning(monkeypatch):
    from genesis.compiler.codegen import c_backend

    render = c_backend.render_kernel

    def broken(spec, contiguous=frozenset()):
        rendered = render(spec, contiguous)
        return c_backend.RenderedKernel(
            rendered.c_source.replace("{", "{ not C;", 1), rendered.shim, rendered.signatures
        )

    monkeypatch.setattr(c_backend, "render_kernel", broken)
    fn = lambda x: (x * 3).tanh() + 1  # noqa: E731
    x = data(40, 3)
    with pytest.warns(UserWarning, match="(?s)failed on generated C .*numpy kernels instead"):
        compiled = genesis.compile(fn, backend="c")
        got = compiled(x)
    np.testing.assert_array_equal(got.numpy(), fn(x).numpy())  # the numpy kernels: eager's numbers
    (program,) = compiled.programs
    assert "failed on generated C" in program.info["c_failed"]


def test_a_program_compiles_in_parallel_parts_and_a_part_that_fails_is_reported(tmp_path, monkeypatch):
    from genesis.compiler import native

    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "PART_CHARACTERS", 1)  # a part per kernel, up to one per core
    monkeypatch.setattr(native.os, "cpu_count", lambda: 3)
    source = native.KERNEL_SEPARATOR.join(
        ["#include <stdint.h>\nstatic inline int64_t twice(int64_t x) { return 2 * x; }\n"]
        + [f"int64_t k{i}(int64_t x) {{ return twice(x) + {i}; }}\n" for i in range(5)]
    )
    assert len(native._parts(source)) == 3
    library = native.load(source, {f"k{i}": "i" for i in range(5)})
    assert [getattr(library, f"k{i}")(10) for i in range(5)] == [20, 21, 22, 23, 24]
    broken = source.replace("+ 3;", "+ not C;")
    with pytest.raises(native.CompileFailed, match="not C"):
        native.load(broken, {})


def test_the_dump_holds_the_c_source_and_what_stayed_numpy(tmp_path):
    compiled = genesis.compile(
        lambda x: (F_softmax(x[0]) * 2, x.exp().sum(dim=1, keepdim=True)), backend="c", dump_dir=tmp_path
    )
    compiled(data(6, 4, 5))
    (folder,) = tmp_path.iterdir()
    source = (folder / "kernels.c").read_text()
    assert "#pragma omp simd" in source and "int k" in source
    assert "numpy kernels instead" in (folder / "c.txt").read_text()


def F_softmax(x):
    return genesis.nn.functional.softmax(x, dim=-1)


def test_a_kernel_that_cannot_allocate_its_scratch_raises_memory_error():
    from genesis.runtime import native as runtime

    def out_of_memory(*arguments):  # what a generated kernel returns when malloc fails
        return 1

    with pytest.raises(MemoryError, match="out_of_memory could not allocate"):
        runtime.run_native(out_of_memory, [], [], [(0, 4)])
    with pytest.raises(MemoryError):
        runtime.run_native(out_of_memory, [], [], [(0, 2), (2, 4)])


POOL_TEST = """
#include <stdint.h>
int mark(int64_t* out, int64_t start, int64_t stop) {  /* fails on the chunk that holds row 13 */
    for (int64_t r = start; r < stop; r++) out[r] = r * r;
    return start <= 13 && 13 < stop;
}
int mark_chunk(void* const* a, int64_t chunk, int64_t start, int64_t stop) {
    return mark((int64_t*)a[0], start, stop);
}
"""


def test_the_c_thread_pool_runs_every_chunk_and_reports_a_failed_one(tmp_path, monkeypatch):
    import threading

    from genesis.compiler import native
    from genesis.runtime import native as runtime

    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    library = native.load(POOL_TEST, {"mark": "pii"})
    assert runtime._c_pool() is not None and library.mark_chunk is not None
    chunks = runtime.row_chunks(1 << 21, 1)  # several per thread
    out = np.zeros(1 << 21, np.int64)
    with pytest.raises(MemoryError):
        runtime.run_native(library.mark, [out], [], chunks, library.mark_chunk)
    np.testing.assert_array_equal(out, np.arange(1 << 21) ** 2)  # every chunk ran, the failed one too

    # two threads at once: the second finds the pool busy and runs its chunks itself
    results = [np.zeros(1 << 21, np.int64) for _ in range(2)]
    errors = []

    def run(target):
        for _ in range(20):
            try:
                runtime.run_native(library.mark, [target], [], chunks, library.mark_chunk)
            except MemoryError:
                pass
            except Exception as error:  # noqa: BLE001  (reported below)
                errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    for r in results:
        np.testing.assert_array_equal(r, np.arange(1 << 21) ** 2)


def test_the_c_thread_pool_loads_from_the_cache_without_a_compiler(tmp_path, monkeypatch):
    from genesis.compiler import native

    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    native.thread_pool.cache_clear()
    assert native.thread_pool() is not None  # built into this cache
    native.thread_pool.cache_clear()

    def no_compiler():
        raise native.CompilerError("no C compiler")

    monkeypatch.setattr(native, "compiler_or_error", no_compiler)
    monkeypatch.setattr(native, "find_compiler", no_compiler)
    assert native.thread_pool() is not None  # found by its key: no compiler asked
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / "empty"))
    native.thread_pool.cache_clear()
    assert native.thread_pool() is None  # neither cached nor buildable: Python's threads then
    native.thread_pool.cache_clear()


def test_kernels_split_over_threads_match_without_the_c_pool(small_chunks, monkeypatch):
    from genesis.runtime import native as runtime

    monkeypatch.setattr(runtime, "_pool_library", None)  # as where the pool cannot be built
    fn = lambda x: ((x * 3).tanh().sum(dim=0), x.exp() * 2)  # noqa: E731
    # eager sums 3000 float32 values (a few 1e-5 off); C adds each chunk's in double
    _, program = assert_matches_eager(fn, data(3000, 97), rtol=1e-5, atol=3e-4)
    assert program["c_kernels"] == program["kernels"], program


def test_a_forked_child_runs_pooled_kernels_on_its_own_workers(small_chunks):
    import multiprocessing

    x = data(3000, 97)
    compiled = genesis.compile(lambda x: (x * 2 + 1).tanh(), backend="c")
    expected = compiled(x).numpy()  # the parent's pool has started its workers
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=lambda: sender.send(compiled(x).numpy()))  # forked: nothing pickled
    child.start()
    assert receiver.poll(120), "the child's kernels did not finish"
    np.testing.assert_array_equal(receiver.recv(), expected)
    child.join(timeout=60)


def test_a_reshape_that_splits_a_row_into_heads_is_stored_as_its_source():
    fn = lambda x, w, b: (x @ w + b).reshape(5, 4, 2, 8)  # noqa: E731
    _, program = assert_matches_eager(fn, data(5, 4, 16), data(16, 16, seed=1), data(16, seed=2), rtol=1e-6)
    assert program["c_kernels"] == program["kernels"] == 1, program


def test_a_permute_of_a_rows_dims_is_stored_permuted():
    def fn(x):  # attention's K^T and a heads/sequence swap, each only stored
        return (x * 0.35).permute(0, 1, 3, 2), (x + 1).permute(0, 2, 1, 3), (x.sum(dim=3, keepdim=True) * 2)

    _, program = assert_matches_eager(fn, data(4, 3, 5, 6), rtol=1e-6)
    assert program["c_kernels"] == program["kernels"], program
    # read by a later statement, a permute would re-index the row: that group stays a numpy kernel
    _, program = assert_matches_eager(lambda x: (x * 2).permute(0, 2, 1) + 1, data(4, 5, 6))
    assert program["backend_refusals"] and all("permute" in why for why in program["backend_refusals"].values())


def test_row_sums_of_float32_accumulate_in_float_only_in_short_rows():
    from genesis.compiler.codegen import c_loops

    fn = lambda x: x.sum(dim=1, keepdim=True) * x  # noqa: E731
    for columns in (100, c_loops.FLOAT_ROW_SUM_LIMIT + 1):
        x = data(3, columns)
        compiled, _ = assert_matches_eager(fn, x, rtol=1e-5, atol=1e-5, c_kernels=1)
        truth = x.numpy().astype(np.float64).sum(axis=1, keepdims=True)
        got = compiled(x).numpy() / x.numpy()
        np.testing.assert_allclose(got, np.broadcast_to(truth, got.shape), rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("columns", [65, 1024])
def test_big_outputs_are_written_with_streaming_stores(tmp_path, monkeypatch, small_chunks, columns):
    from genesis.compiler.codegen import c_loops

    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))  # the threshold decides the code
    monkeypatch.setattr(c_loops, "STREAM_BYTES", 1024)
    x, w, b = data(301, columns), data(columns, seed=1), data(columns, seed=2)
    for fn, args in [(layer_norm, (x, w, b)), (softmax, (x,)), (lambda x, w: (x * w, (x + w).relu()), (x, w))]:
        _, program = assert_matches_eager(fn, *args, rtol=4e-6, atol=1e-6)
        assert program["c_kernels"] == program["kernels"], program
    sources = "".join(path.read_text() for path in tmp_path.glob("*.py"))
    assert "g_stream_row(o_" in sources


def test_the_inline_exp_is_within_one_ulp_over_the_whole_float_range():
    rng = np.random.default_rng(0)
    edges = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        88.72,
        88.7228,
        88.73,
        89.0,
        100.0,
        104.0,
        104.5,
        1e30,
        -87.33,
        -103.97,
        -104.0,
        -104.5,
        -110.0,
        -1e30,
        1e-10,
    ]
    values = np.concatenate([rng.uniform(-110, 95, 200_000), rng.uniform(-1, 1, 50_000), edges]).astype(np.float32)
    x = genesis.tensor(values)
    got = genesis.compile(lambda x: x.exp(), backend="c")(x).numpy()
    with np.errstate(over="ignore"):
        exact = np.exp(values.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(exact)) and np.array_equal(np.isinf(got), np.isinf(exact))
    finite = np.isfinite(exact)
    ulps = np.abs(got[finite].view(np.int32).astype(np.int64) - exact[finite].view(np.int32).astype(np.int64))
    assert ulps.max() <= 1, ulps.max()


def test_kernels_get_the_data_address_of_every_kind_of_array():
    from genesis.runtime.native import address

    base = np.arange(64, dtype=np.float32).reshape(8, 8)
    readonly = base.copy()
    readonly.flags.writeable = False
    for array in [
        base,
        base[2:],
        base[:, 1:],
        base.T,
        np.broadcast_to(base[0], (8, 8)),
        readonly,
        np.empty(0, np.float32),
        np.zeros((), np.float64),
    ]:
        assert address(array) == array.__array_interface__["data"][0]
