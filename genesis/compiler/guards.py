"""What a trace read from Python besides its arguments, and the check that it still holds.

A trace runs the user's Python once and bakes what it read into the graph:
which parameter object a module holds, whether it is training, the scalars
and flags on it (`self.scale`, `self.causal`), and the numbers a function
closes over or reads as a global. A call of the compiled program runs no
Python, so before each call `World.changed()` compares all of that with a
snapshot taken before the trace; a difference names what changed, and the
caller traces anew, so the program never computes with a stale value.

What is watched (the *reachable* state, found by walking from the compiled
callable and its non-tensor arguments):

- every `Module`: its `training` flag, which objects its `_parameters`,
  `_buffers` and `_modules` hold and its hooks, the tensor objects and the
  plain values (numbers, strings, None, tuples of those) in its `__dict__`;
- every function: the plain values in its closure cells and defaults, and
  the globals its code names; functions, modules and containers found there
  are walked in turn (a few levels deep: a whole program is not the trace's
  input);
- a bound method's object, a `functools.partial`'s parts, and the attributes
  of the compiled callable itself when it is an object (a training step);
- which object each closure cell and global holds when it is not a plain
  value (a tensor, a model, a tuple of tensors), and which tensor each item of
  a reachable dict or list and each attribute of a reachable object of the
  user's holds (containers of up to `_WATCHED_ITEMS` items; of the tensors,
  only those the trace read): rebinding one to another object makes the trace
  stale, as a changed number does.

The snapshot holds the objects it names by identity (and keeps them alive,
so that an id is never reused by a new object while the program exists).
"""

from __future__ import annotations

import functools
import itertools
import types

from genesis.nn.modules.module import Module
from genesis.tensor import Tensor

_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_REGISTRIES = ("_parameters", "_buffers", "_modules", "_forward_pre_hooks", "_forward_hooks")
_MAX_DEPTH = 4  # functions and containers reached through closures and globals
_WATCHED_ITEMS = 64  # a bigger container (a dataset's list) is walked, but its items' identities not checked


def _is_plain(value) -> bool:
    if isinstance(value, _PLAIN):
        return True
    return isinstance(value, tuple) and all(_is_plain(x) for x in value)


def _module_state(module: Module) -> tuple:
    """Everything of `module` that a trace could have baked in, as a tuple that compares by value:
    objects (tensors, modules, hooks) by identity, plain values by value."""
    state = []
    for key, value in module.__dict__.items():
        if key in _REGISTRIES:
            state.append((key, tuple((name, id(x)) for name, x in value.items())))
        elif isinstance(value, (Tensor, Module)):
            state.append((key, id(value)))
        elif _is_plain(value):
            state.append((key, value))
    return tuple(state)


class _ModuleGuard:
    """The quick check of one module's state, run before every call.

    It compares the identities of everything in the module's `__dict__` and in its registries with
    those seen at the snapshot: one C-level pass. The snapshot keeps those objects alive, so an
    equal identity means the very same object, unchanged. A different identity may still be an
    equal value (a flag set again to the same number); then the full `_module_state` decides."""

    __slots__ = ("module", "state", "registries", "views", "ids", "keep")

    def __init__(self, module: Module):
        self.module, self.state = module, _module_state(module)
        d = module.__dict__
        self.registries = [(k, d[k]) for k in _REGISTRIES if k in d]
        self.views = (d.values(), *(registry.values() for _, registry in self.registries))
        self.ids, self.keep = self._identities()

    def _identities(self):
        objects = tuple(itertools.chain.from_iterable(self.views))
        return tuple(map(id, objects)), objects

    def holds(self) -> bool:
        if tuple(map(id, itertools.chain.from_iterable(self.views))) == self.ids:
            return True
        d = self.module.__dict__
        if any(d.get(k) is not registry for k, registry in self.registries):
            return False  # a registry itself replaced: the views would watch the old one
        if _module_state(self.module) != self.state:
            return False
        self.ids, self.keep = self._identities()  # the same values in new objects: watch those now
        return True


