"""Data-parallel training on 2 ranks (`mpiexec -n 2`) against one process on the whole batch.

Each job runs tests/distributed_worker.py on both ranks and returns what every rank ended with:
the collectives' results against the values computed here from both ranks' inputs; parameters
after N steps of DistributedDataParallel (eager, compiled, compiled with bf16 autocast, clipping
and loss scaling, and the same written out eagerly) against N steps of one process on the
concatenated batch, on the CPU and on the simulated CUDA device; no_sync accumulation against the
big batch; an fp16 step that only one rank's
gradients make non-finite, skipped on both; unused parameters; checkpoints written once; and a rank
that dies, raises or hangs failing the whole job with a clear error.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import genesis
import genesis.distributed as dist
from genesis.distributed import run as launcher
from genesis.utils.data import DistributedSampler

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

WORKER = Path(__file__).parent / "distributed_worker.py"

try:
    import mpi4py  # noqa: F401

    HAVE_MPI = True
except ImportError:
    HAVE_MPI = False
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI, reason="mpi4py is not installed: pip install -e '.[distributed]' brings it and mpiexec"
)


def _launch(case, out_dir, *, timeout_s=240, collective_timeout=None, via_launcher=False):
    env = dict(os.environ, GENESIS_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if collective_timeout is not None:
        env["GENESIS_DISTRIBUTED_TIMEOUT"] = str(collective_timeout)
    if via_launcher:
        line = [sys.executable, "-m", "genesis.distributed.run", "-n", "2", str(WORKER), case, str(out_dir)]
    else:
        line = [launcher.find_mpiexec(), "-n", "2", "--oversubscribe"]
        line += ["--allow-run-as-root"] if os.geteuid() == 0 else []
        line += [sys.executable, str(WORKER), case, str(out_dir)]
    started = time.monotonic()
    done = subprocess.run(line, env=env, capture_output=True, text=True, timeout=timeout_s)
    return done, time.monotonic() - started


@functools.cache
def _results(case, out_dir):
    done, _ = _launch(case, out_dir, via_launcher=case == "collectives")
    assert done.returncode == 0, f"the {case} job failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return [dict(np.load(Path(out_dir) / f"{case}-{rank}.npz")) for rank in range(worker.RANKS)]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")

    def results(case):
        folder = root / case
        folder.mkdir(exist_ok=True)
        return _results(case, str(folder))

    return results


# ---- collectives ----------------------------------------------------------------------------------
REDUCE = {"sum": np.add, "max": np.maximum, "min": np.minimum, "product": np.multiply}


def _expected(name, op):
    a, b = (worker.collective_inputs(rank)[name] for rank in range(2))
    if name == "bfloat16":  # values as the ranks hold them, summed in float32 and rounded once
        a, b = (genesis.tensor(v, dtype=genesis.bfloat16).float().numpy() for v in (a, b))
    value = (a + b) / 2 if op == "avg" else REDUCE[op](a, b)
    if name == "bfloat16":
        value = genesis.tensor(value, dtype=genesis.bfloat16).float().numpy()
    return value


# every reduction PyTorch defines for the dtype (avg is for floats; bool is reduced by max, "any")
REDUCED = [
    (name, op)
    for name in ("float32", "float64", "int64", "bfloat16")
    for op in REDUCE
    if name != "int64" or op != "avg"
]
REDUCED += [(name, "avg") for name in ("float32", "float64", "bfloat16")] + [("bool", "max")]


@needs_mpi
@pytest.mark.parametrize("name, op", REDUCED)
def test_all_reduce(job, name, op):
    for rank_results in job("collectives"):
        got = rank_results[f"all_reduce/{name}/{op}"]
        np.testing.assert_array_equal(got, _expected(name, op))


@needs_mpi
def test_other_collectives(job):
    inputs = [worker.collective_inputs(rank)["float32"] for rank in range(2)]
    for rank, got in enumerate(job("collectives")):
        np.testing.assert_array_equal(got["world"], [rank, 2])
        np.testing.assert_array_equal(got["torchrun_variables"], [rank, 2, rank])
        assert got["main"]
        np.testing.assert_array_equal(got["async/float32/sum"], inputs[0] + inputs[1])
        in_view = inputs[rank].copy()
        in_view[:, ::2] = inputs[0][:, ::2] + inputs[1][:, ::2]
        np.testing.assert_array_equal(got["view/float32/sum"], in_view)
        np.testing.assert_array_equal(got["broadcast"], inputs[1])
        np.testing.assert_array_equal(got["all_gather"], np.stack(inputs))
        np.testing.assert_array_equal(got["all_gather_into_tensor"], np.concatenate(inputs))
        np.testing.assert_array_equal(got["reduce_scatter_tensor"], (inputs[0] + inputs[1])[rank : rank + 1])


@needs_mpi
def test_compiled_all_reduce_and_its_gradient(job):
    """loss = sum(all_reduce(x * (rank + 1))^2): the gradient on a rank is 2 * sum over ranks of the
    ranks' values, times that rank's factor (the all-reduce's vjp is an all-reduce)."""
    inputs = [worker.collective_inputs(rank)["float32"] for rank in range(2)]
    reduced = inputs[0] * 1 + inputs[1] * 2
    for rank, got in enumerate(job("collectives")):
        np.testing.assert_allclose(got["compiled/loss"], np.square(reduced).sum(), rtol=1e-6)
        np.testing.assert_allclose(got["compiled/grad"], 2 * (2 * reduced) * (rank + 1), rtol=1e-6)


# ---- training ----------------------------------------------------------------------------------------
# float32 steps differ from one process's only in the order of the gradient's sums; bf16 autocast
# rounds each rank's half-batch products, where one process rounds the whole batch's
TOLERANCE = {"eager": 2e-5, "compiled": 2e-5, "compiled_amp_clip": 2e-3, "eager_amp_clip": 2e-3}


@functools.cache
def _reference(variant):
    net = worker.model()
    return worker.train(variant, net, net)


@needs_mpi
@pytest.mark.parametrize("variant", list(worker.VARIANTS))
def test_data_parallel_steps_equal_one_process_on_the_whole_batch(job, variant):
    expected = _reference(variant)
    ranks = job("train")
    for name, value in expected.items():
        np.testing.assert_array_equal(ranks[0][f"{variant}/{name}"], ranks[1][f"{variant}/{name}"])
        tolerance = TOLERANCE[variant]
        np.testing.assert_allclose(ranks[0][f"{variant}/{name}"], value, rtol=tolerance, atol=tolerance)
    start = {name: p.detach().numpy() for name, p in worker.model().named_parameters()}
    assert any(not np.allclose(expected[name], start[name]) for name in start), "the steps changed nothing"


@needs_mpi
@pytest.mark.parametrize("variant", ["eager", "compiled"])
def test_data_parallel_steps_on_the_simulated_cuda_device(job, variant):
    expected = _reference(variant)
    for rank_results in job("device"):
        assert str(rank_results[f"{variant}/device"]) == "cuda:0"
        for name, value in expected.items():
            np.testing.assert_allclose(rank_results[f"{variant}/{name}"], value, rtol=2e-5, atol=2e-5)


@needs_mpi
@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_no_sync_accumulation_equals_the_big_batch(job, mode):
    net = worker.model()
    expected = worker.accumulate(net, net)
    for rank_results in job("accumulate"):
        for name, value in expected.items():
            np.testing.assert_allclose(rank_results[f"{mode}/{name}"], value, rtol=2e-5, atol=2e-5)


@needs_mpi
@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_a_step_one_rank_finds_not_finite_is_skipped_on_every_rank(job, mode):
    backed_off = {"eager": 1024.0 / 2, "compiled": 65536.0 / 2}[mode]  # GradScaler(1024); compile's default
    for rank_results in job("skip"):
        assert rank_results[f"{mode}/changed"] == 0.0
        assert rank_results[f"{mode}/scale"] == backed_off


@needs_mpi
def test_unused_parameters(job):
    """`extra` is used on rank 0 only: both ranks get half its gradient there; `never` keeps no .grad.
    Without find_unused_parameters, a parameter without a gradient is an error that names it."""
    net = worker.Branchy()
    x, y = worker.shard(worker.batches(1)[0], 0)
    worker.branchy_loss(net, x, y, use_extra=True).backward()
    grads0 = {name: p.grad.numpy() for name, p in net.named_parameters() if p.grad is not None}
    net = worker.Branchy()
    x, y = worker.shard(worker.batches(1)[0], 1)
    worker.branchy_loss(net, x, y, use_extra=False).backward()
    grads1 = {name: p.grad.numpy() for name, p in net.named_parameters() if p.grad is not None}
    for rank_results in job("unused"):
        for name in ("body.weight", "body.bias"):
            np.testing.assert_allclose(rank_results[f"grad/{name}"], (grads0[name] + grads1[name]) / 2, rtol=1e-6)
        for name in ("extra.weight", "extra.bias"):
            np.testing.assert_allclose(rank_results[f"grad/{name}"], grads0[name] / 2, rtol=1e-6)
        assert np.isnan(rank_results["grad/never.weight"])
        message = str(rank_results["strict_error"])
        assert "never.weight" in message and "find_unused_parameters=True" in message


@needs_mpi
def test_a_compiled_step_overlaps_its_all_reduces_with_its_backward(job):
    """Each bucket's all-reduce is a start, run as soon as its gradients exist, and a wait, run when
    nothing else can: kernels of the backward run between them, and the step still equals one
    process on the whole batch."""
    net = worker.model()
    optimizer = genesis.optim.SGD(net.parameters(), lr=0.1)
    step = worker.train_step(net, optimizer, False)
    for batch in worker.batches():
        step(*worker.whole(batch))
    for rank_results in job("overlap"):
        assert rank_results["buckets"] >= 2
        assert rank_results["starts"] == rank_results["waits"] >= rank_results["buckets"]
        assert rank_results["kernels_between"] >= 1
        for name, p in net.named_parameters():
            np.testing.assert_allclose(rank_results[f"param/{name}"], p.detach().numpy(), rtol=2e-5, atol=2e-5)


@needs_mpi
def test_checkpoint_is_written_once_and_loads_on_every_rank(job):
    net = worker.model()
    keys = sorted(f"module.{name}" for name in net.state_dict())
    for rank_results in job("checkpoint"):
        assert list(rank_results["keys"]) == keys
        assert rank_results["equal"]
        assert [name for name in rank_results["listing"] if not name.endswith(".npz")] == ["model.safetensors"]


# ---- faults -----------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize(
    "kind, says",
    [
        ("killed", "exited on signal 9"),
        ("raises", "genesis.distributed: rank 1 failed; aborting all 2 ranks"),
        ("hangs", "did not complete within 3 s"),
    ],
)
def test_a_failing_rank_fails_the_job_with_a_clear_error(tmp_path, kind, says):
    done, seconds = _launch(kind, tmp_path, timeout_s=120, collective_timeout=3)
    output = " ".join((done.stdout + done.stderr).split())  # (mpiexec wraps its lines)
    assert done.returncode != 0
    assert says in output, output[-3000:]
    assert seconds < 60
    assert not list(tmp_path.glob("*.npz"))  # no rank finished


