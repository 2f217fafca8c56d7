"""`genesis.compile`: trace on first call, run the compiled program after, re-trace when a guard misses.

A `CompiledFunction` keeps a small table of programs keyed by their guards:
the shapes, dtypes, devices and requires_grad of the tensor arguments, the
values of the other arguments, grad mode and the autocast state. A call whose
key is new traces and compiles again (a recompile), and `stats` says which
guard missed. Code that a graph cannot hold (a host read, a random draw)
raises `GraphBreak` while tracing; the function then runs eagerly from then
on, with one warning naming the line, or the error propagates with
`fullgraph=True`.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings

from genesis import dispatch, grad_mode
from genesis.autocast_state import get_autocast_dtype, is_autocast_enabled
from genesis.compiler import debug, native, pytree
from genesis.compiler.compiled_module import compiled_module
from genesis.compiler.program import Program, build_program
from genesis.compiler.report import format_report
from genesis.compiler.symbols import GraphBreak
from genesis.compiler.training import TrainingOptions, TrainingStep
from genesis.nn import Module
from genesis.tensor import Tensor

log = logging.getLogger("genesis.compiler")

BACKENDS = ("numpy", "c", "triton", "eager")
RECOMPILE_WARNING = 8  # recompiles of one function before it warns
RECOMPILE_LIMIT = 64  # ... and before it gives up and runs eagerly (a guard that fails on every call)
PROGRAMS_PER_KEY = 8  # programs kept per argument signature (train and eval, a few module states)


# torch.compile's arguments that tune Inductor, accepted so that a ported call runs unchanged: genesis
# has one way to compile (its passes, then the backend's kernels) and always specialises a program
# on its inputs' shapes, guarding them (what `dynamic=False` asks for; with `dynamic=True` a new
# shape still compiles anew)
TORCH_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
TORCH_BACKENDS = ("inductor",)  # PyTorch's default compiler: genesis's default backend here


def compile(
    fn=None,
    *,
    backend=None,
    fullgraph=False,
    dump_dir=None,
    disable_passes=(),
    amp=None,
    loss_scale=None,
    clip_grad_norm=None,
    mode=None,
    dynamic=None,
    options=None,
    disable=False,
):
    """Compile `fn` (a function or a Module) into fused kernels; usable as a decorator.

    A Module comes back as the same module for every purpose (its parameters, state_dict,
    train/eval, attributes and methods: see `compiled_module`) whose calls run the program.

    backend: "c" (C kernels built by the system's C compiler: the CPU default
    where one is found), "numpy" (chunked numpy kernels: the default without a
    compiler), "triton", or "eager" (trace and run the optimised graph node by
    node: the debugging mode). `GENESIS_COMPILE=0`
    returns `fn` unchanged. `dump_dir` (or `GENESIS_DUMP`) writes the IR after
    each pass, the kernels and a report. For a training step written plainly,
    `amp="bf16"|"fp16"`, `loss_scale="dynamic"` and `clip_grad_norm=max_norm`
    add autocast, a GradScaler and clipping (see `compiler.training`).

    torch.compile's `mode`, `dynamic` and `options` are accepted and change nothing (see
    TORCH_MODES); `backend="inductor"` is the default backend; `disable=True` returns `fn`.
    """
    if fn is None:
        return functools.partial(
            compile,
            backend=backend,
            fullgraph=fullgraph,
            dump_dir=dump_dir,
            disable_passes=disable_passes,
            amp=amp,
            loss_scale=loss_scale,
            clip_grad_norm=clip_grad_norm,
            mode=mode,
            dynamic=dynamic,
            options=options,
            disable=disable,
        )
    if mode is not None and mode not in TORCH_MODES:
        raise ValueError(f"genesis.compile: unknown mode {mode!r}; torch.compile's modes are {TORCH_MODES}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"genesis.compile: options must be a dict, got {type(options).__name__}")
    training = TrainingOptions.parse(amp, loss_scale, clip_grad_norm)
    if training is not None:
        fn = TrainingStep(fn, training)
    if disable or os.environ.get("GENESIS_COMPILE", "1") == "0":
        return fn
    backend = None if backend in TORCH_BACKENDS else backend
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"genesis.compile: unknown backend {backend!r}; choose one of {BACKENDS}")
    compiled = CompiledFunction(
        fn,
        backend=backend,
        fullgraph=fullgraph,
        dump_dir=dump_dir or os.environ.get("GENESIS_DUMP"),
        disable_passes=disable_passes,
    )
    return compiled_module(fn, compiled) if isinstance(fn, Module) else compiled


def default_backend() -> str:
    """ "c" where a C compiler is found (see compiler/native.py), else "numpy"."""
    return "c" if native.compiler_available() else "numpy"


class CompiledFunction:
    def __init__(self, fn, *, backend, fullgraph, dump_dir, disable_passes):
        self.fn = fn
        self.backend = backend
        self.fullgraph = fullgraph
        self.dump_dir = dump_dir
        self.disable_passes = tuple(disable_passes)
        self._table: dict[tuple, list[Program]] = {}  # guard key -> its programs, newest first
        self.graph_break: GraphBreak | None = None
        self.stats = {
            "compiles": 0,
            "recompiles": 0,
            "recompile_reasons": [],
            "cache_hits": 0,
            "disk_cache_hits": 0,
            "kernels_per_call": 0,
            "fallbacks": [],
            "calls": 0,
            "eager_calls": 0,
        }
        functools.update_wrapper(self, fn, updated=())

    @property
    def options(self) -> dict:
        """The keyword arguments that make a CompiledFunction like this one for another function."""
        return {
            "backend": self.backend,
            "fullgraph": self.fullgraph,
            "dump_dir": self.dump_dir,
            "disable_passes": self.disable_passes,
        }

    def __call__(self, *args, **kwargs):
        self.stats["calls"] += 1
        if self.graph_break is not None or dispatch.is_tracing():
            # called inside another compiled function's trace: its code becomes part of that graph
            return self.fn(*args, **kwargs)
        leaves, spec = pytree.flatten((args, kwargs))
        key = guard_key(leaves, spec)
        program, stale = self._lookup(key)
        if program is not None and not program.confirmed:
            program = self._confirm(key, program, leaves, spec)
            if program is None:  # the second trace broke the graph: eager from now on
                return self.fn(*args, **kwargs)
        if program is None:
            program = self._compile(key, leaves, spec, stale)
            if program is None:  # the trace broke: this call and every later one run eagerly
                return self.fn(*args, **kwargs)
        else:
            self.stats["cache_hits"] += 1
        if program.shares_memory(leaves):
            self.stats["eager_calls"] += 1
            return self.fn(*args, **kwargs)
        return program(leaves)

    def _lookup(self, key):
        """(the first program for `key` whose guards hold, or None; why the others do not fit)."""
        stale = None
        for program in self._table.get(key, ()):
            why = program.stale()
            if why is None:
                return program, None
            stale = stale or why
        return None, stale

    def _confirm(self, key, program, leaves, spec):
        """Trace once more on the second call. The first trace ran the code's first-call branches
        (an optimizer making its state, SGD's first momentum step); if the second trace differs,
        the first call's program was a warm-up and the new one serves every later call."""
        again = self._build(leaves, spec, "the second call, traced again to confirm the first's graph")
        if again is None:
            return None
        again.confirmed = True
        if again.graph.signature() != program.graph.signature():
            self.stats["recompiles"] += 1
            self.stats["recompile_reasons"].append(
                "the second call's trace differs from the first's (state made on the first call)"
            )
            self._replace(key, program, again)
            return again
        program.confirmed = True
        program.world = again.world  # the state as the second call found it
        return program

    def _replace(self, key, old, new) -> None:
        programs = self._table[key]
        programs[programs.index(old)] = new

    def _build(self, leaves, spec, why: str):
        try:
            program = build_program(
                self.fn, leaves, spec, backend=self.backend, dump_dir=self.dump_dir, disable_passes=self.disable_passes
            )
        except GraphBreak as error:
            if self.fullgraph:
                raise
            self.graph_break = error
            self.stats["fallbacks"].append(f"graph break: {error}")
            warnings.warn(
                f"genesis.compile: {_name(self.fn)} runs eagerly: {error.what} at "
                f"{error.line or '<unknown>'} cannot be traced into a graph",
                stacklevel=4,
            )
            return None
        debug.show(debug.COMPILES, debug.compile_line(_name(self.fn), self.backend, why, program.seconds, program.info))
        debug.show(debug.DECISIONS, format_report(program.report))
        return program

    def _compile(self, key, leaves, spec, stale=None):
        why = "the first call"
        if self._table:
            reason = stale or _guard_miss(key, self._table)
            why = f"recompiled: {reason}"
            self.stats["recompiles"] += 1
            self.stats["recompile_reasons"].append(reason)
            log.info("recompiling %s: %s", _name(self.fn), reason)
            if self.stats["recompiles"] == RECOMPILE_WARNING:
                warnings.warn(
                    f"genesis.compile: {_name(self.fn)} was recompiled {RECOMPILE_WARNING} times; "
                    f"the guard that keeps failing: {reason}",
                    stacklevel=3,
                )
            if self.stats["recompiles"] > RECOMPILE_LIMIT:
                self.graph_break = GraphBreak(f"more than {RECOMPILE_LIMIT} recompiles (the last: {reason})")
                warnings.warn(
                    f"genesis.compile: {_name(self.fn)} runs eagerly from now on: it was recompiled "
                    f"more than {RECOMPILE_LIMIT} times; the last reason: {reason}",
                    stacklevel=3,
                )
                return None
        program = self._build(leaves, spec, why)
        if program is None:
            return None
        self.stats["compiles"] += 1
        self.stats["disk_cache_hits"] += int(program.info.get("cache_hit", False))
        self.stats["kernels_per_call"] = program.kernels_per_call
        programs = self._table.setdefault(key, [])
        programs.insert(0, program)  # the newest first: what the guards saw last is likeliest to come again
        del programs[PROGRAMS_PER_KEY:]
        return program

    @property
    def programs(self) -> list[Program]:
        """Every compiled program kept (for reading and tests)."""
        return [program for programs in self._table.values() for program in programs]

    @property
    def graphs(self):
        """The optimised graph of each compiled program (for reading and tests)."""
        return [program.graph for program in self.programs]


def explain(fn, *args, backend=None, **kwargs) -> str:
    """Trace and compile `fn` for these arguments, without running it; return the report as text.
    `backend`: as genesis.compile's (None: the default, C where a compiler is found)."""
    backend = backend or default_backend()
    leaves, spec = pytree.flatten((args, kwargs))
    program = build_program(fn, leaves, spec, backend=backend)
    return format_report(program.report)


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _autocast_state():
    return is_autocast_enabled(), get_autocast_dtype().name


def guard_key(leaves, spec) -> tuple:
    """Everything a trace specialised on in the arguments: per tensor its shape, dtype, device,
    requires_grad, whether it has a gradient, which earlier argument it is (the same tensor passed
    twice is one value) and its memory layout (view() and is_contiguous() read it); the other
    arguments' values; grad mode; autocast."""
    parts = []
    first: dict[int, int] = {}
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, Tensor):
            grad = leaf.requires_grad
            parts.append(
                (
                    "tensor",
                    tuple(leaf.shape),
                    leaf.dtype.name,
                    str(leaf.device),
                    grad,
                    grad and leaf.grad is not None,
                    first.setdefault(id(leaf), i),
                    leaf._data.strides,
                )
            )
        else:
            parts.append(("value", type(leaf).__name__, _hashable(leaf)))
    return (repr(spec), tuple(parts), ("grad_mode", grad_mode.is_grad_enabled()), ("autocast", _autocast_state()))


