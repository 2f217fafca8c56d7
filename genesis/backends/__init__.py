"""`torch.backends`'s switches, which ported programs set before they train.

`torch.backends.cudnn.benchmark = True`, `torch.backends.cuda.matmul.allow_tf32 = True`,
`torch.backends.mps.is_available()`: genesis has no cuDNN and no Metal device, so those switches
are kept (a program reads back what it set) and change nothing, and the questions answer as
PyTorch's do on a machine without them; `cuda.matmul.allow_tf32` lets the Triton backend's fp32
products use TF32 (see cuda.py). `import genesis.backends.cudnn as
cudnn` works as `import torch.backends.cudnn as cudnn` does.
"""

from genesis.backends import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
