"""The Triton backend: generated Triton kernels, run under the interpreter, equal eager; they compile to PTX.

Every elementwise op of the op table runs through a Triton kernel in every
float dtype (the table is the numpy backend's, imported); broadcasting
operands, softmax and layer_norm (one kernel each, counted), odd shapes that
exercise the masks, and the groups that stay numpy kernels (with the reason in
the stats). PTX for sm_90 is built ahead of time, on a machine with no GPU.
"""

import numpy as np
import pytest

import genesis
from genesis.compiler.codegen import triton_backend
from genesis.compiler.codegen.wrapper import schedule
from tests.test_compiler_codegen import ELEMENTWISE, FLOATS, broadcasting_case, data, layer_norm, softmax
from tests.test_compiler_codegen import assert_matches_eager as compiled_matches_eager

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# the interpreter computes with the numpy functions eager uses, so most results are exact;
# a few ops are built differently in Triton (sigmoid from exp; reductions in a tree)
TOLERANCE = {genesis.float32: 2e-6, genesis.float64: 1e-14, genesis.float16: 1e-3, genesis.bfloat16: 8e-3}
EXACT_OPS = set(ELEMENTWISE) - {"sigmoid", "silu", "pow"}  # tl.sigmoid is not 1 / (1 + exp(-x))


def compile_triton(fn):
    return genesis.compile(fn, backend="triton")


def assert_matches_eager(fn, *args, rtol=0.0, atol=0.0, triton_kernels=None, kernels=None):
    """The numpy backend's check, on the Triton backend, then its count of Triton kernels."""
    compiled = compiled_matches_eager(fn, *args, backend="triton", rtol=rtol, atol=atol, kernels=kernels)
    program = _program_stats(compiled)
    if triton_kernels is not None:
        assert program["triton_kernels"] == triton_kernels, program
    return compiled, program


def _program_stats(compiled):
    """The executor's stats of the program the call built: kernels taken by Triton, refusals."""
    (program,) = compiled.programs
    return program.info


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_op_in_a_triton_kernel_equals_eager(name, dtype):
    x = data(37, 65, dtype=dtype, low=0.1, high=3.0)
    y = data(37, 65, seed=1, dtype=dtype)
    rtol = 0.0 if name in EXACT_OPS else TOLERANCE[dtype]
    _, program = assert_matches_eager(ELEMENTWISE[name], x, y, rtol=rtol, atol=rtol * 1e-3)
    # every group is a Triton kernel; sign alone is never fused (the numpy kernels have no line for it)
    assert program["triton_kernels"] == program["kernels"] >= (0 if name == "sign" else 1), program


def test_every_elementwise_op_has_a_triton_snippet():
    from genesis.ops import OPS, Kind

    missing = [name for name, op in OPS.items() if op.kind is Kind.ELEMENTWISE and "triton" not in op.codegen]
    assert missing == []


def test_a_1823_element_chain_is_one_masked_kernel():
    fn = lambda x, y: (x * y + 1).tanh() * 0.5 + (-x).exp() * y  # noqa: E731
    assert_matches_eager(fn, data(1823), data(1823, seed=1), kernels=1, triton_kernels=1)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float16], ids=lambda d: d.name)
def test_broadcasting_operands_are_read_at_their_own_strides(dtype):
    fn, args = broadcasting_case(dtype)
    assert_matches_eager(fn, *args, kernels=1, triton_kernels=1)


def test_an_output_smaller_than_the_iteration_space_is_stored_once_per_element():
    def fn(x, row):
        scaled = row * 2 + 1  # (30, 1, 1), an output, computed inside the (30, 7, 9) kernel
        return x * scaled, scaled

    assert_matches_eager(fn, data(30, 7, 9), data(30, 1, 1, seed=1), triton_kernels=1)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64, genesis.bfloat16], ids=lambda d: d.name)
def test_softmax_and_layer_norm_are_one_triton_kernel_each(dtype):
    x = data(37, 65, dtype=dtype)
    tolerance = TOLERANCE[dtype]
    assert_matches_eager(softmax, x, rtol=tolerance, atol=tolerance * 1e-2, kernels=1, triton_kernels=1)
    w, b = data(65, seed=1, dtype=dtype), data(65, seed=2, dtype=dtype)
    assert_matches_eager(layer_norm, x, w, b, rtol=tolerance, atol=tolerance * 10, kernels=1, triton_kernels=1)


