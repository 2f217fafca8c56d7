"""Eager dispatch overhead: genesis against raw numpy and PyTorch eager, side by side.

Small ops (64x64, inputs with requires_grad) show what genesis's Python dispatch and autograd
recording cost per op; large ops (4M elements) show whether that cost disappears behind the kernel.
"""

from __future__ import annotations

import numpy as np

import genesis
from genesis.bench.timing import load_torch, measure, record

QUICK = (
    "add 64x64 (requires_grad)",
    "matmul 64x64 (requires_grad)",
    "reshape 64x64 (requires_grad)",
    "add 4M",
    "sum 4M",
    "mean 4M",
    "amax 4M",
    "Adam step, MLP 784-256-256-10",
)


def _small(torch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 64, 64), dtype=np.float32)
    ga, gb = (genesis.tensor(v, requires_grad=True) for v in (a, b))
    found = {
        "add 64x64 (requires_grad)": {"numpy": lambda: np.add(a, b), "genesis": lambda: ga + gb},
        "matmul 64x64 (requires_grad)": {"numpy": lambda: np.matmul(a, b), "genesis": lambda: ga @ gb},
        # views: no arithmetic, so the figure is the framework's own cost per op
        "reshape 64x64 (requires_grad)": {"numpy": lambda: a.reshape(4096), "genesis": lambda: ga.reshape(4096)},
        "slice 64x64 (requires_grad)": {"numpy": lambda: a[1:5], "genesis": lambda: ga[1:5]},
    }
    if torch is not None:
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
        found["add 64x64 (requires_grad)"]["torch"] = lambda: ta + tb
        found["matmul 64x64 (requires_grad)"]["torch"] = lambda: ta @ tb
        found["reshape 64x64 (requires_grad)"]["torch"] = lambda: ta.reshape(4096)
        found["slice 64x64 (requires_grad)"]["torch"] = lambda: ta[1:5]
    return found


def _large(torch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4 * 1024 * 1024), dtype=np.float32)
    m1, m2 = rng.standard_normal((2, 2048, 2048), dtype=np.float32)
    m = a.reshape(4096, 1024)
    ga, gb, gm = genesis.tensor(a), genesis.tensor(b), genesis.tensor(m)
    gm1, gm2 = genesis.tensor(m1), genesis.tensor(m2)
    found = {
        "add 4M": {"numpy": lambda: np.add(a, b), "genesis": lambda: ga + gb},
        "exp 4M": {"numpy": lambda: np.exp(a), "genesis": lambda: ga.exp()},
        "sum 4M": {"numpy": lambda: np.sum(a), "genesis": lambda: ga.sum()},
        "mean 4M": {"numpy": lambda: np.mean(a), "genesis": lambda: ga.mean()},
        "amax 4M": {"numpy": lambda: np.max(a), "genesis": lambda: ga.amax()},
        "sum 4096x1024 over rows": {"numpy": lambda: np.sum(m, axis=1), "genesis": lambda: gm.sum(1)},
        "matmul 2048x2048": {"numpy": lambda: np.matmul(m1, m2), "genesis": lambda: gm1 @ gm2},
    }
    if torch is not None:
        ta, tb, tm1, tm2 = (torch.from_numpy(v) for v in (a, b, m1, m2))
        found["add 4M"]["torch"] = lambda: ta + tb
        found["exp 4M"]["torch"] = lambda: ta.exp()
        found["sum 4M"]["torch"] = lambda: ta.sum()
        found["mean 4M"]["torch"] = lambda: ta.mean()
        found["amax 4M"]["torch"] = lambda: ta.amax()
        tm = ta.reshape(4096, 1024)
        found["sum 4096x1024 over rows"]["torch"] = lambda: tm.sum(1)
        found["matmul 2048x2048"]["torch"] = lambda: tm1 @ tm2
    return found


ADAM_STEP = "Adam step, MLP 784-256-256-10"


def _optimizer_step(torch):
    """One Adam step over an MLP's 269K parameters: genesis's fused step, its per-op step (numpy
    ufuncs in place: the "numpy" column) and PyTorch's default (single-tensor) step."""
    rng = np.random.default_rng(0)
    shapes = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
    values = [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
    grads = [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
    variants = {}
    for name, fused in (("numpy", False), ("genesis", True)):
        params = [genesis.nn.Parameter(genesis.tensor(v)) for v in values]
        for param, grad in zip(params, grads):
            param.grad = genesis.tensor(grad)
        variants[name] = genesis.optim.Adam(params, lr=1e-5, fused=fused).step
    if torch is not None:
        params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
        for param, grad in zip(params, grads):
            param.grad = torch.from_numpy(grad)
        variants["torch"] = torch.optim.Adam(params, lr=1e-5).step
    return {ADAM_STEP: variants}


def cases(names=None) -> list[tuple]:
    """(size, name, variants) for the eager cases (those named, or all)."""
    torch = load_torch()
    found = [("small", name, v) for name, v in _small(torch).items()]
    found += [("large", name, v) for name, v in _large(torch).items()]
    found += [("large", name, v) for name, v in _optimizer_step(torch).items()]
    return [c for c in found if names is None or c[1] in names]


def run_case(size: str, name: str, variants: dict, rounds: int, min_seconds: float = 0.05) -> dict:
    row = record({"group": "eager", "size": size, "case": name}, measure(variants, rounds, min_seconds))
    times = row["seconds"]
    row["genesis/numpy"] = times["genesis"] / times["numpy"]
    if "torch" in times:
        row["genesis/torch"] = times["genesis"] / times["torch"]
    return row
