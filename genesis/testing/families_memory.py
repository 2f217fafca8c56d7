"""The op families about memory: views, in-place writes, cat/stack, indexing.

A view shares its base's memory (`root`), so an in-place write into either
changes both, and the builder marks every value on that memory as changed.
A write into an expanded view (elements that share memory) is refused by
PyTorch and is not generated.
"""

from __future__ import annotations

import math

import genesis
from genesis.testing import shapes


def view(b, v=None):
    """A view (or a copy that reshapes: flip, clone, tril) of `v` or of a value picked; the new value or None."""
    v = v or b.pick()
    if v is None:
        return None
    kind = b.weighted(
        [
            ("reshape", 4),
            ("permute", 3),
            ("transpose", 3),
            ("expand", 5),
            ("slice", 4),
            ("unsqueeze", 3),
            ("squeeze", 2),
            ("flatten", 2),
            ("unflatten", 1),
            ("movedim", 1),
            ("narrow", 1),
            ("flip", 1),
            ("split", 1),
            ("unbind", 1),
            ("copy", 1),
            ("triangle", 1),
        ]
    )
    rank, shape = v.rank, v.shape
    emit = lambda text, out, is_view=True, expanded=False: b.emit(  # noqa: E731
        kind, "view", "{0}" + text, [v], out, v.dtype, view=is_view, expanded=expanded
    )
    if kind == "reshape":
        new = shapes.factorize(b.rng, shapes.numel(shape))
        text = list(map(str, new))
        if new and shapes.numel(new) and b.chance(0.3):
            text[b.rng.randrange(len(new))] = "-1"
        method = "view" if b.chance(0.2) else "reshape"
        return emit(f".{method}({', '.join(text) if text else '()'})", new)
    if kind == "permute" and rank >= 2:
        order = b.rng.sample(range(rank), rank)
        text = [str(d - rank if b.chance(0.3) else d) for d in order]
        return emit(f".permute({', '.join(text)})", tuple(shape[d] for d in order))
    if kind == "transpose" and rank >= 1:
        if rank == 2 and b.chance(0.3):
            return emit(b.rng.choice([".t()", ".T", ".mT"]), shape[::-1])
        d0, d1 = b.rng.randrange(rank), b.rng.randrange(rank)
        out = list(shape)
        out[d0], out[d1] = out[d1], out[d0]
        return emit(f".transpose({d0 - rank if b.chance(0.3) else d0}, {d1})", tuple(out))
    if kind == "expand":
        text, out = shapes.expanded(b.rng, shape, b.sizes, b.cap)
        if not text:
            return None
        method = ".broadcast_to(({},))" if b.chance(0.2) else ".expand({})"
        return emit(method.format(", ".join(text)), out, expanded=out != shape)
    if kind == "slice":
        key, out = shapes.slice_key(b.rng, shape)
        return emit(f"[{key}]", out)
    if kind == "unsqueeze":
        d = b.rng.randint(-rank - 1, rank)
        position = d % (rank + 1)
        return emit(f".unsqueeze({d})", shape[:position] + (1,) + shape[position:])
    if kind == "squeeze":
        if rank and b.chance(0.6):
            d = b.rng.randrange(rank)
            out = shape[:d] + shape[d + 1 :] if shape[d] == 1 else shape
            return emit(f".squeeze({d - rank if b.chance(0.3) else d})", out)
        return emit(".squeeze()", tuple(s for s in shape if s != 1))
    if kind == "flatten":
        if rank == 0:
            return emit(".flatten()", (1,))
        start = b.rng.randrange(rank)
        end = b.rng.randint(start, rank - 1)
        out = shape[:start] + (shapes.numel(shape[start : end + 1]),) + shape[end + 1 :]
        return emit(f".flatten({start}, {end - rank if b.chance(0.4) else end})", out)
    if kind == "unflatten" and rank >= 1:
        d = b.rng.randrange(rank)
        if shape[d] == 0:
            return None
        sizes = shapes.factorize(b.rng, shape[d], max_rank=3) or (1,)
        text = list(map(str, sizes))
        if b.chance(0.3):
            text[b.rng.randrange(len(sizes))] = "-1"
        return emit(f".unflatten({d}, ({', '.join(text)},))", shape[:d] + tuple(sizes) + shape[d + 1 :])
    if kind == "movedim" and rank >= 2:
        source, destination = b.rng.randrange(rank), b.rng.randrange(rank)
        order = [d for d in range(rank) if d != source]
        order.insert(destination, source)
        return emit(f".movedim({source}, {destination})", tuple(shape[d] for d in order))
    if kind == "narrow" and rank >= 1:
        d = b.rng.randrange(rank)
        if shape[d] == 0:
            return None
        start = b.rng.randrange(shape[d])
        length = b.rng.randint(1, shape[d] - start)
        return emit(f".narrow({d}, {start}, {length})", shape[:d] + (length,) + shape[d + 1 :])
    if kind == "flip" and rank >= 1:
        dims = tuple(b.rng.sample(range(rank), b.rng.randint(1, rank)))
        return emit(f".flip({dims!r})", shape, is_view=False)
    if kind == "split" and rank >= 1:
        d = b.rng.randrange(rank)
        n = shape[d]
        if n == 0:
            return None
        if b.chance(0.5):
            size = b.rng.randint(1, n)
            count = -(-n // size)
            i = b.rng.randrange(count)
            length = size if i < count - 1 else n - size * (count - 1)
            return emit(f".split({size}, dim={d})[{i}]", shape[:d] + (length,) + shape[d + 1 :])
        chunks = b.rng.randint(1, n)
        size = -(-n // chunks)
        count = -(-n // size)
        i = b.rng.randrange(count)
        length = size if i < count - 1 else n - size * (count - 1)
        return emit(f".chunk({chunks}, dim={d})[{i}]", shape[:d] + (length,) + shape[d + 1 :])
    if kind == "unbind" and rank >= 1:
        d = b.rng.randrange(rank)
        if shape[d] == 0:
            return None
        return emit(f".unbind({d})[{b.rng.randrange(shape[d])}]", shape[:d] + shape[d + 1 :])
    if kind == "copy":
        return emit(b.rng.choice([".clone()", ".contiguous()"]), shape, is_view=False)
    if kind == "triangle" and rank >= 2:
        return emit(f".{b.rng.choice(['tril', 'triu'])}({b.rng.choice([0, 0, 1, -1])})", shape, is_view=False)
    return None


def condition(b, shape):
    """A bool value that broadcasts to `shape`: an existing one, or a comparison of an exact value."""
    found = b.pick(lambda v: v.is_bool and v.exact and shapes.broadcast(v.shape, shape) == tuple(shape))
    if found is not None and b.chance(0.6):
        return found
    source = b.pick(lambda v: v.exact and not v.is_bool and shapes.broadcast(v.shape, shape) == tuple(shape))
    if source is None:
        partner = shapes.partner(b.rng, shape, (1,), b.cap)
        source = b.new_input(
            partner if shapes.broadcast(partner, shape) == tuple(shape) else shape, b.float_dtype, grad=False
        )
        if source is None:
            return None
    b.emit("compare", "compare", "{0} > 0", [source], source.shape, genesis.bool)
    return b.values[b.statements[-1].target]


# name, template ({1}: the tensor operand, S: a scalar), operand ("tensor", "scalar" or None), floats only,
# kinked, exact
INPLACE = [
    ("add_", "{0}.add_({1})", "tensor", False, False, True),
    ("sub_", "{0}.sub_({1})", "tensor", False, False, True),
    ("mul_", "{0}.mul_({1})", "tensor", False, False, True),
    ("div_", "{0}.div_({1}.abs() + 1)", "tensor", True, False, True),
    ("iadd", "{0} += {1}", "tensor", False, False, True),
    ("imul", "{0} *= {1}", "tensor", False, False, True),
    ("add_", "{0}.add_(S)", "scalar", False, False, True),
    ("mul_", "{0}.mul_(S)", "scalar", False, False, True),
    ("clamp_", "{0}.clamp_(-1, 1)", None, False, True, True),
    ("relu_", "{0}.relu_()", None, False, True, True),
    ("neg_", "{0}.neg_()", None, False, False, True),
    ("abs_", "{0}.abs_()", None, False, True, True),
    ("tanh_", "{0}.tanh_()", None, True, False, False),
    ("sigmoid_", "{0}.sigmoid_()", None, True, False, False),
    ("exp_", "{0}.clamp_(-4, 4).exp_()", None, True, True, False),
    ("pow_", "{0}.pow_(2)", None, False, False, True),
    ("fill_", "{0}.fill_(S)", "scalar", False, False, True),
    ("zero_", "{0}.zero_()", None, False, False, True),
    ("copy_", "{0}.copy_({1})", "tensor", False, False, True),
    ("setitem", "{0}[KEY] = {1}", "tensor", False, False, True),
    ("setitem", "{0}[KEY] = S", "scalar", False, False, True),
    ("view_mul_", "{0}[KEY].mul_(S)", "scalar", False, False, True),
    ("masked_fill_", "{0}.masked_fill_({1}, S)", "mask", False, False, True),
    ("lerp_", "{0}.lerp_({1}, 0.5)", "tensor", True, False, False),
]


def _writable(b, v) -> bool:
    root = b.values[v.root]
    refused = root.leaf and root.grad  # PyTorch refuses a write into a leaf that requires grad (or its view)
    return not v.expanded and not v.is_bool and (not refused or b.chance(0.03))


def inplace(b) -> bool:
    name, template, operand, floats_only, kinked, exact = b.rng.choice(INPLACE)
    target = b.pick(lambda v: _writable(b, v) and (v.is_float or not floats_only) and (not kinked or v.kink_ok))
    if target is None:
        return False
    others = []
    shape = target.shape
    if "KEY" in template:
        key, shape = shapes.slice_key(b.rng, target.shape)
        template = template.replace("KEY", key)
    if "S" in template:
        scalar = b.rng.choice([0.5, -1.5, 2.0]) if target.is_float else b.rng.choice([1, -2, 3])
        template = template.replace("S", repr(scalar))
    bound = target.bound
    if operand == "tensor":
        other = b.broadcast_operand(
            target.__class__(target.name, shape, target.dtype),
            lambda o: (
                o.dtype.category <= target.dtype.category
                and not o.is_bool
                and shapes.broadcast(o.shape, shape) == tuple(shape)
            ),
            dtype=None if b.chance(0.3) else target.dtype,
        )
        if (
            other is None
            or shapes.broadcast(other.shape, shape) != tuple(shape)
            or other.is_bool
            or b.promote(target, other).category > target.dtype.category
        ):
            return False
        others.append(other)
        bound = target.bound * other.bound if name in ("mul_", "imul") else target.bound + other.bound
    elif operand == "mask":
        mask = condition(b, shape)
        if mask is None:
            return False
        others.append(mask)
    elif operand == "scalar":
        bound = bound * 3 + 3
    if name in ("pow_",):
        bound = bound * bound
    b.emit_inplace(name, template, target, others, exact=exact, bound=bound)
    return True


def same_shape_operand(b, v):
    """A value of `v`'s shape and dtype: an existing one, or a new input."""
    found = b.pick(lambda o: o.shape == v.shape and o.dtype is v.dtype and o.name != v.name)
    return found if found is not None and b.chance(0.5) else b.new_input(v.shape, v.dtype)


def join(b) -> bool:
    v = b.pick()
    if v is None:
        return False
    if b.chance(0.5) and v.rank >= 1:
        d = b.rng.randrange(v.rank)
        other_shape = v.shape[:d] + (b.rng.choice(b.sizes),) + v.shape[d + 1 :]
        out = v.shape[:d] + (v.shape[d] + other_shape[d],) + v.shape[d + 1 :]
        if shapes.numel(out) > b.cap:
            return False
        other = b.pick(lambda o: o.shape == other_shape and o.dtype is v.dtype and o.name != v.name)
        other = other or b.new_input(other_shape, v.dtype)
        if other is None:
            return False
        b.emit(
            "cat",
            "join",
            f"genesis.cat([{{0}}, {{1}}], dim={d - v.rank if b.chance(0.3) else d})",
            [v, other],
            out,
            v.dtype,
        )
        return True
    d = b.rng.randint(-v.rank - 1, v.rank)
    position = d % (v.rank + 1)
    out = v.shape[:position] + (2,) + v.shape[position:]
    if shapes.numel(out) > b.cap:
        return False
    other = same_shape_operand(b, v)
    if other is None:
        return False
    b.emit("stack", "join", f"genesis.stack([{{0}}, {{1}}], dim={d})", [v, other], out, v.dtype)
    return True


def index(b) -> bool:
    kind = b.weighted([("advanced", 3), ("index_select", 2), ("gather", 2), ("scatter_add", 1), ("mask", 1)])
    v = b.pick(lambda v: v.rank >= 1 and 0 not in v.shape)
    if v is None:
        return False
    d = b.rng.randrange(v.rank)
    count = b.rng.randint(1, 4)
    if kind == "advanced":
        idx = b.new_input((count,), genesis.int64, low=0, high=v.shape[0] - 1)
        return (
            idx is not None and b.emit("index", "index", "{0}[{1}]", [v, idx], (count,) + v.shape[1:], v.dtype) and True
        )
    if kind == "index_select":
        idx = b.new_input((count,), genesis.int64, low=0, high=v.shape[d] - 1)
        return (
            idx is not None
            and b.emit(
                "index_select",
                "index",
                f"{{0}}.index_select({d}, {{1}})",
                [v, idx],
                v.shape[:d] + (count,) + v.shape[d + 1 :],
                v.dtype,
            )
            and True
        )
    if kind in ("gather", "scatter_add"):
        idx_shape = tuple(count if i == d else b.rng.randint(1, s) for i, s in enumerate(v.shape))
        idx = b.new_input(idx_shape, genesis.int64, low=0, high=v.shape[d] - 1)
        if idx is None:
            return False
        if kind == "gather":
            b.emit("gather", "index", f"{{0}}.gather({d}, {{1}})", [v, idx], idx_shape, v.dtype)
            return True
        src = b.new_input(idx_shape, v.dtype)
        if src is None or v.is_bool:
            return False
        b.emit(
            "scatter_add",
            "index",
            f"{{0}}.scatter_add({d}, {{1}}, {{2}})",
            [v, idx, src],
            v.shape,
            v.dtype,
            exact=not v.is_float,
            bound=v.bound + count * src.bound,
            cost=1 + math.log2(1 + count),
        )
        return True
    mask = b.pick(lambda m: m.is_bool and m.shape == v.shape)
    if mask is None:
        return False
    # the result's length depends on the values: the compiled function cannot hold it in a graph
    value = b.emit("masked_select", "index", "{0}[{1}]", [v, mask], (0,), v.dtype)
    del b.values[value.name]  # its shape is unknown until it runs: no later statement reads it
    return True
