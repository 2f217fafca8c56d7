"""`torch.backends.cuda`: the matmul precision switches. `matmul.allow_tf32` lets the Triton
backend's fp32 products multiply in TF32 on the tensor cores (read when a program is built, and
part of its cache key); eager products compute in the operands' precision, never TF32. The other
switches are kept and change nothing."""


class _MatmulSwitches:
    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _MatmulSwitches()


def is_built() -> bool:
    """Whether genesis can drive a CUDA device (the simulated one counts: see genesis.cuda)."""
    return True
