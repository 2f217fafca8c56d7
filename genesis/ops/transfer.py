"""Moving a tensor to another device: the one op whose result lives elsewhere than its input.

`to_device(x, device="cuda:0")` copies `x`'s buffer to the device `device` names (runtime/cuda.py
counts the copy); its gradient moves back to the input's device, so a loss computed on the GPU
differentiates into CPU parameters as in PyTorch. Dispatch reads `transfers` to give the result the
named device instead of the inputs'.
"""

from __future__ import annotations

import numpy as np

from genesis.ops import dtype_rules as dt
from genesis.ops import shape_rules
from genesis.ops.op import Kind, Op, register
from genesis.runtime import cuda as cuda_runtime


def _to_device_kernel(data, *, device: str):
    moved = cuda_runtime.transfer(data, device.partition(":")[0])
    if moved is data:  # already there (only when applied directly: `Tensor.to` returns the tensor)
        return data.copy() if cuda_runtime.is_device_buffer(data) else np.array(data, order="K", copy=True)
    return moved


def _to_device_vjp(g, out, x, *, device):
    return to_device(g, device=str(x.device))


# In a compiled program, which runs on one device's memory, the move is a copy: an elementwise op
# that fuses (on the simulated device, host memory is the device's; a GPU's program will need the
# CPU operand's copy before its kernels run).
to_device = register(
    Op(
        name="to_device",
        kind=Kind.ELEMENTWISE,
        kernel=_to_device_kernel,
        codegen={"numpy": "np.copyto({out}, {0})", "triton": "{0}", "c": "{0}"},
        shape=shape_rules.same_as_first,
        dtype=dt.first_input,
        vjp=(_to_device_vjp,),
        saves=frozenset(),
        upcasts_low_precision=False,
        transfers=True,
    )
)