def _hashable(value):
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


_PART_NAMES = {
    0: "shape",
    1: "dtype",
    2: "device",
    3: "requires_grad",
    4: "has a .grad",
    5: "is the same tensor as argument",
    6: "strides",
}


def _guard_miss(key, programs) -> str:
    """Name the guard that failed, against the most similar compiled key."""

    def differences(other):
        found = []
        if key[0] != other[0]:
            found.append("the structure of the arguments changed")
        for i, (mine, theirs) in enumerate(zip(key[1], other[1])):
            if mine != theirs:
                if mine[0] == theirs[0] == "tensor":
                    found += [
                        f"argument {i} {_PART_NAMES[j]}: {theirs[j + 1]} -> {mine[j + 1]}"
                        for j in range(len(_PART_NAMES))
                        if mine[j + 1] != theirs[j + 1]
                    ]
                else:
                    found.append(f"argument {i}: {theirs[1:]} -> {mine[1:]}")
        if len(key[1]) != len(other[1]):
            found.append(f"argument count {len(other[1])} -> {len(key[1])}")
        for mine, theirs in zip(key[2:], other[2:]):
            if mine != theirs:
                found.append(f"{mine[0]}: {theirs[1]} -> {mine[1]}")
        return found or ["the guard key changed"]

    return min((differences(other) for other in programs), key=len)[0]
