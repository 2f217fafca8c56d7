"""A random program as data: inputs, statements and outputs that render to Python source.

A fuzzed program is kept as records rather than as a closure so that it can be
printed (a failure is reported as a snippet that pastes into a regression
test), shrunk (a statement dropped, its dependents with it) and counted (which
op families a set of seeds covers). The source that runs is the source that is
printed: `function()` executes the rendered text, and `inputs(call)` evaluates
the same constructor expressions the snippet shows, so a reproducer cannot
drift from what the fuzzer ran.

Each statement is a format template over the names of its operands
(`"({0}.abs() + 0.5).log()"`); the guards that keep an op well defined (the
`abs() + 0.5` before a log) are part of the template, so a shrunk program
keeps them. An in-place statement binds no name: it changes the value of the
operand it `mutates`.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass, field, replace

import numpy as np

import genesis
from genesis.nn import functional as F

PRELUDE = "import numpy as np\nimport genesis\nfrom genesis.nn import functional as F\n"


@dataclass(frozen=True)
class InputSpec:
    """A tensor argument: float values uniform in [low, high), integers in [low, high], bools fair coins."""

    name: str
    shape: tuple
    dtype: str
    low: float = -2.0
    high: float = 2.0
    requires_grad: bool = False

    def source(self) -> str:
        """The constructor expression, reading from a numpy Generator called `rng`."""
        dtype = getattr(genesis, self.dtype)
        if dtype.is_floating_point:
            values = f"rng.uniform({self.low!r}, {self.high!r}, {self.shape!r})"
        elif dtype is genesis.bool:
            values = f"rng.random({self.shape!r}) < 0.5"
        else:
            values = f"rng.integers({int(self.low)}, {int(self.high) + 1}, {self.shape!r})"
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"genesis.tensor({values}, dtype=genesis.{self.dtype}{grad})"


@dataclass(frozen=True)
class Statement:
    """One line of the program. `op` names what it exercises (for coverage counts), `family` its kind."""

    op: str
    family: str
    template: str
    operands: tuple
    target: str | None = None  # the name it binds; None for an in-place statement
    mutates: str | None = None  # the operand an in-place statement writes into
    shape: tuple | None = None  # the result's shape and dtype as the generator predicts them
    dtype: str | None = None
    cost: float = 1.0  # roundings on the way to the result (sets the tolerance)

    def source(self) -> str:
        text = self.template.format(*self.operands)
        return text if self.target is None else f"{self.target} = {text}"


@dataclass(frozen=True)
class Program:
    seed: int
    inputs: tuple
    statements: tuple
    outputs: tuple
    notes: dict = field(default_factory=dict, compare=False, hash=False)

    # ---- source -----------------------------------------------------------------------
    def function_source(self) -> str:
        args = ", ".join(spec.name for spec in self.inputs)
        body = [f"    {statement.source()}" for statement in self.statements]
        body.append(f"    return ({', '.join(self.outputs)},)")
        return f"def fn({args}):\n" + "\n".join(body) + "\n"

    def inputs_source(self) -> str:
        lines = ["def inputs(call):", f"    rng = np.random.default_rng([{self.seed}, call])", "    return ["]
        lines += [f"        {spec.source()}," for spec in self.inputs]
        lines.append("    ]")
        return "\n".join(lines) + "\n"

    def source(self) -> str:
        return self.function_source() + "\n\n" + self.inputs_source()

    # ---- running ----------------------------------------------------------------------
    def namespace(self) -> dict:
        """`fn` and `inputs` defined by executing the rendered source (kept in linecache, so
        tracebacks show the program's lines)."""
        text = PRELUDE + "\n\n" + self.source()
        filename = f"<fuzz program {self.seed}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        namespace = {"np": np, "genesis": genesis, "F": F}
        exec(compile(text, filename, "exec"), namespace)  # noqa: S102 (the program is ours, made from records)
        return namespace

    @property
    def steps(self) -> float:
        """Roundings that separate an output from the inputs, at most (the sum over all statements)."""
        return sum(statement.cost for statement in self.statements)

    @property
    def requires_grad(self) -> bool:
        return any(spec.requires_grad for spec in self.inputs)

    def ops(self) -> list:
        return [statement.op for statement in self.statements]

    # ---- editing (the shrinker's moves) ---------------------------------------------------
    def without_statement(self, index: int) -> Program | None:
        """Drop statement `index` and every statement that reads what it made; None if no output is left."""
        dropped = set()
        kept = []
        for i, statement in enumerate(self.statements):
            if i == index or dropped.intersection(statement.operands):
                if statement.target is not None:
                    dropped.add(statement.target)
                continue
            kept.append(statement)
        outputs = tuple(name for name in self.outputs if name not in dropped)
        if not outputs:
            return None
        return replace(self, statements=tuple(kept), outputs=outputs)

    def bypassing(self, index: int, operand: str) -> Program:
        """Drop statement `index` and read `operand` wherever its result was read."""
        target = self.statements[index].target
        rename = lambda name: operand if name == target else name
        statements = [
            replace(s, operands=tuple(map(rename, s.operands)), mutates=rename(s.mutates) if s.mutates else None)
            for i, s in enumerate(self.statements)
            if i != index
        ]
        outputs = tuple(dict.fromkeys(map(rename, self.outputs)))
        return replace(self, statements=tuple(statements), outputs=outputs)

    def without_output(self, name: str) -> Program | None:
        outputs = tuple(n for n in self.outputs if n != name)
        return replace(self, outputs=outputs) if outputs else None

    def without_unused_inputs(self) -> Program:
        used = {name for s in self.statements for name in s.operands} | set(self.outputs)
        return replace(self, inputs=tuple(spec for spec in self.inputs if spec.name in used))

    def with_input(self, index: int, **changes) -> Program:
        inputs = list(self.inputs)
        inputs[index] = replace(inputs[index], **changes)
        return replace(self, inputs=tuple(inputs))
