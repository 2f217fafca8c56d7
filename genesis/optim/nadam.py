"""NAdam, Adam with Nesterov momentum (PyTorch's semantics, including decoupled weight decay).

The momentum coefficient follows Dozat's schedule,
mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay)), and the state keeps
its running product `mu_product` as a 0-d float32 tensor, as PyTorch does.
"""

from __future__ import annotations

from genesis.optim.functional import nadam_update
from genesis.optim.optimizer import Optimizer, check_betas, check_nonnegative, refuse_options


class NAdam(Optimizer):
    _per_element_state_keys = ("exp_avg", "exp_avg_sq")
    _scalar_state_keys = ("step", "mu_product")

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        fused=None,
    ):
        check_nonnegative(lr=lr, eps=eps)
        check_betas(betas)
        check_nonnegative(weight_decay=weight_decay, momentum_decay=momentum_decay)
        refuse_options("NAdam", capturable=capturable, differentiable=differentiable)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr, beta1, beta2, fixed = self._adam_hyperparameters(
            group, ("eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "maximize")
        )
        for param, grad in self._params_with_grad(group):
            state = self._counted_state(param, ("exp_avg", "exp_avg_sq"), scalars=(("mu_product", 1.0),))
            nadam_update(
                param,
                grad,
                state["exp_avg"],
                state["exp_avg_sq"],
                state["mu_product"],
                step=state["step"],
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                **fixed,
            )


__all__ = ["NAdam"]
