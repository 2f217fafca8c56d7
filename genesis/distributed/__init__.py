"""`genesis.distributed`: data-parallel training across processes, with PyTorch's names.

    genesis.distributed.init_process_group("mpi")      # rank and world size from mpiexec
    model = genesis.nn.parallel.DistributedDataParallel(model)
    sampler = genesis.utils.data.DistributedSampler(dataset)

Launch with `python -m genesis.distributed.run -n 2 script.py` or plain `mpiexec -n 2 python
script.py`. The engine is MPI through mpi4py (runtime/collectives.py); "gloo", PyTorch's CPU
backend, is taken as a name for it, so a ported CPU script runs as it is; tensors on a CUDA device
travel through host memory (as gloo's do). The collectives are ops
of the table (ops/collective.py): eagerly they run at once (or, with `async_op=True`, on the
communication thread until `wait()`), and in a compiled step they are graph nodes.

As in PyTorch, the collectives write their result into the tensor they are given and are not
recorded by autograd.
"""

from __future__ import annotations

import datetime
import enum
import os

from genesis import dispatch
from genesis import functional as F
from genesis.grad_mode import no_grad
from genesis.ops import collective
from genesis.runtime import collectives
from genesis.runtime.collectives import CollectiveTimeout, DistributedError
from genesis.tensor import Tensor

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # PyTorch's default for its CPU backend
TIMEOUT_VARIABLE = "GENESIS_DISTRIBUTED_TIMEOUT"  # seconds; the launcher and the tests shorten it