def test_row_reductions_over_several_trailing_dims_with_and_without_keepdim():
    def fn(x):
        low = x.amin(dim=(1, 2), keepdim=True)
        return (x - low).sum(dim=(1, 2)) * 0.5, x.amax(dim=(1, 2))

    assert_matches_eager(fn, data(19, 5, 13), rtol=2e-6, kernels=2, triton_kernels=2)  # amax is its own group


@pytest.mark.parametrize("mask_shape", [(5, 7), (1, 1, 5, 7), (3, 1, 1, 7), (3, 2, 1, 1), (1, 2, 5, 1)], ids=str)
def test_softmax_over_the_last_dim_of_4d_scores_with_a_broadcast_mask_is_one_triton_kernel(mask_shape):
    # rows over batch * heads * seq; the mask is read at its own row of each, not expanded first
    fn = lambda x, m: softmax(x * 2 + m) * m  # noqa: E731
    x, m = data(3, 2, 5, 7), data(*mask_shape, seed=1)
    assert_matches_eager(fn, x, m, rtol=2e-6, atol=1e-7, kernels=1, triton_kernels=1)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_0d_work_is_one_triton_kernel(dtype):
    """An optimizer's per-parameter scalars, a loss's mean: 0-d values in a group of their own."""
    fn = lambda a, b: ((a * b + 1.0).exp() / (a - 3.0)).clamp(max=2.0) + a.sqrt()  # noqa: E731
    a, b = genesis.tensor(2.5, dtype=dtype), genesis.tensor(-1.0, dtype=dtype)
    rtol = 0.0 if dtype is genesis.float64 else TOLERANCE[dtype]
    assert_matches_eager(fn, a, b, rtol=rtol, atol=rtol, kernels=1, triton_kernels=1)
    (spec,) = _specs(fn, a, b)
    _assert_ptx(spec)


def test_groups_triton_does_not_take_yet_run_as_numpy_kernels_and_say_why():
    def fn(x, w):
        counted = (x > 0).long().sum()  # an integer reduction (floating-point ones are Triton's)
        return (x.long() @ w.long()) * 2, counted  # an integer product (tl.dot's are of floats)

    compiled, program = assert_matches_eager(fn, data(33, 8), data(8, 5, seed=1))
    refusals = program["backend_refusals"]
    assert program["numpy_kernels"] == len(refusals) >= 2
    reasons = " | ".join(refusals.values())
    assert "only floating-point reductions" in reasons and "tl.dot takes float pairs" in reasons


REDUCTIONS_OVER_ROWS = {
    "a bias's gradient": lambda x, b: (x + b).relu().sum(dim=0),
    "keepdim, then more": lambda x, b: x.sum(dim=0, keepdim=True) / 33.0 + b,
    "a mean of everything": lambda x, b: (x * x).mean(),
    "row sums, then their sum": lambda x, b: x.exp().sum(dim=1, keepdim=True).sum() * 0.5,
    "both, and the rows kept": lambda x, b: (x * 2.0, (x * b).sum(dim=0), x.sum()),
    "a column's maximum": lambda x, b: (x + b).amax(dim=0) * 2.0,
    "the minimum of everything, and a sum": lambda x, b: ((x * b).amin(), x.sum(dim=0)),
    "row maxima, then their maximum": lambda x, b: x.amax(dim=1, keepdim=True).amax() - b,
}


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
@pytest.mark.parametrize(
    "fn",
    [
        lambda x, w, g: ((x @ w) * g).sum(dim=(0, 1), keepdim=True),
        lambda x, w, g: (x * g).sum(dim=(0, 1), keepdim=True) * 2.0 + g.sum(dim=(0, 1)),
    ],
    ids=["a product's gradient summed over batch and tokens", "kept dims, then more"],
)
def test_a_sum_over_rows_that_span_several_dims_keeps_them_as_ones(fn, dtype):
    """(batch, tokens) rows merged into one: a bias's gradient is (1, 1, features), held as one row."""
    x, w, g = data(6, 7, 16, dtype=dtype), data(16, 16, seed=1, dtype=dtype), data(6, 7, 16, seed=2, dtype=dtype)
    specs = _specs(fn, x, w, g)
    assert any(spec.merged for spec in specs)
    rtol = TOLERANCE[dtype] * 16
    _, program = assert_matches_eager(fn, x, w, g, rtol=rtol, atol=rtol)
    assert program["numpy_kernels"] == 0, program["backend_refusals"]
    for spec in specs:
        _assert_ptx(spec)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
