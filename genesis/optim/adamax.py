"""Adamax, Adam's variant on the infinity norm (PyTorch's semantics, including maximize).

The second moment is replaced by `exp_inf`, a decaying maximum of the
gradients' magnitudes (plus eps); only the first moment is bias-corrected.
"""

from __future__ import annotations

from genesis.optim.functional import adamax_update
from genesis.optim.optimizer import Optimizer, check_betas, check_nonnegative, refuse_options


class Adamax(Optimizer):
    _per_element_state_keys = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        foreach=None,
        *,
        maximize=False,
        differentiable=False,
        capturable=False,
        fused=None,
    ):
        check_nonnegative(lr=lr, eps=eps)
        check_betas(betas)
        check_nonnegative(weight_decay=weight_decay)
        refuse_options("Adamax", differentiable=differentiable, capturable=capturable)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr, beta1, beta2, fixed = self._adam_hyperparameters(group, ("eps", "weight_decay", "maximize"))
        for param, grad in self._params_with_grad(group):
            state = self._counted_state(param, ("exp_avg", "exp_inf"))
            adamax_update(
                param,
                grad,
                state["exp_avg"],
                state["exp_inf"],
                step=state["step"],
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                **fixed,
            )


__all__ = ["Adamax"]
