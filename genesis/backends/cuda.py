"""`torch.backends.cuda`: the matmul precision switches, kept and without effect (genesis's
products on a CUDA device compute in the operands' precision, never TF32)."""


class _MatmulSwitches:
    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _MatmulSwitches()


def is_built() -> bool:
    """Whether genesis can drive a CUDA device (the simulated one counts: see genesis.cuda)."""
    return True
