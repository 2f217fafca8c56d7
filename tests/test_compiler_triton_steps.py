"""Whole compiled training steps on the Triton backend: every group a Triton kernel, none left to numpy.

On a GPU a group that stays a numpy kernel is a round trip through host memory, so a step is
held to none: the forward and backward products with their epilogues, the loss, the gradient
norm and clipping, GradScaler's unscale and found-inf, and AdamW's update of every parameter.
The steps run under the interpreter side by side with eager, to eager's losses, parameters and
gradients (test_compile_training.py's bounds). The transformer block's step is not there yet:
its attention splits heads out of a row and permutes them inside groups.
"""

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.bench import train
from tests.test_compile_training import Setup, mlp, random_batches, run_side_by_side, train_step

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _numpy_kernels(step) -> dict:
    return {g: why for program in step.programs for g, why in program.info["backend_refusals"].items()}


@pytest.mark.parametrize("amp", [None, genesis.float16, genesis.bfloat16], ids=["fp32", "fp16", "bf16"])
def test_an_mlp_training_step_runs_every_group_as_a_triton_kernel(amp):
    batches = random_batches(4, (16, 12))
    step, _, _ = run_side_by_side(mlp, batches, amp=amp, scaler=amp is genesis.float16, backend="triton")
    assert _numpy_kernels(step) == {}
    assert all(program.info["triton_kernels"] >= 10 for program in step.programs)


def test_a_cnn_training_step_with_batch_norm_runs_every_group_as_a_triton_kernel():
    """benchmarks/train_step.py's CNN (conv, BatchNorm, ReLU, max-pool, twice), small: BatchNorm's
    sums per channel and their gradients are reductions over (batch, height, width). A conv's bias
    before BatchNorm has a gradient of zero but for rounding, so the gradients are compared at the
    scale of the largest one."""
    eager, fused = (Setup(lambda: train.make_model(nn, ("cnn", 4, 8)), optimizer="sgd") for _ in range(2))
    step = genesis.compile(lambda x, y: train_step(fused, x, y), backend="triton")
    for x, y in random_batches(3, (4, 3, 8, 8), classes=10):
        x, y = genesis.tensor(x), genesis.tensor(y)
        assert step(x, y).item() == pytest.approx(train_step(eager, x, y).item(), rel=1e-5)
    assert _numpy_kernels(step) == {}
    scale = max(float(np.abs(p.grad.numpy()).max()) for p in eager.model.parameters())
    for (name, a), b in zip(eager.model.named_parameters(), fused.model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=name)
