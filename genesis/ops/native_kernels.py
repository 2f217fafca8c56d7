"""Hand-written C kernels for opaque ops whose numpy kernels make many passes (ops/native/*.c).

An opaque op's kernel (im2col, col2im, max-pooling's positions, gather, scatter_add) serves eager
mode and compiled programs alike (a program calls it as a library call), so one C version of it
speeds up both. The C source sits next to the ops; the compiler's C toolchain, above the ops,
builds it once per machine into the kernel cache and hands the builder down
(`runtime.native.provide_library_builder`). Where no library can be had (no C compiler and
nothing cached) or for dtypes the C source does not cover, the op runs its numpy kernel: both give
the same bits, which tests/test_native_kernels.py checks.

The kernels split their work into rows (image planes, or outer indices) that write disjoint parts
of the output, and the rows run in chunks on the C thread pool like a generated kernel's.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from genesis.ops.op import HELPERS
from genesis.runtime import blas
from genesis.runtime import native as runtime_native

SOURCES = Path(__file__).resolve().parent / "native"
# what the helpers assume included (the generated programs' template includes the same)
PREAMBLE = "#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n"
# the dtypes each source instantiates its kernels for, by the suffix their names take
SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class NativeKernels:
    """The kernels of one C source file: `functions` maps each kernel's stem (`g_im2col`) to its
    argument codes ("p" a pointer, "i" an int64), the same for every dtype suffix. `headers`: files
    of ops/native whose text goes first (blas_call.h, for kernels that call the BLAS's gemm);
    `helpers`: files of ops/helpers that the generated kernels share (exp.h's inline exp)."""

    def __init__(
        self, filename: str, functions: dict[str, str], headers: tuple[str, ...] = (), helpers: tuple[str, ...] = ()
    ):
        self.paths = [*(SOURCES / name for name in headers), *(HELPERS / name for name in helpers), SOURCES / filename]
        self.functions = functions
        self.enabled = True  # tests turn it off to run the numpy kernels
        self._library = None
        self._loaded = False
        self._lock = threading.Lock()

    def library(self):
        if not self.enabled:
            return None
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    signatures = {
                        f"{stem}_{suffix}": codes
                        for stem, codes in self.functions.items()
                        for suffix in SUFFIXES.values()
                    }
                    source = "\n".join([PREAMBLE, *(path.read_text() for path in self.paths)])
                    self._library = runtime_native.build_library(source, signatures)
                    self._loaded = True
        return self._library

    def kernel(self, stem: str, dtype):
        """The C kernel `stem` for arrays of `dtype`, and its thread-pool entry; None where it cannot run."""
        suffix = SUFFIXES.get(np.dtype(dtype))
        library = self.library() if suffix is not None else None
        if library is None:
            return None
        name = f"{stem}_{suffix}"
        return getattr(library, name), getattr(library, f"{name}_chunk")


def with_gemm(kernels: NativeKernels, stem: str, dtype):
    """(the C kernel `stem` for `dtype`, numpy's OpenBLAS gemm) for a kernel that makes products on
    the pool's threads, OpenBLAS then set to one thread; None where either cannot be had or the pool
    does not take products (GENESIS_GEMM=numpy)."""
    if not blas.products_on_pool():
        return None
    kernel = kernels.kernel(stem, dtype)
    gemm = blas.gemm() if kernel is not None else None
    if gemm is None:
        return None
    blas.one_thread()
    return kernel, gemm


def run(kernel, arrays, rows: int, row_elements: int, *, check: bool = True) -> bool:
    """Run a kernel (from `NativeKernels.kernel`) over `rows` rows of about `row_elements` elements.
    A row that fails raises MemoryError (its scratch), or with `check=False` makes the result True:
    the kernel's own check failed, and the caller says what was wrong."""
    if rows <= 0:
        return False
    function, entry = kernel
    chunks = runtime_native.row_chunks(rows, row_elements)
    return runtime_native.run_native(function, arrays, (), chunks, entry, check=check)


def geometry(*sizes) -> np.ndarray:
    """The sizes a kernel reads, as its int64 array argument."""
    return np.array(sizes, np.int64)
