"""numpy's OpenBLAS as genesis's products use it (ops/gemm.py): its gemm, and its threads put down.

genesis's C thread pool runs float products as items of single-threaded gemm calls, so the one set
of threads serves products and kernels alike. This module finds numpy's OpenBLAS (`threadpoolctl`
lists every OpenBLAS in the process: numpy's, scipy's; each names its symbols with its own prefix
and suffix), the addresses of its row-major `cblas_sgemm`/`cblas_dgemm` and whether they take
64-bit integers, and sets every OpenBLAS to one thread once the pool takes the products: OpenBLAS's
threads poll for the next product for about 0.1 s after each one, holding a core that the kernels
after the product need (a CNN step's im2col, col2im and batch-norm kernels ran at the speed of one
core). OpenBLAS 0.3.27's `openblas_set_threads_callback_function`, which runs a product's jobs on
another pool, was tried first: those jobs wait on each other, so they must run at once, and with a
busy neighbour process a stack of small products took 237 ms against 7 on OpenBLAS's threads.

`GENESIS_GEMM=numpy` leaves products to numpy's matmul and OpenBLAS its threads.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

# how an OpenBLAS build names its symbols: plain, or scipy-openblas's prefixed and suffixed
_AFFIXES = tuple(itertools.product(("", "scipy_"), ("", "64_", "_64")))


@functools.cache
def products_on_pool() -> bool:
    """Whether genesis's pool runs float products (ops/gemm.py), OpenBLAS then on one thread;
    `GENESIS_GEMM=numpy` (read once) leaves them to numpy's matmul and OpenBLAS's threads."""
    return os.environ.get("GENESIS_GEMM", "pool").strip().lower() != "numpy"


_NUMPY_HOME = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))


@dataclass(frozen=True)
class Gemm:
    """The row-major cblas gemm of numpy's OpenBLAS: the addresses of its float32 and float64
    versions, and whether their integer arguments are 64-bit (an ILP64 build)."""

    sgemm: int
    dgemm: int
    ilp64: bool

    def address(self, dtype) -> int:
        """The gemm for arrays of `dtype` (float32 or float64)."""
        return self.sgemm if np.dtype(dtype) == np.float32 else self.dgemm


@functools.cache
def gemm() -> Gemm | None:
    """The gemm of numpy's own OpenBLAS (scipy and others load OpenBLASes of their own); None where
    numpy's BLAS is not an OpenBLAS (MKL, Accelerate) or its symbols cannot be found."""
    path = gemm_library()
    return None if path is None else _gemm_in(path)


@functools.cache
def gemm_library() -> str | None:
    """The path of numpy's OpenBLAS: the one installed beside numpy (a wheel's numpy.libs), else the
    only one there is."""
    try:
        controllers = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:  # noqa: BLE001  (an optimisation: numpy's matmul remains)
        return None
    beside_numpy = [c for c in controllers if os.path.abspath(c.filepath).startswith(_NUMPY_HOME + os.sep)]
    for controller in beside_numpy or controllers[:1]:
        if _gemm_in(controller.filepath) is not None:
            return controller.filepath
    return None


def _gemm_in(path: str) -> Gemm | None:
    try:
        library = ctypes.CDLL(path)  # already loaded: the same handle
    except OSError:
        return None
    for prefix, suffix in _AFFIXES:
        sgemm = getattr(library, f"{prefix}cblas_sgemm{suffix}", None)
        dgemm = getattr(library, f"{prefix}cblas_dgemm{suffix}", None)
        config = getattr(library, f"{prefix}openblas_get_config{suffix}", None)
        if sgemm is None or dgemm is None or config is None:
            continue
        config.restype = ctypes.c_char_p
        address = lambda f: ctypes.cast(f, ctypes.c_void_p).value  # noqa: E731
        return Gemm(address(sgemm), address(dgemm), b"USE64BITINT" in (config() or b""))
    return None


@functools.cache
def one_thread() -> None:
    """Every loaded OpenBLAS on one thread, once genesis's pool runs the products: its own threads
    would otherwise poll for about 0.1 s after each product, holding the cores that the kernels
    after it need. numpy's products outside genesis run on one core from then on."""
    try:
        for controller in ThreadpoolController().select(internal_api="openblas").lib_controllers:
            controller.set_num_threads(1)
    except Exception as error:  # noqa: BLE001  (an optimisation: never lose the user's run to it)
        warnings.warn(f"genesis: OpenBLAS keeps its own threads ({error!r})", stacklevel=2)