@pytest.mark.parametrize(
    "fn",
    [
        lambda x, b: (x * b).prod(dim=0) - b,
        lambda x, b: x.prod() * 0.5,
        lambda x, b: (x.prod(dim=1, keepdim=True) * 2.0).prod(),
        lambda x, b: (x.prod(dim=0), x.sum(dim=0), x.amax()),
    ],
    ids=["column products", "the product of everything", "row products, then theirs", "with a sum and a maximum"],
)
def test_products_over_the_rows_are_triton_kernels(fn, dtype):
    """prod folds each block of rows into its accumulator, as sums do (ops/helpers/products.triton:
    Triton has no tl.prod). Factors near 1, so that 333 of them neither overflow nor vanish."""
    x = genesis.tensor(1.0 + 0.05 * data(333, 8, dtype=genesis.float64).numpy(), dtype=dtype)
    b = genesis.tensor(1.0 + 0.05 * data(8, seed=1, dtype=genesis.float64).numpy(), dtype=dtype)
    rtol = TOLERANCE[dtype] * 40  # 333 rounded products, in another order than numpy's
    _, program = assert_matches_eager(fn, x, b, rtol=rtol, atol=rtol)
    assert program["numpy_kernels"] == 0 and program["triton_kernels"] >= 1, program["backend_refusals"]
    for spec in _specs(fn, x, b):
        _assert_ptx(spec)


def test_a_sum_over_rows_reads_an_operand_broadcast_within_the_row():
    """(fuzz seed 227) the column indices of a broadcast operand are made before the loop that
    reads it (a (4, 1) factor over rows of 4 x 6)."""
    fn = lambda x, b: (x * b).sum(dim=0) + b  # noqa: E731
    _, program = assert_matches_eager(fn, data(333, 4, 6), data(4, 1, seed=1), rtol=2e-5, atol=2e-5)
    assert program["numpy_kernels"] == 0, program["backend_refusals"]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("case", REDUCTIONS_OVER_ROWS)
def test_reductions_over_the_rows_are_triton_kernels_that_walk_them(case, dtype):
    """Each block of rows is folded into the sums, maxima or minima in a loop; what follows them
    runs once, after it."""
    x, b = data(333, 8, dtype=dtype), data(8, seed=1, dtype=dtype)  # 333 rows: several blocks, the last masked
    rtol = TOLERANCE[dtype] * 8  # sums of 333 terms in another order than numpy's pairwise ones
    _, program = assert_matches_eager(REDUCTIONS_OVER_ROWS[case], x, b, rtol=rtol, atol=rtol)
    assert program["numpy_kernels"] == 0 and program["triton_kernels"] >= 1, program["backend_refusals"]
    for spec in _specs(REDUCTIONS_OVER_ROWS[case], x, b):
        _assert_ptx(spec)


def test_statements_after_the_loop_over_arrays_of_their_own_shapes_are_kernels_of_their_own():
    """A gradient norm over the rows, then updates of whole arrays of other shapes (an optimizer's
    parameters, in place): the loop's kernel, then one elementwise kernel per shape, where a
    parameter is written only after everything that reads it."""

    def fn(g, p, q, r):
        norm = (g * g).sum().sqrt()
        scale = 1.0 / (norm + 1.0)
        p.add_(p * -scale)  # (32, 64), in place
        q.mul_(1.0 - scale).add_(r * scale)  # (32,)
        return norm, p * 2.0, (q * q).exp() - r

    def arguments():
        return data(333, 8), data(32, 64, seed=1), data(32, seed=2), data(32, seed=3)

    expected, got_args = arguments(), arguments()
    want = fn(*expected)
    compiled = compile_triton(fn)
    got = compiled(*got_args)
    for g, e in zip((*got, *got_args), (*want, *expected)):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)
    program = _program_stats(compiled)
    assert program["numpy_kernels"] == 0, program["backend_refusals"]
    staged = [spec for spec in _specs(fn, *arguments()) if "after" in triton_backend.render_kernel(spec)]
    assert staged and triton_backend.render_kernel(staged[0]).count("@triton.jit") >= 3


