"""matmul: batched and broadcast, with PyTorch's 1-D rules.

fp16/bf16 operands are multiplied in fp32 and the result rounded once (fp32
accumulation), as autocast's matmul-class ops require. Broadcast batch dims
are summed back by the autograd engine.
"""

from __future__ import annotations

import numpy as np

from genesis import functional as F
from genesis.ops import dtype_rules as dt
from genesis.ops import shape_rules
from genesis.ops.op import Autocast, Kind, Op, register


def _as_matrices(g, a, b):
    """Lift 1-D operands (and the gradient) to matrices so one rule covers every case.

    The gradient gets its column dim back first: with two vectors it is 0-d, and
    only after that does a row dim at -2 exist to insert.
    """
    if b.ndim == 1:
        b = F.unsqueeze(b, -1)
        g = F.unsqueeze(g, -1)
    if a.ndim == 1:
        a = F.unsqueeze(a, 0)
        g = F.unsqueeze(g, -2)
    return g, a, b


def _grad_a(g, out, a, b):
    g2, a2, b2 = _as_matrices(g, a, b)
    grad = F.matmul(g2, F.transpose(b2, -1, -2))
    return F.reshape(F.sum_to(grad, a2.shape), a.shape) if a.ndim == 1 else grad


def _grad_b(g, out, a, b):
    g2, a2, b2 = _as_matrices(g, a, b)
    grad = F.matmul(F.transpose(a2, -1, -2), g2)
    return F.reshape(F.sum_to(grad, b2.shape), b.shape) if b.ndim == 1 else grad


matmul = register(Op(
    name="matmul", kind=Kind.MATMUL, kernel=np.matmul, shape=shape_rules.matmul, dtype=dt.matmul,
    vjp=(_grad_a, _grad_b), autocast=Autocast.LOW_PRECISION,
))
