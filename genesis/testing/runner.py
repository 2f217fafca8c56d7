"""Running a program eagerly and compiled, and saying how the two compare.

Each program runs on fresh inputs twice (call 0 and call 1, different
values, same shapes), eagerly and through one `genesis.compile` per backend,
so the compiled function's second call must read the tensors it is given
and not the first call's. A call returns its outputs, the `.grad` of every
input after a backward of `sum((out * w).sum())` with fixed random `w`, and
every input's values afterwards (in-place writes).

The outcome of a (program, backend) pair is one of:

- match: every call agrees within the tolerance (see `compare.py`);
- mismatch: both ran, and a value, gradient or written input differs;
- crash: compiled raised where eager did not, or both raised and the
  compiled error is an internal one (a numpy traceback, KeyError, ...);
- accepted: compiled computed something where eager refused;
- refused: both raised, the compiled error a clear one;
- eager_unclear: both raised the same internal error (eager's own bug: bad
  input deserves a clear error; reported, but not a compiled failure);
- graph_break: the compiled function fell back to eager (not a failure).
"""

from __future__ import annotations

import contextlib
import os
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

import genesis
from genesis.runtime.cuda import SIMULATED_VARIABLE
from genesis.testing.compare import UNIT_ROUNDOFF, describe_difference, tolerance
from genesis.testing.program import Program

CALLS = 2
_PACKAGE = os.path.dirname(os.path.abspath(genesis.__file__)) + os.sep
_TESTING = os.path.join(_PACKAGE, "testing") + os.sep
CLEAR_ERRORS = (TypeError, ValueError, RuntimeError, IndexError, NotImplementedError)


def run(fn, args, seed):
    """Call fn(*args), then backward of sum((out * w).sum()) over the outputs that require grad, with w
    fixed random values; return the outputs, the inputs' .grad and the inputs as (array, dtype) pairs."""
    outputs = fn(*args)
    rng = np.random.default_rng(seed)
    losses = [
        (out * genesis.tensor(rng.standard_normal(out.shape), dtype=out.dtype, device=out.device)).sum()
        for out in outputs
        if out.requires_grad
    ]
    if losses:
        sum(losses[1:], losses[0]).backward()

    def host(t):
        return None if t is None else (t.detach().cpu().numpy().copy(), t.dtype.name)

    return [host(out) for out in outputs], [host(a.grad) for a in args], [host(a) for a in args]


@dataclass
class Observation:
    """What one call did: its results, or the error it raised."""

    results: tuple | None = None
    error: BaseException | None = None
    error_text: str = ""
    location: str = ""
    clear: bool = True


@dataclass
class Outcome:
    seed: int
    backend: str
    status: str
    call: int = 0
    differences: list = field(default_factory=list)
    error: str = ""
    location: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("mismatch", "crash", "accepted")

    @property
    def reportable(self) -> bool:
        return self.failed or self.status == "eager_unclear"

    def signature(self) -> tuple:
        """What groups failures that likely share a cause: the status, the error type and where it was raised,
        or for a mismatch, what kind of value differed."""
        if self.status == "mismatch":
            kinds = sorted({d.split(" ")[0] for d in self.differences})
            return (self.status, self.backend, " ".join(kinds), "second call" if self.call else "first call")
        return (self.status, self.backend, self.error.split(":")[0], self.location)

    def summary(self) -> str:
        lines = [f"seed {self.seed} backend {self.backend}: {self.status} on call {self.call}"]
        if self.error:
            lines.append(f"  error: {self.error}" + (f"  [{self.location}]" if self.location else ""))
        lines += [f"  {d}" for d in self.differences[:8]]
        if len(self.differences) > 8:
            lines.append(f"  ... and {len(self.differences) - 8} more")
        return "\n".join(lines)


def observe(fn, args, seed) -> Observation:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Observation(results=run(fn, args, seed))
    except Exception as error:  # noqa: BLE001 (every failure is an outcome to report)
        location, clear = _where(error)
        text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
        return Observation(error=error, error_text=text, location=location, clear=clear)


def _where(error) -> tuple[str, bool]:
    """The innermost genesis frame that raised `error`, and whether the error is a clear one: a standard
    error type raised by a `raise` statement in genesis itself (not numpy's, networkx's or a KeyError)."""
    frames = traceback.extract_tb(error.__traceback__)
    inside = [f for f in frames if f.filename.startswith(_PACKAGE) and not f.filename.startswith(_TESTING)]
    location = f"{os.path.relpath(inside[-1].filename, os.path.dirname(_PACKAGE))}:{inside[-1].name}" if inside else ""
    last = frames[-1] if frames else None
    raised_here = (
        last is not None and last.filename.startswith(_PACKAGE) and (last.line or "").lstrip().startswith("raise")
    )
    return location, isinstance(error, CLEAR_ERRORS) and raised_here


def program_precision(program: Program) -> str | None:
    """The lowest-precision float dtype the program touches (its inputs' and statements' dtypes)."""
    names = [spec.dtype for spec in program.inputs] + [s.dtype for s in program.statements if s.dtype]
    floats = [n for n in names if n in UNIT_ROUNDOFF]
    return max(floats, key=UNIT_ROUNDOFF.get) if floats else None


