"""`genesis.nn.utils` (PyTorch's `torch.nn.utils`): gradient clipping (`clip_grad`), parameters
flattened into one vector and back (`convert_parameters`), packed and padded batches of sequences
for the recurrent layers (`rnn`, reached as `genesis.nn.utils.rnn` as in PyTorch)."""

from genesis.nn.utils import rnn  # noqa: F401
from genesis.nn.utils.clip_grad import (  # noqa: F401
    clip_coefficient,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
    total_norm_of,
    vector_norm,
)
from genesis.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_total_norm",
    "clip_grads_with_norm_",
    "vector_norm",
    "parameters_to_vector",
    "vector_to_parameters",
    "rnn",
]
