"""Adamax, Adam's variant on the infinity norm (PyTorch's semantics, including maximize).

The second moment is replaced by `exp_inf`, a decaying maximum of the
gradients' magnitudes (plus eps); only the first moment is bias-corrected.
"""

from __future__ import annotations

from genesis.creation import zeros, zeros_like
from genesis.dtypes import float32
from genesis.optim.functional import adamax_update
from genesis.optim.optimizer import Optimizer, check_betas, refuse_options


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
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        check_betas(betas)
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        refuse_options("Adamax", differentiable=differentiable, capturable=capturable)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        beta1, beta2 = self._hyper(group, "betas", 0), self._hyper(group, "betas", 1)
        lr = self._hyper(group, "lr")
        fixed = {key: self._fixed(group, key) for key in ("eps", "weight_decay", "maximize")}
        for param, grad in self._params_with_grad(group):
            state = self.state[param]
            if not state:
                state["step"] = zeros((), dtype=float32)
                state["exp_avg"] = zeros_like(param)
                state["exp_inf"] = zeros_like(param)
            state["step"].add_(1)
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
