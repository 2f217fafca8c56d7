"""Fused against eager: genesis eager, compiled (numpy and default backends), PyTorch eager and torch.compile.

Cases: the elementwise chain tanh(x*y+1)*0.5 + exp(-x)*y over 8M float32,
softmax and layer_norm over (4096, 1024), batch_norm + relu over (32, 64, 32, 32) in training
and eval mode (per-channel operands), a bias add + GELU over (256, 1024), and an MLP forward
(784-1024-1024-10, batch 256, GELU). Each case prints its times, the ratios,
and from genesis's compile report the kernels per call and the bytes a call
moves eager against fused.

Run:    python benchmarks/fusion.py [--rounds 5] [--json results.json] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import genesis
from genesis import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import environment, measure, print_comparison, save_json  # noqa: E402

try:
    import torch
except ImportError:  # torch is a test-only dependency: report without it
    torch = None


def chain(x, y):
    return (x * y + 1).tanh() * 0.5 + (-x).exp() * y


def make_cases():
    rng = np.random.default_rng(0)
    x8m, y8m = rng.standard_normal((2, 8 * 1024 * 1024), dtype=np.float32)
    rows = rng.standard_normal((4096, 1024), dtype=np.float32)
    weight, bias = rng.standard_normal((2, 1024), dtype=np.float32)
    batch = rng.standard_normal((256, 784), dtype=np.float32)
    images = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
    channel_weight, channel_bias, running_mean = rng.standard_normal((3, 64), dtype=np.float32)
    running_var = rng.uniform(0.5, 2.0, 64).astype(np.float32)
    hidden = rng.standard_normal((256, 1024), dtype=np.float32)
    genesis.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 1024), nn.GELU(), nn.Linear(1024, 1024), nn.GELU(), nn.Linear(1024, 10))
    F = nn.functional
    cases = [
        ("chain 8M", chain, (x8m, y8m), chain),
        ("softmax 4096x1024", lambda x: F.softmax(x, dim=-1), (rows,), lambda x: torch.softmax(x, dim=-1)),
        (
            "layer_norm 4096x1024",
            lambda x, w, b: F.layer_norm(x, (1024,), w, b),
            (rows, weight, bias),
            lambda x, w, b: torch.nn.functional.layer_norm(x, (1024,), w, b),
        ),
        (
            "bn+relu 32x64x32x32 train",
            lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True).relu(),
            (images, channel_weight, channel_bias),
            lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True).relu(),
        ),
        (
            "bn+relu 32x64x32x32 eval",
            lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b).relu(),
            (images, running_mean, running_var, channel_weight, channel_bias),
            lambda x, m, v, w, b: torch.nn.functional.batch_norm(x, m, v, w, b).relu(),
        ),
        (
            "bias+gelu 256x1024",
            lambda x, b: F.gelu(x + b),
            (hidden, bias),
            lambda x, b: torch.nn.functional.gelu(x + b),
        ),
        ("MLP 784-1024-1024-10 b256", mlp, (batch,), None),
    ]
    if torch is not None:
        reference = torch.nn.Sequential(
            torch.nn.Linear(784, 1024),
            torch.nn.GELU(),
            torch.nn.Linear(1024, 1024),
            torch.nn.GELU(),
            torch.nn.Linear(1024, 10),
        )
        reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in mlp.state_dict().items()})
        cases[-1] = cases[-1][:3] + (reference,)
    return cases


def run_case(name, fn, arrays, rounds):
    inputs = [genesis.tensor(a) for a in arrays]
    with genesis.no_grad():
        started = time.perf_counter()
        compiled = genesis.compile(fn)
        compiled(*inputs)
        compile_seconds = time.perf_counter() - started
        expected, got = fn(*inputs), compiled(*inputs)
        error = float(np.max(np.abs(expected.numpy() - got.numpy())))
        numpy_compiled = genesis.compile(fn, backend="numpy")
        variants = {
            "genesis eager": lambda: fn(*inputs),
            "genesis numpy": lambda: numpy_compiled(*inputs),
            "genesis compiled": lambda: compiled(*inputs),
        }
        report = compiled.programs[0].report
    row = {
        "case": name,
        "max_abs_difference": error,
        "genesis_compile_seconds": compile_seconds,
        "kernels_per_call": compiled.stats["kernels_per_call"],
        "bytes_eager": report["bytes_eager"],
        "bytes_fused": report["bytes_fused"],
    }
    # Each sample runs a quarter second: the first calls after another variant pay for its page
    # faults and cold caches, which a 20 ms sample would count.
    with genesis.no_grad():
        row["seconds"] = measure(variants, rounds, min_seconds=0.25)
    return row


def run_torch(row, arrays, torch_fn, rounds, use_torch_compile):
    """The PyTorch side of a case, measured after every genesis case: torch.compile's warm-up leaves
    compile workers busy for a while, and torch's OpenMP threads spin after each call; either would
    steal the cores from genesis's kernel threads."""
    t_inputs = [torch.from_numpy(a) for a in arrays]
    theirs = {"torch eager": lambda: torch_fn(*t_inputs)}
    if use_torch_compile:
        started = time.perf_counter()
        t_compiled = torch.compile(torch_fn)
        with torch.no_grad():
            t_compiled(*t_inputs)
        row["torch_compile_seconds"] = time.perf_counter() - started
        theirs["torch.compile"] = lambda: t_compiled(*t_inputs)
    with torch.no_grad():
        row["seconds"].update(measure(theirs, rounds, min_seconds=0.25))


def print_rows(rows) -> None:
    print_comparison(rows)
    for row in rows:
        print(
            f"{row['case']:28s} kernels/call {row['kernels_per_call']}, bytes/call eager {row['bytes_eager']:,} "
            f"fused {row['bytes_fused']:,}, compile {row['genesis_compile_seconds'] * 1e3:.0f} ms"
            + (f" (torch.compile {row['torch_compile_seconds']:.1f} s)" if "torch_compile_seconds" in row else "")
            + f", max |compiled - eager| {row['max_abs_difference']:.2e}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler)")
    args = parser.parse_args(argv)
    print(environment())
    cases = make_cases()
    rows = [run_case(name, fn, arrays, args.rounds) for name, fn, arrays, _ in cases]
    if torch is not None:
        for row, (_, _, arrays, torch_fn) in zip(rows, cases):
            if torch_fn is not None:
                run_torch(row, arrays, torch_fn, args.rounds, not args.no_torch_compile)
    print_rows(rows)
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
