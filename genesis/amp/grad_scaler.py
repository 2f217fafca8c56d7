"""GradScaler: dynamic loss scaling with PyTorch's semantics.

fp16 gradients underflow; multiplying the loss by a large scale before
backward keeps them representable, and dividing the gradients by it before
the optimizer step restores their values. When a gradient overflows (inf or
nan), the step is skipped and the scale backs off; after `growth_interval`
clean steps it grows again.

The scale and the growth tracker are 0-d tensors (float32 and int32) updated
in place, and the inf check and the scale update are genesis ops (isfinite,
all, where), never host branches. Each step is a marker (ops/markers.py):
eagerly it runs the composite below; under tracing it is one node that the
compiler's loss-scaling pass replaces with the same composite, with the
scale a graph input. A skipped step is then a select, not a branch. In eager
mode the one host read is in `step()`, which must decide whether to call
`optimizer.step()` (PyTorch reads it there too).

Per optimizer, a stage guards the order of calls as in PyTorch: READY ->
UNSCALED (after `unscale_`) -> STEPPED (after `step`); `update()` resets all.
"""

from __future__ import annotations

import enum
import warnings
from collections import abc, defaultdict

from genesis import dispatch, distributed, dtypes, markers
from genesis import functional as F
from genesis.creation import full
from genesis.grad_mode import no_grad
from genesis.ops.op import OPS
from genesis.runtime.devices import device as as_device
from genesis.runtime.devices import is_cuda_available
from genesis.tensor import Tensor


def _times(value, factor):
    """`value * factor`: the loss times the scale, a gradient times 1/scale."""
    return value * factor


def _found_inf(*grads):
    """1.0 (float32) when any gradient holds an inf or nan, else 0.0. Checked on the scaled values:
    a huge scaled value stays huge, an inf stays inf."""
    any_bad = None
    for grad in grads:
        bad = F.logical_not(F.all(F.isfinite(grad)))
        any_bad = bad if any_bad is None else F.logical_or(any_bad, bad)
    return F.cast(any_bad, dtypes.float32)


def _next_scale(found_inf, scale, tracker, *, growth_factor, backoff_factor, growth_interval):
    """PyTorch's `_amp_update_scale_` as tensor ops (a select, not a branch): the new scale and tracker."""
    found = found_inf > 0
    successful = tracker + 1
    interval_reached = successful == growth_interval
    # products in float64, rounded once to float32, as PyTorch's kernel does
    scale64 = F.cast(scale, dtypes.float64)
    grown = F.cast(scale64 * growth_factor, dtypes.float32)
    backed_off = F.cast(scale64 * backoff_factor, dtypes.float32)
    grows = interval_reached & F.isfinite(grown)  # never grow past float32's range to inf
    new_scale = F.where(found, backed_off, F.where(grows, grown, scale))
    new_tracker = F.where(found | interval_reached, 0, successful)
    return new_scale, new_tracker


_MUL, _WHERE = OPS["mul"], OPS["where"]
scale_loss = markers.define(
    "loss_scale", "loss_scaling", _times, shape=_MUL.shape, dtype=_MUL.dtype, differentiable=(0,)
)
unscale = markers.define("unscale", "loss_scaling", _times, shape=_MUL.shape, dtype=_MUL.dtype)
found_inf = markers.define(
    "found_inf", "loss_scaling", _found_inf, shape=lambda *shapes: (), dtype=lambda inputs: (None, dtypes.float32)
)
skip_update = markers.define("skip_update", "loss_scaling", F.where, shape=_WHERE.shape, dtype=_WHERE.dtype)
scale_update = markers.define(
    "scale_update",
    "loss_scaling",
    _next_scale,
    outputs=2,
    shape=lambda *shapes, output, **attrs: shapes[1 + output],
    dtype=lambda inputs, output, **attrs: (None, inputs[1 + output].dtype),
)


