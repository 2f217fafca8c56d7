"""RMSprop with weight decay, momentum, the centered variant and maximize (PyTorch's semantics).

Note PyTorch's placement of eps: it is added to the square root of the
running average, not inside it.
"""

from __future__ import annotations

from genesis.creation import zeros, zeros_like
from genesis.dtypes import float32
from genesis.optim.functional import rmsprop_update
from genesis.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    _per_element_state_keys = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        *,
        maximize=False,
        foreach=None,
        fused=None,
    ):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr, momentum = self._hyper(group, "lr"), self._hyper(group, "momentum")
        uses_momentum = self._fixed(group, "momentum", _positive)
        fixed = {key: self._fixed(group, key) for key in ("alpha", "eps", "weight_decay", "centered", "maximize")}
        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            if not state:
                state["step"] = zeros((), dtype=float32)
                state["square_avg"] = zeros_like(param)
            # made when first needed, so a group switched to momentum or centered mid-run keeps working
            if uses_momentum and "momentum_buffer" not in state:
                state["momentum_buffer"] = zeros_like(param)
            if fixed["centered"] and "grad_avg" not in state:
                state["grad_avg"] = zeros_like(param)
            state["step"].add_(1)
            rmsprop_update(
                param,
                grad,
                state["square_avg"],
                state.get("grad_avg"),
                state["momentum_buffer"] if uses_momentum else None,
                lr=lr,
                momentum=momentum,
                **fixed,
            )


def _positive(value) -> bool:
    return value > 0


__all__ = ["RMSprop"]
