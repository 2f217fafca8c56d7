"""A fused group's Triton kernels as a file that runs on its own, with a tiny benchmark.

The dump (`dump_dir=`, `GENESIS_DUMP`) writes one such file per group the Triton backend takes,
`triton/<kernel>.py`: the kernels and launcher the program runs, and a `__main__` that launches
them on random inputs of the group's shapes and dtypes and prints the time per call, as Inductor's
output code does. Without a GPU the kernels run under Triton's interpreter (slow, but the same
launches); with one, on PyTorch's CUDA tensors: the launcher's buffer helpers become
pass-throughs, since genesis has no device buffers of its own yet.
"""

from __future__ import annotations

import time

import numpy as np
import triton

from genesis.compiler.codegen import triton_backend
from genesis.compiler.codegen.kernel import KernelSpec, helpers
from genesis.compiler.codegen.wrapper import CODEGEN_VERSION
from genesis.compiler.templates import render
from genesis.version import __version__


def source(spec: KernelSpec) -> str:
    """The file for a group that `triton_backend.why_not` accepts."""
    return render(
        "triton_standalone.py.j2",
        version=__version__,
        codegen_version=CODEGEN_VERSION,
        triton_version=triton.__version__,
        group=spec.group,
        summary=spec.summary(),
        name=spec.name,
        helpers=helpers([spec], "triton"),
        kernel=triton_backend.render_kernel(spec),
        arguments=repr(triton_backend.launcher_arguments(spec)),
    )


def random_arguments(arguments, seed: int = 0) -> list[np.ndarray]:
    """Inputs drawn at random for (name, shape, dtype): floats from a normal, integers in [0, 8),
    bools by coin; outputs (named out_*) empty."""
    rng = np.random.default_rng(seed)
    arrays = []
    for name, shape, dtype in arguments:
        dtype = np.dtype(dtype)
        if name.startswith("out_"):
            arrays.append(np.zeros(shape, dtype))
        elif dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        elif np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, 8, shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def launch(namespace: dict, name: str, arrays, interpret: bool = True):
    """A function that runs the launcher `namespace[name]` once on `arrays`: under the interpreter
    (with its libdevice), or on the GPU (see `_on_the_gpu`)."""
    launcher = namespace[name]
    if not interpret:
        return _on_the_gpu(namespace, launcher, arrays)
    from genesis.runtime.triton_buffers import INTERPRETER_LIBDEVICE, interpreted_triton_library

    namespace["libdevice"] = INTERPRETER_LIBDEVICE

    def call():
        with interpreted_triton_library(), np.errstate(all="ignore"):
            launcher(*arrays)

    return call


def run(namespace: dict, name: str, arguments, interpret: bool, seconds: float = 1.0) -> float:
    """Launch `namespace[name]` on random arguments until `seconds` have passed (once at least);
    print and return the median milliseconds per call."""
    call = launch(namespace, name, random_arguments(arguments), interpret)
    times, deadline = [], time.perf_counter() + seconds
    while not times or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    milliseconds = float(np.median(times)) * 1e3
    where = "the Triton interpreter" if interpret else "the GPU"
    print(f"{name}: {milliseconds:.4f} ms per call on {where} (median of {len(times)})")
    return milliseconds


def _on_the_gpu(namespace: dict, launcher, arrays):
    """A call of the launcher on CUDA tensors (PyTorch's), synchronised, for timing."""
    import torch

    def contiguous(t):
        return t.contiguous()

    def matrix(t):
        if t.dim() == 2 and not t.is_contiguous() and t.T.is_contiguous():
            return t.T, True
        return t.contiguous(), False

    def empty(shape, dtype):
        return torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device="cuda")

    namespace.update(as_buffer=contiguous, TritonBuffer=contiguous, matrix_argument=matrix, empty=empty)

    def tensor(a):
        if a.dtype.name == "bfloat16":  # ml_dtypes' bfloat16: torch takes its bits
            return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16).cuda()
        return torch.from_numpy(np.ascontiguousarray(a)).cuda()

    tensors = [tensor(a) for a in arrays]

    def call():
        launcher(*tensors)
        torch.cuda.synchronize()

    return call