# fn(x, b) and the shapes of x and b: reductions over dims that are neither a row's trailing ones
# nor the rows (triton_reduce.py)
REDUCTIONS_OVER_ANY_DIMS = {
    "a mean over the tokens": (lambda x, b: (x + b).sum(dim=1) / 8.0, (4, 8, 32), (32,)),
    "kept as 1s, then more": (lambda x, b: (x * b).mean(dim=1, keepdim=True) - b, (4, 8, 32), (32,)),
    "BatchNorm's sums per channel": (
        lambda x, b: ((x * b).sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3), keepdim=True) + 1.0),
        (4, 6, 5, 5),
        (6, 1, 1),
    ),
    "a channel's value expanded, then summed": (
        lambda x, b: (y := x + b.reshape(1, 6, 1, 1).expand(4, 6, 5, 5) * x, y.sum(dim=(0, 2, 3))),
        (4, 6, 5, 5),
        (6,),
    ),
    "a middle maximum": (lambda x, b: x.amax(dim=1) * 2.0, (3, 7, 5), (5,)),
    "products over the first and last": (lambda x, b: (x * 0.1 + 1).prod(dim=(0, 2)), (3, 7, 5), (5,)),
    # fuzz seed 95116: a reduction over a dim of size 1 stores its input's values at r = 0 alone
    "over a dim of one": (lambda x, b: (t := x.tanh() * 0.25 + 1, t.prod(dim=(1,)) + b), (2, 1, 1, 3), (3,)),
    # fuzz seed 95653: a value the reductions do not read, read after them, is made after them
    "a standard deviation, raised to a power": (
        lambda x, b: (x.std(dim=0) + 0.5) ** b.clamp(-2, 2),
        (6, 2, 4, 4),
        (4,),
    ),
    "many rows of a few": (lambda x, b: (x * b).sum(dim=(0, 1)), (40, 50, 3), (3,)),
    # views that move an operand's elements, read through the chain in place (attention's heads)
    "heads merged back, summed": (
        lambda x, b: x.permute(0, 2, 1, 3).reshape(4, 8, 32).sum(dim=(0, 1), keepdim=True) * b,
        (4, 4, 8, 8),
        (32,),
    ),
    "a view stored, and summed": (
        lambda x, b: (v := x.permute(0, 3, 1, 2).reshape(4, 8, 32) * b, v.sum(dim=(0, 1))),
        (4, 4, 8, 8),
        (32,),
    ),
    "heads split out of a row, summed": (lambda x, b: (x.reshape(3, 4, 2, 5) * b).sum(dim=3), (3, 4, 10), (5,)),
    # over merged rows ((2, 8) as 16): the same bytes in a lower rank (ResNet's pooling backward)
    "a middle dim of merged rows": (lambda x, b: (x * b).sum(dim=2) + 1.0, (2, 8, 3, 5), (5,)),
    "a dim of one of merged rows": (lambda x, b: (x * b).sum(dim=2), (2, 8, 1, 1, 1), (1, 1, 1)),
}


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64, genesis.bfloat16], ids=lambda d: d.name)
@pytest.mark.parametrize("case", REDUCTIONS_OVER_ANY_DIMS)
def test_reductions_over_any_dims_are_triton_kernels(case, dtype):
    """The kept positions down the tile, the reduced ones walked across it in blocks (2000 of
    them in the last case: two blocks, the last masked); what follows runs after the loop."""
    fn, x_shape, b_shape = REDUCTIONS_OVER_ANY_DIMS[case]
    x, b = data(*x_shape, dtype=dtype, low=0.5), data(*b_shape, seed=1, dtype=dtype)
    rtol = TOLERANCE[dtype] * 16  # up to 2000 terms in another order than numpy's
    _, program = assert_matches_eager(fn, x, b, rtol=rtol, atol=rtol)
    assert program["numpy_kernels"] == 0 and program["triton_kernels"] >= 1, program["backend_refusals"]
    for spec in _specs(fn, x, b):
        _assert_ptx(spec)


# views inside a group: x (333, 8), b (8,), c (1, 8)
VIEWS_IN_A_GROUP = {
    "a row's sum made a vector": lambda x, b, c: (x * b).sum(dim=1, keepdim=True).reshape(333) * 2.0,
    "a vector made a column": lambda x, b, c: x.sum(dim=1).reshape(333, 1) * x,
    "a row's maximum expanded, then summed": lambda x, b, c: (x.amax(dim=1, keepdim=True) + 0.0).expand(333, 8).sum(1),
    "a bias reshaped, then a column sum": lambda x, b, c: (b.reshape(1, 8) * x).sum(dim=0),
    "a whole row read as rows, its norm": lambda x, b, c: ((c.reshape(8) * 3.0) ** 2).sum().sqrt(),
    "a loss's mean expanded over the rows": lambda x, b, c: (x * b).mean().reshape(1, 1).expand(333, 8) * x,
}


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
@pytest.mark.parametrize("case", VIEWS_IN_A_GROUP)
def test_views_that_keep_each_element_in_place_are_read_through_in_triton(case, dtype):
    """Expands, and reshapes that add or drop size-1 dims, are their source's tiles (a sum over an
    expanded row value counts each copy: the reduction's mask widens the tile); an operand's
    reshape is the operand read in the new shape."""
    fn = VIEWS_IN_A_GROUP[case]
    args = data(333, 8, dtype=dtype), data(8, seed=1, dtype=dtype), data(1, 8, seed=2, dtype=dtype)
    rtol = TOLERANCE[dtype] * 8
    _, program = assert_matches_eager(fn, *args, rtol=rtol, atol=rtol)
    assert program["numpy_kernels"] == 0 and program["triton_kernels"] >= 1, program["backend_refusals"]
    for spec in _specs(fn, *args):
        _assert_ptx(spec)


