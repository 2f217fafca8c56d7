"""A readable repr in PyTorch's shape: tensor([...], dtype=..., requires_grad=True).

The layout follows PyTorch's printer rule for rule, so a genesis tensor and
the same torch tensor print alike (people paste both into bug reports and
compare them by eye): four decimals for floats; whole-number floats as `3.`;
scientific notation when the magnitudes span more than 1000x, exceed 1e8 or
fall below 1e-4; every element padded to one width; rows wrapped at 80
columns; more than 1000 elements summarized to 3 at each edge. The dtype is
shown unless it is the default float, int64 or bool; then the grad_fn, or
`requires_grad=True` for a leaf. The data is read on the host, so this
module may use numpy.
"""

from __future__ import annotations

import math

import numpy as np

from genesis import dtypes

PRECISION = 4
THRESHOLD = 1000
EDGE_ITEMS = 3
LINE_WIDTH = 80


class _Formatter:
    """Chooses one notation and one width for all elements, from the values that will be shown."""

    def __init__(self, values: np.ndarray, floating: bool):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        if not floating:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(str(value)))
            return
        shown = flat[np.isfinite(flat) & (flat != 0)]
        if shown.size == 0:
            return
        magnitudes = np.abs(shown)
        smallest, largest = float(magnitudes.min()), float(magnitudes.max())
        self.int_mode = bool(np.all(shown == np.ceil(shown)))
        self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
        for value in shown.tolist():
            if self.sci_mode:
                width = len(f"{value:.{PRECISION}e}")
            elif self.int_mode:
                width = len(f"{value:.0f}") + 1  # the trailing "." that marks a float
            else:
                width = len(f"{value:.{PRECISION}f}")
            self.max_width = max(self.max_width, width)

    def format(self, value) -> str:
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.max_width}.{PRECISION}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if not (math.isinf(value) or math.isnan(value)):
                text += "."
        else:
            text = f"{value:.{PRECISION}f}"
        return " " * (self.max_width - len(text)) + text


def _summarized(data: np.ndarray) -> np.ndarray:
    """Only the elements a summarized print shows, so they alone decide the notation."""
    if data.ndim == 0 or data.shape[0] <= 2 * EDGE_ITEMS:
        rows = data if data.ndim <= 1 else [_summarized(row) for row in data]
    else:
        rows = np.concatenate([data[:EDGE_ITEMS], data[-EDGE_ITEMS:]])
        if data.ndim > 1:
            rows = [_summarized(row) for row in rows]
    return rows if isinstance(rows, np.ndarray) else np.stack(rows)


def _vector(data, indent, summarize, formatter) -> str:
    per_line = max(1, math.floor((LINE_WIDTH - indent) / (formatter.max_width + 2)))
    if summarize and data.shape[0] > 2 * EDGE_ITEMS:
        items = (
            [formatter.format(v) for v in data[:EDGE_ITEMS].tolist()]
            + [" ..."]
            + [formatter.format(v) for v in data[-EDGE_ITEMS:].tolist()]
        )
    else:
        items = [formatter.format(v) for v in data.tolist()]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(data, indent, summarize, formatter) -> str:
    if data.ndim == 0:
        return formatter.format(data.item())
    if data.ndim == 1:
        return _vector(data, indent, summarize, formatter)
    if summarize and data.shape[0] > 2 * EDGE_ITEMS:
        rows = (
            [_nested(data[i], indent + 1, summarize, formatter) for i in range(EDGE_ITEMS)]
            + ["..."]
            + [
                _nested(data[i], indent + 1, summarize, formatter)
                for i in range(data.shape[0] - EDGE_ITEMS, data.shape[0])
            ]
        )
    else:
        rows = [_nested(row, indent + 1, summarize, formatter) for row in data]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def _with_suffixes(text: str, suffixes: list, indent: int) -> str:
    parts = [text]
    last_line = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > LINE_WIDTH:
            parts.append(",\n" + " " * indent + suffix)
            last_line = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line += len(suffix) + 2
    return "".join(parts) + ")"


def tensor_repr(t, data) -> str:
    """PyTorch's repr of tensor `t`, whose values on the host are `data`."""
    prefix = "tensor("
    indent = len(prefix)
    floating = t.dtype.is_floating_point
    if floating:
        data = data.astype(np.float64)  # exact for every float dtype, bfloat16 included
    suffixes = [] if t.device.type == "cpu" else [f"device='{t.device}'"]
    if data.size == 0:
        body = "[]"
        if t.ndim != 1:
            suffixes.append(f"size={tuple(t.shape)}")
        if t.dtype is not dtypes.get_default_dtype():
            suffixes.append(f"dtype=genesis.{t.dtype.name}")
    else:
        summarize = data.size > THRESHOLD
        formatter = _Formatter(_summarized(data) if summarize else data, floating)
        body = _nested(data, indent, summarize, formatter)
        if t.dtype not in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype=genesis.{t.dtype.name}")
    if t._node is not None:
        suffixes.append(f"grad_fn=<{t._node.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + body, suffixes, indent)
