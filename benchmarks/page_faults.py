"""Page faults per training step: genesis eager and compiled, and PyTorch eager, after warm-up.

A minor page fault costs about 2.5 us on the 2-core machine; an array that
comes fresh from the OS faults once per 4 KiB page it touches. A step that
reuses its memory faults 0 times, however long it runs. Counts come from
`resource.getrusage` over the whole process (every thread), so they are exact
and do not move with the machine's load, unlike times. The models are the
training steps' (genesis/bench/train.py); `python -m genesis.bench` counts
the same faults beside its step times.

Run: python benchmarks/page_faults.py [--steps N] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import genesis
from genesis.bench import train
from genesis.bench.machine import environment
from genesis.bench.report import write_json
from genesis.bench.timing import load_torch


def measure_config(spec, batch_size, steps) -> dict:
    x, y = train.batch(spec, batch_size)
    model, eager_step = train.genesis_setup(spec)
    row = {"genesis eager": train.faults_per_call(lambda: eager_step(x, y), steps)}
    _, step = train.genesis_setup(spec)
    compiled = genesis.compile(step)
    row["genesis compiled"] = train.faults_per_call(lambda: compiled(x, y), steps)
    torch = load_torch()
    if torch is not None:
        torch_step = train.torch_setup(torch, spec, model)
        tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())
        row["torch eager"] = train.faults_per_call(lambda: torch_step(tx, ty), steps)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(environment())
    rows = []
    for name, spec, batch_size in train.configs():
        rows.append({"case": name, "faults_per_step": measure_config(spec, batch_size, args.steps)})
        print(f"{name:28s} " + "  ".join(f"{k} {v:8.1f}" for k, v in rows[-1]["faults_per_step"].items()), flush=True)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
