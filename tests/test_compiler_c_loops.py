"""The C backend's loops over a row's elements: one loop per run of trailing dims that every value
steps through as through one dim, the innermost a SIMD loop in which every offset is affine.

Broadcast operands of every kind (per channel, in the middle of a row, per row, size-1 dims
between), with reductions within the row and over the rows beside them, odd sizes, and the
generated C itself: no division or modulo indexes a value inside a SIMD loop. Rows over several
leading dims (softmax over the last dim of (batch, heads, seq, seq) scores) with masks that
broadcast over some of them, forward and backward.
"""

import itertools
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import genesis
import genesis.nn.functional as F
from genesis.compiler.codegen.c_nest import collapse
from genesis.compiler.codegen.layout import row_index
from tests.test_compiler_c import TOLERANCE, assert_matches_eager, small_chunks  # noqa: F401
from tests.test_compiler_codegen import apply_random_program, data
from tests.test_compiler_codegen import assert_matches_eager as compiled_matches_eager

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.c_compiler]


def scale_shift_relu(x, scale, shift):
    return (x * scale + shift).relu()


def batch_norm_relu(x, weight, bias):
    return genesis.nn.functional.batch_norm(x, None, None, weight, bias, training=True).relu()


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 7, 13, 5), (7, 1, 1), (1, 7, 1, 1)),  # per channel over (N, C, H, W)
        ((5, 13, 7), (1, 13, 1), (13, 1)),  # per channel over a 3-d tensor
        ((4, 7, 1, 13), (1, 7, 1, 1), (4, 1, 1, 13)),  # size-1 dims in the middle; one value per row and column
        ((6, 7, 13), (6, 7, 1), (1, 1, 13)),  # one value per (row, channel): read once per channel
        ((6, 13, 2), (1, 13, 1), (2,)),  # an inner run of two
        ((6, 13, 1), (13, 1), (1, 13, 1)),  # a row whose last dim is 1
        ((3, 1, 7, 1), (7, 1), (3, 1, 1, 1)),  # a row of size-1 dims around one
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [genesis.float32, genesis.bfloat16], ids=lambda d: d.name)
def test_broadcast_operands_of_every_shape_are_read_at_affine_offsets(shapes, dtype):
    args = [data(*shape, seed=seed, dtype=dtype) for seed, shape in enumerate(shapes)]
    assert_matches_eager(scale_shift_relu, *args, kernels=1, c_kernels=1)


def test_reductions_within_a_row_beside_a_per_channel_operand_match_eager():
    def fn(x, scale):  # softmax and a sum over (C, H, W) of a value scaled per channel
        y = x * scale
        e = (y - y.amax(dim=(1, 2, 3), keepdim=True)).exp()
        return e / e.sum(dim=(1, 2, 3), keepdim=True), (y * y).sum(dim=(1, 2, 3))

    x, scale = data(5, 7, 13, 3), data(7, 1, 1, seed=1)
    _, program = assert_matches_eager(fn, x, scale, rtol=2e-6, atol=1e-7)
    assert program["c_kernels"] == program["kernels"], program


def test_reductions_over_the_rows_and_some_of_a_rows_dims_beside_broadcast_operands(small_chunks):  # noqa: F811
    def fn(x, g, scale):  # per-channel statistics, per (channel, width), with NaN through max and min
        y = x * scale + g
        return (
            (y * g).sum(dim=(0, 2, 3)),
            y.amax(dim=(0, 2, 3)),
            y.amin(dim=(0, 2)),
            (y - g).sum(dim=(0, 1)),
            y.sum(dim=0),
        )

    values = data(301, 7, 13, 5).numpy().copy()
    values[5, 3, 2, 1] = np.nan
    x, g, scale = genesis.tensor(values), data(301, 7, 13, 5, seed=1), data(7, 1, 1, seed=2)
    _, program = assert_matches_eager(fn, x, g, scale, rtol=1e-5, atol=1e-4)
    assert program["c_kernels"] == program["kernels"], program


def test_batch_norm_and_relu_match_eager_in_c():
    x, weight, bias = data(6, 7, 13, 5), data(7, seed=1), data(7, seed=2)
    _, program = assert_matches_eager(batch_norm_relu, x, weight, bias, rtol=1e-5, atol=1e-5)
    assert program["c_kernels"] == program["kernels"], program


def simd_loop_indices(source: str) -> list[str]:
    """The subscripts written inside every `#pragma omp simd` loop of a C source."""
    lines, found = source.splitlines(), []
    for start, line in enumerate(lines):
        if line.strip().startswith("#pragma omp simd"):
            depth = 0
            for body in lines[start + 1 :]:
                found += re.findall(r"\[([^\[\]]*)\]", body)
                depth += body.count("{") - body.count("}")
                if depth <= 0:
                    break
    return found


