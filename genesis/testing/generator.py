"""The random program generator: a seed in, a `Program` out, the same one for the same seed.

The builder keeps, for every value the program has made so far, what the
next statement needs to know to use it well: its shape and dtype (so an
operand can be picked that fits), whether compiled code must reproduce it
bit for bit (`exact`: inputs and correctly rounded arithmetic on exact
values; not sums, whose order may differ, nor libm's transcendentals), a
bound on its magnitude, and whether it carries a gradient.

Those facts keep a mismatch meaningful. A discontinuous op (floor, a
comparison, argmax, a float-to-int cast) reads only exact values, since a
last-bit difference in its operand would flip its result and prove nothing;
an op with a kink (relu, clamp, maximum) does not take an inexact fp16/bf16
value that carries a gradient, since one rounding flip there moves the
gradient by a whole step; a value whose bound grows past what its dtype holds
comfortably is scaled down by a power of two (exact) before it is used again.
The op families live in `families*.py`; this module holds the state they share.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import genesis
from genesis import dtypes
from genesis.testing import families, shapes
from genesis.testing.program import InputSpec, Program, Statement

FLOAT_CHOICES = [(genesis.float32, 50), (genesis.float64, 10), (genesis.float16, 20), (genesis.bfloat16, 20)]
INT_CHOICES = [(genesis.int64, 3), (genesis.int32, 3), (genesis.int16, 1), (genesis.int8, 1), (genesis.uint8, 1)]
# largest magnitude a value may reach before it is scaled down: low precision has little headroom
BOUND_LIMIT = {2: 256.0, 4: 1e4, 8: 1e6}
MAX_INPUTS = 6


@dataclass
class Value:
    name: str
    shape: tuple
    dtype: dtypes.DType
    exact: bool = True  # compiled must reproduce it bit for bit
    bound: float = 2.0  # |value| stays below this
    grad: bool = False  # carries a gradient back to an input
    leaf: bool = False  # a tensor argument
    root: str = ""  # the value whose memory it shares (itself unless it is a view)
    expanded: bool = False  # a view in which elements share memory (expand)
    finite: bool = True  # no nan/inf (a variance over one element is nan)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype.is_floating_point

    @property
    def is_bool(self) -> bool:
        return self.dtype is genesis.bool

    @property
    def kink_ok(self) -> bool:
        """Whether a kinked op may read it: a rounding flip would not move a gradient by a step."""
        return self.exact or not self.grad or not self.dtype.is_low_precision


class Builder:
    def __init__(self, seed: int, *, tiny: bool = False):
        self.rng = random.Random(seed)
        self.seed = seed
        self.tiny = tiny
        self.cap = 48 if tiny else 320
        # a few sizes per program, so that dims of equal size meet often: an index computed for the
        # wrong one of two equal-sized dims reads the right number of elements from the wrong places
        palette = self.rng.sample((2, 3, 4) if tiny else (2, 3, 4, 5, 6, 8), self.rng.choice([2, 2, 3]))
        self.sizes = (1,) + tuple(sorted(palette))
        self.float_dtype = self.weighted(FLOAT_CHOICES)
        self.grad = self.rng.random() < 0.45
        self.inputs: list[InputSpec] = []
        self.values: dict[str, Value] = {}
        self.statements: list[Statement] = []

    # ---- random choices -------------------------------------------------------------------
    def weighted(self, choices):
        items, weights = zip(*choices)
        return self.rng.choices(items, weights)[0]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def random_shape(self, rank=None) -> tuple:
        rank = self.weighted([(0, 1), (1, 4), (2, 5), (3, 4), (4, 3)]) if rank is None else rank
        shape = [self.rng.choice(self.sizes) for _ in range(rank)]
        while shapes.numel(shape) > self.cap:
            largest = shape.index(max(shape))
            shape[largest] = max(1, shape[largest] // 2)
        if rank and not self.tiny and self.chance(0.02):
            shape[self.rng.randrange(rank)] = 0  # an empty tensor now and then
        return tuple(shape)

    def int_dtype(self):
        return self.weighted(INT_CHOICES)

    def pick(self, ok=lambda v: True, prefer=lambda v: False) -> Value | None:
        """A value that passes `ok`, recent ones and those `prefer` likes favoured."""
        candidates = [v for v in self.values.values() if ok(v)]
        if not candidates:
            return None
        weights = [(i + 1) * (4 if prefer(v) else 1) for i, v in enumerate(candidates)]
        return self.rng.choices(candidates, weights)[0]

    def broadcast_operand(self, a: Value, ok=lambda v: True, dtype=None) -> Value | None:
        """A tensor that broadcasts with `a`: an existing value, or a new input of a partner shape."""
        if self.chance(0.5):
            found = self.pick(
                lambda v: (
                    v.name != a.name
                    and ok(v)
                    and (dtype is None or v.dtype is dtype)
                    and (s := shapes.broadcast(a.shape, v.shape)) is not None
                    and shapes.numel(s) <= self.cap
                ),
                prefer=lambda v: v.root == a.root,
            )  # the same memory read at other strides
            if found is not None:
                return found
        return self.new_input(shapes.partner(self.rng, a.shape, self.sizes, self.cap), dtype or a.dtype)

    # ---- values ---------------------------------------------------------------------------
    def new_input(self, shape, dtype, *, low=None, high=None, grad=None) -> Value | None:
        if len(self.inputs) >= MAX_INPUTS:
            return None
        name = f"x{len(self.inputs)}"
        if dtype.is_floating_point:
            low = -2.0 if low is None else low
            high = 2.0 if high is None else high
            grad = (self.grad and self.chance(0.85)) if grad is None else grad
        else:
            low = (0 if dtype is genesis.uint8 else -4) if low is None else low
            high = (8 if dtype is genesis.uint8 else 4) if high is None else high
            grad = False
        self.inputs.append(InputSpec(name, tuple(shape), dtype.name, low, high, grad))
        bound = 1.0 if dtype is genesis.bool else float(max(abs(low), abs(high)))
        value = Value(name, tuple(shape), dtype, bound=bound, grad=grad, leaf=True, root=name)
        self.values[name] = value
        return value

    def emit(
        self,
        op,
        family,
        template,
        operands,
        shape,
        dtype,
        *,
        exact=True,
        bound=None,
        grad=None,
        cost=1.0,
        view=False,
        expanded=False,
        finite=True,
    ) -> Value:
        """Append `name = template(operands)` and return the new value."""
        operands = [v for v in operands]
        name = f"v{len(self.statements)}"
        if grad is None:
            grad = dtype.is_floating_point and any(v.grad for v in operands)
        bound = max((v.bound for v in operands), default=1.0) if bound is None else bound
        if dtype is genesis.bool:
            bound = 1.0
        value = Value(
            name,
            tuple(shape),
            dtype,
            exact=exact and all(v.exact for v in operands),
            bound=float(bound),
            grad=grad,
            root=operands[0].root if view else name,
            expanded=expanded or (view and operands[0].expanded),
            finite=finite and all(v.finite for v in operands),
        )
        self.statements.append(
            Statement(
                op,
                family,
                template,
                tuple(v.name for v in operands),
                target=name,
                shape=value.shape,
                dtype=dtype.name,
                cost=cost,
            )
        )
        self.values[name] = value
        if dtype.is_floating_point and value.bound > BOUND_LIMIT[dtype.itemsize]:
            return self.scale_down(value)
        return value

    def scale_down(self, value: Value) -> Value:
        factor = 2.0 ** -max(1, int(value.bound / BOUND_LIMIT[value.dtype.itemsize]).bit_length() + 2)
        return self.emit(
            "scale", "unary", f"{{0}} * {factor!r}", [value], value.shape, value.dtype, bound=value.bound * factor
        )

    def emit_inplace(self, op, template, target: Value, others, *, exact=True, bound=None):
        """Append an in-place statement on `target` and update every value that shares its memory."""
        others = [v for v in others]
        self.statements.append(
            Statement(
                op,
                "inplace",
                template,
                (target.name, *(v.name for v in others)),
                mutates=target.name,
                shape=target.shape,
                dtype=target.dtype.name,
            )
        )
        exact = exact and all(v.exact for v in others)
        bound = max([target.bound] + [v.bound for v in others]) if bound is None else bound
        grad = target.is_float and any(v.grad for v in others)
        finite = all(v.finite for v in others)
        for value in self.values.values():
            if value.root == target.root:
                value.exact = value.exact and exact
                value.bound = max(value.bound, bound)
                value.grad = value.grad or grad
                value.finite = value.finite and finite

    def promote(self, *operands) -> dtypes.DType:
        """PyTorch's promotion over values (0-d ones in their own tier) and Python scalars."""
        dimensioned = [v.dtype for v in operands if isinstance(v, Value) and v.rank]
        zero_dim = [v.dtype for v in operands if isinstance(v, Value) and not v.rank]
        scalars = [v for v in operands if not isinstance(v, Value)]
        return dtypes.result_type(dimensioned, zero_dim, scalars)

    # ---- the program ----------------------------------------------------------------------
    def build(self, length: int) -> Program:
        first = self.float_dtype if self.chance(0.85) else self.int_dtype()
        self.new_input(self.random_shape(), first)
        if self.chance(0.4):
            self.new_input(self.random_shape(), self.float_dtype)
        attempts = 0
        while len(self.statements) < length and attempts < 40 * length:
            attempts += 1
            family = self.weighted(families.WEIGHTS)
            families.FAMILIES[family](self)
        outputs = self.choose_outputs()
        return Program(
            self.seed,
            tuple(self.inputs),
            tuple(self.statements),
            outputs,
            notes={"tiny": self.tiny, "float_dtype": self.float_dtype.name},
        )

    def choose_outputs(self) -> tuple:
        """The last value, the values nothing reads (up to four: so that few statements are dead code),
        and now and then an input or an earlier value."""
        made = [s.target or s.mutates for s in self.statements]
        last = made[-1] if made else self.inputs[0].name
        read = {name for s in self.statements for name in s.operands}
        unread = [s.target for s in self.statements if s.target and s.target not in read and s.target in self.values]
        unread = self.rng.sample(unread, min(len(unread), 4))
        others = [v for v in self.values if v != last]
        extra = self.rng.sample(others, min(len(others), self.weighted([(0, 6), (1, 3), (2, 1)])))
        return tuple(dict.fromkeys([last] + unread + extra))


def generate(seed: int, *, tiny: bool = False, length: int | None = None) -> Program:
    """The program for `seed`: mostly 2-8 statements over small shapes; `tiny` keeps every tensor
    at 48 elements or fewer (for Triton's interpreter)."""
    rng = random.Random(f"length-{seed}")
    if length is None:
        length = rng.choice([2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8]) if rng.random() < 0.93 else rng.randint(9, 14)
    return Builder(seed, tiny=tiny).build(length)