class World:
    """The reachable Python state of one trace (see the module docstring)."""

    def __init__(self, roots):
        self.modules: list[Module] = []
        self.guards: list[_ModuleGuard] = []
        self.cells: list[tuple] = []  # (cell, value, where)
        self.globals: list[tuple] = []  # (globals dict, name, value, where)
        self.identities: list[tuple] = []  # (read the holder's current object, the object, where)
        self._keep: list = []  # objects named by id above, kept alive
        self._seen: set[int] = set()
        for root in roots:
            self._walk(root, 0, top=True)
        self.guards = [_ModuleGuard(m) for m in self.modules]
        del self._seen

    # ---- the walk -------------------------------------------------------------------
    def _walk(self, obj, depth: int, top=False) -> None:
        if id(obj) in self._seen or depth > _MAX_DEPTH or isinstance(obj, (Tensor, type, types.ModuleType)):
            return
        self._seen.add(id(obj))
        self._keep.append(obj)
        if isinstance(obj, Module):
            self.modules.append(obj)
            for value in obj.__dict__.values():
                if isinstance(value, dict) and value is not obj.__dict__.get("_parameters"):
                    for child in value.values():
                        if isinstance(child, Module):
                            self._walk(child, 0)  # a submodule is as near as its parent
                elif not _is_plain(value):
                    self._walk(value, depth + 1)
        elif isinstance(obj, types.MethodType):
            self._walk(obj.__self__, depth, top)
            self._walk(obj.__func__, depth)
        elif isinstance(obj, types.FunctionType):
            if not _is_library(obj):
                self._function(obj, depth)
        elif isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *obj.keywords.values()):
                self._walk(part, depth)
        elif isinstance(obj, list):
            for index, item in enumerate(obj):
                where = f"the tensor at [{index}] of a list it reads"
                self._watch_tensor(obj, item, lambda obj=obj, i=index: obj[i] if i < len(obj) else None, where)
                self._walk(item, depth + 1)
        elif isinstance(obj, (tuple, set, frozenset)):
            for item in obj:
                self._walk(item, depth + 1)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                self._watch_tensor(
                    obj, item, lambda obj=obj, key=key: obj.get(key), f"the tensor at [{key!r}] of a dict"
                )
                self._walk(item, depth + 1)
        elif hasattr(obj, "__dict__") and (top or not _is_library(type(obj))):
            # an object of the user's (a trainer holding a model): the modules it reaches
            attributes = vars(obj)
            for name, value in attributes.items():
                where = f"the tensor {type(obj).__name__}.{name}"
                self._watch_tensor(attributes, value, lambda d=attributes, name=name: d.get(name), where)
                self._walk(value, depth + 1)
            call = getattr(type(obj), "__call__", None)  # noqa: B004  (the class's own method, to walk its code)
            if top and isinstance(call, types.FunctionType) and not _is_library(call):
                self._function(call, depth + 1)

    def _function(self, fn: types.FunctionType, depth: int) -> None:
        where = fn.__qualname__
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: a name assigned later in the enclosing function
                continue
            if _is_plain(value):
                self.cells.append((cell, value, f"{name!r}, which {where} closes over"))
            else:
                self._watch(lambda cell=cell: _cell_contents(cell), value, f"{name!r}, which {where} closes over")
                self._walk(value, depth + 1)
        for value in fn.__defaults__ or ():
            if not _is_plain(value):
                self._walk(value, depth + 1)
        namespace = fn.__globals__
        for name in _global_names(fn.__code__):
            if name not in namespace:
                continue
            value = namespace[name]
            if _is_plain(value):
                self.globals.append((namespace, name, value, f"the global {name!r} that {where} reads"))
            else:
                self._watch(
                    lambda d=namespace, name=name: d.get(name), value, f"the global {name!r} that {where} reads"
                )
                self._walk(value, depth + 1)

    def _watch(self, read, value, where: str) -> None:
        if not isinstance(value, types.ModuleType):  # an imported module is not rebound by a program
            self.identities.append((read, value, where))

    def _watch_tensor(self, container, item, read, where: str) -> None:
        if isinstance(item, Tensor) and len(container) <= _WATCHED_ITEMS:
            self.identities.append((read, item, where))

    def keep_tensors_read(self, read: set[int]) -> None:
        """After the trace: watch only the holders of tensors it read (`read`: their ids); a tensor the
        program never touched may be rebound freely (a trainer's `self.last_loss = loss`)."""
        self.identities = [e for e in self.identities if not isinstance(e[1], Tensor) or id(e[1]) in read]

    def tensor_attributes(self):
        """(holder, key, tensor) for every tensor a reachable module holds: its buffers and the
        tensors in its `__dict__` (where `holder[key] = t` stores as the module's own code did)."""
        for module in self.modules:
            for holder in (module.__dict__, module.__dict__.get("_buffers", {})):
                for key, value in list(holder.items()):
                    if isinstance(value, Tensor):
                        yield holder, key, value

    # ---- the check --------------------------------------------------------------------
    def changed(self) -> str | None:
        """What differs from the snapshot, or None."""
        for guard in self.guards:
            if not guard.holds():
                now = _module_state(guard.module)
                return f"{type(guard.module).__name__}: {_difference(guard.state, now)}"
        for cell, value, where in self.cells:
            now = _cell_contents(cell)
            if not _same(now, value):
                return f"{where}: {value!r} -> {now!r}"
        for namespace, name, value, where in self.globals:
            now = namespace.get(name)
            if not _same(now, value):
                return f"{where}: {value!r} -> {now!r}"
        for read, value, where in self.identities:
            if read() is not value:
                return f"{where}: now another object"
        return None


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:  # emptied
        return None


def _is_library(obj) -> bool:
    """genesis's own functions and classes: their globals are the library's constants, not the user's."""
    return (getattr(obj, "__module__", None) or "").startswith("genesis.")


def _same(now, value) -> bool:
    return type(now) is type(value) and (now == value or (now != now and value != value))  # nan stays nan


def _global_names(code: types.CodeType) -> set[str]:
    """The names `code` and the functions nested in it may read as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _difference(before: tuple, after: tuple) -> str:
    old, new = dict(before), dict(after)
    for key in list(old) + [k for k in new if k not in old]:
        if old.get(key) != new.get(key):
            if key == "training":
                return f"training {old.get(key)} -> {new.get(key)}"
            if key in _REGISTRIES:
                return f"{key.strip('_').replace('_', ' ')} replaced or added"
            return f"attribute {key!r} changed"
    return "its state changed"
