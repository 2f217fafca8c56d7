"""A readable repr, in PyTorch's shape: tensor([...], dtype=..., requires_grad=True)."""

from __future__ import annotations

import numpy as np

from genesis import dtypes


def tensor_repr(t) -> str:
    data = t._data
    if t.dtype.is_low_precision:
        data = data.astype(np.float32)
    if data.size == 0:
        body = f"[], size={tuple(t.shape)}" if t.ndim > 1 else "[]"
    else:
        formatter = None
        if t.dtype.is_floating_point:
            formatter = {"float_kind": lambda v: np.format_float_positional(v, precision=4, unique=True, trim=".")}
        body = np.array2string(data, separator=", ", prefix="tensor(", formatter=formatter,
                               threshold=1000, edgeitems=3, max_line_width=100)
    extras = []
    default = t.dtype in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_)
    if not default:
        extras.append(f"dtype=genesis.{t.dtype.name}")
    if t._node is not None:
        extras.append(f"grad_fn=<{t._node.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
