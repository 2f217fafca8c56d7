"""Compiled equals eager for the ops outside the elementwise table, on every backend.

Reductions, shape and view ops, indexing, matmul and casts, each with an
elementwise prologue and epilogue so fusion boundaries are crossed, run
compiled with the numpy, triton and eager backends and are compared with the
same function run eagerly (values, shapes, dtypes). The elementwise ops have
their own table in test_compiler_codegen.py.
"""

import numpy as np
import pytest

import genesis
from genesis import nn

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F = nn.functional
INDEX = genesis.tensor([2, 0, 3, 3])

OPS = {
    "sum": lambda x: (x * 2).sum(dim=1) + 1,
    "mean": lambda x: (x + 1).mean(dim=(0, 2), keepdim=True) * 3,
    "prod": lambda x: (x * 0.5 + 1).prod(dim=-1),
    "amax": lambda x: x.amax(dim=0) - x.amin(dim=0),
    "max_dim": lambda x: x.max(dim=1).values * 2,
    "argmax": lambda x: x.argmax(dim=-1) + 1,
    "var": lambda x: x.var(dim=1) + x.std(dim=1, correction=0),
    "logsumexp": lambda x: x.logsumexp(dim=-1),
    "all_any": lambda x: (x > 0).all(dim=1) | (x > 1).any(dim=1),
    "sum_all": lambda x: (x * x).sum() / 7,
    "reshape": lambda x: (x * 2).reshape(6, 10) + 1,
    "permute": lambda x: x.permute(2, 0, 1).exp() * 2,
    "transpose_contiguous": lambda x: x.transpose(0, 1).contiguous() + 1,
    "squeeze_unsqueeze": lambda x: x.unsqueeze(1).squeeze(1) * 3,
    "expand": lambda x: x[:, :1].expand(3, 4, 5) + x,
    "flatten": lambda x: x.flatten(1).tanh(),
    "cat": lambda x: genesis.cat([x, x * 2], dim=1).sum(dim=-1),
    "stack": lambda x: genesis.stack([x, -x], dim=0) + 1,
    "split": lambda x: x.split(2, dim=1)[1] * 2,
    "chunk": lambda x: x.chunk(2, dim=-1)[0].exp(),
    "flip": lambda x: x.flip(1) - x,
    "tril_triu": lambda x: x[0].tril() + x[1].triu(1),
    "pad": lambda x: F.pad(x, (1, 2)) * 2,
    "getitem_basic": lambda x: x[1:, ::2, -1] * 2,
    "getitem_advanced": lambda x: x[:, INDEX] + 1,
    "gather": lambda x: x.gather(2, genesis.zeros(3, 4, 2, dtype=genesis.int64)) * 2,
    "scatter_add": lambda x: genesis.zeros(3, 4, 5).scatter_add(
        1, genesis.ones(3, 2, 5, dtype=genesis.int64), x[:, :2] * 2
    ),
    "index_select": lambda x: x.index_select(1, INDEX) - 1,
    "masked_fill": lambda x: x.masked_fill(x > 0.5, 0.0) * 2,
    "one_hot": lambda x: F.one_hot(x.argmax(dim=-1), 5).float() * 2,
    "matmul": lambda x: (x @ x.transpose(1, 2)).relu(),
    "matmul_2d": lambda x: (x[0] @ x[1].T + 1).sigmoid(),
    "cast": lambda x: (x * 10).to(genesis.int32).to(genesis.float32) + x.half().float(),
    "softmax": lambda x: F.softmax(x, dim=-1) * 2,
    "log_softmax": lambda x: F.log_softmax(x, dim=1),
    "layer_norm": lambda x: F.layer_norm(x, (5,)),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "sort": lambda x: x.sort(dim=1, descending=True).values * 2 + x.argsort(dim=-1),
    "topk_kthvalue": lambda x: x.topk(2, dim=-1).values.exp() + x.kthvalue(3, dim=-1, keepdim=True).values,
    "cumsum_cumprod": lambda x: (x * 2).cumsum(-1) + (x + 1).cumprod(0),
    "einsum": lambda x: genesis.einsum("bij,bkj->bik", x, x * 2).tanh(),
    "roll": lambda x: (x * 2).roll((1, -2), (0, 2)) + 1,
    "repeat_interleave": lambda x: x.repeat_interleave(2, dim=1).exp(),
}


@pytest.mark.parametrize("backend", ["numpy", "c", "triton", "eager"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_compiled_equals_eager(name, backend):
    x = genesis.tensor(np.random.default_rng(0).uniform(-1, 1, (3, 4, 5)), dtype=genesis.float32)
    fn = OPS[name]
    with genesis.no_grad():
        expected = fn(x)
        got = genesis.compile(fn, backend=backend, fullgraph=True)(x)
    assert got.shape == expected.shape and got.dtype is expected.dtype
    np.testing.assert_allclose(
        got.numpy().astype(np.float64), expected.numpy().astype(np.float64), rtol=1e-6, atol=1e-6
    )
