"""The `Optimizer` base: parameter groups, per-parameter state, checkpoints.

The layout is PyTorch's, so code and habits carry over unchanged:

- `param_groups` is a list of dicts, each with "params" (a list of tensors)
  and every hyperparameter; what a group leaves out is filled from the
  constructor's defaults. Schedulers and GradScaler read and write these
  dicts directly, so a group's "lr" is read afresh at every step.
- `state` maps a parameter tensor to its dict of buffers (exp_avg, ...).
- `state_dict()` names parameters by their index in the order the groups
  list them; `load_state_dict()` maps those indices back onto this
  optimizer's parameters and refuses a checkpoint whose groups do not line
  up. As in PyTorch, `state_dict()` hands out references to the live state
  tensors (save or deep-copy it before stepping again); loading copies the
  values, into the existing buffers where they fit, because a compiled step
  may hold those buffers as its inputs and outputs.

`step(closure=None)` runs the subclass's `_update_group` for each group
under `no_grad`: the update is written in genesis ops and in-place tensor
methods, so a tracer records it like any other code. Nothing in it reads a
tensor back to the host: the step count is a 0-d tensor (as in PyTorch) and
bias corrections are computed from it with tensor ops, in float64, which is
what PyTorch's host arithmetic computes. State is made as concrete zeros the
first time it is needed, so a compiled step writes it back like any buffer.

Fused steps (`fused=`, PyTorch's option): eagerly, each op of an update is a
numpy pass with its temporaries, about twenty per parameter, where one
generated loop would do. A fused optimizer runs its step as a compiled
program instead: the compiler traces this very update once (the optimizer
cannot import the compiler above it: it is handed `provide_step_compiler`'s
function), fuses each parameter's update into one C kernel, and guards it on
everything the update read (hyperparameters it branches on, which tensors it
updates, which parameters have gradients). The results are the op path's,
bit for bit (`tests/test_optim_fused.py`). `fused=None`, the default, fuses
where it pays: float32/float64 parameters of `FUSED_FROM` elements or more
in all, with a C compiler at hand; `fused=False` or `foreach=False` keeps the
per-op path (the debugging path: every op runs as written).
"""

from __future__ import annotations

import copy
from collections import defaultdict

from genesis import dispatch, dtypes
from genesis.autograd.gradients import zero_grads
from genesis.creation import full, zeros, zeros_like
from genesis.dtypes import float32
from genesis.errors import ShapeError
from genesis.grad_mode import enable_grad, no_grad
from genesis.tensor import Tensor


class _RequiredParameter:
    """The default of a hyperparameter that every group must give (SGD's lr in old PyTorch)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

# parameters of this many elements in all, or more, run a default (fused=None) step fused: below it
# the compile (0.2-0.5 s, once) pays back slowly; above it a step is 2-3x faster (MLP 784-256-256-10:
# 0.89 -> 0.33 ms per Adam step, benchmarks/eager_overhead.py)
FUSED_FROM = 1 << 16
_FUSABLE_DTYPES = (dtypes.float32, dtypes.float64)

# compile_step(update, required) -> a callable running `update` as a compiled program, or None where
# none can be had and `required` is false (no C compiler): set by the compiler (provide_step_compiler)
_compile_step = None


def provide_step_compiler(compile_step) -> None:
    """The compiler hands optimizers the function that compiles a fused step (see the module docstring)."""
    global _compile_step
    _compile_step = compile_step


_UNSUPPORTED_OPTIONS = {
    "differentiable": "genesis updates parameters under no_grad, so autograd cannot record a step",
    "capturable": "it is for CUDA graph capture; genesis.compile captures a whole training step instead",
}


def refuse_options(optimizer: str, **options) -> None:
    """PyTorch's `differentiable=` and `capturable=` are accepted as False and refused as True."""
    for name, value in options.items():
        if value:
            raise ValueError(f"{optimizer}({name}=True) is not supported: {_UNSUPPORTED_OPTIONS[name]}")


_LABELS = {"lr": "learning rate: {}", "eps": "epsilon value: {}"}


def check_nonnegative(**values) -> None:
    """Hyperparameters that must be >= 0, refused with PyTorch's messages, in the order given."""
    for name, value in values.items():
        if not 0.0 <= value:
            raise ValueError("Invalid " + _LABELS.get(name, name + " value: {}").format(value))


def check_betas(betas) -> None:
    """Adam and its variants take two averaging coefficients, each in [0, 1)."""
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}")