class OptState(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_optimizer_state() -> dict:
    # found_inf: a 0-d float32 tensor (1.0 when a gradient was not finite), None until unscale_
    return {"stage": OptState.READY, "found_inf": None}


class GradScaler:
    """Scale the loss, unscale and check the gradients, skip bad steps, adapt the scale.

    A typical step::

        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)            # optional: only to clip or inspect gradients
        clip_grad_norm_(params, max_norm)
        scaler.step(optimizer)                # skipped when a gradient is inf/nan
        scaler.update()

    With `enabled=False` every method is a pass-through. The device comes first, as in
    `torch.amp.GradScaler("cuda")` (a number there is `torch.cuda.amp.GradScaler`'s init_scale);
    a CUDA scaler without a CUDA device disables itself with a warning, as PyTorch's does.
    """

    def __init__(
        self,
        device="cpu",
        init_scale=2.0**16,
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=2000,
        enabled=True,
    ):
        if isinstance(device, (int, float)):  # torch.cuda.amp.GradScaler's order: init_scale first
            device, init_scale = "cpu", device
        if str(device).startswith("cuda") and not is_cuda_available():  # as PyTorch: a CPU run goes on
            warnings.warn(
                f"GradScaler is enabled for {device}, but no CUDA device is available; disabling it", stacklevel=2
            )
            device, enabled = "cpu", False
        self._device = as_device(device)  # where the scale and the growth tracker live
        self._enabled = bool(enabled)
        if self._enabled:
            if growth_factor <= 1.0:
                raise ValueError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
            if backoff_factor >= 1.0:
                raise ValueError(f"GradScaler: backoff_factor must be < 1.0, got {backoff_factor}")
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        # Made on the first scale(), as PyTorch does; from then on the same tensors are updated in place.
        self._scale: Tensor | None = None
        self._growth_tracker: Tensor | None = None
        self._per_optimizer_states = defaultdict(_fresh_optimizer_state)

    # ---- scaling ------------------------------------------------------------------
    def scale(self, outputs):
        """Multiply a tensor, or the tensors of nested lists and tuples, by the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return scale_loss(outputs, self._scale_tensor())

        def apply_scale(value):
            if isinstance(value, Tensor):
                return scale_loss(value, self._scale_tensor())
            if isinstance(value, abc.Iterable):
                scaled = map(apply_scale, value)
                return type(value)(scaled) if isinstance(value, (list, tuple)) else scaled
            raise ValueError(
                f"GradScaler.scale: outputs must be a Tensor or an iterable of Tensors, got {type(value).__name__}"
            )

        return apply_scale(outputs)

    def _scale_tensor(self) -> Tensor:
        if self._scale is None:
            self._scale = full((), self._init_scale, dtype=dtypes.float32, device=self._device)
            self._growth_tracker = full((), self._init_growth_tracker, dtype=dtypes.int32, device=self._device)
        return self._scale

    def _check_started(self, funcname: str) -> None:
        if self._scale is None:
            raise RuntimeError(
                f"GradScaler.{funcname}() was called before scale(): scale the loss "
                "(scaler.scale(loss).backward()) earlier in the iteration"
            )

    # ---- unscaling and the inf check ----------------------------------------------
    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale in place and record whether any is inf/nan."""
        if not self._enabled:
            return
        self._check_started("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        with no_grad():
            # PyTorch takes 1/scale in float64 and rounds to float32; a float32 reciprocal gives the same
            # bits (a double rounding is harmless when 53 >= 2 * 24 + 2)
            inv_scale = F.reciprocal(self._scale)
            state["found_inf"] = self._unscale_grads(optimizer, inv_scale)
        state["stage"] = OptState.UNSCALED

    @staticmethod
    def _unscale_grads(optimizer, inv_scale):
        """Unscale every gradient in place; return a 0-d float32 found-inf flag (None without gradients)."""
        params = (param for group in optimizer.param_groups for param in group["params"])
        grads = [grad for grad in map(dispatch.gradient, params) if grad is not None]
        if any(grad.dtype is dtypes.float16 for grad in grads):
            # the unscaled fp16 values would underflow: keep fp32 master weights instead
            raise ValueError("Attempting to unscale FP16 gradients.")
        if not grads:
            return None
        found = found_inf(*grads)
        if distributed.is_initialized() and distributed.get_world_size() > 1:
            # every rank skips the same steps, whatever its own gradients held (data-parallel gradients
            # are reduced already; a rank that reduces none of them still follows the others)
            distributed.all_reduce(found, op=distributed.ReduceOp.MAX)
        for grad in grads:
            grad.copy_(unscale(grad, inv_scale))
        return found

    # ---- the optimizer step -------------------------------------------------------
    def step(self, optimizer, *args, **kwargs):
        """Unscale (unless `unscale_` was called) and run `optimizer.step()` unless a gradient is inf/nan.

        Returns what `optimizer.step` returned, or None when the step was skipped.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_started("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise RuntimeError(
                "GradScaler.step: no inf checks were recorded for this optimizer "
                "(none of its parameters has a gradient)"
            )
        result = None
        if dispatch.is_tracing():  # compiled: the update runs, and a select keeps the old values on an inf
            with dispatch.skip_writes_if(state["found_inf"] != 0, select=skip_update):
                result = optimizer.step(*args, **kwargs)
        elif not state["found_inf"].item():  # the host read: eager mode must choose a branch
            result = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return result

    # ---- the scale update ---------------------------------------------------------
    def update(self, new_scale=None) -> None:
        """Back off the scale if any step this iteration saw inf/nan, grow it after
        `growth_interval` clean steps; or set it to `new_scale` (a float or a 1-element tensor)."""
        if not self._enabled:
            return
        self._check_started("update")
        with no_grad():
            if new_scale is not None:
                self._set_scale(new_scale)
            else:
                found = [s["found_inf"] for s in self._per_optimizer_states.values() if s["found_inf"] is not None]
                if not found:
                    raise RuntimeError(
                        "GradScaler.update: no inf checks were recorded prior to update(); "
                        "call step() (or unscale_()) for each optimizer first"
                    )
                combined = found[0]
                for flag in found[1:]:
                    combined = combined + flag
                self._update_scale(combined)
        self._per_optimizer_states = defaultdict(_fresh_optimizer_state)

    def _set_scale(self, new_scale) -> None:
        if isinstance(new_scale, Tensor):
            if new_scale.numel() != 1 or new_scale.requires_grad:
                raise ValueError(
                    "GradScaler.update: new_scale must be a float or a 1-element tensor that does "
                    f"not require grad, got shape {list(new_scale.shape)}, "
                    f"requires_grad={new_scale.requires_grad}"
                )
            self._scale.copy_(F.reshape(new_scale, ()))
        elif isinstance(new_scale, (int, float)) and not isinstance(new_scale, bool):
            self._scale.fill_(float(new_scale))
        else:
            raise TypeError(
                f"GradScaler.update: new_scale must be a float or a 1-element tensor, got {type(new_scale).__name__}"
            )

    def _update_scale(self, found_inf) -> None:
        factors = {
            name: dispatch.host_constant(
                lambda name=name: getattr(self, f"_{name}"), f"GradScaler {name}", key=(id(self), name)
            )
            for name in ("growth_factor", "backoff_factor", "growth_interval")
        }  # once a step: cheap eagerly
        new_scale, new_tracker = scale_update(found_inf, self._scale, self._growth_tracker, **factors)
        self._scale.copy_(new_scale)
        self._growth_tracker.copy_(new_tracker)

    # ---- accessors ----------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())

    def is_enabled(self) -> bool:
        return self._enabled

    # ---- checkpoints --------------------------------------------------------------
    def state_dict(self) -> dict:
        """scale, growth_factor, backoff_factor, growth_interval, _growth_tracker (empty when disabled).

        Call it after update(): mid-iteration per-optimizer stages are not saved.
        """
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._get_growth_tracker(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler."
            )
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} - set(state_dict)
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing keys {sorted(missing)}")
        self._init_scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._scale is not None:  # keep the same tensors: the compiler may hold them as graph inputs
            self._scale.fill_(self._init_scale)
            self._growth_tracker.fill_(self._init_growth_tracker)

    def __repr__(self) -> str:
        if not self._enabled:
            return "GradScaler(enabled=False)"
        return (
            f"GradScaler(scale={self.get_scale()}, growth_factor={self._growth_factor}, "
            f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval})"
        )


__all__ = ["GradScaler", "OptState"]
