"""Compiled equals eager for the new composites that trace: values, and gradients of the float inputs.

Each case runs eagerly and under `genesis.compile(fullgraph=True)` (so a graph
break would fail) with the default backend, then on the numpy backend for a
sample; the ones whose sizes depend on values (masked_select, argwhere) and the
host reads (allclose, equal) are eager only by design and are not listed.
"""

import numpy as np
import pytest
from optest import check_compiled

import genesis

RNG = np.random.default_rng(5)
X = RNG.uniform(-2, 2, (3, 4, 5))
INDEX = genesis.tensor([[[0, 2, 1, 0, 2]]] * 3)  # (3, 1, 5): along dim 1, repeats across columns
ROWS = genesis.tensor([3, 0, 3])

CASES = {
    "softmax": lambda x: x.softmax(-1) * x.log_softmax(1),
    "norm": lambda x: x.norm(dim=1) + x.norm(3, dim=(0, 2), keepdim=True).sum() + x.norm(float("inf")),
    "vector_norm": lambda x: genesis.linalg.vector_norm(x, 1, -1),
    "rounding": lambda x: (x * 3).round() + (x * 3).trunc() + x.frac() + (x * 10).round(decimals=-1),
    "logs": lambda x: x.abs().log2() + (x.abs() + 1).log10() + x.exp2(),
    "nan_to_num": lambda x: (x.log()).nan_to_num(nan=0.5, neginf=-3.0),
    "isclose": lambda x: x.isclose(x.round(decimals=1), atol=0.05).float() * x,
    "lerp": lambda x: x.lerp(x.exp(), 0.3) + x.lerp(-x, x.sigmoid()),
    "addmm": lambda x: x[0, :, :4].addmm(x[1], x[2].T, beta=0.5, alpha=2.0) + x[0, :, 0].addmv(x[1], x[2, 0]),
    "baddbmm": lambda x: x[:, :, :4].baddbmm(x, x.transpose(1, 2), alpha=0.5),
    "mv_outer": lambda x: x[0].mv(x[1, 0]).outer(x[2, 1]),
    "cross": lambda x: x[:, :3].cross(x[:, 1:], dim=1),
    "diagonal": lambda x: x.diagonal(1, 1, 2).exp() + x[0].diag().sum() + x[1].trace(),
    "diag_vector": lambda x: x[0, 0].diag(-1) * 2,
    "index_add": lambda x: x.index_add(1, ROWS, x[:, :3] * 2, alpha=0.5),
    "index_copy_fill": lambda x: x.index_copy(1, genesis.tensor([2, 0]), x[:, 1:3].exp()).index_fill(2, ROWS, -1.0),
    "scatter": lambda x: x.scatter(1, INDEX[:, :, :1], x[:, :1, :1] * 3).scatter(2, INDEX[:, :, :1], 0.5),
    "scatter_add_mean": lambda x: (
        x.scatter_reduce(1, INDEX, x[:, :1] ** 2, "mean", include_self=False)
        + x.scatter_reduce(1, INDEX, x[:, 1:2], "sum")
    ),
    "scatter_amax_prod": lambda x: (
        x.scatter_reduce(1, INDEX, x[:, 1:2] * 2, "amax")
        + x.scatter_reduce(1, INDEX, x[:, 2:3], "prod", include_self=False)
    ),
    "masked_scatter": lambda x: x.masked_scatter(x > 0.5, x.exp().flip(0)),
    "take": lambda x: x.take(genesis.tensor([[0, 59], [-1, 7]])) * 2 + x.take_along_dim(x.argsort(-1), -1).sum(),
    "median_mode": lambda x: (
        x.median(1).values + x.nanmedian(-1).values.sum(-1, keepdim=True) + x.round().mode(1).values
    ),
    "quantile": lambda x: (
        x.quantile(genesis.tensor([0.1, 0.5, 0.75], dtype=x.dtype), dim=1).sum(0)
        + x.nanquantile(0.3, -1, interpolation="midpoint").sum(-1, keepdim=True)
    ),
    "nan_reductions": lambda x: x.log().nansum(1) + x.log().nanmean(-1).sum(-1, keepdim=True) + x.count_nonzero(1),
    "scans": lambda x: x.cummax(1).values + x.cummin(2).values * x.logcumsumexp(0),
    "diff": lambda x: x.diff(dim=2, prepend=x[:, :, :1] * 2).sum(-1) + x.diff(n=2, dim=1).sum(1, keepdim=True).sum(-1),
    "repeat_tile": lambda x: x.repeat(1, 2, 1).sum(0) + x.tile((2, 1, 1))[:3].sum(0)[:4].repeat(2, 1),
    "unfold": lambda x: x.unfold(2, 3, 1).exp().sum(-1) + x.unfold(1, 2, 2).sum((-1, 1)).unsqueeze(1).sum(-1, True),
    "turns": lambda x: x.rot90(1, (1, 2)).swapaxes(1, 2) + x.fliplr().flipud().swapdims(0, 0),
    "triangles_in_place": lambda x: (x * 2).triu_(1)[0] + (x + 1).tril_(-1)[1],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_equals_eager(name):
    check_compiled(CASES[name], [X], dtype=genesis.float64, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["quantile", "scatter_amax_prod", "scans", "masked_scatter", "norm"])
def test_compiled_equals_eager_on_the_numpy_backend(name):
    check_compiled(CASES[name], [X], dtype=genesis.float32, backend="numpy", rtol=1e-5, atol=1e-5)