class Optimizer:
    """Base class: subclasses pass their defaults and implement `_update_group(group)`.

    Subclasses list in `_per_element_state_keys` the state buffers that have
    their parameter's shape; `load_state_dict` checks them, and keeps those in
    `_scalar_state_keys` float32.
    """

    _per_element_state_keys: tuple = ()
    # 0-d float32 state, whatever the parameter's dtype (PyTorch's scalar dtype): the step count, ...
    _scalar_state_keys: tuple = ("step",)

    def __init__(self, params, defaults: dict, *, foreach: bool | None = None, fused: bool | None = None):
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        self.foreach, self.fused = foreach, fused
        self._fused_step = None  # the compiled update, made at the first fused step
        self.defaults = dict(defaults)
        self.state: defaultdict = defaultdict(dict)  # keyed by the parameter tensor (hashed by identity)
        self.param_groups: list[dict] = []
        self._step_count = 0  # completed steps; schedulers warn when they step before the optimizer
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got a Tensor of shape {list(params.shape)}; wrap it in a list"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- groups -----------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group.get("params")
        if params is None:
            raise ValueError("param_group must have a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering "
                "of tensors in sets will change between runs. Please use a list instead."
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:  # named parameters: (name, tensor) pairs, as from named_parameters()
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names
            params = [p[1] for p in params]
        for index, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but parameter {index} of the group is "
                    f"a {type(param).__name__}"
                )
            if not param.is_leaf:
                raise ValueError(
                    f"can't optimize a non-leaf Tensor (parameter {index} of the group, shape "
                    f"{list(param.shape)}); optimize the leaf it was computed from, or detach it"
                )
            if not param.dtype.is_floating_point:
                raise TypeError(
                    f"optimizer can only optimize floating-point tensors, but parameter {index} of "
                    f"the group has dtype {param.dtype.name}"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears more than once in the same parameter group")
        param_group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ---- gradients and the step -------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (default), or zero it in place with `set_to_none=False`."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    @staticmethod
    def _hyper(group: dict, key: str, index: int | None = None):
        """A hyperparameter as the update reads it: the group's number in eager mode; while a step is
        traced, a float64 graph input that reads the group at every call, so a scheduler changing it
        (lr, OneCycleLR's momentum or betas) needs no recompile."""
        value = group[key] if index is None else group[key][index]
        if isinstance(value, Tensor) or not dispatch.is_tracing():  # eager: no getter built per read
            return value
        getter = (lambda: group[key]) if index is None else (lambda: group[key][index])
        return dispatch.host_scalar(getter, dtypes.float64, key=(id(group), key, index))

    @classmethod
    def _adam_hyperparameters(cls, group: dict, fixed_keys: tuple) -> tuple:
        """(lr, beta1, beta2, {key: fixed value}) of an Adam-family group: what Adam, Adamax, NAdam
        and RAdam read before their per-parameter updates."""
        beta1, beta2 = cls._hyper(group, "betas", 0), cls._hyper(group, "betas", 1)
        return cls._hyper(group, "lr"), beta1, beta2, {key: cls._fixed(group, key) for key in fixed_keys}

    @staticmethod
    def _fixed(group: dict, key: str, test=None):
        """A hyperparameter the update bakes in as a constant or branches on (eps, weight_decay, amsgrad),
        or `test(value)` where only that decides the code (whether momentum is zero). While a step is
        traced, the compiled step is guarded on it: a call that finds it changed traces anew."""
        if not dispatch.is_tracing():  # eager: the value, without building the guard
            return group[key] if test is None else test(group[key])
        read = (lambda: group[key]) if test is None else (lambda: test(group[key]))
        what = f"optimizer param group hyperparameter {key!r}" + ("" if test is None else f" ({test.__name__})")
        return dispatch.host_constant(read, what, key=(id(group), key, test))

    def step(self, closure=None):
        """One update of every parameter with a gradient. `closure` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if self._runs_fused():
            self._fused_step()
        else:
            self._update_groups()
        self._step_count += 1
        return loss

    def _update_groups(self) -> None:
        """The update of every group: what a step runs, eagerly or traced."""
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        if dispatch.is_tracing():
            # a compiled step updates the tensors its trace saw: a group added or state replaced later traces anew
            dispatch.host_constant(
                self._tensors_updated,
                f"{type(self).__name__}'s parameters and state tensors",
                key=(id(self), "tensors"),
            )

    def _runs_fused(self) -> bool:
        """Whether this step runs as the compiled update (see the module docstring). A step traced
        into a bigger program, or run under autocast, runs as ops: its caller's program fuses it."""
        if self.fused is False or (self.fused is None and self.foreach is False) or _compile_step is None:
            return False
        if dispatch.is_tracing() or dispatch.autocast_hook is not None:
            return False
        if self._fused_step is None:
            required = self.fused is True
            if not (required or self._worth_fusing()):
                return False
            self._fused_step = _compile_step(self._update_groups, required)
            if self._fused_step is None:
                self.fused = False
                return False
        return True

    def _worth_fusing(self) -> bool:
        params = [p for group in self.param_groups for p in group["params"]]
        if any(p.dtype not in _FUSABLE_DTYPES or p.device.type != "cpu" for p in params):
            return False
        return sum(p.numel() for p in params) >= FUSED_FROM

    def __getstate__(self) -> dict:
        # a compiled update holds this optimizer's tensors as its inputs: a copy compiles its own
        state = dict(self.__dict__)
        state["_fused_step"] = None
        return state

    def _tensors_updated(self) -> tuple:
        """Which tensors a step reads and writes: each group's parameters and each one's state."""
        return (
            tuple(tuple(map(id, group["params"])) for group in self.param_groups),
            tuple(
                (id(param), tuple((key, id(value)) for key, value in state.items() if isinstance(value, Tensor)))
                for param, state in self.state.items()
            ),
        )

    def _update_group(self, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group(group)")

    def _counted_state(self, param, buffers, scalars=()) -> dict:
        """`param`'s state, made on its first step (a 0-d float32 `step`, then each (name, value) of
        `scalars` as a 0-d float32, then a zeros buffer like `param` per name in `buffers`: PyTorch's
        order), with the step counted."""
        state = self.state[param]
        if not state:  # on the parameter's device, as PyTorch's fused and capturable steps keep it
            state["step"] = zeros((), dtype=float32, device=param.device)
            for name, value in scalars:
                state[name] = full((), value, dtype=float32, device=param.device)
            for name in buffers:
                state[name] = zeros_like(param)
        state["step"].add_(1)
        return state

    @staticmethod
    def _params_with_grad(group: dict):
        """(parameter, gradient) for each parameter of the group that has a gradient."""
        for param in group["params"]:
            grad = dispatch.gradient(param)
            if grad is None:
                continue
            if grad.shape != param.shape:
                raise ShapeError(f"a parameter of shape {list(param.shape)} has a gradient of shape {list(grad.shape)}")
            yield param, grad

    # ---- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {index: {name: value}}, "param_groups": [{..., "params": [index, ...]}]}."""
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            for param in group["params"]:
                index_of.setdefault(id(param), len(index_of))
            packed["params"] = [index_of[id(param)] for param in group["params"]]
            groups.append(packed)
        state = {
            index_of[id(param)]: dict(param_state) for param, param_state in self.state.items() if id(param) in index_of
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state saved by `state_dict()` of an optimizer over the same parameters."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("an optimizer state dict must be a dict with 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, but the optimizer "
                f"has {len(self.param_groups)}"
            )
        index_to_param = {}
        for number, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group that doesn't match the size of "
                    f"optimizer's group: group {number} has {len(saved['params'])} parameters in the "
                    f"state dict and {len(group['params'])} in the optimizer"
                )
            index_to_param.update(zip(saved["params"], group["params"]))

        new_state: defaultdict = defaultdict(dict)
        for index, saved_state in state_dict["state"].items():
            if index not in index_to_param:
                raise ValueError(
                    f"loaded state dict has state for parameter index {index}, which no parameter group lists"
                )
            param = index_to_param[index]
            current = self.state.get(param, {})
            new_state[param] = {
                key: self._restore_value(param, index, key, value, current.get(key))
                for key, value in saved_state.items()
            }

        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            restored = copy.deepcopy({key: value for key, value in saved.items() if key != "params"})
            restored["params"] = group["params"]
            if "param_names" in group and "param_names" not in restored:
                restored["param_names"] = group["param_names"]
            new_groups.append(restored)
        # groups are updated in place: schedulers and scalers hold references to these dicts
        for group, restored in zip(self.param_groups, new_groups):
            group.clear()
            group.update(restored)
        self.state = new_state

    def _restore_value(self, param, index, key, value, current):
        if key in self._scalar_state_keys:  # 0-d float32 as in PyTorch (an old checkpoint may hold a number)
            value = value.detach() if isinstance(value, Tensor) else full((), float(value))
            if isinstance(current, Tensor) and current.shape == () and current.dtype is float32:
                return current.copy_(value)
            return value.to(float32, copy=True)
        if not isinstance(value, Tensor):
            return copy.deepcopy(value)
        if key in self._per_element_state_keys and value.shape != param.shape:
            raise ShapeError(
                f"loaded state '{key}' of parameter {index} has shape {list(value.shape)}, but the "
                f"parameter has shape {list(param.shape)}: the state dict belongs to other parameters"
            )
        dtype = param.dtype if value.dtype.is_floating_point else value.dtype
        if isinstance(current, Tensor) and current.shape == value.shape and current.dtype is dtype:
            return current.copy_(value)  # keep the buffer that a compiled step may hold
        with no_grad():
            return value.detach().to(dtype, copy=True)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


__all__ = ["Optimizer", "required", "check_betas", "refuse_options"]
