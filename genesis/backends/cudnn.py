"""`torch.backends.cudnn`: genesis has no cuDNN; its switches are kept and change nothing."""

enabled = True
benchmark = False  # PyTorch's autotuning of convolution algorithms: genesis's convolutions choose by shape
deterministic = False  # genesis's kernels are deterministic whatever this says
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    """The cuDNN version: None, as PyTorch answers without cuDNN."""
    return None