def test_a_per_channel_operand_is_read_without_division_or_modulo(tmp_path):
    x, scale, shift = data(4, 8, 5, 7), data(8, 1, 1, seed=1), data(8, 1, 1, seed=2)
    for name, fn, args in [
        ("scale_shift", scale_shift_relu, (x, scale, shift)),
        ("batch_norm", batch_norm_relu, (x, data(8, seed=1), data(8, seed=2))),
    ]:
        genesis.compile(fn, backend="c", dump_dir=tmp_path / name)(*args)
        (folder,) = (tmp_path / name).iterdir()
        source = (folder / "kernels.c").read_text()
        indices = simd_loop_indices(source)
        assert indices and not [i for i in indices if "/" in i or "%" in i], (indices, source)
        assert "for (int64_t d0 = 0; d0 < 8; d0++)" in source, source  # the channels, outside the SIMD loop


def test_dims_join_where_every_value_steps_through_them_as_through_one():
    # (C, H, W) rows: a full value, a per-channel one, one per (H, W)
    nest = collapse((7, 13, 5), {"x": (65, 5, 1), "scale": (1, 0, 0), "image": (0, 5, 1)})
    assert nest.sizes == (7, 65) and nest.steps == {"x": (65, 1), "scale": (1, 0), "image": (0, 1)}
    assert nest.offset("x", "r * 455") == "r * 455 + j" and nest.offset("scale", inner=False) == "d0"
    assert nest.position() == "d0 * 65 + i"
    # size-1 dims take no loop; a row of contiguous values is one loop whose counter is the position
    nest = collapse((1, 7, 1, 13), {"x": (91, 13, 13, 1), "bias": (0, 0, 0, 1)})
    assert nest.sizes == (7, 13) and nest.steps["bias"] == (0, 1)
    assert collapse((7, 13), {"x": (13, 1)}).sizes == (91,) and collapse((1, 1), {"x": (0, 0)}).sizes == (1,)


def test_only_kernels_that_move_more_than_the_threshold_stream_their_outputs(tmp_path, monkeypatch):
    from genesis.compiler.codegen import c_loops

    x, w = data(301, 1024), data(1024, seed=1)  # the kernel reads 1.2 MB and writes as much
    for threshold, streams in [(3 << 20, False), (2 << 20, True)]:
        monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / str(threshold)))  # the threshold decides the code
        monkeypatch.setattr(c_loops, "STREAM_BYTES", threshold)
        assert_matches_eager(lambda x, w: (x * w).relu(), x, w, c_kernels=1)
        sources = "".join(path.read_text() for path in (tmp_path / str(threshold)).glob("*.py"))
        assert ("g_stream_row(o_" in sources) is streams


def test_an_operand_reshaped_within_its_rows_is_read_in_its_new_shape():
    # a convolution's product (N, groups, C, H*W) seen as (N, C, H, W) beside a per-channel bias and
    # batch statistics: C refused the reshape and the group ran as numpy blocks on Python's threads
    def fn(product, bias, weight):
        y = product.reshape(4, 6, 5, 3) + bias.reshape(1, 6, 1, 1)
        return batch_norm_relu(y, weight, bias)

    args = [data(4, 1, 6, 15, seed=0), data(6, seed=1), data(6, seed=2)]
    _, program = assert_matches_eager(fn, *args, rtol=1e-5, atol=1e-5)  # batch statistics: sums in lanes
    assert program["c_kernels"] == program["kernels"], program


# ---- rows over several leading dims, with values broadcast over some of them -------------------------

B, H, L, S = 3, 2, 5, 7


def causal_mask(length):
    return genesis.ones(length, length).triu(1) > 0


def masked(shape, seed):
    """A boolean mask of `shape` with about one element in four set."""
    return genesis.tensor(np.random.default_rng(seed).uniform(0.0, 1.0, shape) < 0.25)


