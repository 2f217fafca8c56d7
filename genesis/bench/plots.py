"""Pictures of a run: step time per variant for each model, and a roofline of the fused functions
against the machine's measured ceilings. matplotlib is optional (the `bench` extra): without it the
plots are skipped with a message and everything else is written as usual."""

from __future__ import annotations

import sys
from pathlib import Path

from genesis.bench.timing import NAMES

COLORS = dict(zip(NAMES, ("#9e9e9e", "#80b1d3", "#1f78b4", "#fdb462", "#e6550d")))


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    return plt


def save(results: dict, out: Path) -> list[Path]:
    """The PNG files made from `results` in `out` (none without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        print("plots skipped: matplotlib is not installed (pip install 'genesis[bench]')", file=sys.stderr)
        return []
    written = []
    groups = results["groups"]
    if groups.get("train"):
        written.append(train_steps(plt, groups["train"], out / "train_steps.png", results.get("quick")))
    if groups.get("fusion"):
        written.append(roofline(plt, groups["fusion"], results["ceilings"], out / "roofline.png"))
    return written


def train_steps(plt, rows: list[dict], path: Path, quick: bool = False) -> Path:
    """One panel per model (their step times differ a hundredfold): a bar per variant at its median,
    the whisker spanning the interquartile range."""
    figure, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows) + 0.6, 3.2), squeeze=False)
    for axis, row in zip(axes[0], rows):
        names = [name for name in NAMES if name in row["timing"]]
        timings = [row["timing"][name] for name in names]
        medians = [t["median"] * 1e3 for t in timings]
        whiskers = [[(t["median"] - t["q1"]) * 1e3 for t in timings], [(t["q3"] - t["median"]) * 1e3 for t in timings]]
        axis.bar(range(len(names)), medians, yerr=whiskers, capsize=2, color=[COLORS[n] for n in names])
        axis.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=6)
        axis.set_title(row["case"], fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel("ms per training step (median)", fontsize=8)
    title = "Training step time: median bars, interquartile range whiskers"
    figure.suptitle(title + (" (a --quick run)" if quick else ""), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def roofline(plt, rows: list[dict], ceilings: dict, path: Path) -> Path:
    """Achieved GF/s against arithmetic intensity (flops per byte moved), under the roofs of the
    measured copy bandwidth and GEMM rate; eager (hollow) and compiled (filled) for each function."""
    bandwidth, peak = ceilings["copy_gb_per_s"], ceilings["gemm_gflop_per_s"]
    points = [(r["case"], name, p) for r in rows for name, p in r["roofline"].items() if p["bytes"] and p["flops"]]
    intensities = [p["flops"] / p["bytes"] for _, _, p in points] or [1.0]
    low, high = min(intensities + [peak / bandwidth]) / 4, max(intensities + [peak / bandwidth]) * 4
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    ridge = peak / bandwidth
    axis.plot([low, ridge, high], [bandwidth * low, peak, peak], color="black", linewidth=1)
    axis.annotate(f"copy {bandwidth:.1f} GB/s", (low * 1.3, bandwidth * low), fontsize=7, va="top")
    axis.annotate(f"GEMM {peak:.0f} GF/s", (ridge, peak * 1.1), fontsize=7)
    for index, row in enumerate(rows):
        color = f"C{index}"
        for name, marker_face in (("genesis eager", "none"), ("genesis compiled", color)):
            p = row["roofline"].get(name)
            if not p or not p["bytes"] or not p["flops"]:
                continue
            x, y = p["flops"] / p["bytes"], p["gflop_per_s"]
            label = row["case"] if name == "genesis compiled" else None
            axis.scatter([x], [y], s=36, edgecolors=color, facecolors=marker_face, label=label, zorder=3)
            if name == "genesis compiled":
                axis.annotate(f"{p['gb_per_s']:.1f} GB/s", (x, y), (4, -10), textcoords="offset points", fontsize=6)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("flops per byte moved", fontsize=8)
    axis.set_ylabel("GF/s achieved (median)", fontsize=8)
    axis.set_title("Fused functions: genesis eager (hollow) and compiled (filled)", fontsize=9)
    axis.tick_params(labelsize=7)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
