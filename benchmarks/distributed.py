"""Data-parallel training steps on 1 and 2 ranks of this machine, and what 8 and 64 ranks would take.

For the MLP (784-256-256-10, 64 samples per rank) and the transformer block (d128 h4 t64, 32
sequences per rank) of benchmarks/train_step.py: samples per second of the eager and the compiled
step on one rank (plain model, the machine's cores) and on two (DistributedDataParallel, the cores
shared out by `genesis.distributed.run`), and the share of the 2-rank step that the gradients'
all-reduce alone takes (the same buckets, reduced back to back). The jobs take turns, a 1-rank and
a 2-rank job per round, and the figures are medians over rounds.

The all-reduce's latency (a 4-byte reduction) and bus bandwidth (16 MiB: a ring moves 2(p-1)/p of
the bytes through each rank) measured here give the ring model the scaling figures use:
T(p) = 2(p-1) * latency + 2(p-1)/p * bytes / bandwidth, and a step of p ranks takes the 2-rank
step's compute (its time less the all-reduce) plus T(p), with no overlap (a bound). Two ranks of one
machine talk through shared memory; across machines put the network's bandwidth and latency in.

Run:    python benchmarks/distributed.py [--rounds 3] [--steps 20] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import genesis
import genesis.distributed as dist
from genesis import nn
from genesis.bench import train
from genesis.bench.machine import environment
from genesis.bench.report import write_json

CASES = ("MLP 784-256-256-10 b64", "block d128 h4 t64 b32")
SCALED_RANKS = (8, 64)


def _seconds_per_call(fn, calls: int) -> float:
    if dist.is_initialized():
        dist.barrier()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if dist.is_initialized():
        dist.barrier()
    return (time.perf_counter() - start) / calls


def worker(steps: int, out: Path) -> None:
    """One rank of a job (under mpiexec): every case's step times, and the all-reduce's costs."""
    dist.init_process_group("mpi")
    ranks, rank = dist.get_world_size(), dist.get_rank()
    results = {"ranks": ranks}
    for name, spec, batch_size in train.configs(CASES):
        genesis.manual_seed(0)
        model = train.make_model(nn, spec)
        wrapped = nn.parallel.DistributedDataParallel(model) if ranks > 1 else model
        step = train.training_step(genesis, wrapped, genesis.optim.Adam(wrapped.parameters(), lr=1e-3))
        x, y = train.batch(spec, batch_size, seed=rank)
        for variant, fn in (("eager", step), ("compiled", genesis.compile(step))):
            for _ in range(3):  # warm-up: compiles, Adam's state, the pools
                fn(x, y)
            results[f"{name}|{variant}"] = _seconds_per_call(lambda fn=fn, x=x, y=y: fn(x, y), steps)
        results[f"{name}|samples"] = batch_size
        results[f"{name}|gradient_bytes"] = sum(p.numel() * p.dtype.itemsize for p in model.parameters())
        if ranks > 1:
            flats = [genesis.zeros(sum(p.numel() for p in bucket.params)) for bucket in wrapped._buckets]
            reduce_all = lambda flats=flats: [dist.all_reduce(flat) for flat in flats]  # noqa: E731
            results[f"{name}|allreduce"] = _seconds_per_call(reduce_all, steps)
    if ranks > 1:
        small, big = genesis.zeros(1), genesis.zeros(4 * 2**20)
        results["latency"] = _seconds_per_call(lambda: dist.all_reduce(small), 200)
        seconds = _seconds_per_call(lambda: dist.all_reduce(big), 10)
        results["bus_bandwidth"] = 2 * (ranks - 1) / ranks * 16 * 2**20 / seconds
    if rank == 0:
        write_json(out, results)
    dist.destroy_process_group()


def launch(ranks: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        line = [sys.executable, "-m", "genesis.distributed.run", "-n", str(ranks), __file__]
        subprocess.run([*line, "--worker", "--steps", str(steps), "--out", str(out)], check=True)
        return json.loads(out.read_text())


def ring_seconds(ranks: int, nbytes: float, latency: float, bandwidth: float) -> float:
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes / bandwidth


def summarise(runs: dict) -> dict:
    median = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    one, two = median[1], median[2]
    rows = []
    for name in CASES:
        samples, nbytes = one[f"{name}|samples"], one[f"{name}|gradient_bytes"]
        for variant in ("eager", "compiled"):
            t1, t2, comm = one[f"{name}|{variant}"], two[f"{name}|{variant}"], two[f"{name}|allreduce"]
            compute = max(t2 - comm, 0.0)
            row = {
                "case": name,
                "variant": variant,
                "step_seconds_1_rank": t1,
                "step_seconds_2_ranks": t2,
                "samples_per_second_1_rank": samples / t1,
                "samples_per_second_2_ranks": 2 * samples / t2,
                "allreduce_seconds": comm,
                "communication_share": comm / t2,
                "gradient_bytes": nbytes,
            }
            for p in SCALED_RANKS:
                step = compute + ring_seconds(p, nbytes, two["latency"], two["bus_bandwidth"])
                row[f"model_samples_per_second_{p}_ranks"] = p * samples / step
                row[f"model_efficiency_{p}_ranks"] = compute / step
            rows.append(row)
    return {"rows": rows, "latency_seconds": two["latency"], "bus_bandwidth_bytes_per_second": two["bus_bandwidth"]}


def report(summary: dict) -> None:
    print(
        f"all-reduce on 2 ranks: latency {summary['latency_seconds'] * 1e6:.0f} us, bus bandwidth "
        f"{summary['bus_bandwidth_bytes_per_second'] / 1e9:.2f} GB/s"
    )
    header = f"{'case':24s} {'variant':9s} {'1 rank':>14s} {'2 ranks':>14s} {'x':>5s} {'comm':>6s}"
    header += "".join(f" {f'{p} ranks (model)':>22s}" for p in SCALED_RANKS)
    print(header)
    for row in summary["rows"]:
        one, two = row["samples_per_second_1_rank"], row["samples_per_second_2_ranks"]
        line = f"{row['case'][:24]:24s} {row['variant']:9s} {one:9.0f} smp/s {two:9.0f} smp/s {two / one:5.2f}"
        line += f" {row['communication_share']:6.1%}"
        for p in SCALED_RANKS:
            line += (
                f" {row[f'model_samples_per_second_{p}_ranks']:9.0f} smp/s ({row[f'model_efficiency_{p}_ranks']:4.0%})"
            )
        print(line)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.steps, args.out)
    print(environment())
    print(f"{os.cpu_count()} cores; {args.rounds} rounds of a 1-rank and a 2-rank job, {args.steps} steps each")
    runs = {1: [], 2: []}
    for _ in range(args.rounds):
        for ranks in runs:
            runs[ranks].append(launch(ranks, args.steps))
    summary = summarise(runs)
    report(summary)
    if args.json:
        write_json(args.json, {"environment": environment(), **summary})


if __name__ == "__main__":
    main()
