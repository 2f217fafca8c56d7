"""Buffers for compiled programs: a caching allocator, and reuse of dead values' buffers.

A fresh numpy array of a few megabytes costs its size in page faults on first
write (the C library returns large blocks to the OS when they are freed), and
a training step allocates the same sizes every call. `empty` keeps freed
blocks and hands them out again: a block is free when nothing but the pool
refers to it any more (every array the program or the user made from it has
been dropped; CPython's reference counts say so exactly). The pool keeps at
most `MAX_PER_SIZE` blocks of one size and `MAX_BYTES` in all.

Within one call, the memory plan also reuses the block of a value whose last
reader has run (`reuse`), so activations are freed as soon as the backward
has used them.

Most arrays do not come from the pool: numpy's results in eager mode, BLAS
results, contiguous copies. glibc's malloc serves each large one with a fresh
`mmap` and unmaps it when freed (or trims the heap's top), so the next step's
array of the same size faults its pages in again: about 2.5 microseconds per
4 KB page, 1,500 faults per step of the compiled transformer block in
benchmarks/train_step.py. `keep_freed_memory`, called once when genesis is
imported, tells malloc to serve large blocks from its heap and keep freed
memory for reuse; the process's resident size then stays at its peak.
`GENESIS_KEEP_FREED_MEMORY=0` keeps the C library's defaults.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading

import numpy as np

MAX_PER_SIZE = 8
POOLED_FROM = 1 << 16  # bytes: smaller arrays come from numpy's own allocator, which is fast and faults little
# pooled blocks start on a cache line: a misaligned 64-byte vector load or store straddles two lines
# (measured on layer_norm's C kernel: 0.53 ms with both arrays 16 bytes off a line, 0.49 aligned)
ALIGNMENT = 64
MAX_BYTES = 1 << 31
_FREE_WHEN_REFS = 3  # the pool's entry, the loop variable, and getrefcount's own argument

_blocks: dict[int, list] = {}
_total = 0
_lock = threading.Lock()


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, carved from a free pooled block of the same byte size when there is one."""
    global _total
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes < POOLED_FROM:
        return np.empty(shape, dtype)
    with _lock:
        blocks = _blocks.setdefault(nbytes, [])  # (block, offset of its first aligned byte)
        for block, start in blocks:
            if sys.getrefcount(block) == _FREE_WHEN_REFS:
                return block[start : start + nbytes].view(dtype).reshape(shape)
        block, start = _new_block(nbytes)
        if len(blocks) < MAX_PER_SIZE and _total + nbytes <= MAX_BYTES:
            blocks.append((block, start))
            _total += nbytes
    return block[start : start + nbytes].view(dtype).reshape(shape)


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array (not pooled) that starts on a cache line when it is big: what
    genesis.tensor copies data into, so compiled kernels read a user's inputs with aligned loads."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOLED_FROM:
        return np.empty(shape, dtype)
    block, start = _new_block(nbytes)
    return block[start : start + nbytes].view(dtype).reshape(shape)


def _new_block(nbytes: int) -> tuple[np.ndarray, int]:
    """Raw bytes with room to start `nbytes` on a cache line, and where they start. Arrays carved
    from it are views whose base is the block itself, so the block's reference count still says
    when every one of them is gone (computed once: `.ctypes.data` costs a microsecond)."""
    block = np.empty(nbytes + ALIGNMENT, np.uint8)
    return block, -block.ctypes.data % ALIGNMENT


def clear() -> None:
    """Drop every pooled block (the arrays in use keep theirs)."""
    global _total
    with _lock:
        _blocks.clear()
        _total = 0


# glibc's mallopt parameters (<malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# blocks up to this size come from the heap (larger ones are rare and big enough that faulting them
# in costs little next to using them); the heap's free top is never returned to the OS
_HEAP_UP_TO = 1 << 30
_NEVER_TRIM = (1 << 31) - 1


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS (see the
    module's docstring). False where it did not: another C library, or GENESIS_KEEP_FREED_MEMORY=0."""
    if os.environ.get("GENESIS_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc's; musl and others have other knobs)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, _HEAP_UP_TO)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))


def reuse(buffer: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """The first bytes of a dead value's contiguous buffer, seen as a new shape and dtype."""
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    raw = buffer.reshape(-1).view(np.uint8)
    return raw[: count * dtype.itemsize].view(dtype).reshape(shape)
