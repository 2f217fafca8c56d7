"""The loop that every generated numpy kernel runs: blocks of rows, on a small thread pool.

A kernel hands `run_blocks` its per-block function and the shapes of the
scratch buffers one block needs. Blocks go round-robin to the threads (numpy
releases the GIL inside its ufuncs, so two threads use two cores), and each
thread allocates its own scratch once and reuses it for all its blocks, so a
block's temporaries stay in cache. A block also gets its index, so partial
results of a reduction over the rows can be combined in a fixed order: the
result does not depend on which thread finished first.

`GENESIS_NUM_THREADS` sets the thread count (default: the CPU count, at most 8).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _thread_count() -> int:
    configured = os.environ.get("GENESIS_NUM_THREADS")
    if configured:
        return max(1, int(configured))
    return max(1, min(8, os.cpu_count() or 1))


THREADS = _thread_count()
MIN_BLOCKS_TO_SHARE = 8  # measured: below 512K elements, one thread is as fast (benchmarks/train_step.py)
_pool: ThreadPoolExecutor | None = None


def kernel_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="genesis-kernel")
    return _pool


def blocks_in(rows: int, block_rows: int) -> int:
    return max(1, -(-rows // block_rows))


def _make_scratch(specs):
    return [np.empty(shape, dtype) for shape, dtype in specs]


def run_blocks(block, rows: int, block_rows: int, scratch_specs) -> None:
    count = blocks_in(rows, block_rows)
    # a few blocks run in the calling thread: handing them to the pool costs more than it saves, and
    # the threads would contend with BLAS's own, still spinning after the matmul before them
    threads = min(THREADS, count) if count >= MIN_BLOCKS_TO_SHARE else 1
    if threads <= 1:
        scratch = _make_scratch(scratch_specs)
        for index in range(count):
            block(index * block_rows, min(rows, (index + 1) * block_rows), scratch, index)
        return

    def worker(first: int) -> None:
        scratch = _make_scratch(scratch_specs)
        for index in range(first, count, threads):
            block(index * block_rows, min(rows, (index + 1) * block_rows), scratch, index)

    futures = [kernel_pool().submit(worker, t) for t in range(threads)]
    for future in futures:
        future.result()  # re-raises a block's exception here


def in_parts(work, size: int, parts: int) -> None:
    """`work(lo, hi)` over `parts` contiguous ranges of range(size): the first on the calling thread,
    the others on the kernel pool's threads (numpy releases the GIL inside ufuncs and matmul); returns
    once every part has run, raising a part's error here."""
    edges = [size * i // parts for i in range(parts + 1)]
    futures = [kernel_pool().submit(work, lo, hi) for lo, hi in zip(edges[1:-1], edges[2:])]
    work(edges[0], edges[1])
    for future in futures:
        future.result()


def slow_ufunc_in_parts(ufunc, x: np.ndarray, min_elements: int = 1 << 14) -> np.ndarray:
    """`ufunc(x)` for a ufunc slow per element (scipy's erf: 15 ns, 30x numpy's exp), in parts on
    every core (an erf of 256K float32: 3.96 -> 2.07 ms on 2 cores). Each element is the same call:
    the same bits."""
    parts = min(THREADS, x.size // min_elements)
    if parts < 2:
        return ufunc(x)
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, ufunc.resolve_dtypes((x.dtype, None))[-1])
    flat, flat_out = x.reshape(-1), out.reshape(-1)
    in_parts(lambda lo, hi: ufunc(flat[lo:hi], out=flat_out[lo:hi]), x.size, parts)
    return out


def round_to(values: np.ndarray, low_precision) -> np.ndarray:
    """Round fp32 values to fp16/bf16 and back, in place: what eager does when it stores the value."""
    np.copyto(values, values.astype(low_precision))
    return values


def combine(partials, ufunc):
    """Fold the blocks' partial results in block order (so the sum is the same on every run)."""
    total = partials[0]
    for part in partials[1:]:
        ufunc(total, part, out=total)
    return total
