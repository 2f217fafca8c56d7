"""Fused against eager: single functions run by genesis eager, compiled (numpy and default backends),
PyTorch eager and torch.compile, with the bytes and flops each call moves and computes.

Cases: the elementwise chain tanh(x*y+1)*0.5 + exp(-x)*y over 8M float32, softmax and layer_norm
over (4096, 1024), batch_norm + relu over (32, 64, 32, 32) in training and eval mode (per-channel
operands), a bias add + GELU over (256, 1024), and an MLP forward (784-1024-1024-10, batch 256,
GELU). Bytes come from the
compile report (each kernel reads its outside values once and writes what is read after it);
flops are counted on the optimised graph, one per element for an elementwise op or a reduction's
input, 2*M*N*K for a matmul. Achieved GB/s and GF/s are those over the median time. The compile
time is a first call's with an empty disk cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

import genesis
from genesis import nn
from genesis.bench.timing import fresh_cache, load_torch, measure, record
from genesis.ops.op import OPS, Kind

QUICK = ("chain 8M", "softmax 4096x1024")


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable
    arrays: tuple  # numpy inputs
    torch_fn: Callable | None = None  # the same function in PyTorch, where it has one


def chain(x, y):
    return (x * y + 1).tanh() * 0.5 + (-x).exp() * y


def cases(names=None) -> list[Case]:
    """The fusion cases (those named, or all)."""
    torch = load_torch()
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
    found = [
        Case("chain 8M", chain, (x8m, y8m), chain),
        Case("softmax 4096x1024", lambda x: F.softmax(x, dim=-1), (rows,), lambda x: torch.softmax(x, dim=-1)),
        Case(
            "layer_norm 4096x1024",
            lambda x, w, b: F.layer_norm(x, (1024,), w, b),
            (rows, weight, bias),
            lambda x, w, b: torch.nn.functional.layer_norm(x, (1024,), w, b),
        ),
        Case(
            "bn+relu 32x64x32x32 train",
            lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True).relu(),
            (images, channel_weight, channel_bias),
            lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True).relu(),
        ),
        Case(
            "bn+relu 32x64x32x32 eval",
            lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b).relu(),
            (images, running_mean, running_var, channel_weight, channel_bias),
            lambda x, m, v, w, b: torch.nn.functional.batch_norm(x, m, v, w, b).relu(),
        ),
        Case(
            "bias+gelu 256x1024",
            lambda x, b: F.gelu(x + b),
            (hidden, bias),
            lambda x, b: torch.nn.functional.gelu(x + b),
        ),
        Case("MLP 784-1024-1024-10 b256", mlp, (batch,), _torch_mlp(torch, mlp)),
    ]
    if torch is None:
        found = [Case(c.name, c.fn, c.arrays) for c in found]
    return [c for c in found if names is None or c.name in names]


def _torch_mlp(torch, mlp):
    if torch is None:
        return None
    reference = torch.nn.Sequential(
        torch.nn.Linear(784, 1024),
        torch.nn.GELU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.GELU(),
        torch.nn.Linear(1024, 10),
    )
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in mlp.state_dict().items()})
    return reference


def flops(graph) -> int:
    """Floating-point operations per call of an optimised graph (views and opaque ops count none)."""
    total = 0
    for node in graph.op_nodes():
        kind = OPS[node.op].kind
        if kind is Kind.ELEMENTWISE:
            total += int(np.prod(node.shape))
        elif kind is Kind.REDUCTION:
            total += int(np.prod(graph[node.value_inputs()[0]].shape))
        elif kind is Kind.MATMUL:
            total += 2 * int(np.prod(node.shape)) * graph[node.value_inputs()[0]].shape[-1]
    return total


def roofline(row: dict) -> dict:
    """Achieved GB/s and GF/s of the genesis variants: the bytes each moves per call (eager: every op
    on its own; compiled: the fused program) over its median time."""
    moved = {"genesis eager": row["bytes_eager"], "genesis numpy": row["bytes_fused"]}
    moved["genesis compiled"] = row["bytes_fused"]
    return {
        name: {
            "bytes": moved[name],
            "flops": row["flops"],
            "gb_per_s": moved[name] / row["seconds"][name] / 1e9,
            "gflop_per_s": row["flops"] / row["seconds"][name] / 1e9,
        }
        for name in moved
        if name in row["seconds"]
    }


def run_case(case: Case, rounds: int, min_seconds: float = 0.25, torch_compile: bool = True) -> dict:
    """One case's figures, all variants timed in the same interleaved rounds."""
    torch = load_torch() if case.torch_fn is not None else None
    inputs = [genesis.tensor(a) for a in case.arrays]
    with ExitStack() as no_grad:
        no_grad.enter_context(genesis.no_grad())
        if torch is not None:
            no_grad.enter_context(torch.no_grad())
        with fresh_cache():
            started = time.perf_counter()
            compiled = genesis.compile(case.fn)
            compiled(*inputs)
            row = {"group": "fusion", "case": case.name, "genesis_compile_seconds": time.perf_counter() - started}
            expected, got = case.fn(*inputs), compiled(*inputs)
            numpy_compiled = genesis.compile(case.fn, backend="numpy")
            for _ in range(2):  # the compile and its confirming trace, while the cache directory exists
                numpy_compiled(*inputs)
        row["max_abs_difference"] = float(np.max(np.abs(expected.numpy() - got.numpy())))
        variants = {
            "genesis eager": lambda: case.fn(*inputs),
            "genesis numpy": lambda: numpy_compiled(*inputs),
            "genesis compiled": lambda: compiled(*inputs),
        }
        program = compiled.programs[0]
        row.update(
            kernels_per_call=compiled.stats["kernels_per_call"],
            bytes_eager=program.report["bytes_eager"],
            bytes_fused=program.report["bytes_fused"],
            flops=flops(program.graph),
        )
        if torch is not None:
            t_inputs = [torch.from_numpy(a) for a in case.arrays]
            variants["torch eager"] = lambda: case.torch_fn(*t_inputs)
            if torch_compile:
                started = time.perf_counter()
                t_compiled = torch.compile(case.torch_fn)
                t_compiled(*t_inputs)
                row["torch_compile_seconds"] = time.perf_counter() - started
                variants["torch.compile"] = lambda: t_compiled(*t_inputs)
        record(row, measure(variants, rounds, min_seconds))
    row["roofline"] = roofline(row)
    return row