def upstream_seed(program: Program, call: int) -> list:
    return [program.seed, call, 7]


def eager_observations(program: Program, namespace=None, calls: int = CALLS) -> list:
    namespace = namespace or program.namespace()
    return [observe(namespace["fn"], namespace["inputs"](call), upstream_seed(program, call)) for call in range(calls)]


# backends that run the program on the simulated CUDA device (runtime/cuda.py): its eager ops, and
# the program compiled for it (Triton kernels on the device's memory)
DEVICE_BACKENDS = ("cuda-eager", "cuda")


def _on_device(tensor):
    """The same leaf on the CUDA device: same values, same requires_grad."""
    moved = tensor.detach().to("cuda")
    return moved.requires_grad_(True) if tensor.requires_grad else moved


@contextlib.contextmanager
def _simulated_device():
    before = os.environ.get(SIMULATED_VARIABLE)
    os.environ[SIMULATED_VARIABLE] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[SIMULATED_VARIABLE]
        else:
            os.environ[SIMULATED_VARIABLE] = before


def run_backend(program: Program, backend: str, eager=None, namespace=None, calls: int = CALLS) -> Outcome:
    """Compile the program for `backend`, call it `calls` times, and compare each call with eager's."""
    namespace = namespace or program.namespace()
    eager = eager or eager_observations(program, namespace, calls)
    inputs = namespace["inputs"]
    on_device = backend in DEVICE_BACKENDS
    if on_device:
        compiled = namespace["fn"] if backend == "cuda-eager" else genesis.compile(namespace["fn"])
        inputs = lambda call: [_on_device(t) for t in namespace["inputs"](call)]  # noqa: E731
    else:
        compiled = genesis.compile(namespace["fn"], backend=backend)
    precision = program_precision(program)
    for call in range(calls):
        with _simulated_device() if on_device else contextlib.nullcontext():
            got = observe(compiled, inputs(call), upstream_seed(program, call))
        outcome = _judge(program, backend, call, eager[call], got, precision)
        if outcome is not None:
            return outcome
    status = "graph_break" if getattr(compiled, "graph_break", None) is not None else "match"
    if all(e.error is not None for e in eager):
        status = "refused"
    return Outcome(program.seed, backend, status)


def _judge(program, backend, call, expected: Observation, got: Observation, precision) -> Outcome | None:
    """The outcome if this call settles it (a failure), else None."""
    if expected.error is not None and got.error is not None:
        if got.clear:
            return None
        if not expected.clear and expected.error_text == got.error_text:
            return Outcome(program.seed, backend, "eager_unclear", call, error=got.error_text, location=got.location)
        return Outcome(
            program.seed,
            backend,
            "crash",
            call,
            error=f"(eager refused: {expected.error_text}) compiled raised an internal error: {got.error_text}",
            location=got.location,
        )
    if got.error is not None:
        return Outcome(program.seed, backend, "crash", call, error=got.error_text, location=got.location)
    if expected.error is not None:
        return Outcome(
            program.seed,
            backend,
            "accepted",
            call,
            error=f"eager refused ({expected.error_text}) but compiled ran",
            location=expected.location,
        )
    differences = []
    (e_out, e_grads, e_inputs), (g_out, g_grads, g_inputs) = expected.results, got.results
    steps = program.steps
    if len(e_out) != len(g_out):
        differences.append(f"outputs: {len(g_out)} results, eager gives {len(e_out)}")
    for k, (e, g) in enumerate(zip(e_out, g_out)):
        found = describe_difference(e, g, _tolerance(e, precision, steps))
        if found:
            differences.append(f"output {k}: {found}")
    mutated = {s.mutates for s in program.statements if s.mutates}
    for spec, e, g in zip(program.inputs, e_grads, g_grads):
        found = describe_difference(e, g, _tolerance(e, precision, steps, backward=True))
        if found:
            differences.append(f"grad of {spec.name}: {found}")
    for spec, e, g in zip(program.inputs, e_inputs, g_inputs):
        found = describe_difference(e, g, _tolerance(e, precision, steps))
        if found:
            what = "written input" if spec.name in mutated else "input (not written by the program)"
            differences.append(f"{what} {spec.name}: {found}")
    if differences:
        return Outcome(program.seed, backend, "mismatch", call, differences=differences)
    return None


def _tolerance(value, precision, steps, backward=False):
    return None if value is None else tolerance(value[1], precision, steps, backward=backward)


def run_program(program: Program, backends, calls: int = CALLS) -> list:
    """One outcome per backend; eager runs once and serves them all."""
    namespace = program.namespace()
    eager = eager_observations(program, namespace, calls)
    outcomes = []
    for backend in backends:
        try:
            outcomes.append(run_backend(program, backend, eager, namespace, calls))
        except Exception as error:  # noqa: BLE001 (compile() itself failed)
            location, _ = _where(error)
            outcomes.append(
                Outcome(
                    program.seed, backend, "crash", 0, error=f"{type(error).__name__}: {error}"[:300], location=location
                )
            )
    return outcomes
