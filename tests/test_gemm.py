"""Float products on genesis's C thread pool (ops/gemm.py, ops/native/gemm.c): the layouts BLAS reads in
place, stacks and broadcast batches, results into a given buffer, the same bits in eager mode and in a
compiled program, OpenBLAS put down to one thread, and products that run at once from several threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import genesis
from genesis.ops import gemm
from genesis.ops.matmul import matmul_kernel


def _operand(rng, shape, dtype, transposed):
    """A matrix (or stack) of `shape`, held transposed (a view whose columns are contiguous) if asked."""
    if not transposed:
        return rng.standard_normal(shape).astype(dtype)
    swapped = shape[:-2] + (shape[-1], shape[-2])
    return np.swapaxes(rng.standard_normal(swapped).astype(dtype), -1, -2)


def _check(product, a, b):
    """Against a float64 product: float32 rounds each of K products and sums, so the error grows with K."""
    k = a.shape[-1]
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    eps = np.finfo(a.dtype).eps
    scale = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    assert product.shape == exact.shape
    assert np.all(np.abs(product - exact) <= 4 * k * eps * scale + 1e-30)


CASES = [
    ((64, 300), (300, 200)),  # columns cut
    ((700, 96), (96, 64)),  # rows cut
    ((8, 64, 96), (8, 96, 80)),  # a stack: one item per matrix
    ((4, 1, 64, 64), (3, 64, 96)),  # broadcast batch dims
    ((2, 3, 40, 50), (50, 600)),  # a stack times one matrix (one product over the stack's rows)
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("b_transposed", [False, True])
@pytest.mark.parametrize(("a_shape", "b_shape"), CASES)
def test_products_match_float64(a_shape, b_shape, a_transposed, b_transposed, dtype):
    rng = np.random.default_rng(0)
    a = _operand(rng, a_shape, dtype, a_transposed)
    b = _operand(rng, b_shape, dtype, b_transposed)
    if len(b_shape) > 2 or len(a_shape) == 2:
        assert gemm.product(a, b) is not None  # the pool takes it (big enough, BLAS-readable layouts)
    _check(matmul_kernel(a, b), a, b)


def test_a_given_buffer_with_strided_rows_and_strided_operands():
    rng = np.random.default_rng(1)
    wide = rng.standard_normal((96, 400)).astype(np.float32)
    a = wide[:, 10:210]  # rows 400 apart: BLAS reads it in place with lda 400
    b = rng.standard_normal((200, 300)).astype(np.float32)[:, ::2]  # every other column: copied first
    out_wide = np.full((96, 500), np.nan, np.float32)
    out = out_wide[:, 100:250]
    assert gemm.product(a, b, out) is out
    _check(out, a, b)
    assert np.isnan(out_wide[:, :100]).all() and np.isnan(out_wide[:, 250:]).all()  # nothing else written


def test_a_layout_decided_once_serves_every_later_call_with_its_own_arrays():
    rng = np.random.default_rng(2)
    for _ in range(3):  # the same layouts each time: a copy of the strided b, a fresh result, a given one
        a = rng.standard_normal((96, 200)).astype(np.float32)
        b = rng.standard_normal((200, 300)).astype(np.float32)[:, ::2]
        _check(gemm.product(a, b), a, b)
        out = np.empty((96, 150), np.float32)
        assert gemm.product(a, b, out) is out
        _check(out, a, b)
        assert gemm.product(a.astype(np.int64), b.astype(np.int64)) is None  # declined, every time


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.ones((64, 64), np.int64), np.ones((64, 64), np.int64)),  # integers: numpy's matmul
        (np.ones((64, 64), np.float16), np.ones((64, 64), np.float16)),  # no half-precision gemm here
        (np.ones((300,), np.float32), np.ones((300, 300), np.float32)),  # a vector
        (np.ones((8, 8), np.float32), np.ones((8, 8), np.float32)),  # too small to share
        (np.ones((64, 0), np.float32), np.ones((0, 64), np.float32)),  # nothing to sum
    ],
)
def test_what_the_pool_does_not_take_is_numpys(a, b):
    assert gemm.product(a, b) is None
    np.testing.assert_array_equal(matmul_kernel(a, b), np.matmul(a, b))


def test_eager_and_compiled_give_the_same_bits():
    """Both run matmul_kernel on the same layouts, and a product is cut by its shapes alone."""
    genesis.manual_seed(0)
    layer = genesis.nn.Linear(300, 200)
    x = genesis.randn(64, 300)
    compiled = genesis.compile(lambda x: layer(x).relu(), backend="c")
    with genesis.no_grad():
        eager = layer(x).relu().numpy()
        np.testing.assert_array_equal(compiled(x).numpy(), eager)
        np.testing.assert_array_equal(compiled(x).numpy(), eager)


def test_products_and_kernels_from_several_threads_all_finish():
    """A thread that finds the pool busy runs its items itself; every result stays right."""
    rng = np.random.default_rng(2)
    pairs = [(rng.standard_normal((128, 256), dtype=np.float32), rng.standard_normal((256, 512), dtype=np.float32))]
    pairs.append((rng.standard_normal((512, 64), dtype=np.float32), rng.standard_normal((64, 384), dtype=np.float32)))
    expected = [gemm.product(a, b).copy() for a, b in pairs]
    x = genesis.tensor(rng.standard_normal((1024, 512), dtype=np.float32))
    kernel = genesis.compile(lambda x: (x * 2).tanh().sum(dim=1), backend="c")
    expected_kernel = kernel(x).numpy()
    failures = []

    def work(index):
        try:
            for _ in range(20):
                a, b = pairs[index % 2]
                if not np.array_equal(gemm.product(a, b), expected[index % 2]):
                    failures.append(f"product {index}")
                if index == 0 and not np.array_equal(kernel(x).numpy(), expected_kernel):
                    failures.append("kernel")
        except Exception as error:  # noqa: BLE001  (reported below)
            failures.append(repr(error))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a product never finished"
    assert failures == []


_THREADS_AFTER_A_PRODUCT = """
import numpy as np
from threadpoolctl import ThreadpoolController
import genesis
from genesis.runtime import blas
a = np.ones((256, 256), np.float32)
(genesis.tensor(a) @ genesis.tensor(a)).numpy()
path = blas.gemm_library()
print([c.num_threads for c in ThreadpoolController().select(internal_api="openblas").lib_controllers
       if c.filepath == path][0])
