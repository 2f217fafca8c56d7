"""Adadelta with weight decay and maximize (PyTorch's semantics, lr=1.0 by default).

PyTorch keeps a step count that the update does not read; it is kept here
too, so the state (step, square_avg, acc_delta) is PyTorch's.
"""

from __future__ import annotations

from genesis.optim.functional import adadelta_update
from genesis.optim.optimizer import Optimizer, check_nonnegative, refuse_options


class Adadelta(Optimizer):
    _per_element_state_keys = ("square_avg", "acc_delta")

    def __init__(
        self,
        params,
        lr=1.0,
        rho=0.9,
        eps=1e-6,
        weight_decay=0,
        foreach=None,
        *,
        capturable=False,
        maximize=False,
        differentiable=False,
        fused=None,
    ):
        check_nonnegative(lr=lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_nonnegative(eps=eps, weight_decay=weight_decay)
        refuse_options("Adadelta", capturable=capturable, differentiable=differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr = self._hyper(group, "lr")
        fixed = {key: self._fixed(group, key) for key in ("rho", "eps", "weight_decay", "maximize")}
        for param, grad in self._params_with_grad(group):
            state = self._counted_state(param, ("square_avg", "acc_delta"))
            adadelta_update(param, grad, state["square_avg"], state["acc_delta"], lr=lr, **fixed)


__all__ = ["Adadelta"]
