"""What `genesis.compile(module)` returns: the module itself for every purpose, called through a program.

A ported program goes on using the compiled model as the model: `parameters()`,
`train()`/`eval()`, `state_dict()`, `to()`, its attributes and its own methods.
So the compiled module is an alias, not a wrapper: an instance of a subclass of
the model's class that shares the model's `__dict__` (the same parameters,
buffers, submodules, flags and attributes, under the same names; a change
through either name is seen by both) and differs only in `__call__`, which runs
the compiled function. Unlike PyTorch's `OptimizedModule`, `state_dict()` keys
have no `_orig_mod.` prefix; `load_state_dict` accepts either.
"""

from __future__ import annotations

from genesis.nn import Module

PREFIX = "_orig_mod."  # PyTorch's compiled modules prefix their state_dict keys with it


class CompiledModule(Module):
    """Base of the per-class aliases `compiled_module` makes. The two slots live outside the shared
    `__dict__`, so the original module never sees them."""

    __slots__ = ("_orig_mod", "_compiled")

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if state_dict and all(key.startswith(PREFIX) for key in state_dict):
            state_dict = type(state_dict)((key[len(PREFIX) :], value) for key, value in state_dict.items())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # What the compiled function records, for reading and tests.
    @property
    def compiled_function(self):
        return self._compiled

    @property
    def stats(self) -> dict:
        return self._compiled.stats

    @property
    def programs(self):
        return self._compiled.programs

    @property
    def graphs(self):
        return self._compiled.graphs

    @property
    def graph_break(self):
        return self._compiled.graph_break

    def __reduce_ex__(self, protocol):
        # copy.deepcopy and pickle: a copy of the model, compiled afresh with the same options
        return _compile_afresh, (type(self._compiled), self._orig_mod, self._compiled.options)


_ALIAS_CLASSES: dict[type, type] = {}


def compiled_module(module: Module, compiled) -> CompiledModule:
    """An alias of `module` whose calls go to `compiled` (a CompiledFunction of `module`)."""
    cls = type(module)
    alias_class = _ALIAS_CLASSES.get(cls)
    if alias_class is None:
        alias_class = type(cls.__name__, (CompiledModule, cls), {"__qualname__": cls.__qualname__})
        alias_class.__module__ = cls.__module__
        _ALIAS_CLASSES[cls] = alias_class
    alias = object.__new__(alias_class)
    object.__setattr__(alias, "__dict__", module.__dict__)
    object.__setattr__(alias, "_orig_mod", module)
    object.__setattr__(alias, "_compiled", compiled)
    return alias


def _compile_afresh(function_class, module, options):
    return compiled_module(module, function_class(module, **options))
