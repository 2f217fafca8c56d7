"""PyTorch's `torch.utils` names for what a ported program imports from there (`genesis.utils.data`)."""

from genesis.utils import data

__all__ = ["data"]
