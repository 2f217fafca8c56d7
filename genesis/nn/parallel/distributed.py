"""DistributedDataParallel: every rank trains the same model on its own part of the batch.

The wrapper broadcasts rank 0's parameters and buffers when it is made, so every rank starts from
the same weights, and averages the gradients over the ranks in every backward pass, so every
rank's optimizer takes the same step. As in PyTorch:

- Gradients travel in buckets of about `bucket_cap_mb` megabytes, parameters in reverse order of
  registration (roughly the order the backward pass finishes them). A bucket's all-reduce starts on
  the communication thread as soon as its last gradient is whole (a post-accumulate-grad hook), so it
  runs while the backward goes on; the end of the backward (an engine callback) waits for the
  buckets and writes the averages into `.grad`. Buckets start in their fixed order on every rank, as
  MPI needs.
- `no_sync()`: backward passes inside it only accumulate locally; the first one outside reduces the
  accumulated gradients.
- `find_unused_parameters=True`: a parameter without a gradient on this rank takes part as zeros,
  and one that no rank used keeps its `.grad` as it was. Without it, a parameter left without a
  gradient is an error that names it.

In a compiled step the same hooks run on the traced gradients when the backward is recorded, so
the bucket's concatenation, its all-reduce (a collective op, ops/collective.py) and the write-back
are graph nodes between the backward and the optimizer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from genesis import autograd, creation
from genesis import distributed as dist
from genesis import functional as F
from genesis.grad_mode import no_grad
from genesis.nn.modules.module import Module

DEFAULT_BUCKET_MB = 25


@dataclass
class _Bucket:
    index: int
    params: list
    names: list


@dataclass
class _Pass:
    """One backward pass's reduction: which parameters are ready, and the buckets started."""

    ready: set = field(default_factory=set)
    started: dict = field(default_factory=dict)  # bucket index -> (flat gradients, their all-reduce's Work)
    next_bucket: int = 0


class DistributedDataParallel(Module):
    def __init__(
        self,
        module,
        device_ids=None,
        output_device=None,
        dim=0,
        broadcast_buffers=True,
        process_group=None,
        bucket_cap_mb=None,
        find_unused_parameters=False,
        check_reduction=False,
        gradient_as_bucket_view=False,
        static_graph=False,
    ):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError(
                "DistributedDataParallel: the default process group is not initialized; call "
                "genesis.distributed.init_process_group() first"
            )
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a genesis.nn.Module, got {type(module).__name__}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = DEFAULT_BUCKET_MB if bucket_cap_mb is None else float(bucket_cap_mb)
        self.world_size = dist.get_world_size()
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self._sync_module_state()
        self._buckets = _make_buckets(named, self.bucket_cap_mb * 2**20)
        self._bucket_of = {id(p): bucket for bucket in self._buckets for p in bucket.params}
        self._require_sync = True
        self._pass: _Pass | None = None
        self._hook_handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for _, p in named]

    # ---- forward -------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        self._pass = None  # (a backward that raised left its pass unfinished)
        if self.broadcast_buffers and self.world_size > 1:
            with no_grad():
                for buffer in self.module.buffers():
                    dist.broadcast(buffer, src=0)
        return self.module(*args, **kwargs)

    def _sync_module_state(self) -> None:
        with no_grad():
            for tensor in (*self.module.parameters(), *self.module.buffers()):
                dist.broadcast(tensor, src=0)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients without reducing them."""
        previous, self._require_sync = self._require_sync, False
        try:
            yield
        finally:
            self._require_sync = previous

    # ---- the reduction, driven by the backward engine --------------------------------------
    def _grad_ready(self, param) -> None:
        if not self._require_sync or self.world_size == 1:
            return
        if self._pass is None:
            self._pass = _Pass()
            autograd.queue_callback(self._finish_pass)
        self._pass.ready.add(id(param))
        self._start_ready_buckets()

    def _start_ready_buckets(self) -> None:
        state = self._pass
        while state.next_bucket < len(self._buckets):
            bucket = self._buckets[state.next_bucket]
            if not all(id(p) in state.ready for p in bucket.params):
                return
            self._start(bucket, state)

    def _start(self, bucket: _Bucket, state: _Pass) -> None:
        with no_grad():
            grads = [
                p.grad.reshape(-1) if p.grad is not None else creation.zeros(p.numel(), dtype=p.dtype, device=p.device)
                for p in bucket.params
            ]
            flat = F.cat(grads) if len(grads) > 1 else grads[0].clone()
            work = dist.all_reduce(flat, op=dist.ReduceOp.AVG, async_op=True)
        state.started[bucket.index] = (flat, work)
        state.next_bucket += 1

    def _finish_pass(self) -> None:
        state, self._pass = self._pass, None
        missing = [
            name
            for bucket in self._buckets[state.next_bucket :]
            for name, p in zip(bucket.names, bucket.params)
            if id(p) not in state.ready
        ]
        if missing and not self.find_unused_parameters:
            raise RuntimeError(
                "DistributedDataParallel: these parameters received no gradient in the backward pass, so their "
                f"buckets cannot be reduced: {', '.join(missing)}. Pass find_unused_parameters=True if the "
                "forward pass does not use them every time."
            )
        while state.next_bucket < len(self._buckets):
            self._start(self._buckets[state.next_bucket], state)
        used_anywhere = self._used_anywhere(state) if self.find_unused_parameters else None
        with no_grad():
            for bucket in self._buckets:
                flat, work = state.started[bucket.index]
                work.wait()
                offset = 0
                for p in bucket.params:
                    size = p.numel()
                    if used_anywhere is None or used_anywhere[id(p)]:
                        reduced = flat[offset : offset + size].reshape(p.shape)
                        if p.grad is None:
                            p.grad = reduced.clone()
                        else:
                            p.grad.copy_(reduced)
                    offset += size

    def _used_anywhere(self, state: _Pass) -> dict:
        params = [p for bucket in self._buckets for p in bucket.params]
        flags = creation.tensor([float(id(p) in state.ready) for p in params])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return {id(p): bool(flag) for p, flag in zip(params, flags.tolist())}


def _make_buckets(named, cap_bytes: float) -> list[_Bucket]:
    """Parameters in reverse order of registration, cut into buckets of about `cap_bytes`, one dtype each."""
    buckets: list[_Bucket] = []
    params, names, size, dtype = [], [], 0, None
    for name, p in reversed(named):
        nbytes = p.numel() * p.dtype.itemsize
        if params and (size + nbytes > cap_bytes or p.dtype is not dtype):
            buckets.append(_Bucket(len(buckets), params, names))
            params, names, size = [], [], 0
        params.append(p)
        names.append(name)
        size += nbytes
        dtype = p.dtype
    if params:
        buckets.append(_Bucket(len(buckets), params, names))
    return buckets
