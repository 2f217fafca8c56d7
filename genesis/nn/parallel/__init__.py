"""`genesis.nn.parallel`: data-parallel training (PyTorch's `torch.nn.parallel`)."""

from genesis.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
