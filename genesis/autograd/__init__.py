"""Reverse-mode autograd: the tape (`Node`), grad modes and the backward engine."""

from genesis.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    from genesis.autograd.engine import backward as _backward

    return _backward(tensors, grad_tensors, retain_graph, create_graph, inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    from genesis.autograd.engine import grad as _grad

    return _grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused)
