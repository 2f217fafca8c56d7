"""A first end-to-end check of the helper itself: it must notice a wrong answer."""

import numpy as np
import pytest
from optest import check_numerical_grad, check_torch

import genesis


def test_mlp_forward_backward_matches_torch():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    check_torch(lambda x, w, b: ((x @ w + b).tanh() * 2).sum(-1), [x, w, b])


def test_helper_detects_a_wrong_gradient():
    x = np.random.default_rng(0).standard_normal((3, 3))
    with pytest.raises(AssertionError):
        check_torch(lambda x: x.exp(), [x], torch_fn=lambda x: x.exp() + x.detach() * 0 + (x - x.detach()))


def test_numerical_gradient_of_a_composite():
    x = np.random.default_rng(0).standard_normal((2, 3))
    check_numerical_grad(lambda x: genesis.gelu(x) * x.sigmoid(), [x])
