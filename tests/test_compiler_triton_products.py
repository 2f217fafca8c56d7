"""Matmul groups on the Triton backend: tl.dot kernels, their epilogues fused in or run after them.

Every product of these groups is a Triton kernel under the interpreter and equals eager within
the products' rounding (another summation order than BLAS's: K rounded additions in fp32); the
kernels compile ahead of time for sm_80 and sm_90, to PTX and cubin, without a GPU.
"""

import numpy as np
import pytest

import genesis
from genesis.compiler.codegen import triton_backend
from genesis.runtime.triton_buffers import matrix_argument
from tests.test_compiler_codegen import FLOATS, data, softmax
from tests.test_compiler_triton import _specs, assert_matches_eager

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

K = 40  # the products' inner size: the bound on their rounding grows with it


def tolerance(dtype):
    """fp32: K additions in another order, each off by half an ulp at most; fp16/bf16: the fp32
    results round to the same value but for one ulp where the orders straddle a rounding step."""
    return {
        genesis.float64: 1e-13,
        genesis.float32: K * float(np.finfo(np.float32).eps),
        genesis.float16: 2e-3,
        genesis.bfloat16: 1.6e-2,
    }[dtype]


def gelu(x):
    return genesis.nn.functional.gelu(x)


# fn, then the arguments' shapes: the first two multiply
FUSED = {
    "a bias, then relu": (lambda x, w, b: (x @ w + b).relu(), [(33, K), (K, 17), (17,)]),
    "gelu over a stack of rows": (lambda x, w, b: gelu(x @ w + b), [(3, 11, K), (K, 17), (17,)]),
    "a transposed weight, read in place": (lambda x, w, b: (x @ w.t() + b) * 2.0, [(33, K), (17, K), (17,)]),
    "a transposed input, read in place": (lambda x, w, b: x.t() @ w - b, [(K, 33), (K, 17), (17,)]),
    "a residual and a value per row": (lambda x, w, r, s: (x @ w) * s + r, [(33, K), (K, 17), (33, 17), (33, 1)]),
    "a loss scale": (lambda x, w: (x @ w) * 1024.0, [(33, K), (K, 17)]),
    "the product kept, and more": (lambda x, w, b: (x @ w, (x @ w + b).tanh()), [(33, K), (K, 17), (17,)]),
}
SPLIT = {
    "a bias's gradient": (lambda x, w, b: ((x @ w) * b).sum(dim=0), [(33, K), (K, 17), (17,)]),
    "a norm": (lambda x, w: ((x @ w) ** 2).sum().sqrt(), [(33, K), (K, 17)]),
    "softmax over its rows": (lambda x, w, b: softmax(x @ w + b), [(33, K), (K, 17), (17,)]),
    "two products, added": (lambda x, w, v: (x @ w + x @ (v * 0.5)).relu(), [(33, K), (K, 17), (K, 17)]),
    "a product alone": (lambda x, w: x @ w, [(70, K), (K, 90)]),
}


def _arguments(shapes, dtype):
    return [data(*shape, seed=i, dtype=dtype) for i, shape in enumerate(shapes)]


def _largest(fn, args) -> float:
    """The largest magnitude of eager's results: a rounding error of a sum is relative to its terms,
    so a result that cancels to near 0 is compared at the scale of the others."""
    results = fn(*args)
    results = results if isinstance(results, tuple) else (results,)
    return max(float(np.abs(r.numpy().astype(np.float64)).max()) for r in results)


def _kernels_in_source(spec) -> int:
    return triton_backend.render_kernel(spec).count("@triton.jit")


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("case", list(FUSED), ids=str)
def test_a_product_with_an_elementwise_epilogue_is_one_triton_kernel(case, dtype):
    fn, shapes = FUSED[case]
    args = _arguments(shapes, dtype)
    rtol = tolerance(dtype)
    assert_matches_eager(fn, *args, rtol=rtol, atol=rtol * _largest(fn, args), kernels=1, triton_kernels=1)
    (spec,) = _specs(fn, *args)
    assert _kernels_in_source(spec) == 1  # the epilogue runs on the product's tile


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("case", list(SPLIT), ids=str)
def test_a_product_whose_epilogue_reduces_runs_before_the_rest_of_its_group(case, dtype):
    fn, shapes = SPLIT[case]
    args = _arguments(shapes, dtype)
    rtol = tolerance(dtype) * (4 if dtype.is_low_precision else 1)  # softmax's exp doubles an ulp
    _, program = assert_matches_eager(fn, *args, rtol=rtol, atol=rtol * _largest(fn, args))
    assert program["numpy_kernels"] == 0 and program["triton_kernels"] >= 1, program
    products = [spec for spec in _specs(fn, *args) if "matmul" in spec.summary()]
    assert products and all(triton_backend.why_not(spec) is None for spec in products)


def test_a_transposed_matrix_is_read_in_place_and_a_stack_is_flattened():
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    buffer, transposed = matrix_argument(matrix.T)
    assert transposed and np.shares_memory(buffer.array, matrix) and buffer.array.flags.c_contiguous
    buffer, transposed = matrix_argument(matrix)
    assert not transposed and buffer.array is matrix
    stack = np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(1, 0, 2)
    buffer, transposed = matrix_argument(stack)
    assert not transposed and buffer.array.flags.c_contiguous and np.array_equal(buffer.array, stack)


def test_integer_products_stay_numpy_kernels_and_say_why():
    fn = lambda x, w: (x @ w) * 2  # noqa: E731
    x = genesis.tensor(np.arange(12).reshape(3, 4))
    w = genesis.tensor(np.arange(8).reshape(4, 2))
    _, program = assert_matches_eager(fn, x, w)
    assert "tl.dot takes float pairs" in " ".join(program["backend_refusals"].values())


def test_tf32_is_the_users_choice_and_part_of_the_programs_key(monkeypatch):
    fn, shapes = FUSED["a bias, then relu"]
    (spec,) = _specs(fn, *_arguments(shapes, genesis.float32))
    assert 'input_precision="ieee"' in triton_backend.render_kernel(spec)
    monkeypatch.setattr(genesis.backends.cuda.matmul, "allow_tf32", True)
    assert 'input_precision="tf32"' in triton_backend.render_kernel(spec)
    (spec64,) = _specs(fn, *_arguments(shapes, genesis.float64))
    assert 'input_precision="ieee"' in triton_backend.render_kernel(spec64)  # TF32 is for fp32 alone


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("case", ["a bias, then relu", "a bias's gradient"])
def test_product_kernels_compile_ahead_of_time_to_ptx_and_cubin(case, dtype):
    fn, shapes = {**FUSED, **SPLIT}[case]
    for spec in _specs(fn, *_arguments(shapes, dtype)):
        for arch in (80, 90):
            compiled = triton_backend.compile_ahead(spec, ("cuda", arch, 32))
            assert len(compiled) == _kernels_in_source(spec)
            for name, kernel in compiled.items():
                assert f".target sm_{arch}" in kernel.asm["ptx"] and f".entry {name}" in kernel.asm["ptx"]
                assert len(kernel.asm["cubin"]) > 0
            if "matmul" in spec.summary():
                mma = "mma" if dtype is not genesis.float32 else "fma"  # fp32 in full precision: no TF32 cores
                assert any(mma in kernel.asm["ptx"] for kernel in compiled.values())
