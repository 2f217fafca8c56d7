"""Training features switched on for a plain step: `genesis.compile(step, amp=, loss_scale=, clip_grad_norm=)`.

A step written without autocast, GradScaler or clipping gets them as if they
were written in it:

- `amp="bf16"` or `"fp16"`: the step runs inside `autocast(dtype)`; the op
  table's autocast classes decide every cast (the backward runs in the
  forward's dtypes, as always);
- `loss_scale="dynamic"` (or a fixed number): `loss.backward()` backpropagates
  `scaler.scale(loss)`, and `optimizer.step()` becomes unscale, clip, a step
  skipped as a select when a gradient is not finite, and the scale update;
- `clip_grad_norm=max_norm`: the gradients of the optimizer's parameters are
  clipped right before its step.

The features are the eager ones (amp.autocast, amp.GradScaler,
nn.utils.clip_grad_norm_), applied around the user's calls while the step
runs, so a traced step records the same markers as if the user had written
them, the same lowering passes write them out (compiler/passes: autocast,
loss_scaling, clipping), and an eager fallback behaves the same. The scaler belongs to
the compiled function; its scale is a captured tensor, a graph input.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from genesis import dtypes
from genesis.amp import GradScaler, autocast
from genesis.nn.utils import clip_grad_norm_
from genesis.optim.optimizer import Optimizer
from genesis.tensor import Tensor

_AMP = {"bf16": dtypes.bfloat16, "bfloat16": dtypes.bfloat16, "fp16": dtypes.float16, "float16": dtypes.float16}


@dataclass
class TrainingOptions:
    amp: dtypes.DType | None = None
    loss_scale: str | float | None = None
    clip_grad_norm: float | None = None

    @classmethod
    def parse(cls, amp=None, loss_scale=None, clip_grad_norm=None) -> TrainingOptions | None:
        if amp is None and loss_scale is None and clip_grad_norm is None:
            return None
        if amp is not None and amp not in _AMP and amp not in (dtypes.float16, dtypes.bfloat16):
            raise ValueError(f"genesis.compile: amp must be 'bf16' or 'fp16', got {amp!r}")
        if loss_scale is not None and loss_scale != "dynamic" and not isinstance(loss_scale, (int, float)):
            raise ValueError(f"genesis.compile: loss_scale must be 'dynamic' or a number, got {loss_scale!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"genesis.compile: clip_grad_norm must be a positive number, got {clip_grad_norm!r}")
        return cls(_AMP.get(amp, amp), loss_scale, clip_grad_norm)


class TrainingStep:
    """The user's step with the options applied around its calls; callable like the step."""

    def __init__(self, fn, options: TrainingOptions):
        self.fn = fn
        self.options = options
        self.scaler = None
        if options.loss_scale is not None:
            dynamic = options.loss_scale == "dynamic"
            self.scaler = GradScaler(
                init_scale=2.0**16 if dynamic else float(options.loss_scale), growth_interval=2000 if dynamic else 2**62
            )
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)

    def __call__(self, *args, **kwargs):
        with self._applied():
            return self.fn(*args, **kwargs)

    @contextlib.contextmanager
    def _applied(self):
        options, scaler = self.options, self.scaler
        original_backward, original_step = Tensor.backward, Optimizer.step
        stepping = []

        def backward(tensor, *args, **kwargs):
            if scaler is not None and tensor.ndim == 0:
                tensor = scaler.scale(tensor)
            return original_backward(tensor, *args, **kwargs)

        def step(optimizer, *args, **kwargs):
            if stepping:  # the scaler's own call: the update itself
                return original_step(optimizer, *args, **kwargs)
            stepping.append(optimizer)
            try:
                return self._step(optimizer, original_step, args, kwargs)
            finally:
                stepping.pop()

        Tensor.backward, Optimizer.step = backward, step
        try:
            with autocast(enabled=options.amp is not None, dtype=options.amp or dtypes.float16):
                yield
        finally:
            Tensor.backward, Optimizer.step = original_backward, original_step

    def _step(self, optimizer, original_step, args, kwargs):
        scaler = self.scaler
        if scaler is not None:
            scaler.unscale_(optimizer)
        if self.options.clip_grad_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            clip_grad_norm_(params, self.options.clip_grad_norm)
        if scaler is None:
            return original_step(optimizer, *args, **kwargs)
        result = scaler.step(optimizer, *args, **kwargs)
        scaler.update()
        return result
