"""The results as markdown tables and as files written atomically (a run killed while writing
leaves the previous results, never half of a file)."""

from __future__ import annotations

import json
from pathlib import Path

from genesis.bench.timing import NAMES
from genesis.serialization.atomic import atomic_write

EAGER_VARIANTS = ("numpy", "genesis", "torch")
FAULTS = ("genesis eager", "genesis compiled", "torch eager")


def write_text(path, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: file.write(text.encode()), durable=False)


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 1:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def _time(seconds: float) -> str:
    scale, unit = _unit(seconds)
    return f"{seconds * scale:.3g} {unit}"


def _cell(row: dict, variant: str) -> str:
    """The median, and in brackets the interquartile range in the median's unit."""
    timing = row.get("timing", {}).get(variant)
    if timing is None:
        return "-"
    scale, unit = _unit(timing["median"])
    spread = timing["spread"] * scale
    spread_text = f"{spread:.0f}" if spread >= 10 else f"{spread:.2g}"  # never 2.3e+02
    return f"{timing['median'] * scale:.3g} {unit} ({spread_text})"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(c) + " |" for c in lines]


def _variants(rows: list[dict], order) -> list[str]:
    present = {name for row in rows for name in row.get("timing", {})}
    return [name for name in order if name in present]


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def train_tables(rows: list[dict]) -> list[str]:
    variants = _variants(rows, NAMES)
    lines = ["### Training steps", ""]
    lines += _table(["model", *variants], [[r["case"], *(_cell(r, v) for v in variants)] for r in rows])
    header = [
        "model",
        "compile, cold cache",
        "second call",
        "fresh process, warm cache",
        "torch.compile first call",
        "kernels/step",
        "peak MiB eager / compiled",
        "page faults/step eager / compiled / torch",
    ]
    body = [
        [
            r["case"],
            _time(r["first_call_seconds"]),
            _time(r["second_call_seconds"]),
            _time(r["warm_start_seconds"]),
            _time(r["torch_compile_seconds"]) if "torch_compile_seconds" in r else "-",
            str(r["kernels_per_step"]),
            f"{_mib(r['peak_bytes_eager'])} / {_mib(r['peak_bytes_compiled'])}",
            " / ".join(f"{r['faults_per_step'][n]:.0f}" if n in r["faults_per_step"] else "-" for n in FAULTS),
        ]
        for r in rows
    ]
    return lines + ["", "Compile time and memory per training step:", "", *_table(header, body)]


def fusion_tables(rows: list[dict]) -> list[str]:
    variants = _variants(rows, NAMES)
    header = ["function", *variants, "kernels", "MB moved eager / fused", "compiled GB/s", "compiled GF/s"]
    body = []
    for r in rows:
        compiled = r["roofline"].get("genesis compiled", {})
        body.append(
            [
                r["case"],
                *(_cell(r, v) for v in variants),
                str(r["kernels_per_call"]),
                f"{r['bytes_eager'] / 1e6:.0f} / {r['bytes_fused'] / 1e6:.0f}",
                f"{compiled.get('gb_per_s', 0):.1f}",
                f"{compiled.get('gflop_per_s', 0):.1f}",
            ]
        )
    return ["### Fused functions", "", *_table(header, body)]


def eager_tables(rows: list[dict]) -> list[str]:
    variants = _variants(rows, EAGER_VARIANTS)
    header = ["op", *variants, "genesis/numpy", "genesis/torch"]
    body = [
        [
            r["case"],
            *(_cell(r, v) for v in variants),
            f"{r['genesis/numpy']:.2f}x",
            f"{r['genesis/torch']:.2f}x" if "genesis/torch" in r else "-",
        ]
        for r in rows
    ]
    return ["### Eager, per op", "", *_table(header, body)]


TABLES = {"train": train_tables, "fusion": fusion_tables, "eager": eager_tables}


def machine_line(info: dict, found: dict, ceilings: dict | None) -> str:
    """The machine, the versions and the ceilings in a few lines of markdown."""
    caches = ", ".join(f"{level.upper()} {info[level]}" for level in ("l1d", "l2", "l3") if level in info)
    cores = f"{info.get('usable_cpus', info.get('logical_cpus'))} usable CPUs"
    load = ""
    if "load_average_at_start" in info:
        load = f"load average {info['load_average_at_start']} at start, {info.get('load_average_at_end', '?')} at end"
    simd = "/".join(info["simd"][-3:])
    guest = f"a {info['hypervisor']} guest" if info.get("hypervisor") else ""
    parts = [info.get("cpu", "?"), cores, caches or info.get("cache", ""), simd, info["os"], guest, load]
    lines = ["machine: " + "; ".join(p for p in parts if p)]
    revision = f" ({found['genesis_revision']})" if found.get("genesis_revision") else ""
    libraries = [
        f"genesis {found['genesis']}{revision}, compiled = {found['genesis_compiled_backend']} backend",
        f"python {found['python']}",
        f"numpy {found['numpy']}" + (f" ({found['blas']})" if found.get("blas") else ""),
        f"torch {found['torch']} ({found['torch_threads']} threads)" if found.get("torch") else "torch not installed",
        f"triton {found['triton']}" if found.get("triton") else "",
        found.get("c_compiler") or "no C compiler",
    ]
    lines.append("versions: " + "; ".join(p for p in libraries if p))
    if ceilings:
        lines.append(
            f"ceilings: copy {ceilings['copy_gb_per_s']:.1f} GB/s (numpy copy of "
            f"{ceilings['copy_bytes'] // 2**21} MiB), "
            f"GEMM {ceilings['gemm_gflop_per_s']:.0f} GF/s (numpy float32 matmul {ceilings['gemm_size']}²)"
        )
    return "\n\n".join(lines)


def markdown(results: dict) -> str:
    settings = results["settings"]
    kind = "a `--quick` run" if results.get("quick") else "a full run"
    lines = [
        machine_line(results["machine"], results["versions"], results.get("ceilings")),
        "",
        f"From {kind}: medians of {settings['rounds']} interleaved rounds; in brackets the interquartile "
        "range of the rounds, in the median's unit. Compare figures within one run only.",
    ]
    for group, rows in results["groups"].items():
        if rows:
            lines += ["", *TABLES[group](rows)]
    return "\n".join(lines) + "\n"
