"""Running compiled C kernels: rows split into one contiguous chunk per thread.

ctypes releases the GIL around a foreign call, so the chunks run on all
cores at once; the first chunk runs in the calling thread. A kernel that
reduces over the rows writes one partial result per chunk (row `i` of each
partials array), which its shim combines in chunk order: the result is the
same on every run with the same thread count.
"""

from __future__ import annotations

import itertools

from genesis.runtime.blocks import THREADS, kernel_pool

# elements a chunk must have before it pays to hand it to another thread. Measured on 2 cores
# (benchmarks/train_step.py): below about 1M elements a second thread loses more to BLAS's threads,
# still spinning after the matmul before, than it gains; above, it halves the time (fusion.py).
GRAIN = 1 << 20


def row_chunks(rows: int, row_elements: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges, one per thread that gets work; none for no rows."""
    if rows <= 0:
        return []
    count = max(1, min(THREADS, rows, rows * max(1, row_elements) // GRAIN))
    bounds = [rows * i // count for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def run_native(function, arrays, partials, chunks) -> None:
    pointers = [array.ctypes.data for array in arrays]
    if len(chunks) == 1:  # the common case for small work: no pool, no per-chunk offsets
        (start, stop), = chunks
        _check(function(*pointers, *[p.ctypes.data for p in partials], start, stop), function)
        return
    calls = []
    for index, (start, stop) in enumerate(chunks):
        rows_of_partials = [p.ctypes.data + index * p.strides[0] for p in partials]
        calls.append((*pointers, *rows_of_partials, start, stop))
    if not calls:
        return
    futures = [kernel_pool().submit(function, *arguments) for arguments in calls[1:]]
    failed = function(*calls[0])
    for future in futures:
        failed |= future.result()
    _check(failed, function)


def _check(failed: int, function) -> None:
    if failed:
        raise MemoryError(f"genesis: C kernel {function.__name__} could not allocate its scratch buffers")