class ReduceOp(str, enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"


class Backend(str, enum.Enum):
    MPI = "mpi"
    NCCL = "nccl"
    GLOO = "gloo"  # PyTorch's CPU backend: runs on MPI here


def is_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_mpi_available() -> bool:
    return is_available()


def is_nccl_available() -> bool:
    return False  # no GPU runtime yet (runtime/cuda.py simulates one device)


def is_initialized() -> bool:
    return collectives.world() is not None


def _seconds(timeout) -> float:
    if timeout is None:
        configured = os.environ.get(TIMEOUT_VARIABLE)
        return float(configured) if configured else DEFAULT_TIMEOUT.total_seconds()
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return float(timeout)


def init_process_group(
    backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None, group_name="", pg_options=None
) -> None:
    """Join the world the launcher made. `backend` "mpi" (or "gloo", or None) runs on MPI;
    `world_size`/`rank`, when given, must be the launcher's. `init_method` and `store` are PyTorch's
    rendezvous, which MPI's launcher does instead: accepted, not used."""
    name = str(getattr(backend, "value", backend) or "mpi").lower()
    group = collectives.init("mpi" if name == "gloo" else name, _seconds(timeout))
    for given, actual, what in ((world_size, group.size, "world_size"), (rank, group.rank, "rank")):
        if given not in (-1, None) and given != actual:
            collectives.destroy()
            raise DistributedError(
                f"init_process_group: {what}={given} was given but the launcher started this process with "
                f"{what} {actual} (mpiexec -n sets the world size)"
            )


def destroy_process_group(group=None) -> None:
    collectives.destroy()


def _world(what: str):
    return collectives.require_world(what)


def get_rank(group=None) -> int:
    return _world("get_rank").rank


def get_world_size(group=None) -> int:
    return _world("get_world_size").size


def get_backend(group=None) -> str:
    return _world("get_backend").backend


class Work:
    """What a collective with `async_op=True` returns: `wait()` blocks until the result is in the
    tensor (at once where it ran synchronously: traced, or already done)."""

    def __init__(self, pending=None, finish=None):
        self._pending, self._finish = pending, finish

    def wait(self, timeout=None) -> bool:
        if self._pending is not None:
            result = self._pending.wait(None if timeout is None else _seconds(timeout))
            self._pending = None
            self._finish(result)
        return True

    def is_completed(self) -> bool:
        return self._pending is None or self._pending.is_completed()


class _TracedWork(Work):
    """A traced async collective: `wait()` records the wait and the write into the tensor."""

    def __init__(self, finish):
        super().__init__()
        self._record = finish

    def wait(self, timeout=None) -> bool:
        if self._record is not None:
            self._record, record = None, self._record
            record()
        return True


def _check_tensor(tensor, what: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what}: expected a genesis Tensor, got {type(tensor).__name__}")


def _reduce_op(op) -> str:
    try:
        return ReduceOp(getattr(op, "value", op)).value
    except ValueError:
        raise DistributedError(f"unknown reduce op {op!r}; expected one of {[o.name for o in ReduceOp]}") from None


def _write(tensor, result) -> None:
    with no_grad():
        tensor.copy_(result)


def _land(tensor, memory, array) -> None:
    """The engine's result in `tensor`: where it reduced in the tensor's `memory`, a write to count."""
    if array is memory:
        tensor._version[0] += 1
    else:
        _write(tensor, Tensor._make(array, tensor.dtype, tensor.device))


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` over every rank, in place."""
    _check_tensor(tensor, "all_reduce")
    reduce_op = _reduce_op(op)
    _world("all_reduce")
    if async_op and dispatch.is_tracing():  # two nodes, so that the program can overlap them with work
        started = collective.all_reduce_start(tensor, reduce_op=reduce_op)
        return _TracedWork(lambda: _write(tensor, collective.all_reduce_wait(started, tensor)))
    if dispatch.is_tracing() or tensor.device.type != "cpu":
        # a node of the graph, and the write into the tensor another; or a device's tensor, which MPI
        # reads through a copy to the host and back (as PyTorch's gloo does with CUDA tensors)
        _write(tensor, collective.all_reduce(tensor, reduce_op=reduce_op))
        return Work() if async_op else None
    # eager: straight to the engine, which reduces in the tensor's own memory where it can
    memory = tensor.numpy()
    pending = collectives.start_all_reduce(memory, reduce_op, in_place=True)
    work = Work(pending, lambda result: _land(tensor, memory, result))
    if async_op:
        return work
    work.wait()
    return None


def broadcast(tensor, src=0, group=None, async_op=False):
    """Give every rank rank `src`'s `tensor`, in place."""
    _check_tensor(tensor, "broadcast")
    _world("broadcast")
    _write(tensor, collective.broadcast(tensor, src=int(src)))
    return Work() if async_op else None


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Every rank's `input_tensor` into `output_tensor`, concatenated along dim 0 in rank order."""
    _check_tensor(input_tensor, "all_gather_into_tensor")
    size = _world("all_gather_into_tensor").size
    gathered = collective.all_gather(input_tensor, world_size=size)
    shape = (size * input_tensor.shape[0], *input_tensor.shape[1:]) if input_tensor.ndim else (size,)
    if tuple(output_tensor.shape) not in (tuple(gathered.shape), shape):
        raise DistributedError(
            f"all_gather_into_tensor: the output has shape {list(output_tensor.shape)}, expected {list(shape)} "
            f"(or {list(gathered.shape)})"
        )
    _write(output_tensor, gathered.reshape(output_tensor.shape))
    return Work() if async_op else None


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Rank i's `tensor` into `tensor_list[i]` on every rank."""
    _check_tensor(tensor, "all_gather")
    size = _world("all_gather").size
    if len(tensor_list) != size:
        raise DistributedError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the world has {size} ranks")
    gathered = collective.all_gather(tensor, world_size=size)
    for i, out in enumerate(tensor_list):
        _write(out, gathered[i])
    return Work() if async_op else None


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """`input` (world size blocks along dim 0) reduced over the ranks; rank i gets block i in `output`."""
    _check_tensor(input, "reduce_scatter_tensor")
    size = _world("reduce_scatter_tensor").size
    if input.ndim == 0 or input.shape[0] != size * (output.shape[0] if output.ndim else 1):
        raise DistributedError(
            f"reduce_scatter_tensor: the input has shape {list(input.shape)}; its dim 0 must be the world size "
            f"{size} times the output's {list(output.shape)}"
        )
    blocks = input.reshape(size, *output.shape)
    _write(output, collective.reduce_scatter(blocks, world_size=size, reduce_op=_reduce_op(op)))
    return Work() if async_op else None


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """`input_list[i]` reduced over the ranks lands in rank i's `output`."""
    size = _world("reduce_scatter").size
    if len(input_list) != size:
        raise DistributedError(f"reduce_scatter: input_list has {len(input_list)} tensors, the world has {size} ranks")
    for t in input_list:
        _check_tensor(t, "reduce_scatter")
    stacked = F.stack(list(input_list))
    _write(output, collective.reduce_scatter(stacked, world_size=size, reduce_op=_reduce_op(op)))
    return Work() if async_op else None


def barrier(group=None, async_op=False, device_ids=None):
    collectives.barrier()
    return Work() if async_op else None


__all__ = [
    "Backend",
    "CollectiveTimeout",
    "DistributedError",
    "ReduceOp",
    "Work",
    "all_gather",
    "all_gather_into_tensor",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_available",
    "is_nccl_available",
    "reduce_scatter",
    "reduce_scatter_tensor",
]
