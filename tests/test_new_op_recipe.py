"""The recipe for a new op, proven: one op record, and nothing else, gives an elementwise op that
runs eagerly, differentiates, traces, and fuses into C, numpy and Triton kernels.

The op here is softsign, x / (1 + |x|), registered for the test only (docs/architecture.md,
"Adding an op"). Nothing under genesis/compiler changes for it.
"""

import numpy as np
import pytest
import torch
from optest import check_numerical_grad

import genesis
from genesis.compiler.codegen import numpy_dialect
from genesis.dispatch import apply
from genesis.ops import OPS, shape_rules
from genesis.ops import dtype_rules as dt
from genesis.ops.op import Autocast, Kind, Op, register


@pytest.fixture
def softsign(tmp_path, monkeypatch):
    # kernels of an op made at run time go to a fresh cache (the cache's key covers genesis's files)
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    op = register(
        Op(
            name="softsign_recipe",
            kind=Kind.ELEMENTWISE,
            kernel=lambda a: a / (1 + np.abs(a)),
            shape=shape_rules.broadcast,
            dtype=dt.floating,
            vjp=(lambda g, out, x: g / ((1 + x.abs()) * (1 + x.abs())),),
            autocast=Autocast.FP32,
            codegen={
                "numpy": "np.abs({0}, out={out}); np.add({out}, 1, out={out}); np.divide({0}, {out}, out={out})",
                "c": "{0} / (1 + fabs({0}))",
                "triton": "{0} / (1 + tl.abs({0}))",
            },
        )
    )
    yield lambda x: apply(op, x)
    del OPS[op.name]


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3


def test_a_new_op_runs_eagerly_and_differentiates(softsign):
    x = _data(7, 9)
    expected = torch.nn.functional.softsign(torch.from_numpy(x))
    np.testing.assert_allclose(softsign(genesis.tensor(x)).numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    check_numerical_grad(softsign, [x.astype(np.float64)])


@pytest.mark.parametrize("backend", ["c", "numpy", "triton"])
def test_a_new_op_fuses_into_every_backend(softsign, backend):
    def step(x, w):
        return (softsign(x * w) + 1).sum(-1)

    x, w = _data(37, 65), _data(65, seed=1)
    compiled = genesis.compile(step, backend=backend)
    for call in range(2):  # the second call runs the program the first one built
        xs = genesis.tensor(x + call, requires_grad=True)
        ws = genesis.tensor(w, requires_grad=True)
        xe = genesis.tensor(x + call, requires_grad=True)
        we = genesis.tensor(w, requires_grad=True)
        got, expected = compiled(xs, ws), step(xe, we)
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=2e-6, atol=1e-5)
        got.sum().backward()
        expected.sum().backward()
        np.testing.assert_allclose(xs.grad.numpy(), xe.grad.numpy(), rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(ws.grad.numpy(), we.grad.numpy(), rtol=1e-5, atol=1e-5)
    (program,) = compiled.programs
    assert any("softsign_recipe" in node.op for node in program.graph.nodes())
    fused = {m for group in program.graph.groups for m in group.members}
    assert any(program.graph[m].op == "softsign_recipe" for m in fused), "the new op was not fused"
    own_kernels = {"c": "c_kernels", "triton": "triton_kernels", "numpy": "kernels"}[backend]
    assert program.info[own_kernels] == program.info["kernels"] >= 1, program.info
    assert numpy_dialect.numpy_snippet(OPS["softsign_recipe"]) is not None
