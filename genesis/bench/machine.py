"""What the figures were measured on: the CPU, its caches, the OS, the library versions, and the
machine's own ceilings (copy bandwidth and GEMM rate) that the fused cases are plotted against.

The ceilings are measured rather than taken from a data sheet: a roofline drawn from the vendor's
figures says little on a shared virtual machine whose cores and memory other jobs use too.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

import genesis
from genesis.bench.timing import load_torch, measure
from genesis.compiler.api import default_backend
from genesis.compiler.native import find_compiler

LSCPU_KEYS = {
    "Model name": "cpu",
    "CPU(s)": "cpus",
    "Thread(s) per core": "threads_per_core",
    "Core(s) per socket": "cores_per_socket",
    "Socket(s)": "sockets",
    "L1d cache": "l1d",
    "L1i cache": "l1i",
    "L2 cache": "l2",
    "L3 cache": "l3",
    "Hypervisor vendor": "hypervisor",
}
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "neon", "asimd", "sve")


def _run(command: list[str], cwd=None) -> str | None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=30, cwd=cwd, env=dict(os.environ, LC_ALL="C")
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _cpuinfo() -> dict:
    """The CPU from lscpu where it is installed, else /proc/cpuinfo (which names no cache levels)."""
    info = {}
    for line in (_run(["lscpu"]) or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in LSCPU_KEYS:
            info[LSCPU_KEYS[key.strip()]] = value.strip()
        elif key.strip() == "Flags":
            info["flags"] = value.split()
    if "cpu" not in info:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and "cpu" not in info:
                info["cpu"] = value.strip()
            elif key == "cache size" and "l2" not in info:
                info["cache"] = value.strip()
            elif key in ("flags", "Features") and "flags" not in info:
                info["flags"] = value.split()
    flags = set(info.pop("flags", ()))
    info["simd"] = [flag for flag in SIMD_FLAGS if flag in flags]
    return info


def machine() -> dict:
    """The machine as the figures saw it; the load averages say how busy it was with other work."""
    info = {"cpu": platform.processor() or platform.machine(), **_cpuinfo()}
    info["logical_cpus"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        info["memory_gib"] = round(int(meminfo[0].split()[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    info["os"] = platform.platform()
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = round(os.getloadavg()[0], 2)
    return info


def _git_revision() -> str | None:
    """The commit genesis was imported from, with `+changes` when its tracked files differ from it."""
    checkout = Path(genesis.__file__).resolve().parents[1]
    revision = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=checkout)
    if revision is None:
        return None
    changed = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout)
    return revision.strip() + ("+changes" if changed else "")


def _blas() -> str | None:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # the config's layout differs between numpy versions: the figure is optional
        return None
    return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()


def versions() -> dict:
    found = {
        "python": sys.version.split()[0],
        "genesis": genesis.__version__,
        "genesis_revision": _git_revision(),
        "genesis_compiled_backend": default_backend(),
        "numpy": np.__version__,
        "blas": _blas(),
    }
    compiler = find_compiler()
    found["c_compiler"] = compiler.version if compiler else None
    torch = load_torch()
    found["torch"] = torch.__version__ if torch else None
    found["torch_threads"] = torch.get_num_threads() if torch else None
    try:
        import triton

        found["triton"] = triton.__version__
    except ImportError:
        found["triton"] = None
    return found


def environment() -> str:
    """One line naming the versions the figures were measured with (the scripts print it first)."""
    v = versions()
    peer = f"torch {v['torch']} ({v['torch_threads']} threads)" if v["torch"] else "torch not installed"
    return (
        f"python {v['python']}, numpy {v['numpy']}, genesis {v['genesis']} "
        f"(compiled: the {v['genesis_compiled_backend']} backend), {peer}\n"
    )


def peaks(rounds: int, copy_mib: int = 256, gemm_size: int = 2048, min_seconds: float = 0.1) -> dict:
    """The machine's measured ceilings: bandwidth of a numpy copy far larger than the caches (bytes
    read plus bytes written), and the rate of a float32 numpy matmul, timed in turns like any case."""
    source = np.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    a, b = np.ones((2, gemm_size, gemm_size), dtype=np.float32)
    timings = measure({"copy": lambda: np.copyto(target, source), "gemm": lambda: np.matmul(a, b)}, rounds, min_seconds)
    copy_bytes, gemm_flops = 2 * source.nbytes, 2 * gemm_size**3
    return {
        "copy_bytes": copy_bytes,
        "copy_gb_per_s": copy_bytes / timings["copy"].median / 1e9,
        "copy_timing": timings["copy"].as_dict(),
        "gemm_size": gemm_size,
        "gemm_flops": gemm_flops,
        "gemm_gflop_per_s": gemm_flops / timings["gemm"].median / 1e9,
        "gemm_timing": timings["gemm"].as_dict(),
    }
