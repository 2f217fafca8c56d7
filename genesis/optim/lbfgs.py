"""L-BFGS (PyTorch's algorithm: `lr`, `max_iter`, `max_eval`, the two tolerances, `history_size`,
`line_search_fn=None` or "strong_wolfe").

Unlike the elementwise optimizers, L-BFGS decides on the host at every
iteration (convergence tests, whether a curvature pair is kept, the line
search), so it runs eagerly and is never fused; under `genesis.compile` its
first host read breaks the graph and the step runs eagerly. The vectors (the
flat gradient, the direction, the history of steps and gradient changes) are
genesis tensors over all parameters, flattened in the group's order. As in
PyTorch, the scalars keep their types: dot products are 0-d tensors of the
parameters' dtype, losses Python floats.

State, PyTorch's, is kept under the first parameter: `func_evals`, `n_iter`,
`d`, `t`, `old_dirs`, `old_stps`, `ro`, `H_diag`, `prev_flat_grad`,
`prev_loss` and `al`.
"""

from __future__ import annotations

from genesis import functional as F
from genesis.creation import zeros
from genesis.errors import ShapeError
from genesis.grad_mode import enable_grad, no_grad
from genesis.optim.line_search import strong_wolfe
from genesis.optim.optimizer import Optimizer

_LINE_SEARCHES = (None, "strong_wolfe")


class LBFGS(Optimizer):
    """L-BFGS over one group of parameters; `step(closure)` re-evaluates the loss as often as it needs."""

    def __init__(
        self,
        params,
        lr=1,
        max_iter=20,
        max_eval=None,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        history_size=100,
        line_search_fn=None,
    ):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if line_search_fn not in _LINE_SEARCHES:
            raise ValueError(f"LBFGS line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults, fused=False)
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:  # refused here, where PyTorch refuses at the next step
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    # ---- the flat view of all parameters ------------------------------------------
    def _gather_flat_grad(self):
        """Every parameter's gradient, flattened and joined; zeros for a parameter without one."""
        parts = []
        for p in self._params:
            grad = p.grad
            if grad is not None and grad.shape != p.shape:
                raise ShapeError(f"a parameter of shape {list(p.shape)} has a gradient of shape {list(grad.shape)}")
            parts.append(zeros(p.numel(), dtype=p.dtype) if grad is None else grad.reshape(-1))
        return F.cat(parts)

    def _add_grad(self, step_size, update) -> None:
        """Each parameter += step_size * its slice of the flat `update`."""
        offset = 0
        for p in self._params:
            numel = p.numel()
            p.add_(update[offset : offset + numel].reshape(p.shape), alpha=step_size)
            offset += numel

    def _clone_param(self):
        return [p.clone() for p in self._params]

    def _set_param(self, params_data) -> None:
        for p, data in zip(self._params, params_data):
            p.copy_(data)

    def _directional_evaluate(self, closure, x, t, d):
        """The loss and flat gradient at x + t * d; the parameters are left at x."""
        self._add_grad(t, d)
        loss = _as_float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # ---- the step -----------------------------------------------------------------
    def step(self, closure):
        """Up to `max_iter` L-BFGS iterations; `closure` clears the gradients, computes the loss,
        calls backward and returns the loss. Returns the loss of the first evaluation."""
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that re-evaluates the model and returns the loss")
        with no_grad():
            loss = self._iterate(enable_grad()(closure))
        self._step_count += 1
        return loss

    def _iterate(self, closure):
        group = self.param_groups[0]
        lr = group["lr"]
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        if line_search_fn not in _LINE_SEARCHES:
            raise ValueError(f"LBFGS line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")

        # L-BFGS has global state only; it is kept under the first parameter, as in PyTorch
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = _as_float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if flat_grad.abs().max() <= tolerance_grad:  # already optimal
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the descent direction
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # a curvature pair worth keeping
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # the scale of the initial inverse Hessian
                d = self._two_loop(state, flat_grad, old_dirs, old_stps, ro, H_diag, history_size)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone()
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            # the step length: the first iteration's is capped by the gradient's size
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)  # the directional derivative
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn == "strong_wolfe":
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                )
                self._add_grad(t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:  # the last iteration's loss would go unused
                    loss = _as_float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if (d * t).abs().max() <= tolerance_change:  # no progress in the parameters
                break
            if abs(loss - prev_loss) < tolerance_change:  # no progress in the loss
                break

        state.update(
            d=d,
            t=t,
            old_dirs=old_dirs,
            old_stps=old_stps,
            ro=ro,
            H_diag=H_diag,
            prev_flat_grad=prev_flat_grad,
            prev_loss=prev_loss,
        )
        return orig_loss

    @staticmethod
    def _two_loop(state, flat_grad, old_dirs, old_stps, ro, H_diag, history_size):
        """The L-BFGS direction: the inverse Hessian approximation times the negative gradient, by the
        two-loop recursion over the kept curvature pairs (one buffer, updated in place)."""
        if "al" not in state:
            state["al"] = [None] * history_size
        al = state["al"]
        q = flat_grad.neg()
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = old_stps[i].dot(q) * ro[i]
            q.add_(old_dirs[i], alpha=-al[i])
        r = q * H_diag
        for i in range(len(old_dirs)):
            be_i = old_dirs[i].dot(r) * ro[i]
            r.add_(old_stps[i], alpha=al[i] - be_i)
        return r


def _as_float(loss) -> float:
    if loss is None:
        raise TypeError("LBFGS's closure must return the loss, but it returned None")
    return float(loss)


__all__ = ["LBFGS"]
