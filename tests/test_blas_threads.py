"""OpenBLAS's parallel jobs on genesis's C thread pool (runtime/blas.py, templates/c_pool.c.j2):
products come out bit for bit as with OpenBLAS's own threads, they run on the pool, and they finish
however many jobs OpenBLAS makes and whoever else calls at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from genesis.compiler import native
from genesis.runtime import blas


@pytest.fixture
def pool():
    """The pool with OpenBLAS's jobs on it (GENESIS_BLAS_THREADS=pool), given back afterwards."""
    library = native.thread_pool()
    if library is None or not blas.share_threads(library.blas_callback):
        pytest.skip("no C thread pool here, or numpy's BLAS is not an OpenBLAS with a threads callback (0.3.27+)")
    yield library
    blas.share_threads(library.blas_callback if library.blas_libraries else None)  # as the pool left it


def operands(m=512, k=384, n=448, seed=0):
    rng = np.random.default_rng(seed)  # big enough that OpenBLAS splits the product into jobs
    return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)


def test_products_run_on_the_pool_bit_for_bit(pool):
    a, b = operands()
    before = pool.blas_calls()
    on_pool = a @ b
    assert pool.blas_calls() > before  # OpenBLAS handed its jobs to the pool
    assert blas.share_threads(None)  # OpenBLAS's own threads again
    calls = pool.blas_calls()
    own_threads = a @ b
    assert pool.blas_calls() == calls
    np.testing.assert_array_equal(on_pool, own_threads)  # the same jobs, so the same bits
    np.testing.assert_allclose(on_pool, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_concurrent_products_and_kernels_all_finish(pool):
    import genesis

    a, b = operands()
    expected = a @ b
    x = genesis.tensor(np.random.default_rng(3).standard_normal((1024, 512), dtype=np.float32))
    kernel = genesis.compile(lambda x: (x * 2).tanh().sum(dim=1), backend="c")
    expected_kernel = kernel(x).numpy()
    results, errors = [], []

    def products():
        try:
            results.extend(np.array_equal(a @ b, expected) for _ in range(10))
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=products) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(10):  # meanwhile, a kernel that splits its rows over the pool
        np.testing.assert_array_equal(kernel(x).numpy(), expected_kernel)
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a product waiting for the pool never finished"
    assert not errors and results == [True] * 30


MORE_JOBS_THAN_THREADS = """
import os
os.environ["GENESIS_BLAS_THREADS"] = "pool"
import numpy as np
from genesis.compiler import native
from genesis.runtime import blas
pool = native.thread_pool()
assert pool.blas_libraries, "no OpenBLAS took the callback"
rng = np.random.default_rng(0)
a, b = rng.standard_normal((512, 384), dtype=np.float32), rng.standard_normal((384, 448), dtype=np.float32)
calls = pool.blas_calls()
on_pool = a @ b
assert pool.blas_calls() > calls
blas.share_threads(None)
assert np.array_equal(on_pool, a @ b)
print("ok")
"""


def test_openblas_may_make_more_jobs_than_genesis_has_threads(pool, tmp_path):
    """Jobs of one product wait for each other: with one genesis thread and OpenBLAS's several jobs
    (as many as the cores, up to three), the pool must still run them all at once, each on a thread
    of its own; run one after another, the first would wait forever."""
    env = dict(os.environ, GENESIS_NUM_THREADS="1", OPENBLAS_NUM_THREADS="3")
    done = subprocess.run(
        [sys.executable, "-c", MORE_JOBS_THAN_THREADS], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


KEPT = """
import numpy as np
from genesis.compiler import native
pool = native.thread_pool()
a = np.ones((512, 384), np.float32)
a @ a.T
print(len(pool.blas_libraries), pool.blas_calls())
"""


@pytest.mark.parametrize("setting, on_pool", [(None, False), ("openblas", False), ("pool", True)])
def test_openblas_keeps_its_threads_unless_asked(pool, setting, on_pool):
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_BLAS_THREADS"}
    if setting is not None:
        env["GENESIS_BLAS_THREADS"] = setting
    done = subprocess.run([sys.executable, "-c", KEPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    libraries, calls = map(int, done.stdout.split())
    assert (libraries > 0 and calls > 0) is on_pool and (libraries == calls == 0) is not on_pool


def test_a_forked_child_runs_products_on_its_own_pool(pool):
    """A DataLoader worker is a forked child: the callback stays installed, and the child's pool
    starts workers of its own (the parent's stayed with the parent)."""
    import multiprocessing

    a, b = operands()
    expected = a @ b  # the parent's pool has started its workers
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=lambda: sender.send((a @ b, pool.blas_calls())))  # forked: nothing pickled
    calls = pool.blas_calls()
    child.start()
    assert receiver.poll(120), "the child's product did not finish"
    product, child_calls = receiver.recv()
    child.join(timeout=60)
    np.testing.assert_array_equal(product, expected)
    assert child_calls > calls  # its jobs ran on its own pool


def test_a_failing_blas_lookup_leaves_openblas_alone_with_a_warning(monkeypatch):
    class Broken:
        def select(self, **_):
            raise RuntimeError("no libraries to inspect")

    monkeypatch.setattr(blas, "ThreadpoolController", Broken)
    with pytest.warns(UserWarning, match="OpenBLAS keeps its own threads"):
        assert blas.share_threads(None) == []
