"""Whole compiled training steps on the Triton backend: every group a Triton kernel, none left to numpy.

On a GPU a group that stays a numpy kernel is a round trip through host memory, so a step is
held to none: the forward and backward products with their epilogues, the loss, the gradient
norm and clipping, GradScaler's unscale and found-inf, and AdamW's update of every parameter.
The steps run under the interpreter side by side with eager, to eager's losses, parameters and
gradients (test_compile_training.py's bounds).
"""

import pytest

import genesis
from tests.test_compile_training import mlp, random_batches, run_side_by_side

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _numpy_kernels(step) -> dict:
    return {g: why for program in step.programs for g, why in program.info["backend_refusals"].items()}


@pytest.mark.parametrize("amp", [None, genesis.float16, genesis.bfloat16], ids=["fp32", "fp16", "bf16"])
def test_an_mlp_training_step_runs_every_group_as_a_triton_kernel(amp):
    batches = random_batches(4, (16, 12))
    step, _, _ = run_side_by_side(mlp, batches, amp=amp, scaler=amp is genesis.float16, backend="triton")
    assert _numpy_kernels(step) == {}
    assert all(program.info["triton_kernels"] >= 10 for program in step.programs)
