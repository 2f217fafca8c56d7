"""RAdam, Adam with a rectified adaptive learning rate (PyTorch's semantics, including decoupled
weight decay).

For its first steps (while the approximated moving average is 5 steps long
or less) RAdam updates with the bias-corrected momentum alone; see
`functional.radam_update` for how that choice stays in the graph.
"""

from __future__ import annotations

from genesis.optim.functional import radam_update
from genesis.optim.optimizer import Optimizer, check_betas, check_nonnegative, refuse_options


class RAdam(Optimizer):
    _per_element_state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
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
        check_nonnegative(weight_decay=weight_decay)
        refuse_options("RAdam", capturable=capturable, differentiable=differentiable)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr, beta1, beta2, fixed = self._adam_hyperparameters(
            group, ("eps", "weight_decay", "decoupled_weight_decay", "maximize")
        )
        for param, grad in self._params_with_grad(group):
            state = self._counted_state(param, ("exp_avg", "exp_avg_sq"))
            radam_update(
                param,
                grad,
                state["exp_avg"],
                state["exp_avg_sq"],
                step=state["step"],
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                **fixed,
            )


__all__ = ["RAdam"]