# ---- without a job ------------------------------------------------------------------------------------
def test_calls_without_a_process_group_say_what_to_do():
    assert not dist.is_initialized()
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        dist.all_reduce(genesis.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        genesis.nn.parallel.DistributedDataParallel(genesis.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="num_replicas and rank"):
        DistributedSampler(range(4))


def test_nccl_is_refused_with_the_reason():
    with pytest.raises(dist.DistributedError, match="nccl"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()


@pytest.mark.parametrize("size, replicas, drop_last", [(10, 3, False), (10, 3, True), (7, 2, False), (2, 4, False)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_splits_as_pytorch(size, replicas, drop_last, shuffle):
    """Without shuffling, PyTorch's indices exactly; with it, the same shares of one permutation
    (genesis's generator draws other permutations than PyTorch's)."""
    torch_data = pytest.importorskip("torch.utils.data")
    shares = []
    for rank in range(replicas):
        sampler = DistributedSampler(range(size), replicas, rank, shuffle=shuffle, seed=3, drop_last=drop_last)
        reference = torch_data.DistributedSampler(range(size), replicas, rank, shuffle=False, drop_last=drop_last)
        assert len(sampler) == len(reference)
        share = list(sampler)
        if not shuffle:
            assert share == list(reference)
        shares.append(share)
    interleaved = [i for group in zip(*shares) for i in group]
    if drop_last:
        assert len(set(interleaved)) == len(interleaved)
    else:
        assert set(interleaved) == set(range(size))


def test_distributed_sampler_draws_a_new_order_each_epoch_and_the_same_on_every_rank():
    def shares(epoch, shuffle):
        found = []
        for rank in range(3):
            sampler = DistributedSampler(range(10), 3, rank, shuffle=shuffle, seed=3)
            sampler.set_epoch(epoch)
            found.append(list(sampler))
        return found

    assert shares(1, shuffle=True) != shares(0, shuffle=True)
    assert shares(1, shuffle=True) == shares(1, shuffle=True)  # a rank's share depends on the epoch alone
    assert shares(1, shuffle=False) == shares(0, shuffle=False)


def test_launcher_command_line():
    args = launcher.parse(["-n", "4", "--timeout", "5", "--hostfile", "hosts", "train.py", "--lr", "0.1"])
    line, env = launcher.command(args, "mpiexec", {"PATH": "/bin"})
    assert line[:3] == ["mpiexec", "-n", "4"]
    assert line[line.index("--hostfile") + 1] == "hosts" and "--oversubscribe" not in line
    assert line[-5:] == ["genesis.distributed.run", "--as-rank", "train.py", "--lr", "0.1"]
    assert env["GENESIS_DISTRIBUTED_TIMEOUT"] == "5.0"
    assert env["GENESIS_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 4))
    assert ["-x", "GENESIS_NUM_THREADS"] == line[
        line.index("GENESIS_NUM_THREADS") - 1 : line.index("GENESIS_NUM_THREADS") + 1
    ]
