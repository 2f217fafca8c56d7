"""Reverse-mode autograd: the backward engine, and the grad modes (`genesis.grad_mode`) under their
PyTorch names. The tape's records (`genesis.tape.Node`) and the grad-mode flag sit below dispatch,
which reads them on every op."""

from genesis.autograd.engine import backward, grad, queue_callback
from genesis.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "backward",
    "grad",
    "queue_callback",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "inference_mode",
    "is_inference_mode_enabled",
]
