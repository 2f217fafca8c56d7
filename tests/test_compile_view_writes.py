"""In-place writes into views under genesis.compile, and results whose history a backward freed.

A convolution's output is a reshape of a matmul's, so DCGAN's
LeakyReLU(0.2, inplace=True) after a convolution writes into a view: traced,
the base takes the write too (`where(region, scatter(value), base)`), and the
program must equal eager in values and gradients, without falling back. Up a
chain of views (`x[1:][:, 0]`) each base takes the write in turn, and every
other live view of the base is made again from it, as eager's see the write in
their memory. See test_compile_view_chains.py for more.
"""

import numpy as np
import pytest

import genesis
from genesis import nn

BACKENDS = ["c", "numpy", "eager"]


def leaf(shape, seed, requires_grad=True):
    values = np.random.default_rng(seed).uniform(-2.0, 2.0, shape).astype(np.float32)
    return genesis.tensor(values, requires_grad=requires_grad)


def assert_matches_eager(fn, shapes, backend):
    """fn compiled with fullgraph=True (a graph break raises) against eager: values and gradients."""
    eager_args = [leaf(shape, seed) for seed, shape in enumerate(shapes)]
    fused_args = [leaf(shape, seed) for seed, shape in enumerate(shapes)]
    expected = fn(*eager_args)
    got = genesis.compile(fn, backend=backend, fullgraph=True)(*fused_args)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    upstream = leaf(expected.shape, 99, requires_grad=False)
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    for e, g in zip(eager_args, fused_args):
        np.testing.assert_allclose(g.grad.numpy(), e.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_in_place_activation_after_a_convolution(backend):
    def fn(x, weight):
        out = nn.functional.conv2d(x, weight, stride=2, padding=1)
        return nn.functional.leaky_relu(out, 0.2, inplace=True) * 1.5

    assert_matches_eager(fn, [(2, 3, 8, 8), (4, 3, 3, 3)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_write_into_a_slice_shows_in_its_base(backend):
    def fn(x):
        y = x * 2
        y[1:].mul_(x[1:])  # the base is returned: it must hold the write
        return y

    assert_matches_eager(fn, [(4, 3)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_write_while_another_view_of_the_base_is_alive(backend):
    def fn(x):
        y = x * 2
        first, rest = y[:1], y[1:]
        rest.add_(1.0)  # `first` and `rest` share y's memory: both are made again from it
        return first + rest.sum()

    assert_matches_eager(fn, [(4, 3)], backend)


def test_a_result_whose_history_a_backward_went_through_in_part():
    # DCGAN returns errD_real + errD_fake after backward() ran through both
    weight = leaf((3,), 0)

    def step(x):
        weight.grad = None
        loss = (weight * x).sum()
        loss.backward()
        return loss + 1

    x = leaf((3,), 1, requires_grad=False)
    expected = step(x)
    compiled = genesis.compile(step, fullgraph=True)
    got = compiled(x)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert compiled.stats["fallbacks"] == []
    for result in (expected, got):  # a second backward through it is refused, as eager refuses it
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            result.backward()
