"""Running compiled C kernels: rows split into contiguous chunks that the threads share.

A kernel's chunks run on genesis's C thread pool (`g_pool_run`, built from
templates/c_pool.c.j2): one foreign call, during which the calling thread and
the pool's workers take chunks as they come free, without the GIL. Where that
pool cannot be built, Python's threads share the chunks instead (ctypes
releases the GIL around each call). A kernel that reduces over the rows
writes one partial result per chunk (row `i` of each partials array), which
its shim combines in chunk order: the result does not depend on which thread
ran which chunk.
"""

from __future__ import annotations

import ctypes
import itertools

from genesis.runtime import blas
from genesis.runtime.blocks import THREADS, kernel_pool

# elements a chunk must have before it pays to hand it to another thread. Measured on 2 cores
# (benchmarks/before_after.py, interleaved): 128K, with products on the pool (ops/gemm.py). Where
# numpy's OpenBLAS keeps its own threads (GENESIS_GEMM=numpy), they poll for about 0.1 s after a
# product and hold a core, so small kernels after one do better on one thread: 1M (the MLP b256's
# compiled step 14.1 -> 13.2 ms, the transformer block's 23.5 -> 22.6 ms against 128K).
GRAIN = 1 << 17 if blas.products_on_pool() else 1 << 20


# Big work splits into up to this many chunks per thread, which the threads take as they come free:
# a core that a neighbour slows down then takes fewer, instead of holding up the kernel.
CHUNKS_PER_THREAD = 4


def row_chunks(rows: int, row_elements: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at least GRAIN elements each (but one at least); none for no rows."""
    if rows <= 0:
        return []
    count = max(1, min(THREADS * CHUNKS_PER_THREAD, rows, rows * max(1, row_elements) // GRAIN))
    if count > 1:  # a multiple of the threads: 3 chunks on 2 threads take the time of 2 (a 512 x 1000 softmax)
        count = min(rows, -(-count // THREADS) * THREADS)
    bounds = [rows * i // count for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def address(array) -> int:
    """Where an array's data starts. A training step passes a couple of hundred arrays to its
    kernels: through the buffer protocol this costs 0.2 us, against 0.8 for `.ctypes.data`, which
    remains for what the protocol refuses (read-only, strided or empty arrays)."""
    try:
        return _addressof(_char.from_buffer(array))
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data


_addressof, _char = ctypes.addressof, ctypes.c_char


def run_native(function, arrays, partials, chunks, chunk_entry=None, *, check=True) -> bool:
    """Run `function` over `chunks` of rows; `chunk_entry`: its `_chunk` function's address, for the
    pool. A chunk that returns nonzero fails the run: a generated kernel's scratch could not be
    allocated (MemoryError), or, with `check=False`, the caller names the failure (a hand-written
    kernel that met an index out of range): whether one did is returned."""
    check_ = _check if check else _failed
    pointers = [address(array) for array in arrays]
    if len(chunks) == 1:  # the common case for small work: no pool, no per-chunk offsets
        ((start, stop),) = chunks
        return check_(function(*pointers, *[address(p) for p in partials], start, stop), function)
    pool = _c_pool() if chunk_entry is not None else None
    if pool is not None:
        arguments = (ctypes.c_void_p * (len(pointers) + len(partials)))(*pointers, *map(address, partials))
        bounds = (ctypes.c_int64 * (len(chunks) + 1))(*(start for start, _ in chunks), chunks[-1][1])
        return check_(pool.run(chunk_entry, arguments, bounds, len(chunks), THREADS), function)
    calls = []
    for index, (start, stop) in enumerate(chunks):
        rows_of_partials = [address(p) + index * p.strides[0] for p in partials]
        calls.append((*pointers, *rows_of_partials, start, stop))
    pending = iter(calls)  # next() on a shared iterator is atomic under the GIL
    failed = []

    def work():
        for arguments in pending:
            failed.append(function(*arguments))

    helpers = [kernel_pool().submit(work) for _ in range(min(THREADS, len(calls)) - 1)]
    work()
    for helper in helpers:
        helper.result()
    return check_(any(failed), function)


def provide_thread_pool(provider) -> None:
    """How to get the C thread pool (`provider()`: its library, or None where it cannot be had). The
    compiler's C toolchain, which builds it, hands it down (compiler/native.py); until then, and
    where it gives None, kernels share their chunks through Python's threads."""
    global _pool_provider
    _pool_provider = provider


def provide_library_builder(builder) -> None:
    """How to build hand-written C kernels (ops/native/*.c): `builder(source, signatures)` gives the
    loaded library (`signatures`: each function's argument codes, as a program's kernels have), or
    None where none can be built. The compiler's C toolchain hands it down with the thread pool;
    until then, and where it gives None, the ops run their numpy kernels."""
    global _library_builder
    _library_builder = builder


def build_library(source: str, signatures: dict):
    return None if _library_builder is None else _library_builder(source, signatures)


_library_builder = None


def pool_address() -> int:
    """The address of the C pool's `g_pool_run`, for C code that hands chunks of its own to the pool
    (ops/native/gemm.c); 0 where there is no pool."""
    pool = _c_pool()
    return 0 if pool is None else ctypes.cast(pool.run, ctypes.c_void_p).value


def _c_pool():
    global _pool_library
    if _pool_library is _UNLOADED:
        _pool_library = _pool_provider() if _pool_provider is not None else None
    return _pool_library


_UNLOADED = object()
_pool_library = _UNLOADED
_pool_provider = None


def _check(failed: int, function) -> bool:
    if failed:
        raise MemoryError(f"genesis: C kernel {function.__name__} could not allocate its scratch buffers")
    return False


def _failed(failed: int, function) -> bool:
    return bool(failed)