def test_a_reshape_that_moves_elements_within_the_rows_stays_a_numpy_kernel():
    fn = lambda x: (x * 2.0).reshape(9, 2, 10).sum(dim=2)  # noqa: E731  (heads split out of a row)
    _, program = assert_matches_eager(fn, data(9, 20), rtol=1e-6)
    assert "moves elements within the rows" in " ".join(program["backend_refusals"].values())


@pytest.mark.parametrize(
    "fn",
    [lambda x: x.amax(dim=0), lambda x: x.amin(), lambda x: (x * 1.0).amax(dim=1), lambda x: (x * 1.0).amin(dim=1)],
    ids=["column maxima", "minimum of everything", "row maxima", "row minima"],
)
def test_maxima_and_minima_keep_a_nan_as_eager_does(fn):
    """tl.max and tl.min drop a nan; numpy and PyTorch return it (ops/helpers/extrema.triton)."""
    values = data(333, 8).numpy().copy()
    values[200, 3] = values[5, 0] = np.nan
    _, program = assert_matches_eager(fn, genesis.tensor(values))
    assert program["numpy_kernels"] == 0, program["backend_refusals"]


def test_a_reduction_over_part_of_the_row_is_a_triton_kernel_of_its_own_layout():
    fn = lambda x: x.exp().sum(dim=1, keepdim=True) + 1  # noqa: E731
    compiled, program = assert_matches_eager(fn, data(9, 4, 5), rtol=1e-6)
    assert program["triton_kernels"] == 1 and program["numpy_kernels"] == 0
    (spec,) = _specs(fn, data(9, 4, 5))
    assert "BLOCK_R" in triton_backend.render_kernel(spec)  # not a row layout's: templates/triton_reduce.py.j2


