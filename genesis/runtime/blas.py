"""OpenBLAS's parallel work on genesis's C thread pool, so one set of threads serves both.

numpy's matmul is OpenBLAS's, which has threads of its own: after a product they poll for the next
one for about 0.1 s before they sleep, so a C kernel that follows a product and splits its rows
over the cores finds one of them taken (on 2 cores it ran at the speed of one). OpenBLAS 0.3.27+
lets a program run its parallel jobs instead (`openblas_set_threads_callback_function`): genesis
hands it `g_blas_threads` of its C thread pool (templates/c_pool.c.j2) once the pool is loaded.
The jobs and their partition are OpenBLAS's, so products are bit for bit what they were; only the
threads that run them change. Every OpenBLAS loaded in the process takes the callback (numpy's and
scipy's ship their own); `threadpoolctl` finds them, whatever their symbols' prefix and suffix.

It is opt-in: `GENESIS_BLAS_THREADS=pool`. A product's jobs wait for each other's packed panels,
spinning, so they must run on distinct cores at once; when another process keeps a core busy, two
jobs share one and each waits out the other's time slice. A stack of 64 products of 64x256 by
256x288 took 100 ms with a busy-looping process beside it, against 7 ms on OpenBLAS's own threads
(3.8 ms on an idle machine either way). On a machine of its own the pool makes compiled steps about
15% faster (MLP 784-1024-1024-10 b256 14.0 -> 12.1 ms, the transformer block 23.0 -> 19.9 ms);
a data-parallel job with a rank per core, or any neighbour, would pay the slowdown instead.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import warnings

from threadpoolctl import ThreadpoolController

# the setter's name in each OpenBLAS build: plain, or scipy-openblas's prefixed and suffixed one
_SETTER = "openblas_set_threads_callback_function"
_AFFIXES = tuple(itertools.product(("", "scipy_"), ("", "64_", "_64")))


def wanted() -> bool:
    return os.environ.get("GENESIS_BLAS_THREADS", "openblas").strip().lower() == "pool"


def share_threads(callback: int | None) -> list[str]:
    """Hand every loaded OpenBLAS `callback` (an address; None gives OpenBLAS its own threads back);
    the paths of the libraries that took it (an OpenBLAS before 0.3.27 has no setter and keeps its
    threads)."""
    try:
        controllers = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception as error:  # noqa: BLE001  (an optimisation: never lose the user's run to it)
        warnings.warn(f"genesis: OpenBLAS keeps its own threads ({error!r})", stacklevel=2)
        return []
    taken = []
    for controller in controllers:
        setter = _setter(controller.filepath)
        if setter is not None:
            setter(callback)
            taken.append(controller.filepath)
    return taken


def _setter(path: str):
    try:
        library = ctypes.CDLL(path)  # already loaded: the same handle, not a second copy
    except OSError:
        return None
    for prefix, suffix in _AFFIXES:
        setter = getattr(library, f"{prefix}{_SETTER}{suffix}", None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_void_p], None
            return setter
    return None
