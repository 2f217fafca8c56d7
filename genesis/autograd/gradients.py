"""Dropping or zeroing the gradients of a set of tensors: what Module.zero_grad and Optimizer.zero_grad share."""

from __future__ import annotations

from genesis import dispatch
from genesis.grad_mode import no_grad


def zero_grads(tensors, set_to_none: bool = True) -> None:
    """Drop each tensor's .grad (default), or zero it in place with `set_to_none=False`.

    While a step is traced, this is noted, so the compiled step replaces gradients instead
    of adding to the ones a call finds: also for a tensor that has none while tracing (the
    first call of a step), as later calls find the gradients the earlier ones left."""
    for tensor in tensors:
        if tensor.grad is None:
            dispatch.note_grad_reset(tensor)
            continue
        if set_to_none:
            dispatch.note_grad_reset(tensor)
            tensor.grad = None
        else:
            grad = tensor.grad
            if grad.grad_fn is not None:  # a create_graph gradient leaves its graph before it is zeroed
                grad = grad.detach()
            with no_grad():
                grad.zero_()
            tensor.grad = grad
