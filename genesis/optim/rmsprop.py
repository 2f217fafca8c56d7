"""RMSprop with weight decay, momentum, the centered variant and maximize (PyTorch's semantics).

Note PyTorch's placement of eps: it is added to the square root of the
running average, not inside it.
"""

from __future__ import annotations

from genesis.creation import zeros_like
from genesis.optim.functional import rmsprop_update
from genesis.optim.optimizer import Optimizer, check_nonnegative


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
        check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
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
            state = self._counted_state(param, ("square_avg",))
            # made when first needed, so a group switched to momentum or centered mid-run keeps working
            if uses_momentum and "momentum_buffer" not in state:
                state["momentum_buffer"] = zeros_like(param)
            if fixed["centered"] and "grad_avg" not in state:
                state["grad_avg"] = zeros_like(param)
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
