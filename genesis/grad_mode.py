"""Whether operations record a graph for autograd.

`no_grad`, `enable_grad` and `set_grad_enabled` work as context managers and
as decorators. The flag is a module global read by dispatch on every op, so
reading it must stay cheap.
"""

from __future__ import annotations

import functools

_enabled = True


def is_grad_enabled() -> bool:
    return _enabled


def _set(mode: bool) -> bool:
    global _enabled
    previous, _enabled = _enabled, bool(mode)
    return previous


class _GradModeContext:
    mode: bool

    def __enter__(self):
        self._previous = _set(self.mode)
        return self

    def __exit__(self, *exc):
        _set(self._previous)
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = _set(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _set(previous)

        return wrapper


class _BareDecorator(_GradModeContext):
    """Usable as `@no_grad()` and, as in PyTorch, bare as `@no_grad`."""

    def __new__(cls, fn=None):
        context = super().__new__(cls)
        return context if fn is None else context(fn)


class no_grad(_BareDecorator):
    mode = False


class enable_grad(_BareDecorator):
    mode = True


class set_grad_enabled(_GradModeContext):
    """`set_grad_enabled(False)` takes effect at once (as in PyTorch) and also works in `with`."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._previous = _set(self.mode)

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set(self._previous)  # used as a decorator: the call above must not leak
        return super().__call__(fn)


class inference_mode(_GradModeContext):
    """PyTorch's `inference_mode(mode=True)`: no graph is recorded inside, as under `no_grad`;
    `inference_mode(False)` leaves the grad mode as it is. Usable bare as a decorator too.

    Unlike PyTorch, tensors made inside are ordinary tensors: using one in autograd later is
    allowed instead of an error (genesis has no separate inference-tensor kind to protect)."""

    def __new__(cls, mode=True):
        context = super().__new__(cls)
        if callable(mode):  # bare `@inference_mode`: Python skips __init__ as the result is no instance
            context.__init__(True)
            return context(mode)
        return context

    def __init__(self, mode: bool = True):
        self.enabled = bool(mode)

    def __enter__(self):
        self._entered_inference, _inference[0] = _inference[0], self.enabled
        self._previous = _set(False) if self.enabled else is_grad_enabled()
        return self

    def __exit__(self, *exc):
        _inference[0] = self._entered_inference
        _set(self._previous)
        return False

    def __call__(self, fn):
        enabled = self.enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(enabled):
                return fn(*args, **kwargs)

        return wrapper


_inference = [False]  # a list, so the context can set it without a global statement


def is_inference_mode_enabled() -> bool:
    return _inference[0]