# name -> (function, its arguments as (shape or tensor, requires_grad)): reductions over the last dim
# or two of 3-d and 4-d values, beside masks and values broadcast over some of the leading dims
MERGED_ROWS = {
    "softmax (B, H, L, L) with a causal mask (L, L)": (
        lambda x, m: F.softmax(x.masked_fill(m, float("-inf")), dim=-1),
        [((B, H, L, L), True), (causal_mask(L), False)],
    ),
    "softmax (B, H, L, S) plus a bias (1, 1, L, S)": (
        lambda x, m: F.softmax(x + m, dim=-1),
        [((B, H, L, S), True), ((1, 1, L, S), False)],
    ),
    "softmax (B, H, L, S) with a padding mask (B, 1, 1, S)": (
        lambda x, m: F.softmax(x.masked_fill(m, -1e9), dim=-1),
        [((B, H, L, S), True), (masked((B, 1, 1, S), 3), False)],
    ),
    "softmax (B, H, L, S) scaled per (batch, head) (B, H, 1, 1)": (
        lambda x, t: F.softmax(x * t, dim=-1),
        [((B, H, L, S), True), ((B, H, 1, 1), False)],
    ),
    "softmax (B * H, L, S) plus a bias (L, S)": (
        lambda x, m: F.softmax(x + m, dim=-1),
        [((B * H, L, S), True), ((L, S), False)],
    ),
    "log_softmax (B, L, S) plus a bias (L, S)": (
        lambda x, m: F.log_softmax(x + m, dim=-1),
        [((B, L, S), True), ((L, S), False)],
    ),
    "layer_norm (B, L, S) of an input plus learned positions (L, S)": (
        lambda x, p, w, b: F.layer_norm(x + p, (S,), w, b),
        [((B, L, S), True), ((L, S), True), ((S,), True), ((S,), True)],
    ),
    "softmax (B, H, L, S) and the sum over batch and seq of its input": (
        lambda x, m: (lambda y: F.softmax(y, dim=-1) + y.sum(dim=(0, 2), keepdim=True))(x + m),
        [((B, H, L, S), True), ((L, S), True)],
    ),
    "layer_norm (B, H, L, S) times a mask (B, 1, L, 1)": (
        lambda x, m: F.layer_norm(x * m, (S,)),
        [((B, H, L, S), True), ((B, 1, L, 1), False)],
    ),
    "sum over (L, S) of (B, H, L, S) times a mask (L, S)": (
        lambda x, m: (x * m).sum(dim=(-2, -1)),
        [((B, H, L, S), True), ((L, S), False)],
    ),
    "amax over S of (B, H, L, S) plus a bias (1, H, L, 1)": (
        lambda x, m: (x + m).amax(dim=-1),
        [((B, H, L, S), True), ((1, H, L, 1), False)],
    ),
    "attention with a causal mask": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        [((B, H, L, S), True), ((B, H, L, S), True), ((B, H, L, S), True)],
    ),
}


def merged_rows_arguments(specs):
    """The arguments of a MERGED_ROWS case, twice: for eager and for the compiled function."""
    made = []
    for seed, (spec, requires_grad) in enumerate(specs):
        value = data(*spec, seed=seed) if isinstance(spec, tuple) else spec
        made.append(value.detach().requires_grad_(requires_grad))
    return made, [value.detach().requires_grad_(value.requires_grad) for value in made]


@pytest.mark.parametrize("name", sorted(MERGED_ROWS))
def test_reductions_over_the_last_dims_beside_broadcast_masks_are_c_kernels_over_merged_rows(name):
    fn, specs = MERGED_ROWS[name]
    eager_args, compiled_args = merged_rows_arguments(specs)
    report = genesis.compiler.explain(fn, *compiled_args, backend="c")
    assert "numpy kernel" not in report, report  # forward and backward: every group is a C kernel
    compiled = genesis.compile(fn, backend="c")
    got, expected = compiled(*compiled_args), fn(*eager_args)
    # exp and log are libm's here and numpy's in eager: a few ulp, over rows of up to 35 elements
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    upstream = data(*expected.shape, seed=99)
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    for e, g in zip(eager_args, compiled_args):
        if e.requires_grad:
            np.testing.assert_allclose(g.grad.numpy(), e.grad.numpy(), rtol=1e-5, atol=1e-5)
    (program,) = compiled.programs
    assert program.info["c_kernels"] == program.info["kernels"] >= 1, program.info


def test_a_mask_over_the_merged_rows_is_read_at_its_own_rows_not_expanded(tmp_path):
    # softmax over (B * H * L) rows of S: the (L, S) mask's row is the merged row modulo L, read in
    # place; no library call or copy makes a (B, H, L, S) mask first
    fn = lambda x, m: F.softmax(x + m, dim=-1)  # noqa: E731
    x, m = data(B, H, L, S), data(L, S, seed=1)
    compiled = genesis.compile(fn, backend="c", dump_dir=tmp_path)
    np.testing.assert_allclose(compiled(x, m).numpy(), fn(x, m).numpy(), rtol=1e-5, atol=1e-6)
    (program,) = compiled.programs
    assert program.info["kernels"] == program.info["c_kernels"] == 1 and program.info["library_calls"] == 0
    (folder,) = tmp_path.iterdir()
    source = (folder / "kernels.c").read_text()
    assert "for (int64_t r = start; r < stop; r++)" in source and f"(r % {L}) * {S} + j]" in source, source