"""


@pytest.mark.parametrize("setting", ["pool", "numpy"])
def test_openblas_runs_on_one_thread_once_the_pool_takes_products(setting):
    env = dict(os.environ, GENESIS_GEMM=setting, OPENBLAS_NUM_THREADS="2")
    result = subprocess.run(
        [sys.executable, "-c", _THREADS_AFTER_A_PRODUCT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    threads = int(result.stdout.split()[-1])
    assert threads == (1 if setting == "pool" else 2)


def test_a_32_bit_blas_is_not_handed_sizes_past_its_integers(monkeypatch):
    """A BLAS built with 32-bit integers (a distribution's libopenblas) gets numpy's path for sizes
    past 2^31; the plan is made from shapes and strides alone, so none is allocated here."""
    from genesis.runtime import blas

    real = blas.gemm()
    assert real is not None
    monkeypatch.setattr(blas, "gemm", lambda: blas.Gemm(real.sgemm, real.dgemm, ilp64=False))
    gemm._plan.cache_clear()
    try:
        f32 = np.dtype(np.float32)
        huge = gemm._plan((64, 1 << 31), (1 << 33, 4), (1 << 31, 64), (256, 4), None, f32)
        assert huge is None
        assert gemm._plan((64, 300), (1200, 4), (300, 200), (800, 4), None, f32) is not None
    finally:
        gemm._plan.cache_clear()
