"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (PyTorch's semantics).

The momentum buffer is made on a parameter's first step as a copy of its
gradient (not zeros), as PyTorch does, so the first step is plain SGD.
"""

from __future__ import annotations

from genesis.creation import zeros_like
from genesis.optim.functional import sgd_update
from genesis.optim.optimizer import Optimizer


class SGD(Optimizer):
    _per_element_state_keys = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        maximize=False,
        foreach=None,
        fused=None,
    ):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr, momentum = self._hyper(group, "lr"), self._hyper(group, "momentum")
        uses_momentum = self._fixed(group, "momentum", _nonzero)
        fixed = {key: self._fixed(group, key) for key in ("dampening", "nesterov", "weight_decay", "maximize")}
        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            buffer = state.get("momentum_buffer")
            first = buffer is None
            if uses_momentum and first:  # PyTorch keeps no state for plain SGD
                buffer = state["momentum_buffer"] = zeros_like(param)
            sgd_update(param, grad, buffer, first, lr=lr, momentum=momentum, **fixed)


def _nonzero(value) -> bool:
    return value != 0


__all__ = ["SGD"]
