"""Flattening parameters into one vector and back (PyTorch's torch.nn.utils.convert_parameters)."""

from __future__ import annotations

from genesis import functional as F
from genesis.grad_mode import no_grad
from genesis.tensor import Tensor


def _as_list(parameters) -> list:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _check_same_device(tensors) -> None:
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"all parameters must be on one device, found {sorted(str(d) for d in devices)}")


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one new 1-D tensor (differentiable)."""
    parameters = _as_list(parameters)
    _check_same_device(parameters)
    # Joined as rows of one matrix, not as 1-D pieces: cat drops empty 1-D inputs (PyTorch's
    # rule for joining them with tensors of other ranks), which would leave an empty
    # parameter without its (empty) gradient.
    rows = [F.reshape(p, (1, p.numel())) for p in parameters]
    return F.reshape(F.cat(rows, dim=1), (-1,))


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of the 1-D `vec` into the parameters' data (they then view `vec`)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected a genesis.Tensor, but got: {type(vec).__name__}")
    parameters = _as_list(parameters)
    _check_same_device([vec, *parameters])
    total = sum(p.numel() for p in parameters)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(
            f"vector_to_parameters: vec must be 1-D with {total} elements (the parameters' total), "
            f"got shape {list(vec.shape)}"
        )
    pointer = 0
    with no_grad():
        for param in parameters:
            count = param.numel()
            param.data = F.reshape(vec[pointer : pointer + count], param.shape).data
            pointer += count


__all__ = ["parameters_to_vector", "vector_to_parameters"]