def test_compiled_program_is_cached_and_the_key_names_triton(tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    fn = lambda x: (x * 3).exp()  # noqa: E731
    x = data(50)
    first = compile_triton(fn)
    first(x)
    entries = list(tmp_path.glob("*.py"))
    assert len(entries) == 1 and "@triton.jit" in entries[0].read_text()
    second = compile_triton(fn)
    np.testing.assert_array_equal(second(x).numpy(), fn(x).numpy())
    assert second.stats["disk_cache_hits"] == 1, second.stats
    from genesis.compiler import executors

    graph = first.graphs[0]
    monkeypatch.setattr("triton.__version__", "0.0.0-other")
    _, stats = executors.triton_executor(graph)
    assert not stats["cache_hit"] and len(list(tmp_path.glob("*.py"))) == 2


def test_the_dump_holds_each_triton_kernel_as_a_file_that_runs_on_its_own(tmp_path):
    """`triton/<kernel>.py`: the group's kernels and launcher, which compute what the group does
    on inputs of its shapes, and a main that times them (here under the interpreter)."""
    import runpy
    import subprocess
    import sys

    import triton

    from genesis.compiler.codegen import triton_standalone

    fn = lambda x, w, b: ((x @ w + b).relu(), (x * 2.0).sum(dim=0))  # noqa: E731
    genesis.compile(fn, backend="triton", dump_dir=tmp_path)(data(33, 40), data(40, 17, seed=1), data(17, seed=2))
    files = sorted(tmp_path.glob("*/triton/*.py"))
    assert [f.stem for f in files] == ["k0_matmul_add_relu", "k1_mul_sum"]
    with triton.knobs.runtime.scope():  # the file sets the interpreter switch for its process
        module = runpy.run_path(str(files[0]))
    x, w, b, out = arrays = triton_standalone.random_arguments(module["ARGUMENTS"])
    triton_standalone.launch(module, "k0_matmul_add_relu", arrays)()
    np.testing.assert_allclose(out, np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-5)
    finished = subprocess.run([sys.executable, str(files[1]), "0"], capture_output=True, text=True, check=True)
    assert "k1_mul_sum:" in finished.stdout and "ms per call" in finished.stdout


def test_a_present_gpu_is_refused_until_genesis_has_device_buffers(monkeypatch):
    from genesis.compiler import executors
    from genesis.runtime import triton_buffers

    monkeypatch.setattr(triton_buffers, "triton_interprets", lambda: False)
    graph = _graph_of(lambda x: x + 1, data(4))
    with pytest.raises(NotImplementedError, match="device buffers"):
        executors.triton_executor(graph)


def _graph_of(fn, *args):
    compiled = genesis.compile(fn, backend="numpy")
    compiled(*args)
    return compiled.graphs[0]


def test_buffers_adapter_exposes_what_the_interpreter_reads():
    from genesis.runtime.triton_buffers import TritonBuffer, as_buffer

    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    buffer = TritonBuffer(array)
    assert buffer.data_ptr() == array.ctypes.data and buffer.dtype == "float32"
    assert buffer.stride() == (4, 1) and buffer.element_size() == 4
    assert buffer.untyped_storage().cpu().data_ptr() == array.ctypes.data
    with pytest.raises(ValueError, match="contiguous"):
        TritonBuffer(array.T)
    assert as_buffer(array.T).array.flags.c_contiguous


# ---- ahead-of-time compilation ------------------------------------------------------------------
def _specs(fn, *args):
    return [step.kernel for step in schedule(_graph_of(fn, *args)) if step.kind == "kernel"]


def _assert_ptx(spec):
    """Every kernel the group's launcher launches (one, or a staged group's several) compiles."""
    compiled = triton_backend.compile_ahead(spec)
    assert compiled
    for name, kernel in compiled.items():
        assert name.startswith(spec.name) and ".target sm_90" in kernel.asm["ptx"]
        assert f".entry {name}" in kernel.asm["ptx"]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_pointwise_kernel_compiles_to_ptx_for_sm90(dtype):
    fn = lambda x, y: (x * y + 1).tanh() * 0.5 + (-x).exp() * y + x**2 + x.sqrt().rsqrt()  # noqa: E731
    (spec,) = _specs(fn, data(37, 65, dtype=dtype, low=0.1), data(37, 65, seed=1, dtype=dtype))
    _assert_ptx(spec)


@pytest.mark.parametrize(
    "dtype", [genesis.int64, genesis.uint8, genesis.float16, genesis.float64], ids=lambda d: d.name
)
def test_division_kernels_compile_to_ptx_for_sm90(dtype):
    """floor_divide, remainder and fmod choose their float or integer form when Triton compiles them,
    and the integer form never divides by 0 or -1 (undefined in LLVM), Python literals on either side."""
    fn = lambda a, b: a // b + a % b + genesis.fmod(a, b) + (a + 1) // 3 + 7 % b  # noqa: E731
    a, b = genesis.tensor(np.arange(1, 40)).to(dtype), genesis.tensor(np.arange(2, 41)).to(dtype)
    (spec,) = _specs(fn, a, b)
    _assert_ptx(spec)


def test_softmax_and_layer_norm_compile_to_ptx_for_sm90():
    x = data(37, 65, dtype=genesis.bfloat16)
    (softmax_spec,) = _specs(softmax, x)
    (norm_spec,) = _specs(layer_norm, x, data(65, dtype=genesis.bfloat16), data(65, dtype=genesis.bfloat16))
    for spec in (softmax_spec, norm_spec):
        _assert_ptx(spec)


def test_many_programs_cover_long_inputs_and_many_rows():
    # 3000 elements: three 1024-element programs, the last one masked; 700 rows of 9: 256-row tiles
    fn = lambda x: (x * 1.5).exp() - 1  # noqa: E731
    assert_matches_eager(fn, data(3000), triton_kernels=1)
    assert_matches_eager(softmax, data(700, 9), rtol=2e-6, atol=1e-8, triton_kernels=1)


def test_the_report_says_which_groups_stay_numpy_kernels_and_why():
    from genesis.compiler import explain

    text = explain(lambda x: (x > 0).long().sum() + 1, genesis.randn(100, 8), backend="triton")
    assert "stays a numpy kernel: v3 = sum: only floating-point reductions are in Triton" in text
