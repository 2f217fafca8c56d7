"""One rank of a data-parallel test job: `mpiexec -n 2 python tests/distributed_worker.py CASE OUT_DIR`.

Each case writes what this rank ended with to OUT_DIR/CASE-RANK.npz; tests/test_distributed.py
compares it with what one process computes on the whole batch (the functions below that take no
process group run there too, so both sides build the same models from the same seeds).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import genesis
import genesis.distributed as dist
from genesis import nn
from genesis.amp import GradScaler, autocast
from genesis.nn.parallel import DistributedDataParallel
from genesis.ops.collective import all_reduce as all_reduce_op

STEPS = 3
RANKS = 2
PER_RANK = 4  # samples per rank and step


# ---- shared with the single-process reference ---------------------------------------------------
def model():
    genesis.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def batches(steps=STEPS):
    """The whole batch of each step: rank r takes rows r*PER_RANK:(r+1)*PER_RANK."""
    rng = np.random.default_rng(7)
    return [
        (rng.standard_normal((RANKS * PER_RANK, 6)).astype(np.float32), rng.integers(0, 3, RANKS * PER_RANK))
        for _ in range(steps)
    ]


def shard(batch, rank):
    x, y = batch
    rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    return genesis.tensor(x[rows]), genesis.tensor(y[rows])


def whole(batch):
    return genesis.tensor(batch[0]), genesis.tensor(batch[1])


def train_step(net, optimizer, compiled: bool, amp=None, clip=None, loss_scale=None):
    """A plain step; `compiled` compiles it with the training options (compiler/training.py)."""

    def step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        return loss

    if compiled:
        return genesis.compile(step, amp=amp, clip_grad_norm=clip, loss_scale=loss_scale)
    assert amp is None and clip is None and loss_scale is None, "eager options: use eager_amp_step"
    return step


def eager_amp_step(net, optimizer, scaler, clip):
    """The step the compile options stand for, written out eagerly."""

    def step(x, y):
        optimizer.zero_grad()
        with autocast(dtype=genesis.bfloat16):
            loss = nn.functional.cross_entropy(net(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(net.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        return loss

    return step


VARIANTS = {
    # name: (compiled, compile options, optimizer)
    "eager": (False, {}, "sgd"),
    "compiled": (True, {}, "adam"),
    "compiled_amp_clip": (True, {"amp": "bf16", "clip": 0.5, "loss_scale": "dynamic"}, "sgd"),
    "eager_amp_clip": (False, {}, "sgd"),
}


def optimizer_for(name, params):
    return genesis.optim.Adam(params, lr=0.01) if name == "adam" else genesis.optim.SGD(params, lr=0.1, momentum=0.9)


def train(variant: str, net, wrapped, rank=None, device="cpu"):
    """STEPS steps of `variant` on `wrapped` (net itself, or its DistributedDataParallel); rank None:
    the whole batch. Returns the parameters after them."""
    compiled, options, optimizer_name = VARIANTS[variant]
    optimizer = optimizer_for(optimizer_name, wrapped.parameters())
    if variant == "eager_amp_clip":
        step = eager_amp_step(wrapped, optimizer, GradScaler(init_scale=1024.0), clip=0.5)
    else:
        step = train_step(wrapped, optimizer, compiled, **options)
    for batch in batches():
        step(*(t.to(device) for t in (whole(batch) if rank is None else shard(batch, rank))))
    return {name: p.detach().cpu().numpy().copy() for name, p in net.named_parameters()}


def micro_batches(batch, rank=None):
    """The step's two micro-batches: on a rank, the halves of its shard; for the reference, each half
    gathered from every rank."""
    xs, ys = batch
    half = PER_RANK // 2
    ranks = range(RANKS) if rank is None else (rank,)
    out = []
    for k in range(2):
        rows = np.concatenate([np.arange(r * PER_RANK + k * half, r * PER_RANK + (k + 1) * half) for r in ranks])
        out.append((genesis.tensor(xs[rows]), genesis.tensor(ys[rows])))
    return out


def accumulate(net, wrapped, rank=None, compiled=False):
    """Gradients of two micro-batches accumulated, then one step; on a rank the first backward runs
    in DDP's no_sync, so the accumulated gradient is reduced once. `compiled`: each micro-batch's
    forward and backward is one compiled call (inside no_sync and out: two programs)."""
    optimizer = genesis.optim.SGD(wrapped.parameters(), lr=0.1)

    def forward_backward(x, y):
        nn.functional.cross_entropy(wrapped(x), y).backward()

    if compiled:
        forward_backward = genesis.compile(forward_backward)
    for batch in batches():
        optimizer.zero_grad()
        for i, (x, y) in enumerate(micro_batches(batch, rank)):
            if rank is not None and i == 0:
                with wrapped.no_sync():
                    forward_backward(x, y)
            else:
                forward_backward(x, y)
        optimizer.step()
    return {name: p.detach().numpy().copy() for name, p in net.named_parameters()}


class Branchy(nn.Module):
    """`extra` is used only where asked; `never` is never used."""

    def __init__(self):
        super().__init__()
        genesis.manual_seed(1)
        self.body, self.extra, self.never = nn.Linear(6, 3), nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x, use_extra):
        out = self.body(x)
        return out + self.extra(x) if use_extra else out


def branchy_loss(net, x, y, use_extra):
    return nn.functional.cross_entropy(net(x, use_extra), y)


# ---- what each rank runs ------------------------------------------------------------------------
def collective_inputs(rank):
    """The tensors rank `rank` reduces (the test computes the expected results from both ranks')."""
    return {
        "float32": np.arange(6, dtype=np.float32).reshape(2, 3) + rank,
        "float64": np.linspace(-1, 1, 5) * (rank + 2),
        "int64": np.arange(4, dtype=np.int64) * (rank + 1) - 3,
        "bfloat16": (np.arange(4, dtype=np.float32) + 0.5) * (rank + 1),
        "bool": np.array([rank == 0, rank == 1, False, True]),
    }


def case_collectives(rank, results):
    inputs = collective_inputs(rank)
    dtypes = {"bfloat16": genesis.bfloat16}
    for name, value in inputs.items():
        for op in ("sum", "avg", "max", "min", "product"):
            if op == "avg" and name in ("int64", "bool"):
                continue
            if name == "bool" and op != "max":
                continue
            t = genesis.tensor(value, dtype=dtypes.get(name))
            dist.all_reduce(t, op=op)
            results[f"all_reduce/{name}/{op}"] = t.float().numpy() if name == "bfloat16" else t.numpy()
    base = genesis.tensor(inputs["float32"])
    dist.all_reduce(base[:, ::2])  # a strided view: reduced through a copy, written back into the base
    results["view/float32/sum"] = base.numpy()
    t = genesis.tensor(inputs["float32"])
    work = dist.all_reduce(t, async_op=True)
    work.wait()
    results["async/float32/sum"] = t.numpy()
    t = genesis.tensor(inputs["float32"])
    dist.broadcast(t, src=1)
    results["broadcast"] = t.numpy()
    gathered = [genesis.zeros(2, 3) for _ in range(RANKS)]
    dist.all_gather(gathered, genesis.tensor(inputs["float32"]))
    results["all_gather"] = np.stack([g.numpy() for g in gathered])
    into = genesis.zeros(2 * RANKS, 3)
    dist.all_gather_into_tensor(into, genesis.tensor(inputs["float32"]))
    results["all_gather_into_tensor"] = into.numpy()
    scattered = genesis.zeros(1, 3)
    dist.reduce_scatter_tensor(scattered, genesis.tensor(inputs["float32"]))
    results["reduce_scatter_tensor"] = scattered.numpy()
    x = genesis.tensor(inputs["float32"], requires_grad=True)
    reduce = genesis.compile(lambda x: all_reduce_op(x * (rank + 1), reduce_op="sum").square().sum())
    loss = reduce(x)
    loss.backward()
    results["compiled/loss"], results["compiled/grad"] = loss.detach().numpy(), x.grad.numpy()
    results["world"] = np.array([dist.get_rank(), dist.get_world_size()])
    # the launcher's variables, as torchrun sets them (this job starts through genesis.distributed.run)
    results["torchrun_variables"] = np.array([int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")])
    results["main"] = np.array(__name__ == "__main__" and sys.argv[1] == "collectives")
    dist.barrier()


def case_train(rank, results):
    for variant in VARIANTS:
        net = model()
        if rank == 1:  # DDP must start every rank from rank 0's weights
            with genesis.no_grad():
                for p in net.parameters():
                    p.add_(1.0)
        results.update(
            {f"{variant}/{k}": v for k, v in train(variant, net, DistributedDataParallel(net), rank).items()}
        )


def case_device(rank, results):
    """DDP on the simulated CUDA device: its collectives go through host memory (as gloo's do)."""
    os.environ["GENESIS_FAKE_CUDA"] = "1"
    for variant in ("eager", "compiled"):
        net = model().to("cuda")
        trained = train(variant, net, DistributedDataParallel(net), rank, device="cuda")
        results.update({f"{variant}/{name}": value for name, value in trained.items()})
        results[f"{variant}/device"] = np.array(str(next(net.parameters()).device))


def case_accumulate(rank, results):
    for compiled in (False, True):
        net = model()
        trained = accumulate(net, DistributedDataParallel(net), rank, compiled)
        results.update({f"{'compiled' if compiled else 'eager'}/{name}": value for name, value in trained.items()})


def case_skip(rank, results):
    """An fp16 GradScaler step where only rank 1's gradients are not finite: every rank skips it (no
    DDP: only the found-inf reduction tells rank 0)."""
    for compiled in (False, True):
        net = model()
        before = [p.detach().numpy().copy() for p in net.parameters()]
        optimizer = genesis.optim.SGD(net.parameters(), lr=0.1)
        x, y = shard(batches(1)[0], rank)
        if rank == 1:
            x = x * float("inf")
        if compiled:
            step = train_step(net, optimizer, True, amp="fp16", loss_scale="dynamic")
            step(x, y)
            scale = step.fn.scaler.get_scale()
        else:
            scaler = GradScaler(init_scale=1024.0)
            optimizer.zero_grad()
            with autocast(dtype=genesis.float16):
                loss = nn.functional.cross_entropy(net(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scale = scaler.get_scale()
        changed = max(float(np.abs(p.detach().numpy() - b).max()) for p, b in zip(net.parameters(), before))
        results[f"{'compiled' if compiled else 'eager'}/changed"] = np.array(changed)
        results[f"{'compiled' if compiled else 'eager'}/scale"] = np.array(scale)


def case_unused(rank, results):
    net = Branchy()
    ddp = DistributedDataParallel(net, find_unused_parameters=True)
    x, y = shard(batches(1)[0], rank)
    branchy_loss(ddp, x, y, use_extra=rank == 0).backward()
    for name, p in net.named_parameters():
        results[f"grad/{name}"] = p.grad.numpy() if p.grad is not None else np.array(np.nan)
    strict = DistributedDataParallel(Branchy())
    try:
        branchy_loss(strict, x, y, use_extra=True).backward()
        results["strict_error"] = np.array("")
    except RuntimeError as error:
        results["strict_error"] = np.array(str(error))


def case_overlap(rank, results, out_dir):
    """A compiled DDP step starts its buckets' all-reduces while its backward goes on: the program
    runs kernels between a bucket's start and its wait."""
    net = model()
    ddp = DistributedDataParallel(net, bucket_cap_mb=0.001)  # a bucket per layer or two
    optimizer = genesis.optim.SGD(ddp.parameters(), lr=0.1)

    def step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        optimizer.step()
        return loss

    dump = os.path.join(out_dir, f"dump-{rank}")
    compiled = genesis.compile(step, dump_dir=dump)
    for batch in batches():
        compiled(*shard(batch, rank))
    lines = "".join(open(path).read() for path in sorted(_programs(dump))).splitlines()
    starts = [i for i, line in enumerate(lines) if "# all_reduce_start" in line]
    waits = [i for i, line in enumerate(lines) if "# all_reduce_wait" in line]
    kernels = [i for i, line in enumerate(lines) if line.strip().startswith("k") and "(" in line]
    results["buckets"] = np.array(len(ddp._buckets))
    results["starts"], results["waits"] = np.array(len(starts)), np.array(len(waits))
    results["kernels_between"] = np.array(sum(starts[0] < i < waits[0] for i in kernels) if starts and waits else 0)
    results.update({f"param/{name}": p.detach().numpy().copy() for name, p in net.named_parameters()})


def _programs(folder):
    for root, _, files in os.walk(folder):
        yield from (os.path.join(root, f) for f in files if f == "program.py")


def case_checkpoint(rank, results, out_dir):
    net = model()
    ddp = DistributedDataParallel(net)
    path = os.path.join(out_dir, "model.safetensors")
    genesis.save_checkpoint(ddp.state_dict(), path)  # every rank calls it; rank 0 writes
    loaded = genesis.load_checkpoint(path)
    results["keys"] = np.array(sorted(loaded))
    results["equal"] = np.array(
        all(np.array_equal(loaded[k].numpy(), v.detach().numpy()) for k, v in ddp.state_dict().items())
    )
    results["listing"] = np.array(sorted(os.listdir(out_dir)))


def case_fault(rank, results, kind):
    """Rank 1 dies (`killed`), raises (`raises`) or stops calling collectives (`hangs`) in step 2."""
    net = model()
    step = train_step(DistributedDataParallel(net), genesis.optim.SGD(net.parameters(), lr=0.1), False)
    for i, batch in enumerate(batches()):
        if rank == 1 and i == 1:
            if kind == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == "raises":
                raise ValueError("rank 1 stops here")
            time.sleep(120)
        step(*shard(batch, rank))
    results["finished"] = np.array(True)


def main(case, out_dir):
    dist.init_process_group("gloo" if case == "train" else "mpi")  # gloo: a ported CPU script's name
    rank = dist.get_rank()
    results = {}
    if case in ("killed", "raises", "hangs"):
        case_fault(rank, results, case)
    elif case in ("checkpoint", "overlap"):
        globals()[f"case_{case}"](rank, results, out_dir)
    else:
        globals()[f"case_{case}"](rank, results)
    np.savez(os.path.join(out_dir, f"{case}-{rank}.npz"), **results)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