def test_row_index_reads_the_row_numpy_broadcasting_would():
    for merged in [(2, 3, 4), (2, 1, 4), (1, 3, 1), (2, 3, 4, 5)]:
        for leading in itertools.product(*[(1, n) for n in merged]):
            rows = np.arange(np.prod(merged))
            own = np.arange(np.prod(leading)).reshape(leading)
            expected = np.broadcast_to(own, merged).reshape(-1)
            got = eval(row_index(leading, merged, "rows"), {"rows": rows})  # noqa: S307 (our own expression)
            np.testing.assert_array_equal(np.broadcast_to(got, rows.shape), expected, err_msg=str((merged, leading)))


def test_a_maximum_over_the_rows_that_keeps_a_merged_dim_says_why_its_group_stays_numpy():
    def fn(x, m):  # a max over batch and seq keeps the heads: each merged row would add into its head's row
        y = x + m
        return F.softmax(y, dim=-1), y.amax(dim=(0, 2))

    x, m = data(B, H, L, S), data(L, S, seed=1)
    report = genesis.compiler.explain(fn, x, m, backend="c")
    assert "not all trailing dims (rows over several leading dims: v10 = amax reduces dims (0, 2)" in report, report
    compiled_matches_eager(fn, x, m, backend="c", rtol=1e-5, atol=1e-6)


def test_hypothesis_random_graphs_with_masks_broadcast_over_merged_rows_match_eager():
    """Reductions over the last dim or two of (batch, heads, seq, seq) values, softmax, log_softmax and
    layer_norm, beside operands of every broadcast over the leading dims; values and the gradients of
    every input (a mask's gradient sums over the dims it broadcasts over)."""
    full = (3, 2, 4, 5)
    shapes = [(4, 5), (1, 1, 4, 5), (3, 2, 1, 1), (3, 1, 1, 5), (1, 2, 4, 1), (2, 1, 1), (3, 1, 4, 1), (5,)]
    unary = [lambda a: a.clamp(-6, 6).exp(), lambda a: a.tanh(), lambda a: a * 1.5]
    binary = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: genesis.where(b > 0, a, -1e9)]
    reductions = [
        lambda a: a.sum(dim=-1, keepdim=True),
        lambda a: a.amax(dim=-1),
        lambda a: a.sum(dim=(-2, -1), keepdim=True),
        lambda a: F.softmax(a, dim=-1),
        lambda a: F.log_softmax(a, dim=-1),
        lambda a: F.layer_norm(a, a.shape[-1:]),
        lambda a: a.sum(dim=(0, 1)),
        lambda a: a.sum(dim=(0, 2), keepdim=True),
    ]
    views = [lambda a: a.expand(*full) if a.ndim == 4 else a]

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 4), st.integers(0, 4)),
            min_size=1,
            max_size=7,
        ),
        st.sampled_from(shapes),
        st.sampled_from(shapes),
    )
    def check(program, first, second):
        def fn(x, a, b):
            values = apply_random_program(program, [x, a, b], [unary, binary, reductions, views])
            last = values[-1]
            if last.ndim == 4 and tuple(last.shape) != full:
                last = last.expand(*full) * x  # a row's reduction expanded back over the row
            return last * 2 + (values[-2] + 1).sum()

        shapes_ = [full, first, second]
        try:
            fn(*[data(*shape) for shape in shapes_])
        except (genesis.errors.ShapeError, IndexError):  # an expand of a value that is not a row's reduction
            assume(False)
        for backend in ("numpy", "c"):
            eager_args = [data(*shape, seed=i).requires_grad_() for i, shape in enumerate(shapes_)]
            compiled_args = [data(*shape, seed=i).requires_grad_() for i, shape in enumerate(shapes_)]
            expected, got = fn(*eager_args), genesis.compile(fn, backend=backend)(*compiled_args)
            np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=2e-5, atol=2e-5)
            upstream = data(*expected.shape, seed=7)
            (expected * upstream).sum().backward()
            (got * upstream).sum().backward()
            for e, g in zip(eager_args, compiled_args):
                assert (e.grad is None) == (g.grad is None)
                if e.grad is not None:
                    # a gradient element sums terms as big as the largest one (exp(2.5 x) up to 400
                    # times a summed upstream): float32 rounds them at that scale, in either order
                    scale = max(1.0, float(np.abs(e.grad.numpy()).max()))
                    np.testing.assert_allclose(g.grad.numpy(), e.grad.numpy(), rtol=1e-4, atol=1e-4 * scale)

    check()


def test_two_float32_sums_in_one_flat_loop_fold_their_lanes_each():
    """A flat loop adds each float32 sum into lanes and folds them pairwise after each block; with two
    sums the fold's loop once covered only the first (found by the random graphs above: the C did not
    compile and the program ran as numpy kernels)."""
    x = genesis.tensor(np.random.default_rng(0).standard_normal(5000).astype(np.float32))

    def fn(x):
        return (x.tanh() * x).sum() + x.tanh().sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a C compile failure warns and falls back to numpy kernels
        compiled_matches_eager(fn, x, backend="c", rtol=1e-5, atol=1e-4)
