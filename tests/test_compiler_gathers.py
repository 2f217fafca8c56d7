"""passes/gathers.py: a gather of one position per row, and its gradient, become elementwise work
that fuses into the kernels around them, with gather's values, gradients and errors."""

import numpy as np
import pytest
import torch

import genesis
from genesis import nn


def ops_of(compiled):
    return [node.op for graph in compiled.graphs for node in graph.nodes()]


def language_model_step(dtype=genesis.float32):
    genesis.manual_seed(0)
    head = nn.Linear(16, 50).to(dtype)

    def step(features, targets):
        head.zero_grad()
        loss = nn.functional.cross_entropy(head(features), targets)
        loss.backward()
        return loss

    return head, step


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
def test_cross_entropy_picks_its_targets_inside_the_softmax_kernel(backend, dtype):
    rng = np.random.default_rng(0)
    features = genesis.tensor(rng.standard_normal((24, 16)), dtype=dtype)
    targets = genesis.tensor(rng.integers(0, 50, 24))
    head, step = language_model_step(dtype)
    compiled = genesis.compile(step, backend=backend)
    for _ in range(2):
        got = [compiled(features, targets).item(), head.weight.grad.numpy().copy(), head.bias.grad.numpy().copy()]
    want = [step(features, targets).item(), head.weight.grad.numpy().copy(), head.bias.grad.numpy().copy()]
    reference = torch.nn.Linear(16, 50).to(torch.float64 if dtype is genesis.float64 else torch.float32)
    reference.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in head.state_dict().items()})
    loss = torch.nn.functional.cross_entropy(
        reference(torch.from_numpy(features.numpy())), torch.from_numpy(targets.numpy())
    )
    loss.backward()
    tolerance = 1e-6 if dtype is genesis.float32 else 1e-12
    for a, b, c in zip(got, want, [loss.item(), reference.weight.grad.numpy(), reference.bias.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(a, c, rtol=10 * tolerance, atol=10 * tolerance)
    ops = ops_of(compiled)
    assert "gather" not in ops and "gather_backward" not in ops and ops.count("positions") == 1
    if backend == "c":
        (program,) = compiled.programs
        assert program.info["library_calls"] == 1  # positions, which also checks the targets


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_target_out_of_range_is_an_index_error_naming_it(backend):
    features, targets = genesis.randn(4, 16), genesis.tensor([1, 50, 2, 3])
    _, step = language_model_step()
    with pytest.raises(IndexError, match="target 50 is out of range for 50 classes"):
        step(features, targets)
    compiled = genesis.compile(step, backend=backend)
    compiled(features, genesis.tensor([1, 49, 2, 3]))
    with pytest.raises(IndexError, match="index 50 is out of range for dim 1 with size 50"):
        compiled(features, targets)


def test_gathers_from_inputs_or_of_several_positions_per_row_stay_gathers():
    x, index, wide = genesis.randn(6, 9), genesis.tensor([[3], [0], [8], [1], [1], [5]]), genesis.tensor([[1, 2]] * 6)

    def fn(x, index, wide):  # from an input (a gather reads 6 elements, a masked sum would read 54)
        return x.gather(1, index), x.exp().gather(1, wide), x.exp().gather(1, index)

    compiled = genesis.compile(fn)
    for got, want in zip(compiled(x, index, wide), fn(x, index, wide)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert ops_of(compiled).count("gather") == 2 and ops_of(compiled).count("positions") == 1
